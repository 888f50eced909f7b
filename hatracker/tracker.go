package hatracker

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Config configures the tracker. Flags are named as Cortex and Mimir name
// them.
type Config struct {
	Enabled         bool
	FailoverTimeout time.Duration
	UpdateTimeout   time.Duration
	ClusterLabel    string
	ReplicaLabel    string
}

// RegisterFlags registers the tracker's flags.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.BoolVar(&c.Enabled, "distributor.ha-tracker.enable", false, "Deduplicate the samples of Prometheus HA pairs for tenants with accept_ha_samples: one replica per cluster is stored, the others' pushes are answered 202 and dropped.")
	fs.DurationVar(&c.FailoverTimeout, "distributor.ha-tracker.failover-timeout", 30*time.Second, "How long the elected replica of a cluster may send nothing before another replica is elected.")
	fs.DurationVar(&c.UpdateTimeout, "distributor.ha-tracker.update-timeout", 15*time.Second, "How often the elected replica's last push is recorded in the KV store; must be under the failover timeout.")
	fs.StringVar(&c.ClusterLabel, "distributor.ha-tracker.cluster", "cluster", "Label naming the HA cluster of a series (a Prometheus external label).")
	fs.StringVar(&c.ReplicaLabel, "distributor.ha-tracker.replica", "__replica__", "Label naming the replica within the cluster; removed before storage.")
}

// Validate checks the configuration.
func (c Config) Validate() error {
	if !c.Enabled {
		return nil
	}
	if c.UpdateTimeout <= 0 || c.FailoverTimeout <= c.UpdateTimeout {
		return fmt.Errorf("-distributor.ha-tracker.failover-timeout (%s) must be longer than -distributor.ha-tracker.update-timeout (%s)", c.FailoverTimeout, c.UpdateTimeout)
	}
	if c.ClusterLabel == "" || c.ReplicaLabel == "" || c.ClusterLabel == c.ReplicaLabel {
		return errors.New("-distributor.ha-tracker.cluster and -distributor.ha-tracker.replica must be two different label names")
	}
	return nil
}

// Store is where the elections are kept: dskit's kv.Client (memberlist) or
// MemStore.
type Store interface {
	CAS(ctx context.Context, key string, f func(in any) (out any, retry bool, err error)) error
	WatchPrefix(ctx context.Context, prefix string, f func(key string, value any) bool)
}

// NotElectedError is a push from a replica that is not the elected one.
type NotElectedError struct {
	Cluster, Replica, Elected string
}

func (e *NotElectedError) Error() string {
	return fmt.Sprintf("samples of cluster %q from replica %q dropped: replica %q is the elected one (HA deduplication)", e.Cluster, e.Replica, e.Elected)
}

// keyPrefix is where elections live in the store: <prefix><tenant>/<cluster>.
const keyPrefix = "ha-tracker/"

// Tracker elects one replica per tenant and cluster.
type Tracker struct {
	cfg    Config
	store  Store
	logger *slog.Logger
	now    func() time.Time

	mu       sync.Mutex
	elected  map[string]Replica // by key, as last seen in the store
	clusters map[string]int     // tenant → clusters tracked

	elections *prometheus.CounterVec
	dropped   *prometheus.CounterVec
}

// New returns a tracker over store. It starts nothing; Run keeps its view
// of the store current.
func New(cfg Config, store Store, logger *slog.Logger, reg prometheus.Registerer) (*Tracker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	f := promauto.With(reg)
	return &Tracker{cfg: cfg, store: store, logger: logger, now: time.Now,
		elected: map[string]Replica{}, clusters: map[string]int{},
		elections: f.NewCounterVec(prometheus.CounterOpts{
			Name: "fluxpulse_distributor_ha_elections_total", Help: "Replicas elected per tenant (a change of the elected replica counts one)."}, []string{"tenant"}),
		dropped: f.NewCounterVec(prometheus.CounterOpts{
			Name: "fluxpulse_distributor_ha_dropped_requests_total", Help: "Pushes dropped because they came from a replica that is not the elected one."}, []string{"tenant"}),
	}, nil
}

// Config returns the tracker's configuration.
func (t *Tracker) Config() Config { return t.cfg }

// Run keeps the tracker's view of the store current until ctx ends.
func (t *Tracker) Run(ctx context.Context) error {
	t.store.WatchPrefix(ctx, keyPrefix, func(key string, v any) bool {
		if r, ok := v.(*Replica); ok && r != nil {
			t.remember(key, *r)
		}
		return true
	})
	return nil
}

func (t *Tracker) remember(key string, r Replica) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if cur, ok := t.elected[key]; ok && !r.after(&cur) {
		return
	}
	if _, ok := t.elected[key]; !ok {
		t.clusters[tenantOf(key)]++
	}
	t.elected[key] = r
}

func tenantOf(key string) string {
	rest := strings.TrimPrefix(key, keyPrefix)
	tenant, _, _ := strings.Cut(rest, "/")
	return tenant
}

// ErrTooManyClusters is wrapped when a tenant sends more HA clusters than
// its limit allows.
var ErrTooManyClusters = errors.New("too many HA clusters")

// Check tells whether a push of tenant from replica of cluster is to be
// stored: nil if replica is (or becomes) the elected one, a
// *NotElectedError if another replica is elected and still pushing, or
// another error. maxClusters bounds how many clusters a tenant may have (0:
// no bound).
//
// cluster and replica may alias a request body: what the tracker keeps, it
// copies.
func (t *Tracker) Check(ctx context.Context, tenant, cluster, replica string, maxClusters int) error {
	key := keyPrefix + tenant + "/" + cluster // a new string
	now := t.now().UnixMilli()
	t.mu.Lock()
	cur, known := t.elected[key]
	n := t.clusters[tenant]
	t.mu.Unlock()
	if known {
		switch {
		case cur.Replica == replica && now-cur.ReceivedAt < t.cfg.UpdateTimeout.Milliseconds():
			return nil // elected, recorded recently enough
		case cur.Replica != replica && now-cur.ReceivedAt < t.cfg.FailoverTimeout.Milliseconds():
			t.dropped.WithLabelValues(tenant).Inc()
			return &NotElectedError{Cluster: cluster, Replica: replica, Elected: cur.Replica}
		}
	} else if maxClusters > 0 && n >= maxClusters {
		return fmt.Errorf("%w: the tenant has %d HA clusters, the limit is %d (ha_max_clusters in the runtime file)", ErrTooManyClusters, n, maxClusters)
	}
	return t.elect(ctx, tenant, key, strings.Clone(cluster), strings.Clone(replica), now)
}

// elect records replica as the cluster's elected one in the store, unless
// the store says another replica is elected and still pushing.
func (t *Tracker) elect(ctx context.Context, tenant, key, cluster, replica string, now int64) error {
	var (
		result     Replica
		notElected error
		previous   string // the replica this election replaced, if any
		electing   bool
	)
	err := t.store.CAS(ctx, key, func(in any) (any, bool, error) {
		notElected, previous, electing = nil, "", false
		cur, _ := in.(*Replica)
		switch {
		case cur != nil && cur.Replica == replica:
			result = Replica{Replica: replica, ElectedAt: cur.ElectedAt, ReceivedAt: now}
		case cur != nil && now-cur.ReceivedAt < t.cfg.FailoverTimeout.Milliseconds():
			result = *cur
			notElected = &NotElectedError{Cluster: cluster, Replica: replica, Elected: cur.Replica}
			return nil, false, nil // nothing to write
		default: // nobody, or the elected replica went quiet: fail over
			result = Replica{Replica: replica, ElectedAt: now, ReceivedAt: now}
			electing = true
			if cur != nil {
				previous = cur.Replica
			}
		}
		r := result
		return &r, true, nil
	})
	if err != nil {
		return fmt.Errorf("HA tracker: %w", err)
	}
	t.remember(key, result)
	if electing {
		t.elections.WithLabelValues(tenant).Inc()
		if previous != "" {
			t.logger.Info("HA failover", "tenant", tenant, "cluster", cluster, "from", previous, "to", replica)
		}
	}
	if notElected != nil {
		t.dropped.WithLabelValues(tenant).Inc()
	}
	return notElected
}

// MemStore is an in-process Store, for -target=all.
type MemStore struct {
	mu       sync.Mutex
	values   map[string]*Replica
	watchers []func(string, any) bool
}

// NewMemStore returns an empty MemStore.
func NewMemStore() *MemStore { return &MemStore{values: map[string]*Replica{}} }

// CAS implements Store.
func (m *MemStore) CAS(_ context.Context, key string, f func(in any) (out any, retry bool, err error)) error {
	m.mu.Lock()
	var in any
	if v, ok := m.values[key]; ok {
		c := *v
		in = &c
	}
	out, _, err := f(in)
	if err != nil || out == nil {
		m.mu.Unlock()
		return err
	}
	r, ok := out.(*Replica)
	if !ok {
		m.mu.Unlock()
		return fmt.Errorf("hatracker: cannot store %T", out)
	}
	m.values[key] = r
	ws := m.watchers
	m.mu.Unlock()
	for _, w := range ws {
		w(key, r.Clone())
	}
	return nil
}

// WatchPrefix implements Store: f is told of every change until ctx ends.
func (m *MemStore) WatchPrefix(ctx context.Context, prefix string, f func(string, any) bool) {
	m.mu.Lock()
	m.watchers = append(m.watchers, func(k string, v any) bool {
		if strings.HasPrefix(k, prefix) {
			return f(k, v)
		}
		return true
	})
	m.mu.Unlock()
	<-ctx.Done()
}
