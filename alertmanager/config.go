package alertmanager

import (
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"time"
)

// Config configures the multi-tenant Alertmanager.
type Config struct {
	// ExternalURL is the URL under which users reach the Alertmanager API
	// (http://host:9009/alertmanager): .ExternalURL in templates and the
	// links notifications carry.
	ExternalURL string
	// FallbackConfigFile is an Alertmanager configuration (the plain
	// Alertmanager format) for tenants that have none of their own; empty
	// means such tenants have no Alertmanager.
	FallbackConfigFile string
	// PollInterval is how often every tenant's configuration is read again
	// from the bucket, to see changes made through other processes.
	PollInterval time.Duration
	// PersistInterval is how often silences and notification logs that
	// changed are written to the bucket (and at shutdown).
	PersistInterval time.Duration
	// Retention is how long silences and notification-log entries are kept
	// after they end.
	Retention time.Duration
	// MaxTenants bounds the tenants with a running Alertmanager in this
	// process; 0 means unlimited.
	MaxTenants int
	Firewall   FirewallConfig
}

// FirewallConfig decides where receivers may send notifications. Every
// address a notification connects to (webhooks, Slack, e-mail, …, and the
// proxies and OAuth2 token endpoints on the way) is checked when it is
// dialled, after name resolution.
type FirewallConfig struct {
	// BlockPrivateAddresses refuses loopback, link-local (cloud metadata
	// services among them), private (RFC 1918, unique-local IPv6), shared
	// (100.64.0.0/10), unspecified and multicast addresses.
	BlockPrivateAddresses bool
	// BlockCIDRs are further networks refused.
	BlockCIDRs CIDRList
	// AllowCIDRs are networks allowed even though BlockPrivateAddresses or
	// BlockCIDRs would refuse them (an internal mail relay, say).
	AllowCIDRs CIDRList
}

// Flag names used in error messages.
const (
	FlagFallbackConfig       = "alertmanager.configs.fallback"
	FlagExternalURL          = "alertmanager.web.external-url"
	FlagFirewallBlockPrivate = "alertmanager.receivers-firewall-block-private-addresses"
	FlagFirewallBlockCIDRs   = "alertmanager.receivers-firewall-block-cidr-networks"
	FlagFirewallAllowCIDRs   = "alertmanager.receivers-firewall-allow-cidr-networks"
	FlagMaxTenants           = "alertmanager.max-tenants"
	flagPollInterval         = "alertmanager.configs.poll-interval"
	flagPersistInterval      = "alertmanager.persist-interval"
	flagRetention            = "alertmanager.storage.retention"
)

// RegisterFlags registers the Alertmanager's flags.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.ExternalURL, FlagExternalURL, "http://localhost:9009/alertmanager", "URL under which users reach the Alertmanager API: .ExternalURL in notification templates and the links notifications carry.")
	fs.StringVar(&c.FallbackConfigFile, FlagFallbackConfig, "", "Alertmanager configuration file (plain Alertmanager format) used for tenants that have none of their own. Empty: such tenants have no Alertmanager and their alerts are dropped.")
	fs.DurationVar(&c.PollInterval, flagPollInterval, time.Minute, "How often tenants' Alertmanager configurations are read again from object storage (changes made through this process apply at once).")
	fs.DurationVar(&c.PersistInterval, flagPersistInterval, 15*time.Second, "How often silences and notification logs that changed are written to object storage; they are also written at shutdown, and silences whenever the API changes one.")
	fs.DurationVar(&c.Retention, flagRetention, 120*time.Hour, "How long silences and notification-log entries are kept after they end.")
	fs.IntVar(&c.MaxTenants, FlagMaxTenants, 0, "Maximum tenants with a running Alertmanager in this process. 0 means unlimited.")
	fs.BoolVar(&c.Firewall.BlockPrivateAddresses, FlagFirewallBlockPrivate, true, "Refuse notifications to loopback, link-local (cloud metadata), private, shared and multicast addresses, checked on the resolved address when connecting.")
	fs.Var(&c.Firewall.BlockCIDRs, FlagFirewallBlockCIDRs, "Comma-separated networks (CIDR) notifications may not connect to, besides those of -"+FlagFirewallBlockPrivate+".")
	fs.Var(&c.Firewall.AllowCIDRs, FlagFirewallAllowCIDRs, "Comma-separated networks (CIDR) notifications may connect to even when a block flag refuses them (an internal mail relay, say).")
}

// Validate checks the configuration.
func (c Config) Validate() error {
	if c.PollInterval <= 0 || c.PersistInterval <= 0 || c.Retention <= 0 {
		return fmt.Errorf("-%s, -%s and -%s must be positive", flagPollInterval, flagPersistInterval, flagRetention)
	}
	if c.MaxTenants < 0 {
		return fmt.Errorf("-%s must not be negative, got %d", FlagMaxTenants, c.MaxTenants)
	}
	u, err := url.Parse(c.ExternalURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("-%s must be an http:// or https:// URL with a host, got %q", FlagExternalURL, c.ExternalURL)
	}
	if c.FallbackConfigFile != "" {
		if _, err := os.Stat(c.FallbackConfigFile); err != nil {
			return fmt.Errorf("-%s: %w", FlagFallbackConfig, err)
		}
	}
	return nil
}

// CIDRList is a comma-separated list of networks, as a flag.
type CIDRList []netip.Prefix

// String implements flag.Value.
func (l *CIDRList) String() string {
	parts := make([]string, len(*l))
	for i, p := range *l {
		parts[i] = p.String()
	}
	return strings.Join(parts, ",")
}

// Set implements flag.Value.
func (l *CIDRList) Set(s string) error {
	var out CIDRList
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		p, err := netip.ParsePrefix(part)
		if err != nil {
			return errors.New("networks are CIDRs such as 10.0.0.0/8 or fd00::/8, separated by commas: " + err.Error())
		}
		out = append(out, p.Masked())
	}
	*l = out
	return nil
}
