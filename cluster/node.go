package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/dns"
	"github.com/grafana/dskit/kv"
	"github.com/grafana/dskit/kv/codec"
	"github.com/grafana/dskit/kv/memberlist"
	"github.com/grafana/dskit/ring"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
)

// Ring names and KV keys.
const (
	IngesterRingName = "ingester"
	ingesterRingKey  = "ingester"
)

// Node is one process's membership: the memberlist KV service, the ingester
// ring read from it and, in an ingester, the lifecycler that keeps this
// instance in the ring.
type Node struct {
	cfg    Config
	logger log.Logger
	reg    prometheus.Registerer

	kv     *memberlist.KVInitService
	ringKV kv.Client
	ring   *ring.Ring

	lifecycler *ring.BasicLifecycler // nil outside ingesters
	joinReady  func() bool           // when the ingester may register
	registered atomic.Bool

	rings     map[string]*RoleRing // the role rings, by name
	ringOrder []*RoleRing
}

// New builds the membership of a process. Nothing starts until Run.
// codecs are those of further values gossiped besides the ring (the HA
// tracker's elections, say): they must be known before the process joins.
func New(cfg Config, logger *slog.Logger, reg prometheus.Registerer, codecs ...codec.Codec) (*Node, error) {
	if err := cfg.Ring.Validate(); err != nil {
		return nil, err
	}
	if len(cfg.Memberlist.JoinMembers) == 0 {
		return nil, fmt.Errorf("roles run apart find each other through memberlist: set -%s to the memberlist address (host:port) of at least one other process", FlagJoin)
	}
	gl := GoKit(logger)
	// dskit's own metrics are exported under fluxpulse_; the ring's member
	// counts are exported by this package instead, with FluxPulse's state
	// names.
	dreg := prometheus.WrapRegistererWithPrefix("fluxpulse_", reg)
	mcfg := cfg.Memberlist
	mcfg.Codecs = append([]codec.Codec{ring.GetCodec()}, codecs...)
	mcfg.MetricsNamespace = "fluxpulse"
	n := &Node{cfg: cfg, logger: gl, reg: reg}
	n.kv = memberlist.NewKVInitService(&mcfg, gl, dns.NewProvider(dns.GolangResolverType, 0, gl, dreg), dreg)
	var err error
	n.ringKV, err = kv.NewClient(kv.Config{Store: "memberlist", StoreConfig: kv.StoreConfig{MemberlistKV: n.kv.GetMemberlistKV}},
		ring.GetCodec(), kv.RegistererWithKVName(dreg, "ingester-ring"), gl)
	if err != nil {
		return nil, fmt.Errorf("ring KV client: %w", err)
	}
	rcfg := ring.Config{HeartbeatTimeout: cfg.Ring.HeartbeatTimeout, ReplicationFactor: cfg.Ring.ReplicationFactor,
		ZoneAwarenessEnabled: cfg.Ring.ZoneAwareness}
	n.ring, err = ring.NewWithStoreClientAndStrategy(rcfg, IngesterRingName, ingesterRingKey, n.ringKV,
		ring.NewDefaultReplicationStrategy(), prometheus.WrapRegistererWithPrefix("fluxpulse_dskit_", reg), gl)
	if err != nil {
		return nil, fmt.Errorf("ingester ring: %w", err)
	}
	if reg != nil {
		reg.MustRegister(&membersCollector{n: n})
	}
	return n, nil
}

// KV returns a client of the memberlist KV store for values of c, which
// must be one of the codecs given to New.
func (n *Node) KV(c codec.Codec, name string) (kv.Client, error) {
	return kv.NewClient(kv.Config{Store: "memberlist", StoreConfig: kv.StoreConfig{MemberlistKV: n.kv.GetMemberlistKV}},
		c, kv.RegistererWithKVName(prometheus.WrapRegistererWithPrefix("fluxpulse_", n.reg), name), n.logger)
}

// Ring returns the ingester ring.
func (n *Node) Ring() *ring.Ring { return n.ring }

// Tokens returns every token of the ingester ring, sorted, as the local KV
// store holds the ring now; nil when it cannot be read.
func (n *Node) Tokens() []uint32 {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	v, err := n.ringKV.Get(ctx, ingesterRingKey)
	if err != nil {
		return nil
	}
	desc, ok := v.(*ring.Desc)
	if !ok || desc == nil {
		return nil
	}
	return desc.GetTokens()
}

// WriteRing is the ingester ring with its tokens, as distributors use it.
type WriteRing struct {
	*ring.Ring
	n *Node
}

// WriteRing returns the ingester ring with its tokens.
func (n *Node) WriteRing() WriteRing { return WriteRing{Ring: n.ring, n: n} }

// Tokens returns every token of the ring, sorted.
func (w WriteRing) Tokens() []uint32 { return w.n.Tokens() }

// RegisterIngester makes this process an ingester of the ring at addr (what
// others dial). It registers once ready says the ingester can serve: its
// write-ahead logs are replayed. Call it before Run.
func (n *Node) RegisterIngester(addr, tokensFile string, ready func() bool) error {
	rc := n.cfg.Ring
	rc.TokensFile = tokensFile
	if err := rc.ValidateIngester(); err != nil {
		return err
	}
	lc, err := n.newLifecycler(IngesterRingName, ingesterRingKey, rc.RoleRingConfig, addr, !rc.UnregisterOnShutdown)
	if err != nil {
		return err
	}
	n.lifecycler, n.joinReady = lc, ready
	return nil
}

// newLifecycler returns the lifecycler that keeps this instance in a ring
// at addr: ACTIVE once registered, its tokens kept in cfg.TokensFile (if
// set), instances silent for ten heartbeat timeouts forgotten, and on
// shutdown LEAVING and kept in the ring (keep) or removed from it.
func (n *Node) newLifecycler(name, key string, cfg RoleRingConfig, addr string, keep bool) (*ring.BasicLifecycler, error) {
	var d ring.BasicLifecyclerDelegate = ring.NewInstanceRegisterDelegate(ring.ACTIVE, cfg.NumTokens)
	d = ring.NewLeaveOnStoppingDelegate(d, n.logger)
	if cfg.TokensFile != "" {
		d = ring.NewTokensPersistencyDelegate(cfg.TokensFile, ring.ACTIVE, d, n.logger)
	}
	d = ring.NewAutoForgetDelegate(10*cfg.HeartbeatTimeout, d, n.logger)
	lc, err := ring.NewBasicLifecycler(ring.BasicLifecyclerConfig{
		ID: cfg.InstanceID, Addr: addr, Zone: cfg.Zone,
		HeartbeatPeriod: cfg.HeartbeatPeriod, HeartbeatTimeout: cfg.HeartbeatTimeout, NumTokens: cfg.NumTokens,
		KeepInstanceInTheRingOnShutdown: keep,
	}, name, key, n.ringKV, d, n.logger, prometheus.WrapRegistererWithPrefix("fluxpulse_dskit_", n.reg))
	if err != nil {
		return nil, fmt.Errorf("%s lifecycler: %w", name, err)
	}
	return lc, nil
}

// Registered reports whether this ingester has registered itself in the
// ring: from then on distributors may send to it, also while it is
// LEAVING. Outside ingesters it is always false.
func (n *Node) Registered() bool {
	return n.lifecycler != nil && n.registered.Load()
}

// leavePropagation is how long a leaving ingester keeps serving after it
// went LEAVING, so that the gossip reaches the distributors before its
// gRPC service stops.
const leavePropagation = 2 * time.Second

// Leave puts this ingester LEAVING in the ring (it keeps its tokens unless
// -ingester.ring.unregister-on-shutdown) and waits for the change to
// spread; call it before the ingester stops serving. Outside ingesters it
// does nothing.
func (n *Node) Leave() {
	if !n.Registered() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.lifecycler.ChangeState(ctx, ring.LEAVING); err != nil {
		_ = n.logger.Log("level", "warn", "msg", "could not go LEAVING in the ring before stopping", "err", err)
		return
	}
	time.Sleep(leavePropagation)
}

// Active reports whether this ingester is registered and the ring, as this
// process reads it, shows it ACTIVE: what /ready waits for.
func (n *Node) Active() bool {
	if !n.Registered() || n.lifecycler.GetState() != ring.ACTIVE {
		return false
	}
	st, err := n.ring.GetInstanceState(n.lifecycler.GetInstanceID())
	return err == nil && st == ring.ACTIVE
}

// Run joins the cluster and keeps the ring up to date until ctx ends; an
// ingester registers once it is ready. Then it leaves in order: the
// ingester goes LEAVING (or unregisters), the ring stops, and the process
// leaves memberlist.
func (n *Node) Run(ctx context.Context) error {
	start := context.Background() // starting must not be cut short half-way by ctx
	if err := services.StartAndAwaitRunning(start, n.kv); err != nil {
		return fmt.Errorf("memberlist: %w", err)
	}
	defer n.stop("memberlist", n.kv)
	if _, err := n.kv.GetMemberlistKV(); err != nil {
		return fmt.Errorf("memberlist: %w", err)
	}
	if err := services.StartAndAwaitRunning(start, n.ring); err != nil {
		return fmt.Errorf("ingester ring: %w", err)
	}
	defer n.stop("ingester ring", n.ring)
	stopRings, err := n.startRings()
	if err != nil {
		return err
	}
	defer stopRings()
	if n.lifecycler != nil {
		if !waitFor(ctx, n.joinReady) {
			return nil
		}
		if err := services.StartAndAwaitRunning(start, n.lifecycler); err != nil {
			return fmt.Errorf("register in the ingester ring: %w", err)
		}
		n.registered.Store(true)
		defer n.stop("ingester lifecycler", n.lifecycler)
	}
	select {
	case <-ctx.Done():
		return nil
	case <-n.failed():
		return errors.New("membership service failed; see the log")
	}
}

// failed is closed when a membership service fails while running.
func (n *Node) failed() <-chan struct{} {
	ch := make(chan struct{})
	done := func(s services.Service) {
		go func() {
			_ = s.AwaitTerminated(context.Background())
			select {
			case <-ch:
			default:
				close(ch)
			}
		}()
	}
	done(n.kv)
	done(n.ring)
	for _, r := range n.ringOrder {
		done(r.ring)
	}
	return ch
}

func (n *Node) stop(what string, s services.Service) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := services.StopAndAwaitTerminated(ctx, s); err != nil {
		_ = n.logger.Log("level", "warn", "msg", "stopping "+what, "err", err)
	}
}

func waitFor(ctx context.Context, ready func() bool) bool {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for !ready() {
		select {
		case <-ctx.Done():
			return false
		case <-tick.C:
		}
	}
	return true
}

// RingPage serves dskit's ring status page; its forget action (a POST)
// must be behind an operator's admin token.
func (n *Node) RingPage() http.Handler { return n.ring }

// MemberlistPage serves dskit's memberlist status page.
func (n *Node) MemberlistPage() http.Handler { return n.kv }
