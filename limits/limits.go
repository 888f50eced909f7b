// Package limits holds the per-tenant limits: global defaults set by flags,
// with per-tenant overrides.
package limits

import (
	"flag"
	"fmt"
	"sync/atomic"
	"time"
)

// Limits are the limits that apply to one tenant. The zero value of a count
// means unlimited unless its flag says otherwise.
type Limits struct {
	// Series validation.
	MaxLabelNamesPerSeries int    `yaml:"max_label_names_per_series"`
	MaxLabelNameLength     int    `yaml:"max_label_name_length"`
	MaxLabelValueLength    int    `yaml:"max_label_value_length"`
	NameValidationScheme   string `yaml:"name_validation_scheme"`
	MaxMetadataPerMetric   int    `yaml:"max_metadata_per_metric"`
	MaxMetadataLength      int    `yaml:"max_metadata_length"`

	// Sample timestamps.
	CreationGracePeriod  time.Duration `yaml:"creation_grace_period"`
	OutOfOrderTimeWindow time.Duration `yaml:"out_of_order_time_window"`

	// Storage.
	MaxExemplars int `yaml:"max_exemplars"`
}

// Flag names, used in error messages so that a rejection says what to change.
const (
	FlagMaxLabelNamesPerSeries = "validation.max-label-names-per-series"
	FlagMaxLabelNameLength     = "validation.max-length-label-name"
	FlagMaxLabelValueLength    = "validation.max-length-label-value"
	FlagNameValidationScheme   = "validation.name-validation-scheme"
	FlagMaxMetadataPerMetric   = "validation.max-metadata-per-metric"
	FlagMaxMetadataLength      = "validation.max-metadata-length"
	FlagCreationGracePeriod    = "validation.create-grace-period"
	FlagOutOfOrderTimeWindow   = "ingester.out-of-order-time-window"
	FlagMaxExemplars           = "ingester.max-exemplars"
)

// RegisterFlags registers the global defaults.
func (l *Limits) RegisterFlags(fs *flag.FlagSet) {
	fs.IntVar(&l.MaxLabelNamesPerSeries, FlagMaxLabelNamesPerSeries, 30, "Maximum number of labels a series may have, its metric name included.")
	fs.IntVar(&l.MaxLabelNameLength, FlagMaxLabelNameLength, 1024, "Maximum length of a label name in bytes.")
	fs.IntVar(&l.MaxLabelValueLength, FlagMaxLabelValueLength, 2048, "Maximum length of a label value in bytes.")
	fs.StringVar(&l.NameValidationScheme, FlagNameValidationScheme, "utf8", "Which metric and label names are valid: utf8 (any UTF-8, as Prometheus 3) or legacy ([a-zA-Z_:][a-zA-Z0-9_:]*).")
	fs.IntVar(&l.MaxMetadataPerMetric, FlagMaxMetadataPerMetric, 10, "Maximum number of distinct metadata entries kept per metric family.")
	fs.IntVar(&l.MaxMetadataLength, FlagMaxMetadataLength, 1024, "Maximum length in bytes of a metric family name, help text or unit in metadata.")
	fs.DurationVar(&l.CreationGracePeriod, FlagCreationGracePeriod, 10*time.Minute, "How far in the future a sample's timestamp may be.")
	fs.DurationVar(&l.OutOfOrderTimeWindow, FlagOutOfOrderTimeWindow, 0, "How far behind a series' newest sample an out-of-order sample is still accepted. 0 rejects every out-of-order sample.")
	fs.IntVar(&l.MaxExemplars, FlagMaxExemplars, 10000, "Exemplars kept in memory per tenant (a ring buffer, allocated when the tenant first sends one). 0 disables exemplar storage.")
}

// Validate checks the limits for consistency.
func (l Limits) Validate() error {
	switch l.NameValidationScheme {
	case "utf8", "legacy":
	default:
		return fmt.Errorf("-%s must be utf8 or legacy, got %q", FlagNameValidationScheme, l.NameValidationScheme)
	}
	if l.OutOfOrderTimeWindow < 0 {
		return fmt.Errorf("-%s must not be negative, got %s", FlagOutOfOrderTimeWindow, l.OutOfOrderTimeWindow)
	}
	if l.MaxExemplars < 0 {
		return fmt.Errorf("-%s must not be negative, got %d", FlagMaxExemplars, l.MaxExemplars)
	}
	return nil
}

// Overrides answers the limits of each tenant: the defaults, replaced as a
// whole by a tenant's override where one exists. It is safe for concurrent
// use; SetOverrides swaps the overrides atomically.
type Overrides struct {
	defaults  Limits
	overrides atomic.Pointer[map[string]Limits]
}

// NewOverrides returns Overrides with the given defaults and no per-tenant
// overrides.
func NewOverrides(defaults Limits) *Overrides {
	o := &Overrides{defaults: defaults}
	o.overrides.Store(&map[string]Limits{})
	return o
}

// Defaults returns the global defaults.
func (o *Overrides) Defaults() Limits { return o.defaults }

// Limits returns the limits of tenant.
func (o *Overrides) Limits(tenant string) Limits {
	if l, ok := (*o.overrides.Load())[tenant]; ok {
		return l
	}
	return o.defaults
}

// SetOverrides replaces every per-tenant override.
func (o *Overrides) SetOverrides(m map[string]Limits) {
	o.overrides.Store(&m)
}
