package alertmanager

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the Alertmanager's own metrics, labelled by tenant; those
// of Alertmanager's packages are registered per tenant (tenantmetrics).
type metrics struct {
	tenants                  prometheus.Gauge
	syncs, syncFailures      prometheus.Counter
	persistFailures          prometheus.Counter
	blocked, rateLimited     *prometheus.CounterVec
	alertsRefused, discarded *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		tenants:         prometheus.NewGauge(prometheus.GaugeOpts{Name: "fluxpulse_alertmanager_tenants", Help: "Tenants with a running Alertmanager."}),
		syncs:           prometheus.NewCounter(prometheus.CounterOpts{Name: "fluxpulse_alertmanager_config_syncs_total", Help: "Reads of tenants' Alertmanager configurations from object storage."}),
		syncFailures:    prometheus.NewCounter(prometheus.CounterOpts{Name: "fluxpulse_alertmanager_config_sync_failures_total", Help: "Reads or applications of configurations that failed; the tenant keeps the configuration it had."}),
		persistFailures: prometheus.NewCounter(prometheus.CounterOpts{Name: "fluxpulse_alertmanager_state_persist_failures_total", Help: "Writes of silences or notification logs to object storage that failed (retried at the next interval)."}),
		blocked: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "fluxpulse_alertmanager_notifications_blocked_total",
			Help: "Notifications the receivers firewall refused (-" + FlagFirewallBlockPrivate + " and the CIDR flags)."}, []string{"tenant", "integration"}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "fluxpulse_alertmanager_notifications_rate_limited_total",
			Help: "Notification attempts delayed by the tenant's alertmanager_notification_rate_limit."}, []string{"tenant", "integration"}),
		alertsRefused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "fluxpulse_alertmanager_alerts_refused_total",
			Help: "New alerts refused because the tenant holds alertmanager_max_alerts_count alerts."}, []string{"tenant"}),
		discarded: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "fluxpulse_alertmanager_alerts_discarded_total",
			Help: "Alert posts from the ruler dropped because the tenant has no Alertmanager configuration (and there is no fallback)."}, []string{"tenant"}),
	}
	if reg != nil {
		reg.MustRegister(m.tenants, m.syncs, m.syncFailures, m.persistFailures, m.blocked, m.rateLimited, m.alertsRefused, m.discarded)
	}
	return m
}

// forget removes a tenant's series.
func (m *metrics) forget(tenant string) {
	for _, v := range []*prometheus.CounterVec{m.blocked, m.rateLimited, m.alertsRefused, m.discarded} {
		v.DeletePartialMatch(prometheus.Labels{"tenant": tenant})
	}
}
