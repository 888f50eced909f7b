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

// membersCollector counts the instances of the ingester ring and of the
// role rings from the ring
// description in the local KV store, read at scrape time.
type membersCollector struct{ n *Node }

func (c *membersCollector) Describe(ch chan<- *prometheus.Desc) { ch <- membersDesc }

func (c *membersCollector) Collect(ch chan<- prometheus.Metric) {
	c.collect(ch, IngesterRingName, ingesterRingKey, c.n.cfg.Ring.HeartbeatTimeout)
	for _, r := range c.n.ringOrder {
		c.collect(ch, r.name, r.name, r.cfg.HeartbeatTimeout)
	}
}

// collect counts the instances of one ring.
func (c *membersCollector) collect(ch chan<- prometheus.Metric, name, key string, timeout time.Duration) {
	counts := make(map[string]int, len(ringStates))
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if v, err := c.n.ringKV.Get(ctx, key); err == nil {
		if desc, ok := v.(*ring.Desc); ok && desc != nil {
			now := time.Now()
			for _, inst := range desc.Ingesters {
				st := inst.State.String()
				if !inst.IsHeartbeatHealthy(timeout, now) {
					st = "unhealthy"
				}
				counts[st]++
			}
		}
	}
	for _, s := range ringStates {
		ch <- prometheus.MustNewConstMetric(membersDesc, prometheus.GaugeValue, float64(counts[s]), name, s)
	}
}
