package distributor

import (
	"context"
	"errors"
	"net/http"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/fluxpulse/fluxpulse/hatracker"
	"github.com/fluxpulse/fluxpulse/remotewrite"
)

// HATracker elects one replica per tenant and HA cluster
// (hatracker.Tracker).
type HATracker interface {
	Check(ctx context.Context, tenant, cluster, replica string, maxClusters int) error
	Config() hatracker.Config
}

// SetHATracker turns HA-pair deduplication on, for tenants with
// accept_ha_samples. Set it before serving.
func (d *Distributor) SetHATracker(t HATracker) { d.ha = t }

// dedupe applies HA deduplication to a request: it reports whether the
// request comes from a replica that is not the elected one (it is then
// answered 202 and dropped), and otherwise removes the replica label from
// every series, so that both replicas' series are one.
func (d *Distributor) dedupe(ctx context.Context, tenant string, req *remotewrite.Request) (dropped bool, err error) {
	if d.ha == nil || len(req.Series) == 0 {
		return false, nil
	}
	lim := d.limits.Limits(tenant)
	if !lim.AcceptHASamples {
		return false, nil
	}
	cfg := d.ha.Config()
	// Prometheus adds its external labels to every series: the first
	// series says which cluster and replica the request is from.
	cluster, replica := labelValue(req.Series[0].Labels, cfg.ClusterLabel), labelValue(req.Series[0].Labels, cfg.ReplicaLabel)
	if cluster == "" || replica == "" {
		return false, nil
	}
	err = d.ha.Check(ctx, tenant, cluster, replica, lim.HAMaxClusters)
	if _, ok := errors.AsType[*hatracker.NotElectedError](err); ok {
		ns, nh, _ := req.Counts()
		d.haDropped.WithLabelValues(tenant).Add(float64(ns + nh))
		return true, nil
	}
	if errors.Is(err, hatracker.ErrTooManyClusters) {
		return false, &httpError{http.StatusBadRequest, err.Error()}
	}
	if err != nil {
		return false, remotewrite.NewError(remotewrite.ErrUnavailable, err.Error())
	}
	for k := range req.Series {
		s := &req.Series[k]
		s.Labels = dropLabel(s.Labels, cfg.ReplicaLabel)
	}
	return false, nil
}

func labelValue(ls []labels.Label, name string) string {
	for _, l := range ls {
		if l.Name == name {
			return l.Value
		}
	}
	return ""
}

// dropLabel removes the label name from ls in place.
func dropLabel(ls []labels.Label, name string) []labels.Label {
	for k, l := range ls {
		if l.Name == name {
			return append(ls[:k], ls[k+1:]...)
		}
	}
	return ls
}
