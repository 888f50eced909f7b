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
	MaxExemplars       int `yaml:"max_exemplars"`
	MaxSeries          int `yaml:"max_series"`
	MaxSeriesPerMetric int `yaml:"max_series_per_metric"`
	// CompactorBlocksRetentionPeriod deletes blocks older than this from
	// the bucket; 0 keeps them for as long as the account exists.
	CompactorBlocksRetentionPeriod time.Duration `yaml:"compactor_blocks_retention_period"`

	// Ingestion rate, in samples (floats and histograms) per second.
	IngestionRate      float64       `yaml:"ingestion_rate"`
	IngestionBurstSize int           `yaml:"ingestion_burst_size"`
	MaxSampleAge       time.Duration `yaml:"max_sample_age"`

	// Queries.
	MaxQueryLength            time.Duration `yaml:"max_query_length"`
	MaxFetchedSamplesPerQuery int           `yaml:"max_fetched_samples_per_query"`
	MaxFetchedSeriesPerQuery  int           `yaml:"max_fetched_series_per_query"`
	QueryTimeout              time.Duration `yaml:"query_timeout"`
	MaxConcurrentQueries      int           `yaml:"max_concurrent_queries"`
	// MaxQueryParallelism bounds the querier workers of the query
	// frontend that the tenant's sub-queries hold at once (#15).
	MaxQueryParallelism int `yaml:"max_query_parallelism"`
	// MaxQueryExpressionSizeBytes bounds the PromQL text of one request
	// (the query, or every match[] together) before it is parsed.
	MaxQueryExpressionSizeBytes int `yaml:"max_query_expression_size_bytes"`
	// MaxQueryExpressionDepth bounds how deeply that text nests, as
	// queryguard counts it, before it is parsed.
	MaxQueryExpressionDepth int `yaml:"max_query_expression_depth"`
	// MaxSubquerySteps bounds the steps one subquery evaluates: the
	// engine allocates per-step arrays for each before evaluating it.
	MaxSubquerySteps int `yaml:"max_subquery_steps"`

	// Ruler.
	RulerMaxRuleGroups         int           `yaml:"ruler_max_rule_groups"`
	RulerMaxRulesPerGroup      int           `yaml:"ruler_max_rules_per_group"`
	RulerMinEvaluationInterval time.Duration `yaml:"ruler_min_evaluation_interval"`
	// RulerAlertmanagerURL, when set, sends the tenant's alerts to its own
	// Alertmanager instead of the one of -ruler.alertmanager-url.
	RulerAlertmanagerURL string `yaml:"ruler_alertmanager_url"`

	// HA pairs and sharding, when roles run apart.
	// AcceptHASamples deduplicates the tenant's Prometheus HA pairs (with
	// -distributor.ha-tracker.enable).
	AcceptHASamples bool `yaml:"accept_ha_samples"`
	// HAMaxClusters bounds the HA clusters one tenant may send.
	HAMaxClusters int `yaml:"ha_max_clusters"`
	// IngestionTenantShardSize puts the tenant's series on only that many
	// ingesters (shuffle sharding); 0 uses every ingester.
	IngestionTenantShardSize int `yaml:"ingestion_tenant_shard_size"`
	// Alertmanager: what a tenant's configuration, alerts, silences and
	// notifications may take (#16).
	AlertmanagerMaxConfigSizeBytes   int `yaml:"alertmanager_max_config_size_bytes"`
	AlertmanagerMaxTemplatesCount    int `yaml:"alertmanager_max_templates_count"`
	AlertmanagerMaxTemplateSizeBytes int `yaml:"alertmanager_max_template_size_bytes"`
	AlertmanagerMaxAlertsCount       int `yaml:"alertmanager_max_alerts_count"`
	AlertmanagerMaxSilencesCount     int `yaml:"alertmanager_max_silences_count"`
	AlertmanagerMaxSilenceSizeBytes  int `yaml:"alertmanager_max_silence_size_bytes"`
	// AlertmanagerNotificationRateLimit is the notifications per second
	// each integration (webhook, email, slack, …) of the tenant may send.
	AlertmanagerNotificationRateLimit float64 `yaml:"alertmanager_notification_rate_limit"`
	// Deletion.
	// MaxDeleteRequests bounds the tenant's pending series deletion
	// requests: each is checked against every read until it is processed.
	MaxDeleteRequests int `yaml:"max_delete_requests"`
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
	FlagMaxSeries              = "ingester.max-series-per-tenant"
	FlagMaxSeriesPerMetric     = "ingester.max-series-per-metric"
	FlagRetention              = "compactor.blocks-retention-period"
	FlagIngestionRate          = "distributor.ingestion-rate-limit"
	FlagIngestionBurstSize     = "distributor.ingestion-burst-size"
	FlagMaxSampleAge           = "validation.max-sample-age"
	FlagMaxQueryLength         = "querier.max-query-length"
	FlagMaxFetchedSamples      = "querier.max-fetched-samples-per-query"
	FlagMaxFetchedSeries       = "querier.max-fetched-series-per-query"
	FlagQueryTimeout           = "querier.query-timeout"
	FlagMaxConcurrentQueries   = "querier.max-concurrent-queries"
	FlagMaxQueryParallelism    = "querier.max-query-parallelism"
	FlagMaxQueryExprSize       = "querier.max-query-expression-size-bytes"
	FlagMaxQueryExprDepth      = "querier.max-query-expression-depth"
	FlagMaxSubquerySteps       = "querier.max-subquery-steps"
	FlagRulerMaxRuleGroups     = "ruler.max-rule-groups-per-tenant"
	FlagRulerMaxRulesPerGroup  = "ruler.max-rules-per-rule-group"
	FlagRulerMinEvalInterval   = "ruler.min-evaluation-interval"
	FlagRulerAlertmanagerURL   = "ruler.tenant-alertmanager-url"
	FlagAcceptHASamples        = "distributor.ha-tracker.accept-ha-samples"
	FlagHAMaxClusters          = "distributor.ha-tracker.max-clusters"
	FlagIngestionShardSize     = "distributor.ingestion-tenant-shard-size"

	FlagAlertmanagerMaxConfigSize    = "alertmanager.max-config-size-bytes"
	FlagAlertmanagerMaxTemplates     = "alertmanager.max-templates-count"
	FlagAlertmanagerMaxTemplateSize  = "alertmanager.max-template-size-bytes"
	FlagAlertmanagerMaxAlerts        = "alertmanager.max-alerts-count"
	FlagAlertmanagerMaxSilences      = "alertmanager.max-silences-count"
	FlagAlertmanagerMaxSilenceSize   = "alertmanager.max-silence-size-bytes"
	FlagAlertmanagerNotificationRate = "alertmanager.notification-rate-limit"
	FlagMaxDeleteRequests            = "purger.max-delete-requests"
)

// Source names the flag and the runtime-file key that set a limit, for
// error messages: "(-flag, runtime key key)".
func Source(flag string) string {
	return fmt.Sprintf("-%s, or %s in the runtime file", flag, keys[flag])
}

var keys = map[string]string{
	FlagMaxLabelNamesPerSeries: "max_label_names_per_series",
	FlagMaxLabelNameLength:     "max_label_name_length",
	FlagMaxLabelValueLength:    "max_label_value_length",
	FlagNameValidationScheme:   "name_validation_scheme",
	FlagMaxMetadataPerMetric:   "max_metadata_per_metric",
	FlagMaxMetadataLength:      "max_metadata_length",
	FlagCreationGracePeriod:    "creation_grace_period",
	FlagOutOfOrderTimeWindow:   "out_of_order_time_window",
	FlagMaxExemplars:           "max_exemplars",
	FlagMaxSeries:              "max_series",
	FlagMaxSeriesPerMetric:     "max_series_per_metric",
	FlagRetention:              "compactor_blocks_retention_period",
	FlagIngestionRate:          "ingestion_rate",
	FlagIngestionBurstSize:     "ingestion_burst_size",
	FlagMaxSampleAge:           "max_sample_age",
	FlagMaxQueryLength:         "max_query_length",
	FlagMaxFetchedSamples:      "max_fetched_samples_per_query",
	FlagMaxFetchedSeries:       "max_fetched_series_per_query",
	FlagQueryTimeout:           "query_timeout",
	FlagMaxConcurrentQueries:   "max_concurrent_queries",
	FlagMaxQueryParallelism:    "max_query_parallelism",
	FlagMaxQueryExprSize:       "max_query_expression_size_bytes",
	FlagMaxQueryExprDepth:      "max_query_expression_depth",
	FlagMaxSubquerySteps:       "max_subquery_steps",
	FlagRulerMaxRuleGroups:     "ruler_max_rule_groups",
	FlagRulerMaxRulesPerGroup:  "ruler_max_rules_per_group",
	FlagRulerMinEvalInterval:   "ruler_min_evaluation_interval",
	FlagRulerAlertmanagerURL:   "ruler_alertmanager_url",
	FlagAcceptHASamples:        "accept_ha_samples",
	FlagHAMaxClusters:          "ha_max_clusters",
	FlagIngestionShardSize:     "ingestion_tenant_shard_size",

	FlagAlertmanagerMaxConfigSize:    "alertmanager_max_config_size_bytes",
	FlagAlertmanagerMaxTemplates:     "alertmanager_max_templates_count",
	FlagAlertmanagerMaxTemplateSize:  "alertmanager_max_template_size_bytes",
	FlagAlertmanagerMaxAlerts:        "alertmanager_max_alerts_count",
	FlagAlertmanagerMaxSilences:      "alertmanager_max_silences_count",
	FlagAlertmanagerMaxSilenceSize:   "alertmanager_max_silence_size_bytes",
	FlagAlertmanagerNotificationRate: "alertmanager_notification_rate_limit",
	FlagMaxDeleteRequests:            "max_delete_requests",
}

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
	fs.IntVar(&l.MaxSeries, FlagMaxSeries, 150000, "Maximum active series per tenant in the ingester. 0 means unlimited.")
	fs.IntVar(&l.MaxSeriesPerMetric, FlagMaxSeriesPerMetric, 0, "Maximum active series per metric name and tenant. 0 means unlimited.")
	fs.DurationVar(&l.CompactorBlocksRetentionPeriod, FlagRetention, 0, "Blocks older than this are deleted from the bucket. 0 keeps data while the account exists.")
	fs.Float64Var(&l.IngestionRate, FlagIngestionRate, 10000, "Samples per second a tenant may push, averaged over the burst. 0 means unlimited.")
	fs.IntVar(&l.IngestionBurstSize, FlagIngestionBurstSize, 200000, "Samples a tenant may push at once above its rate.")
	fs.DurationVar(&l.MaxSampleAge, FlagMaxSampleAge, 0, "Samples older than this are refused. 0 means no limit besides the ingester's own.")
	fs.DurationVar(&l.MaxQueryLength, FlagMaxQueryLength, 0, "Maximum time range one query may read. 0 means unlimited.")
	fs.IntVar(&l.MaxFetchedSamplesPerQuery, FlagMaxFetchedSamples, 0, "Maximum samples one query may read from storage. 0 means unlimited.")
	fs.IntVar(&l.MaxFetchedSeriesPerQuery, FlagMaxFetchedSeries, 0, "Maximum series one query may read from storage. 0 means unlimited.")
	fs.DurationVar(&l.QueryTimeout, FlagQueryTimeout, 2*time.Minute, "Maximum time one query of the tenant may run.")
	fs.IntVar(&l.MaxConcurrentQueries, FlagMaxConcurrentQueries, 20, "Queries a tenant may run at once; more are refused with 429. 0 means unlimited.")
	fs.IntVar(&l.MaxQueryParallelism, FlagMaxQueryParallelism, 14, "Querier workers of the query frontend that the sub-queries of one tenant (the pieces of all its split queries together) may hold at once, as Mimir names it; the rest wait in the tenant's queue. -query-frontend.max-query-parallelism bounds the pieces of one query. 0 means every worker.")
	fs.IntVar(&l.MaxQueryExpressionSizeBytes, FlagMaxQueryExprSize, 64<<10, "Maximum size in bytes of the PromQL of one request (query, or all match[] together, or a rule's expr), checked before parsing. 0 means unlimited.")
	fs.IntVar(&l.MaxQueryExpressionDepth, FlagMaxQueryExprDepth, 64, "Maximum nesting depth of the PromQL of one request, checked before parsing: each (, [ or { and each operator adds one (see docs/security.md). 0 means unlimited.")
	fs.IntVar(&l.MaxSubquerySteps, FlagMaxSubquerySteps, 11000, "Maximum steps one subquery may evaluate (its range, plus the range it is evaluated over, divided by its step), as a range query may return at most 11,000 points. 0 means unlimited.")
	fs.IntVar(&l.RulerMaxRuleGroups, FlagRulerMaxRuleGroups, 70, "Maximum rule groups per tenant. 0 means unlimited.")
	fs.IntVar(&l.RulerMaxRulesPerGroup, FlagRulerMaxRulesPerGroup, 20, "Maximum rules per rule group. 0 means unlimited.")
	fs.DurationVar(&l.RulerMinEvaluationInterval, FlagRulerMinEvalInterval, 10*time.Second, "Shortest evaluation interval a rule group may have.")
	fs.BoolVar(&l.AcceptHASamples, FlagAcceptHASamples, false, "Deduplicate the tenant's Prometheus HA pairs (cluster and __replica__ labels); needs -distributor.ha-tracker.enable. Usually set per tenant in the runtime file.")
	fs.IntVar(&l.HAMaxClusters, FlagHAMaxClusters, 100, "Maximum HA clusters a tenant may send. 0 means unlimited.")
	fs.IntVar(&l.IngestionTenantShardSize, FlagIngestionShardSize, 0, "Ingesters a tenant's series are spread over when roles run apart (shuffle sharding; a multiple of the zones with zone awareness). 0 uses every ingester.")
	fs.StringVar(&l.RulerAlertmanagerURL, FlagRulerAlertmanagerURL, "", "Default per-tenant Alertmanager URL; usually set per tenant in the runtime file. Empty means -ruler.alertmanager-url, or else the tenant's own Alertmanager in FluxPulse.")
	fs.IntVar(&l.AlertmanagerMaxConfigSizeBytes, FlagAlertmanagerMaxConfigSize, 1<<20, "Maximum size in bytes of a tenant's Alertmanager configuration (alertmanager_config, templates not counted). 0 means unlimited.")
	fs.IntVar(&l.AlertmanagerMaxTemplatesCount, FlagAlertmanagerMaxTemplates, 20, "Maximum number of template files in a tenant's Alertmanager configuration. 0 means unlimited.")
	fs.IntVar(&l.AlertmanagerMaxTemplateSizeBytes, FlagAlertmanagerMaxTemplateSize, 256<<10, "Maximum size in bytes of one template file of a tenant's Alertmanager configuration. 0 means unlimited.")
	fs.IntVar(&l.AlertmanagerMaxAlertsCount, FlagAlertmanagerMaxAlerts, 10000, "Maximum alerts a tenant's Alertmanager holds; new alerts over it are refused. 0 means unlimited.")
	fs.IntVar(&l.AlertmanagerMaxSilencesCount, FlagAlertmanagerMaxSilences, 1000, "Maximum silences (expired ones still kept included) a tenant's Alertmanager holds. 0 means unlimited.")
	fs.IntVar(&l.AlertmanagerMaxSilenceSizeBytes, FlagAlertmanagerMaxSilenceSize, 64<<10, "Maximum size in bytes of one silence. 0 means unlimited.")
	fs.Float64Var(&l.AlertmanagerNotificationRateLimit, FlagAlertmanagerNotificationRate, 10, "Notifications per second each integration type (webhook, email, slack, …) of a tenant may send, with bursts of as many; more wait (and fail once their group's time is up). 0 means unlimited.")
	fs.IntVar(&l.MaxDeleteRequests, FlagMaxDeleteRequests, 50, "Maximum pending series deletion requests per tenant (each is checked on every read of the tenant until processed). 0 means unlimited.")
}

// Validate checks the limits for consistency.
func (l Limits) Validate() error {
	switch l.NameValidationScheme {
	case "utf8", "legacy":
	default:
		return fmt.Errorf("%s must be utf8 or legacy, got %q", Source(FlagNameValidationScheme), l.NameValidationScheme)
	}
	if l.OutOfOrderTimeWindow < 0 {
		return fmt.Errorf("%s must not be negative, got %s", Source(FlagOutOfOrderTimeWindow), l.OutOfOrderTimeWindow)
	}
	for flag, v := range map[string]float64{
		FlagMaxExemplars: float64(l.MaxExemplars), FlagMaxSeries: float64(l.MaxSeries), FlagMaxSeriesPerMetric: float64(l.MaxSeriesPerMetric),
		FlagIngestionRate: l.IngestionRate, FlagIngestionBurstSize: float64(l.IngestionBurstSize), FlagMaxSampleAge: float64(l.MaxSampleAge),
		FlagMaxQueryLength: float64(l.MaxQueryLength), FlagMaxFetchedSamples: float64(l.MaxFetchedSamplesPerQuery),
		FlagMaxFetchedSeries: float64(l.MaxFetchedSeriesPerQuery), FlagQueryTimeout: float64(l.QueryTimeout),
		FlagMaxConcurrentQueries: float64(l.MaxConcurrentQueries), FlagMaxQueryParallelism: float64(l.MaxQueryParallelism), FlagMaxQueryExprSize: float64(l.MaxQueryExpressionSizeBytes),
		FlagMaxQueryExprDepth: float64(l.MaxQueryExpressionDepth), FlagMaxSubquerySteps: float64(l.MaxSubquerySteps), FlagMaxLabelNamesPerSeries: float64(l.MaxLabelNamesPerSeries),
		FlagMaxLabelNameLength: float64(l.MaxLabelNameLength), FlagMaxLabelValueLength: float64(l.MaxLabelValueLength),
		FlagRulerMaxRuleGroups: float64(l.RulerMaxRuleGroups), FlagRulerMaxRulesPerGroup: float64(l.RulerMaxRulesPerGroup),
		FlagRulerMinEvalInterval: float64(l.RulerMinEvaluationInterval), FlagRetention: float64(l.CompactorBlocksRetentionPeriod),
		FlagHAMaxClusters: float64(l.HAMaxClusters), FlagIngestionShardSize: float64(l.IngestionTenantShardSize),
		FlagAlertmanagerMaxConfigSize: float64(l.AlertmanagerMaxConfigSizeBytes), FlagAlertmanagerMaxTemplates: float64(l.AlertmanagerMaxTemplatesCount),
		FlagAlertmanagerMaxTemplateSize: float64(l.AlertmanagerMaxTemplateSizeBytes), FlagAlertmanagerMaxAlerts: float64(l.AlertmanagerMaxAlertsCount),
		FlagAlertmanagerMaxSilences: float64(l.AlertmanagerMaxSilencesCount), FlagAlertmanagerMaxSilenceSize: float64(l.AlertmanagerMaxSilenceSizeBytes),
		FlagAlertmanagerNotificationRate: l.AlertmanagerNotificationRateLimit,
		FlagMaxDeleteRequests:            float64(l.MaxDeleteRequests),
	} {
		if v < 0 {
			return fmt.Errorf("%s must not be negative, got %v", Source(flag), v)
		}
	}
	if l.IngestionRate > 0 && l.IngestionBurstSize <= 0 {
		return fmt.Errorf("%s must be positive when an ingestion rate is set", Source(FlagIngestionBurstSize))
	}
	return nil
}

// Overrides answers the limits of each tenant: the defaults, replaced as a
// whole by a tenant's limits where the tenant has its own. It is safe for
// concurrent use; Set swaps everything atomically.
type Overrides struct {
	cur atomic.Pointer[set]
}

type set struct {
	defaults Limits
	tenants  map[string]Limits
}

// NewOverrides returns Overrides with the given defaults and no per-tenant
// limits.
func NewOverrides(defaults Limits) *Overrides {
	o := &Overrides{}
	o.cur.Store(&set{defaults: defaults})
	return o
}

// Defaults returns the defaults.
func (o *Overrides) Defaults() Limits { return o.cur.Load().defaults }

// Limits returns the limits of tenant.
func (o *Overrides) Limits(tenant string) Limits {
	s := o.cur.Load()
	if l, ok := s.tenants[tenant]; ok {
		return l
	}
	return s.defaults
}

// Set replaces the defaults and every tenant's limits. Each entry of
// tenants is complete, not a difference from the defaults.
func (o *Overrides) Set(defaults Limits, tenants map[string]Limits) {
	o.cur.Store(&set{defaults: defaults, tenants: tenants})
}
