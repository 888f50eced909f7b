package distributor

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/grafana/dskit/ring"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/fluxpulse/fluxpulse/remotewrite"
)

// IngesterClient is one ingester as the distributor writes to it over the
// network: Push sends a batch in the wire encoding (remotewrite.Encoder)
// for the tenant of ctx and answers with the outcome of each series that
// was not stored whole.
type IngesterClient interface {
	Push(ctx context.Context, body []byte) (remotewrite.Result, error)
}

// ClientFunc returns the client of the ingester at addr, from a pool.
type ClientFunc func(addr string) (IngesterClient, error)

// ReplicationConfig configures writes to replicated ingesters.
type ReplicationConfig struct {
	// RemoteTimeout bounds each write to an ingester, those that go on
	// after the answer to the sender included.
	RemoteTimeout time.Duration
	// MaxBacklog bounds the writes to one ingester under way at once; a
	// push answered with more under way waits for its own write to that
	// ingester first. 0: no bound.
	MaxBacklog int
}

// RegisterFlags registers the replication flags.
func (c *ReplicationConfig) RegisterFlags(fs *flag.FlagSet) {
	fs.DurationVar(&c.RemoteTimeout, "distributor.remote-timeout", 2*time.Second, "Timeout of each write to an ingester, when ingesters run apart; replica writes that go on after the answer are bounded by it too.")
	fs.IntVar(&c.MaxBacklog, "distributor.max-ingester-write-backlog", 16, "Writes from this distributor to one ingester that may be under way at once before a push that reached its quorum waits for its own write to that ingester too: a replica that falls behind then slows the senders instead of piling up writes in both processes' memory. 0: no bound.")
}

// ReplicatingPusher is the Pusher of a distributor whose ingesters run
// apart: each series goes to its replication set in the ingester ring
// (hashed on tenant and labels), batched into one call per ingester, and a
// push succeeds once every series is stored by a quorum (RF/2+1) of its
// replicas. The remaining replicas' writes go on in the background,
// bounded by RemoteTimeout and not cancelled by the answer. The Result
// counts each series once, from the first replica that stored it.
//
// Series are validated here, all of them, before anything crosses the
// network: the ingesters trust what a distributor sends them.
type ReplicatingPusher struct {
	cfg     ReplicationConfig
	ring    Ring
	sets    *ringSets
	clients ClientFunc
	logger  *slog.Logger

	shardSize func(tenant string) int // ingesters per tenant; 0: all
	encoders  sync.Pool               // *remotewrite.Encoder
	batches   sync.Pool               // *batch, returned once every write of a push is over
	bodies    sync.Pool               // *[]byte, of the calls to ingesters
	writes    *prometheus.CounterVec
	pending   sync.WaitGroup // pushes with writes still going on
	backlogs  sync.Map       // ingester address → *backlog
	waited    prometheus.Counter
	stalled   time.Duration
}

// NewReplicatingPusher returns a ReplicatingPusher over the ring r.
func NewReplicatingPusher(cfg ReplicationConfig, r Ring, clients ClientFunc, logger *slog.Logger, reg prometheus.Registerer) *ReplicatingPusher {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	p := &ReplicatingPusher{cfg: cfg, ring: r, sets: &ringSets{ring: r, now: time.Now}, clients: clients, logger: logger,
		shardSize: func(string) int { return 0 }, stalled: stalled,
		encoders: sync.Pool{New: func() any { return new(remotewrite.Encoder) }},
		batches:  sync.Pool{New: func() any { return new(batch) }},
		bodies:   sync.Pool{New: func() any { return new([]byte) }},
		writes: promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
			Name: "fluxpulse_distributor_ingester_writes_total", Help: "Batches written to ingesters, by outcome (success, failure)."}, []string{"outcome"}),
		waited: promauto.With(reg).NewCounter(prometheus.CounterOpts{
			Name: "fluxpulse_distributor_backlog_waits_total", Help: "Pushes that reached their quorum and still waited for a write to an ingester with -distributor.max-ingester-write-backlog writes under way."}),
	}
	promauto.With(reg).NewGaugeFunc(prometheus.GaugeOpts{
		Name: "fluxpulse_distributor_inflight_ingester_writes", Help: "Writes to ingesters under way, those that go on after the answer to the sender included."},
		p.inflight)
	return p
}

// inflight sums the ingesters' backlogs.
func (p *ReplicatingPusher) inflight() float64 {
	var n int64
	p.backlogs.Range(func(_, b any) bool {
		n += b.(*backlog).n.Load()
		return true
	})
	return float64(n)
}

// backlog is one ingester's writes under way, and when one last ended.
type backlog struct {
	n    atomic.Int64
	last atomic.Int64 // unix nanoseconds
}

// stalled is how long an ingester with a full backlog may go without
// finishing a write before pushes stop waiting for it (p.stalled, shorter
// in tests): a replica that hangs (a stopped process, a partition without
// resets) would otherwise hold every push for the whole
// -distributor.remote-timeout until the ring marks it unhealthy. Its
// writes then pile up as without a bound, each still cut off by the
// timeout.
const stalled = 500 * time.Millisecond

// backlog is the backlog of the ingester at addr.
func (p *ReplicatingPusher) backlog(addr string) *backlog {
	if b, ok := p.backlogs.Load(addr); ok {
		return b.(*backlog)
	}
	fresh := &backlog{}
	fresh.last.Store(time.Now().UnixNano())
	b, _ := p.backlogs.LoadOrStore(addr, fresh)
	return b.(*backlog)
}

// Wait waits until every write to an ingester that a push started is
// over, those that went on after the push answered included. At shutdown
// it keeps the last pushes' slower replicas from missing them; each write
// is bounded by RemoteTimeout.
func (p *ReplicatingPusher) Wait() { p.pending.Wait() }

var _ Pusher = (*ReplicatingPusher)(nil)

// SetShardSize makes the pusher write each tenant's series to only
// size(tenant) ingesters of the ring (shuffle sharding; 0: all). Set it
// before use.
func (p *ReplicatingPusher) SetShardSize(size func(tenant string) int) { p.shardSize = size }

// ErrQuorum is wrapped by Push's error when some series could not be
// stored by a quorum of their replicas; the sender should retry (503).
var ErrQuorum = remotewrite.NewError(remotewrite.ErrUnavailable, "write quorum not reached")

// batch is what one push sends: every kept series and metadata entry
// encoded once, and what the replicas answered for each.
type batch struct {
	tenant string
	buf    []byte   // the encodings, one after the other
	spans  [][2]int // of item k in buf
	series []int    // request index of item k; -1-i for metadata entry i
	sent   [][3]int // samples, histograms, exemplars of item k

	owners atomic.Int32 // the push and its writes, while they hold the batch

	mu      sync.Mutex
	items   []itemState
	pending int           // items not decided yet
	done    chan struct{} // closed when pending reaches 0
}

// itemState is where one item stands: it is stored once need replicas
// stored it whole, refused once need replicas refused some of it (the
// sender is told, as from one ingester), and failed when neither can
// happen any more. A replica that refused what the others stored (it
// missed an earlier write, or got two writes in another order) does not
// count towards storing: an acknowledged sample is on a quorum.
type itemState struct {
	need, left              int
	stored, refused, failed int
	invalid                 int                        // replicas that refused the whole batch as invalid
	answer                  *remotewrite.SeriesOutcome // of a replica that stored it; nil: stored as sent
	refusal                 *remotewrite.SeriesOutcome
	reasons                 []string
	more                    int
	err                     error
	decided                 bool
}

// Push implements Pusher.
func (p *ReplicatingPusher) Push(ctx context.Context, tenant string, req *remotewrite.Request) (remotewrite.Result, error) {
	var res remotewrite.Result
	b := p.encode(tenant, req, &res)
	if len(b.spans) == 0 {
		p.putBatch(b)
		return res, nil
	}
	// One snapshot of the ring's sets for the whole push: the series are
	// grouped by the instances' places in it.
	snap := p.sets.snapshot()
	var sub ring.ReadRing
	if size := p.shardSize(tenant); size > 0 && size < p.ring.InstancesCount() {
		// Shuffle sharding: the tenant's own subring, zone-balanced and
		// stable as the ring changes (dskit's, cached by dskit).
		sub = p.ring.ShuffleShard(tenant, size)
	}
	var targets instanceTargets
	for k := range b.spans {
		var key uint32
		if s := b.series[k]; s >= 0 {
			key = shardToken(tenant, req.Series[s].Labels)
		} else {
			key = shardTokenOf(tenant, b.metaFamily(req, k))
		}
		var set ring.ReplicationSet
		var at []int // the instances' places, when the snapshot has them
		var err error
		if sub == nil {
			e := snap.get(p.ring, key)
			set, at, err = e.set, e.at, e.err
		} else {
			set, err = sub.Get(key, ring.WriteNoExtend, nil, nil, nil)
		}
		if err != nil {
			p.putBatch(b)
			return remotewrite.Result{}, p.quorumError(err)
		}
		b.items[k] = itemState{need: len(set.Instances) - set.MaxErrors, left: len(set.Instances)}
		targets.add(set, at, k)
	}
	byInstance := targets.list
	// The writes outlive the sender's request: they keep its values (the
	// tenant) but not its cancellation.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.cfg.RemoteTimeout)
	var wg sync.WaitGroup
	b.pending = len(b.spans)
	b.done = make(chan struct{})
	p.pending.Add(1)
	for _, in := range byInstance {
		in.backlog = p.backlog(in.inst.Addr)
		in.backlog.n.Add(1)
		in.over = make(chan struct{})
		wg.Go(func() {
			got, err := p.send(wctx, in.inst, b, in.items, len(in.items) == len(b.spans))
			b.record(in.items, got, err)
			in.backlog.last.Store(time.Now().UnixNano())
			in.backlog.n.Add(-1)
			close(in.over)
		})
	}
	// The batch goes back to the pool once both this call and the last
	// write are done with it.
	b.owners.Store(2)
	defer p.release(b)
	go func() {
		wg.Wait()
		cancel()
		p.release(b)
		p.pending.Done()
	}()
	select {
	case <-b.done:
	case <-ctx.Done():
		return remotewrite.Result{}, p.quorumError(ctx.Err())
	}
	if err := b.failure(); err != nil {
		return remotewrite.Result{}, p.quorumError(err)
	}
	b.merge(&res)
	p.awaitBacklogs(ctx, byInstance)
	return res, nil
}

// awaitBacklogs waits, for each ingester with more writes under way than
// MaxBacklog, until this push's write to it is over, the ingester stalls
// or the sender gives up (the push is stored by its quorum either way).
// Without it a replica slower than the others would be sent ever more
// writes it has not taken yet, each holding its batch here and its body
// there, until the timeout cut them off and the replica missed them.
func (p *ReplicatingPusher) awaitBacklogs(ctx context.Context, byInstance []*instanceItems) {
	if p.cfg.MaxBacklog <= 0 {
		return
	}
	for _, in := range byInstance {
		if in.backlog.n.Load() <= int64(p.cfg.MaxBacklog) ||
			time.Since(time.Unix(0, in.backlog.last.Load())) > p.stalled {
			continue
		}
		select {
		case <-in.over:
			continue
		default:
		}
		p.waited.Inc()
		if !p.waitFor(ctx, in) {
			return
		}
	}
}

// waitFor waits until the write to in is over, or the ingester stops
// finishing writes for p.stalled; false when the sender gave up first.
func (p *ReplicatingPusher) waitFor(ctx context.Context, in *instanceItems) bool {
	t := time.NewTimer(p.stalled)
	defer t.Stop()
	for {
		select {
		case <-in.over:
			return true
		case <-ctx.Done():
			return false
		case <-t.C:
			if time.Since(time.Unix(0, in.backlog.last.Load())) > p.stalled {
				return true
			}
			t.Reset(p.stalled)
		}
	}
}

// release gives up one owner's hold of b; the last returns it.
func (p *ReplicatingPusher) release(b *batch) {
	if b.owners.Add(-1) == 0 {
		p.putBatch(b)
	}
}

// putBatch returns a batch nothing holds any more, keeping its arrays.
func (p *ReplicatingPusher) putBatch(b *batch) {
	if cap(b.buf) > maxPooledBody {
		return
	}
	*b = batch{buf: b.buf[:0], spans: b.spans[:0], series: b.series[:0], sent: b.sent[:0], items: b.items[:0]}
	p.batches.Put(b)
}

// instanceTargets groups the items of a push by ingester, by the
// ingesters' places in one ring snapshot.
type instanceTargets struct {
	at     []*instanceItems // by place
	byAddr map[string]*instanceItems
	list   []*instanceItems // in the order first met
}

// add adds item k to each instance of set, found by its place in at, or
// by its address when at is nil (a shuffle shard's set).
func (t *instanceTargets) add(set ring.ReplicationSet, at []int, k int) {
	for j, inst := range set.Instances {
		var in *instanceItems
		if at != nil {
			a := at[j]
			if a >= len(t.at) {
				t.at = append(t.at, make([]*instanceItems, a+1-len(t.at))...)
			}
			if in = t.at[a]; in == nil {
				in = t.new(inst)
				t.at[a] = in
			}
		} else {
			if t.byAddr == nil {
				t.byAddr = map[string]*instanceItems{}
			}
			if in = t.byAddr[inst.Addr]; in == nil {
				in = t.new(inst)
				t.byAddr[inst.Addr] = in
			}
		}
		in.items = append(in.items, k)
	}
}

func (t *instanceTargets) new(inst ring.InstanceDesc) *instanceItems {
	in := &instanceItems{inst: inst}
	t.list = append(t.list, in)
	return in
}

// instanceItems are the items one ingester is sent.
type instanceItems struct {
	inst    ring.InstanceDesc
	items   []int
	backlog *backlog      // of the ingester, this write included
	over    chan struct{} // closed when this write is over
}

// quorumError explains a failed write: which replicas were needed and
// what the ring or an ingester said.
func (p *ReplicatingPusher) quorumError(err error) error {
	if errors.Is(err, remotewrite.ErrInvalid) || errors.Is(err, remotewrite.ErrLimited) {
		return err // the ingesters refused the request itself: that is the answer
	}
	rf := p.ring.ReplicationFactor()
	return fmt.Errorf("%w: each series needs %d of its %d replicas (-ingester.ring.replication-factor=%d) and fewer answered; %d ingesters are in the ring: %v",
		ErrQuorum, rf/2+1, rf, rf, p.ring.InstancesCount(), err)
}

// encode validates the series and encodes the kept ones and the metadata.
func (p *ReplicatingPusher) encode(tenant string, req *remotewrite.Request, res *remotewrite.Result) *batch {
	enc := p.encoders.Get().(*remotewrite.Encoder)
	defer p.encoders.Put(enc)
	b := p.batches.Get().(*batch)
	b.tenant = tenant
	add := func(index int, counts [3]int, encode func([]byte) []byte) {
		start := len(b.buf)
		b.buf = encode(b.buf)
		b.spans = append(b.spans, [2]int{start, len(b.buf)})
		b.series = append(b.series, index)
		b.sent = append(b.sent, counts)
	}
	for k := range req.Series {
		s := &req.Series[k]
		if v := req.Validate; v != nil {
			if reason := v.Series(s, k); reason != "" {
				res.Reject(1, len(s.Samples)+len(s.Histograms), reason)
				continue
			}
			v.Samples(s, res)
		}
		if len(s.Samples)+len(s.Histograms)+len(s.Exemplars) == 0 && s.Metadata.IsEmpty() {
			continue
		}
		add(k, [3]int{len(s.Samples), len(s.Histograms), len(s.Exemplars)}, func(buf []byte) []byte { return enc.AppendSeries(buf, s) })
	}
	for k := range req.Metadata {
		m := &req.Metadata[k]
		add(-1-k, [3]int{}, func(buf []byte) []byte { return enc.AppendMetadata(buf, m) })
	}
	b.items = slices.Grow(b.items[:0], len(b.spans))[:len(b.spans)]
	clear(b.items)
	return b
}

// metaFamily is the family name of metadata item k.
func (b *batch) metaFamily(req *remotewrite.Request, k int) string {
	return req.Metadata[-1-b.series[k]].FamilyName
}

// send writes the items to one ingester; all says they are every item of
// the batch, whose encodings are then the body as they are, uncopied.
func (p *ReplicatingPusher) send(ctx context.Context, inst ring.InstanceDesc, b *batch, items []int, all bool) (remotewrite.Result, error) {
	c, err := p.clients(inst.Addr)
	if err != nil {
		p.writes.WithLabelValues("failure").Inc()
		return remotewrite.Result{}, fmt.Errorf("ingester %s (%s): %w", inst.Id, inst.Addr, err)
	}
	var got remotewrite.Result
	if all {
		got, err = c.Push(ctx, b.buf) // the writes only read it; the batch outlives them
	} else {
		n := 0
		for _, k := range items {
			n += b.spans[k][1] - b.spans[k][0]
		}
		bp := p.bodies.Get().(*[]byte)
		body := slices.Grow((*bp)[:0], n)
		for _, k := range items {
			body = append(body, b.buf[b.spans[k][0]:b.spans[k][1]]...)
		}
		got, err = c.Push(ctx, body)
		if cap(body) <= maxPooledBody { // the call is over: nothing holds the body any more
			*bp = body
			p.bodies.Put(bp)
		}
	}
	if err != nil {
		p.writes.WithLabelValues("failure").Inc()
		if ctx.Err() == nil {
			p.logger.Debug("write to ingester failed", "ingester", inst.Id, "tenant", b.tenant, "err", err)
		}
		return remotewrite.Result{}, err
	}
	p.writes.WithLabelValues("success").Inc()
	return got, nil
}

// record takes one ingester's answer for the items it was sent. Its
// outcomes index series by their position among the series of the batch
// sent; items are in ascending order and series come before metadata, so
// that position is the item's position in items.
func (b *batch) record(items []int, got remotewrite.Result, err error) {
	outcomes := got.SeriesOutcomes() // in the order the series were pushed
	b.mu.Lock()
	defer b.mu.Unlock()
	next := 0
	for pos, k := range items {
		it := &b.items[k]
		it.left--
		var o *remotewrite.SeriesOutcome
		for next < len(outcomes) && outcomes[next].Index < pos {
			next++ // not one of ours: ignored rather than trusted
		}
		if next < len(outcomes) && outcomes[next].Index == pos {
			o = &outcomes[next]
		}
		switch {
		case errors.Is(err, remotewrite.ErrInvalid):
			it.invalid++
			it.err = err
		case err != nil:
			it.failed++
			it.err = err
		case o != nil && (o.RejectedSamples > 0 || o.RejectedSeries > 0):
			it.refused++
			if it.refusal == nil {
				it.refusal = o
				it.reasons, it.more = got.Reasons()
			}
		default:
			it.stored++
			if o != nil && it.answer == nil {
				it.answer = o
			}
		}
		b.decide(it)
	}
}

// decide marks an item decided once its outcome cannot change. b.mu is
// held.
func (b *batch) decide(it *itemState) {
	if it.decided {
		return
	}
	if it.stored < it.need && it.refused < it.need && it.invalid < it.need &&
		(it.stored+it.left >= it.need || it.refused+it.left >= it.need || it.invalid+it.left >= it.need) {
		return // still open
	}
	it.decided = true
	if b.pending--; b.pending == 0 {
		close(b.done)
	}
}

// failure is the error of a push whose items did not all reach a quorum,
// or of one a quorum refused as invalid; nil when every item was stored or
// refused by a quorum.
func (b *batch) failure() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	var invalid error
	for k := range b.items {
		it := &b.items[k]
		switch {
		case it.stored >= it.need || it.refused >= it.need:
		case it.invalid >= it.need:
			invalid = it.err
		default:
			if it.err == nil {
				it.err = errors.New("the replicas stored and refused the series differently")
			}
			return it.err
		}
	}
	return invalid
}

// merge adds to res one copy of what the replicas stored and refused.
func (b *batch) merge(res *remotewrite.Result) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out remotewrite.Result
	var reasons []string
	more := 0
	for k, s := range b.series {
		it := &b.items[k]
		if s < 0 {
			continue
		}
		o := it.answer
		if it.stored < it.need { // refused by a quorum: say so, as one ingester would
			o = it.refusal
			for _, r := range it.reasons {
				if !slices.Contains(reasons, r) {
					reasons = append(reasons, r)
				}
			}
			more += it.more
		}
		if o == nil {
			out.Samples += b.sent[k][0]
			out.Histograms += b.sent[k][1]
			out.Exemplars += b.sent[k][2]
			continue
		}
		out.Samples += o.Samples
		out.Histograms += o.Histograms
		out.Exemplars += o.Exemplars
		out.RejectedSeries += o.RejectedSeries
		out.RejectedSamples += o.RejectedSamples
	}
	for _, r := range reasons {
		out.Reject(0, 0, r)
	}
	res.Merge(out)
	res.AddDropped(more)
}

// shardToken is where a series goes in the ring: a hash of its tenant and
// its labels (sorted, as validation requires), the same whichever
// protocol it came in.
func shardToken(tenant string, ls []labels.Label) uint32 {
	// One hash over the joined bytes is the hash the digest would give
	// when written piece by piece, at a fraction of the calls (the piecewise
	// writes were a tenth of a distributor's CPU, #13). The buffer stays on
	// the stack for series of ordinary size.
	var stack [512]byte
	b := append(stack[:0], tenant...)
	for _, l := range ls {
		b = append(b, 0xff)
		b = append(b, l.Name...)
		b = append(b, 0xff)
		b = append(b, l.Value...)
	}
	h := xxhash.Sum64(b)
	return uint32(h ^ h>>32)
}

// shardTokenOf is where a metric family's metadata goes.
func shardTokenOf(tenant, family string) uint32 {
	return shardToken(tenant, []labels.Label{{Name: labels.MetricName, Value: family}})
}

// maxPooledBody keeps one outsized call's body from pinning its memory.
const maxPooledBody = 8 << 20
