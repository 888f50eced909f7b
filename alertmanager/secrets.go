package alertmanager

import (
	"bytes"
	"fmt"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/prometheus/alertmanager/config"
	amcommoncfg "github.com/prometheus/alertmanager/config/common"
	commoncfg "github.com/prometheus/common/config"
	"go.yaml.in/yaml/v3"
)

// secretPlaceholder is what GET answers show instead of a secret, as
// Alertmanager's own API does; posted back, it keeps the stored value.
const secretPlaceholder = amcommoncfg.SecretToken

// secretTypes are the types Alertmanager's configuration keeps secrets in.
var secretTypes = []reflect.Type{
	reflect.TypeFor[commoncfg.Secret](),
	reflect.TypeFor[amcommoncfg.SecretURL](),
	reflect.TypeFor[amcommoncfg.SecretTemplateURL](),
	reflect.TypeFor[config.SecretTemplateURL](),
}

// secretKeys are the YAML keys that hold a secret somewhere in an
// Alertmanager configuration (password, url, api_key, …), found by walking
// the configuration's types, so that an integration added by a new
// Alertmanager release is covered without a list to keep up to date.
// Redacting by key may hide a value that is not secret where the same key
// means something else; it never shows one that is.
var secretKeys = collectSecretKeys(reflect.TypeFor[config.Config]())

func collectSecretKeys(root reflect.Type) map[string]bool {
	keys := map[string]bool{}
	seen := map[reflect.Type]bool{}
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Map || t.Kind() == reflect.Array {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct || seen[t] {
			return
		}
		seen[t] = true
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name, _ := yamlName(f)
			ft := f.Type
			for ft.Kind() == reflect.Pointer || ft.Kind() == reflect.Slice {
				ft = ft.Elem()
			}
			if slices.Contains(secretTypes, ft) && name != "" {
				keys[name] = true
				continue
			}
			walk(f.Type)
		}
	}
	walk(root)
	return keys
}

// yamlName returns a field's YAML key and whether it is inlined.
func yamlName(f reflect.StructField) (string, bool) {
	tag := f.Tag.Get("yaml")
	name, opts, _ := strings.Cut(tag, ",")
	if name == "-" {
		return "", false
	}
	if strings.Contains(opts, "inline") {
		return "", true
	}
	if name == "" {
		name = strings.ToLower(f.Name)
	}
	return name, false
}

// secretScalars calls f for every scalar under a secret key of a parsed
// YAML document, with its path. Items of sequences of named mappings
// (receivers, time intervals) are named by their name rather than their
// index, so that a path survives reordering.
func secretScalars(n *yaml.Node, path string, f func(path string, n *yaml.Node)) {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			secretScalars(c, path, f)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := joinPath(path, k.Value)
			if !secretKeys[k.Value] {
				// A URL with a password (proxy_url: http://user:pw@proxy)
				// is a secret under any key, and so is where one was
				// shown as the placeholder.
				if v.Kind == yaml.ScalarNode && (hasPassword(v.Value) || v.Value == secretPlaceholder) {
					f(p, v)
					continue
				}
				secretScalars(v, p, f)
				continue
			}
			switch v.Kind {
			case yaml.ScalarNode:
				f(p, v)
			case yaml.SequenceNode:
				for j, item := range v.Content {
					if item.Kind == yaml.ScalarNode {
						f(p+"["+strconv.Itoa(j)+"]", item)
					}
				}
			default:
				secretScalars(v, p, f)
			}
		}
	case yaml.SequenceNode:
		for j, item := range n.Content {
			secretScalars(item, path+"["+itemKey(item, j)+"]", f)
		}
	}
}

// hasPassword reports whether s is a URL with a password in it: a secret
// wherever it is.
func hasPassword(s string) bool {
	if !strings.Contains(s, "@") {
		return false
	}
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return false
	}
	_, ok := u.User.Password()
	return ok
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// itemKey names a sequence item: name=<name> for a mapping with a name,
// else its index.
func itemKey(item *yaml.Node, j int) string {
	if item.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(item.Content); i += 2 {
			if item.Content[i].Value == "name" && item.Content[i+1].Kind == yaml.ScalarNode {
				return "name=" + item.Content[i+1].Value
			}
		}
	}
	return strconv.Itoa(j)
}

func parseNode(text string) (*yaml.Node, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(text), &doc); err != nil {
		return nil, err
	}
	return &doc, nil
}

func encodeNode(doc *yaml.Node) (string, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return "", err
	}
	if err := enc.Close(); err != nil {
		return "", err
	}
	return buf.String(), nil
}

// redactSecrets returns the configuration text with every secret replaced
// by the placeholder; the text is unchanged (comments, order) otherwise.
func redactSecrets(text string) (string, error) {
	doc, err := parseNode(text)
	if err != nil {
		return "", fmt.Errorf("parse the stored configuration: %w", err)
	}
	n := 0
	secretScalars(doc, "", func(_ string, s *yaml.Node) {
		if s.Value != "" && s.Value != secretPlaceholder {
			s.Value, s.Style, s.Tag = secretPlaceholder, 0, "!!str"
			n++
		}
	})
	if n == 0 {
		return text, nil
	}
	return encodeNode(doc)
}

// restoreSecrets replaces every placeholder in a posted configuration with
// the value at the same path of the stored one (stored is "" when there is
// none), so that a configuration read with GET can be changed and posted
// back. A placeholder with nothing stored at its path is an error naming
// the path.
func restoreSecrets(text, stored string) (string, error) {
	if !strings.Contains(text, secretPlaceholder) {
		return text, nil
	}
	doc, err := parseNode(text)
	if err != nil {
		return text, nil // the parser will explain it
	}
	old := map[string]*yaml.Node{}
	if stored != "" {
		if sdoc, err := parseNode(stored); err == nil {
			secretScalars(sdoc, "", func(p string, s *yaml.Node) { old[p] = s })
		}
	}
	var missing []string
	n := 0
	secretScalars(doc, "", func(p string, s *yaml.Node) {
		if s.Value != secretPlaceholder {
			return
		}
		o, ok := old[p]
		if !ok || o.Value == secretPlaceholder {
			missing = append(missing, p)
			return
		}
		s.Value, s.Style, s.Tag = o.Value, o.Style, o.Tag
		n++
	})
	if len(missing) > 0 {
		return "", fmt.Errorf("%w: alertmanager_config: %s holds %s, the placeholder GET answers with, and the stored configuration has no secret there to keep; send the value itself",
			ErrInvalidConfig, strings.Join(missing, ", "), secretPlaceholder)
	}
	if n == 0 {
		return text, nil
	}
	return encodeNode(doc)
}

// secretValues returns the secrets of a configuration text, longest
// first, for redacting error messages.
func secretValues(text string) []string {
	doc, err := parseNode(text)
	if err != nil {
		return nil
	}
	var out []string
	secretScalars(doc, "", func(_ string, s *yaml.Node) {
		if s.Value != "" && s.Value != secretPlaceholder {
			out = append(out, s.Value)
		}
	})
	slices.SortFunc(out, func(a, b string) int { return len(b) - len(a) })
	return out
}

// redact removes secrets from an error message. The YAML parser quotes
// a value it cannot decode, shortened to its first 7 bytes and "..." when
// longer than 10, so the short form is removed too.
func redact(msg string, secrets []string) string {
	for _, s := range secrets {
		msg = strings.ReplaceAll(msg, s, secretPlaceholder)
		if len(s) > 10 {
			msg = strings.ReplaceAll(msg, "`"+s[:7]+"...`", "`"+secretPlaceholder+"`")
		}
	}
	return msg
}
