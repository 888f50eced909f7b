package agent

import (
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	config_util "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/storage/remote"

	remoteapi "github.com/prometheus/client_golang/exp/api/remote"
)

// Config configures the agent.
type Config struct {
	// URL is the remote-write endpoint, e.g. http://fluxpulse:9009/api/v1/push.
	URL string
	// TokenFile holds the bearer token. It is read again for every request,
	// so a rotated token takes effect without a restart.
	TokenFile string
	// Tenant, if set, is sent as the X-Scope-OrgID header.
	Tenant string
	// Protocol is the remote-write version: "1.0" or "2.0".
	Protocol string
	// Timeout bounds one remote-write request.
	Timeout time.Duration
	// MaxBackoff caps the wait between retries of a failed request.
	MaxBackoff time.Duration
	// ExternalLabels are added to every series; instance defaults to the
	// host name.
	ExternalLabels Labels
	// Interval is the time between two collections.
	Interval time.Duration
	// WALDir holds the write-ahead log (in WALDir/wal) and the send progress.
	WALDir string
	// WALRetention is how long unsent samples are kept.
	WALRetention time.Duration
	// Processes are the process names whose status is reported.
	Processes Names
}

// Flag names, used in error messages.
const (
	FlagURL          = "remote-write.url"
	FlagTokenFile    = "remote-write.token-file"
	FlagTenant       = "remote-write.tenant"
	FlagProtocol     = "remote-write.protocol"
	FlagInterval     = "scrape.interval"
	FlagWALDir       = "wal.dir"
	FlagWALRetention = "wal.retention"
	FlagProcess      = "process"
)

// RegisterFlags registers the agent's flags on fs.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.URL, FlagURL, "", "Remote-write endpoint, e.g. https://fluxpulse.example.com/api/v1/push.")
	fs.StringVar(&c.TokenFile, FlagTokenFile, "", "File holding the bearer token sent as 'Authorization: Bearer <token>'. Read for every request, so a rotated token needs no restart.")
	fs.StringVar(&c.Tenant, FlagTenant, "", "Tenant sent as the X-Scope-OrgID header (for FluxPulse with -auth.mode=header, or to pick one of the tenants a token may write to).")
	fs.StringVar(&c.Protocol, FlagProtocol, "1.0", "Remote-write protocol version: 1.0 or 2.0.")
	fs.DurationVar(&c.Timeout, "remote-write.timeout", 30*time.Second, "Timeout of one remote-write request.")
	fs.DurationVar(&c.MaxBackoff, "remote-write.max-backoff", 5*time.Second, "Longest wait between two retries of a failed remote-write request.")
	fs.Var(&c.ExternalLabels, "external-label", "Label added to every series, as name=value; repeatable. instance defaults to the host name.")
	fs.DurationVar(&c.Interval, FlagInterval, 15*time.Second, "Time between two collections.")
	fs.StringVar(&c.WALDir, FlagWALDir, "/var/lib/fluxpulse-agent", "Directory of the write-ahead log that holds every sample until it is sent.")
	fs.DurationVar(&c.WALRetention, FlagWALRetention, 2*time.Hour, "How long samples that could not be sent are kept; older ones are dropped.")
	fs.Var(&c.Processes, FlagProcess, "Comma-separated process names to report as up or down with their count, e.g. nginx,postgres. Matched against the kernel's process name (/proc/<pid>/comm, at most 15 bytes).")
}

// validateCollect checks what one collection needs, which is all a dry run
// needs.
func (c Config) validateCollect() error {
	for _, p := range c.Processes {
		if p == "" || strings.ContainsAny(p, "/\x00") {
			return fmt.Errorf("-%s: %q is not a process name", FlagProcess, p)
		}
	}
	for _, l := range c.ExternalLabels {
		if !model.LegacyValidation.IsValidLabelName(l.Name) || strings.HasPrefix(l.Name, "__") {
			return fmt.Errorf("-external-label: %q is not a valid label name", l.Name)
		}
	}
	return nil
}

// Validate checks the configuration for sending.
func (c Config) Validate() error {
	if err := c.validateCollect(); err != nil {
		return err
	}
	if c.URL == "" {
		return fmt.Errorf("-%s is required", FlagURL)
	}
	u, err := url.Parse(c.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("-%s: want an http or https URL, got %q", FlagURL, c.URL)
	}
	if c.TokenFile == "" && c.Tenant == "" {
		return fmt.Errorf("set -%s or -%s (or both): FluxPulse needs to know the tenant", FlagTokenFile, FlagTenant)
	}
	if c.TokenFile != "" {
		if _, err := os.ReadFile(c.TokenFile); err != nil {
			return fmt.Errorf("-%s: %w", FlagTokenFile, err)
		}
	}
	if c.Protocol != "1.0" && c.Protocol != "2.0" {
		return fmt.Errorf("-%s must be 1.0 or 2.0, got %q", FlagProtocol, c.Protocol)
	}
	if c.Interval < time.Second {
		return fmt.Errorf("-%s must be at least 1s, got %s", FlagInterval, c.Interval)
	}
	if c.WALDir == "" {
		return fmt.Errorf("-%s must not be empty", FlagWALDir)
	}
	if c.WALRetention < time.Minute {
		return fmt.Errorf("-%s must be at least 1m, got %s", FlagWALRetention, c.WALRetention)
	}
	if c.Timeout <= 0 || c.MaxBackoff <= 0 {
		return errors.New("-remote-write.timeout and -remote-write.max-backoff must be positive")
	}
	return nil
}

// messageType is the remote-write protobuf message of c.Protocol.
func (c Config) messageType() remoteapi.WriteMessageType {
	if c.Protocol == "2.0" {
		return remoteapi.WriteV2MessageType
	}
	return remoteapi.WriteV1MessageType
}

// clientConfig is the HTTP side of remote write, shared by the queue and by
// the backlog sender so that both authenticate the same way.
func (c Config) clientConfig() (*remote.ClientConfig, error) {
	u, err := url.Parse(c.URL)
	if err != nil {
		return nil, fmt.Errorf("-%s: %w", FlagURL, err)
	}
	hc := config_util.DefaultHTTPClientConfig
	if c.TokenFile != "" {
		hc.Authorization = &config_util.Authorization{Type: "Bearer", CredentialsFile: c.TokenFile}
	}
	var headers map[string]string
	if c.Tenant != "" {
		headers = map[string]string{"X-Scope-OrgID": c.Tenant}
	}
	return &remote.ClientConfig{
		URL:              &config_util.URL{URL: u},
		Timeout:          model.Duration(c.Timeout),
		HTTPClientConfig: hc,
		Headers:          headers,
		RetryOnRateLimit: true,
		WriteProtoMsg:    c.messageType(),
	}, nil
}

// remoteConfig is the Prometheus configuration of the remote-write queue.
// One shard sends batches in the order of the WAL, so the highest sent
// timestamp means everything before it was sent; the backlog sender relies
// on that.
func (c Config) remoteConfig() (*config.Config, error) {
	cc, err := c.clientConfig()
	if err != nil {
		return nil, err
	}
	rw := config.DefaultRemoteWriteConfig
	rw.Name = queueName
	rw.URL = cc.URL
	rw.RemoteTimeout = cc.Timeout
	rw.ProtobufMessage = cc.WriteProtoMsg
	rw.Headers = cc.Headers
	rw.HTTPClientConfig = cc.HTTPClientConfig
	rw.MetadataConfig.Send = false
	rw.QueueConfig.Capacity = queueCapacity
	rw.QueueConfig.MaxSamplesPerSend = batchSize
	rw.QueueConfig.MinShards = 1
	rw.QueueConfig.MaxShards = 1
	rw.QueueConfig.BatchSendDeadline = model.Duration(min(c.Interval, 5*time.Second))
	rw.QueueConfig.MaxBackoff = model.Duration(c.MaxBackoff)
	rw.QueueConfig.RetryOnRateLimit = true
	return &config.Config{
		GlobalConfig:       config.DefaultGlobalConfig,
		RemoteWriteConfigs: []*config.RemoteWriteConfig{&rw},
	}, nil
}

// queueName names the remote-write queue in the remote-storage metrics.
const queueName = "fluxpulse"

// Label is one external label.
type Label struct{ Name, Value string }

// Labels is a flag.Value collecting name=value pairs.
type Labels []Label

// String implements flag.Value.
func (ls *Labels) String() string {
	var b strings.Builder
	for i, l := range *ls {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(l.Name + "=" + l.Value)
	}
	return b.String()
}

// Set implements flag.Value: it adds one name=value pair, replacing an
// earlier value of the same name.
func (ls *Labels) Set(s string) error {
	name, value, ok := strings.Cut(s, "=")
	if !ok || name == "" {
		return fmt.Errorf("want name=value, got %q", s)
	}
	*ls = slices.DeleteFunc(*ls, func(l Label) bool { return l.Name == name })
	*ls = append(*ls, Label{name, value})
	return nil
}

// Get returns the value of the label called name and whether it is set.
func (ls Labels) Get(name string) (string, bool) {
	for _, l := range ls {
		if l.Name == name {
			return l.Value, true
		}
	}
	return "", false
}

// Names is a flag.Value for a comma-separated list, repeatable.
type Names []string

// String implements flag.Value.
func (n *Names) String() string { return strings.Join(*n, ",") }

// Set implements flag.Value.
func (n *Names) Set(s string) error {
	for p := range strings.SplitSeq(s, ",") {
		if p = strings.TrimSpace(p); p != "" && !slices.Contains(*n, p) {
			*n = append(*n, p)
		}
	}
	return nil
}
