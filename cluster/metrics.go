package cluster

import (
	"context"
	"time"

	"github.com/grafana/dskit/ring"
	"github.com/prometheus/client_golang/prometheus"
)

var membersDesc = prometheus.NewDesc("fluxpulse_ring_members",
	"Instances of a ring by state as this process sees them; unhealthy counts those whose heartbeat is older than the heartbeat timeout, whatever their state.",
	[]string{"name", "state"}, nil)

// ringStates are the states fluxpulse_ring_members reports, zero included.
var ringStates = []string{ring.ACTIVE.String(), ring.LEAVING.String(), ring.JOINING.String(), ring.PENDING.String(), "unhealthy"}

// membersCollector counts the ingester ring's instances from the ring
// description in the local KV store, read at scrape time.
type membersCollector struct{ n *Node }

func (c *membersCollector) Describe(ch chan<- *prometheus.Desc) { ch <- membersDesc }

func (c *membersCollector) Collect(ch chan<- prometheus.Metric) {
	counts := make(map[string]int, len(ringStates))
	for _, s := range ringStates {
		counts[s] = 0
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if v, err := c.n.ringKV.Get(ctx, ingesterRingKey); err == nil {
		if desc, ok := v.(*ring.Desc); ok && desc != nil {
			now := time.Now()
			for _, inst := range desc.Ingesters {
				st := inst.State.String()
				if !inst.IsHeartbeatHealthy(c.n.cfg.Ring.HeartbeatTimeout, now) {
					st = "unhealthy"
				}
				counts[st]++
			}
		}
	}
	for _, s := range ringStates {
		ch <- prometheus.MustNewConstMetric(membersDesc, prometheus.GaugeValue, float64(counts[s]), IngesterRingName, s)
	}
}
