package alertmanager

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"maps"
	"path"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/prometheus/alertmanager/config"
	"github.com/prometheus/alertmanager/template"
	"go.yaml.in/yaml/v3"

	"github.com/fluxpulse/fluxpulse/limits"
)

// ErrInvalidConfig is wrapped by every error about a configuration that
// cannot be stored: bad YAML, unknown or forbidden fields, what
// Alertmanager's own parser refuses, bad templates, or a limit.
var ErrInvalidConfig = errors.New("invalid Alertmanager configuration")

// MaxBodyBytes is the largest configuration request body accepted; the
// per-tenant limits are checked within it.
const MaxBodyBytes = 16 << 20

// maxTemplateNameLength bounds the name of a template file.
const maxTemplateNameLength = 255

// UserConfig is a tenant's Alertmanager configuration as the API takes it
// and as it is stored: the format of Cortex and Mimir (and of Grafana and
// mimirtool), an Alertmanager configuration file as text plus the template
// files it may name in its templates list.
type UserConfig struct {
	TemplateFiles      map[string]string `yaml:"template_files,omitempty"`
	AlertmanagerConfig string            `yaml:"alertmanager_config"`
}

// compiled is a configuration ready to run.
type compiled struct {
	cfg  *config.Config
	tmpl *template.Template
	hash [sha256.Size]byte // of the stored form; equal hashes need no reload
}

// decodeUserConfig decodes a request body or stored object. Unknown keys
// are errors, so that a misspelt key never drops templates silently.
func decodeUserConfig(b []byte) (*UserConfig, error) {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var uc UserConfig
	if err := dec.Decode(&uc); err != nil {
		return nil, fmt.Errorf("%w: the body is not YAML with template_files and alertmanager_config: %v", ErrInvalidConfig, err)
	}
	if strings.TrimSpace(uc.AlertmanagerConfig) == "" {
		return nil, fmt.Errorf("%w: alertmanager_config is missing or empty", ErrInvalidConfig)
	}
	return &uc, nil
}

// decodeStored decodes a stored configuration object.
func decodeStored(b []byte) (*UserConfig, error) { return decodeUserConfig(b) }

// encode returns the stored form.
func (uc *UserConfig) encode() ([]byte, error) { return yaml.Marshal(uc) }

// checkLimits checks a configuration against the tenant's limits.
func checkLimits(uc *UserConfig, lim limits.Limits) error {
	if m := lim.AlertmanagerMaxConfigSizeBytes; m > 0 && len(uc.AlertmanagerConfig) > m {
		return fmt.Errorf("%w: alertmanager_config is %d bytes, the limit is %d (%s)", ErrInvalidConfig,
			len(uc.AlertmanagerConfig), m, limits.Source(limits.FlagAlertmanagerMaxConfigSize))
	}
	if m := lim.AlertmanagerMaxTemplatesCount; m > 0 && len(uc.TemplateFiles) > m {
		return fmt.Errorf("%w: template_files has %d templates, the limit is %d (%s)", ErrInvalidConfig,
			len(uc.TemplateFiles), m, limits.Source(limits.FlagAlertmanagerMaxTemplates))
	}
	for _, name := range slices.Sorted(maps.Keys(uc.TemplateFiles)) {
		if m := lim.AlertmanagerMaxTemplateSizeBytes; m > 0 && len(uc.TemplateFiles[name]) > m {
			return fmt.Errorf("%w: template_files[%q] is %d bytes, the limit is %d (%s)", ErrInvalidConfig,
				name, len(uc.TemplateFiles[name]), m, limits.Source(limits.FlagAlertmanagerMaxTemplateSize))
		}
	}
	return nil
}

// compile parses and checks a tenant's configuration: Alertmanager's own
// parser, the fields a tenant may not set, and the templates. Errors wrap
// ErrInvalidConfig, name the field, and never hold a secret.
func compile(uc *UserConfig, externalURL string) (*compiled, error) {
	secrets := secretValues(uc.AlertmanagerConfig)
	cfg, err := loadConfig(uc.AlertmanagerConfig)
	if err != nil {
		return nil, fmt.Errorf("%w: alertmanager_config: %s", ErrInvalidConfig, redact(err.Error(), secrets))
	}
	if err := checkTenantFields(cfg); err != nil {
		return nil, fmt.Errorf("%w: alertmanager_config: %s", ErrInvalidConfig, redact(err.Error(), secrets))
	}
	tmpl, err := buildTemplates(cfg.Templates, uc.TemplateFiles, externalURL)
	if err != nil {
		return nil, err
	}
	stored, err := uc.encode()
	if err != nil {
		return nil, fmt.Errorf("encode the configuration: %w", err)
	}
	return &compiled{cfg: cfg, tmpl: tmpl, hash: sha256.Sum256(stored)}, nil
}

// loadConfig parses a configuration with Alertmanager's parser, which
// panics on some input (a null entry in a route's routes, in 0.35): that
// is an error here, not a crash.
func loadConfig(text string) (cfg *config.Config, err error) {
	defer func() {
		if p := recover(); p != nil {
			cfg, err = nil, fmt.Errorf("Alertmanager's parser failed on it (%v); look for empty entries in lists such as routes", p)
		}
	}()
	return config.Load(text)
}

// checkTemplateName refuses names that could not be files of their own.
func checkTemplateName(name string) error {
	if name == "" || len(name) > maxTemplateNameLength || !utf8.ValidString(name) || name == "." || name == ".." ||
		strings.ContainsAny(name, "/\\\x00") {
		return fmt.Errorf("%w: template_files: %q is not a valid template name: 1 to %d bytes of UTF-8, no slash, not . or ..",
			ErrInvalidConfig, name, maxTemplateNameLength)
	}
	return nil
}

// buildTemplates parses the default templates and the template files the
// configuration's templates list names. Each entry of that list is a
// file-name pattern matched against the names of template_files (a
// directory in front of it is ignored, so a list written for a stand-alone
// Alertmanager, /etc/alertmanager/templates/*.tmpl, keeps working); a
// pattern matching nothing is not an error, as in Alertmanager.
func buildTemplates(patterns []string, files map[string]string, externalURL string) (*template.Template, error) {
	names := slices.Sorted(maps.Keys(files))
	for _, name := range names {
		if err := checkTemplateName(name); err != nil {
			return nil, err
		}
	}
	tmpl, err := template.FromGlobs(nil)
	if err != nil {
		return nil, fmt.Errorf("load the default templates: %w", err)
	}
	if tmpl.ExternalURL, err = parseExternalURL(externalURL); err != nil {
		return nil, err
	}
	parsed := map[string]bool{}
	for i, p := range patterns {
		base := path.Base(strings.ReplaceAll(p, "\\", "/"))
		if _, err := path.Match(base, ""); err != nil {
			return nil, fmt.Errorf("%w: alertmanager_config: templates[%d]: %q is not a valid file-name pattern", ErrInvalidConfig, i, p)
		}
		for _, name := range names {
			if ok, _ := path.Match(base, name); !ok || parsed[name] {
				continue
			}
			parsed[name] = true
			if err := tmpl.Parse(strings.NewReader(files[name])); err != nil {
				return nil, fmt.Errorf("%w: template_files[%q]: %v", ErrInvalidConfig, name, err)
			}
		}
	}
	return tmpl, nil
}

// checkTenantFields refuses what a tenant may not configure on a shared
// server: any field naming a file on the server (password_file, ca_file,
// url_file, …: the file's content would be sent to the tenant's receiver),
// the server's proxy settings, AWS credentials of the server, an HTTP
// client that bypasses the receivers firewall, tracing and event
// recording. Fields are found by walking the parsed configuration, so that
// every integration is covered.
func checkTenantFields(cfg *config.Config) error {
	if !reflect.ValueOf(cfg.TracingConfig).IsZero() {
		return errors.New("tracing: not allowed in a tenant's configuration")
	}
	if !reflect.ValueOf(cfg.EventRecorder).IsZero() {
		return errors.New("event_recorder: not allowed in a tenant's configuration")
	}
	return walkFields(reflect.ValueOf(cfg).Elem(), "")
}

func walkFields(v reflect.Value, p string) error {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return nil
		}
		return walkFields(v.Elem(), p)
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			if err := walkFields(v.Index(i), p+"["+strconv.Itoa(i)+"]"); err != nil {
				return err
			}
		}
	case reflect.Map:
		for _, k := range v.MapKeys() {
			if err := walkFields(v.MapIndex(k), fmt.Sprintf("%s[%v]", p, k)); err != nil {
				return err
			}
		}
	case reflect.Struct:
		if v.Type().PkgPath() == "github.com/prometheus/sigv4" && v.Type().Name() == "SigV4Config" {
			if err := checkSigV4(v, p); err != nil {
				return err
			}
		}
		for i := range v.NumField() {
			f := v.Type().Field(i)
			if !f.IsExported() {
				continue
			}
			name, inline := yamlName(f)
			if name == "" && !inline {
				continue
			}
			fp := p
			if !inline {
				fp = joinPath(p, name)
			}
			if err := checkField(v.Field(i), name, fp); err != nil {
				return err
			}
			if err := walkFields(v.Field(i), fp); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkField refuses one forbidden field.
func checkField(v reflect.Value, name, p string) error {
	switch {
	case name == "files" || strings.HasSuffix(name, "_file") || strings.HasSuffix(name, "_files"):
		if (v.Kind() == reflect.String || v.Kind() == reflect.Slice) && v.Len() > 0 {
			return fmt.Errorf("%s: files on the server may not be named in a tenant's configuration (their content would be sent out); give the value itself", p)
		}
	case name == "proxy_from_environment":
		if v.Kind() == reflect.Bool && v.Bool() {
			return fmt.Errorf("%s: the server's proxy settings may not be used; set proxy_url", p)
		}
	case name == "use_aws_http_client":
		if v.Kind() == reflect.Bool && v.Bool() {
			return fmt.Errorf("%s: AWS's HTTP client would bypass the receivers firewall; remove it", p)
		}
	}
	return nil
}

// checkSigV4 makes SNS use the tenant's own AWS credentials: without an
// access key (or with a profile or a role to assume) the AWS SDK would
// find the server's.
func checkSigV4(v reflect.Value, p string) error {
	str := func(field string) string {
		if f := v.FieldByName(field); f.IsValid() && f.Kind() == reflect.String {
			return f.String()
		}
		return ""
	}
	switch {
	case str("Profile") != "":
		return fmt.Errorf("%s.profile: AWS profiles on the server may not be used; give access_key and secret_key", p)
	case str("RoleARN") != "":
		return fmt.Errorf("%s.role_arn: roles are assumed with the server's AWS credentials and may not be used; give access_key and secret_key", p)
	case str("AccessKey") == "" || str("SecretKey") == "":
		return fmt.Errorf("%s: access_key and secret_key are required (without them the server's own AWS credentials would be used)", p)
	}
	return nil
}
