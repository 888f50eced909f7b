package ingester

import (
	"math"
	"math/bits"
	"sync"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/storage"

	"github.com/fluxpulse/fluxpulse/remotewrite"
)

// The head's appender checks each sample against its series' committed
// state only; at Commit it appends the samples of the batch in order and
// silently drops the ones that went backwards or repeated a timestamp with
// another value (#12). A push therefore checks each sample against what the
// same request appended to its series before (under any entry, by series
// reference), refusing exactly what Commit would drop, with the reasons a
// sample gets when it arrives alone:
//
//   - newer than the series' newest sample in the request: append;
//   - at its timestamp: the same value is a no-op, as in the head; another
//     value is duplicate_timestamp;
//   - older, without an out-of-order window: out_of_order (out_of_bounds
//     below the head's oldest appendable time);
//   - older, with a window: Commit inserts it out of order if it is within
//     the window of the head's newest time (else too_old), and drops it if
//     the request already appended a sample at its timestamp (else
//     duplicate_timestamp, or a no-op for the same value). Finding those
//     needs every timestamp the request appended to the series; they are
//     gathered, from the series' earlier entries, the first time one of its
//     samples goes backwards, which is rare.
//
// A series seen once per request with its samples in order costs one table
// lookup per entry and one comparison per sample.

// value is a sample's timestamp and value, float or histogram.
type value struct {
	t  int64
	v  float64
	h  *histogram.Histogram
	fh *histogram.FloatHistogram
}

// same reports whether o repeats v's value: the head ignores such a repeat.
func (v value) same(o value) bool {
	switch {
	case v.h != nil:
		return o.h != nil && v.h.Equals(o.h)
	case v.fh != nil:
		return o.fh != nil && v.fh.Equals(o.fh)
	}
	return o.h == nil && o.fh == nil && math.Float64bits(v.v) == math.Float64bits(o.v)
}

// seenSeries is what a request appended to one series.
type seenSeries struct {
	ref     storage.SeriesRef
	newest  value
	entry   int32 // the last entry of the request with samples of the series
	tracked bool  // every appended timestamp is in order.appended
}

type seenKey struct {
	ref storage.SeriesRef
	t   int64
}

// order holds, for one push, the series it appended to: an open-addressing
// table sized for the request so that it never grows, and the chain of
// entries of each series.
type order struct {
	req      *remotewrite.Request
	slots    []seenSeries
	shift    uint
	used     []int32
	prev     []int32 // per entry: the previous entry of the same series, or -1
	appended map[seenKey]value

	// Per entry: its head reference from the tenant's reference cache (0:
	// not cached), looked up for the whole request at once (refCache.getAll),
	// and that lookup's scratch; the entries whose references the push
	// found (in cached) and caches at its end (refCache.putAll).
	cached  []storage.SeriesRef
	byShard []int32
	found   []int32
}

// maxPooledOrder keeps the table of one outsized request from being pinned.
const maxPooledOrder = 1 << 17

type orderPool struct{ p sync.Pool }

func (op *orderPool) get(req *remotewrite.Request) *order {
	o, _ := op.p.Get().(*order)
	if o == nil {
		o = &order{}
	}
	n := max(16, 2*len(req.Series))
	if n > len(o.slots) {
		size := 1 << bits.Len(uint(n-1))
		o.slots = make([]seenSeries, size)
		o.shift = uint(64 - bits.Len(uint(size-1)))
	}
	if cap(o.prev) < len(req.Series) {
		o.prev = make([]int32, len(req.Series))
	}
	o.prev = o.prev[:len(req.Series)]
	if cap(o.cached) < len(req.Series) {
		o.cached = make([]storage.SeriesRef, len(req.Series))
		o.byShard = make([]int32, len(req.Series))
	}
	o.cached, o.byShard = o.cached[:len(req.Series)], o.byShard[:len(req.Series)]
	o.req = req
	return o
}

func (op *orderPool) put(o *order) {
	for _, k := range o.used {
		o.slots[k] = seenSeries{}
	}
	o.used = o.used[:0]
	o.found = o.found[:0]
	o.appended = nil
	o.req = nil
	if len(o.slots) <= maxPooledOrder {
		op.p.Put(o)
	}
}

func (o *order) slot(ref storage.SeriesRef) uint64 {
	return (uint64(ref) * 0x9e3779b97f4a7c15) >> o.shift
}

// find returns what the request appended to the series, or nil.
func (o *order) find(ref storage.SeriesRef) *seenSeries {
	if ref == 0 {
		return nil
	}
	mask := uint64(len(o.slots) - 1)
	for k := o.slot(ref); ; k = (k + 1) & mask {
		s := &o.slots[k]
		switch s.ref {
		case ref:
			return s
		case 0:
			return nil
		}
	}
}

// add records that entry appended v to the series.
func (o *order) add(ref storage.SeriesRef, entry int, v value) {
	mask := uint64(len(o.slots) - 1)
	k := o.slot(ref)
	for o.slots[k].ref != ref && o.slots[k].ref != 0 {
		k = (k + 1) & mask
	}
	s := &o.slots[k]
	if s.ref == 0 {
		*s = seenSeries{ref: ref, newest: v, entry: int32(entry)}
		o.used = append(o.used, int32(k))
		o.prev[entry] = -1
	} else if s.entry != int32(entry) {
		o.prev[entry] = s.entry
		s.entry = int32(entry)
	}
	if v.t > s.newest.t {
		s.newest = v
	}
	if s.tracked {
		o.appended[seenKey{ref, v.t}] = v
	}
}

// track gathers every timestamp the request appended to the series so far,
// from its entries: those done hold only what was appended (refused samples
// are removed as the entry is pushed); of the current one, cur, the first nf
// samples and nh histograms.
func (o *order) track(s *seenSeries, cur, nf, nh int) {
	if o.appended == nil {
		o.appended = map[seenKey]value{}
	}
	s.tracked = true
	for e := s.entry; e >= 0; e = o.prev[e] {
		ser := &o.req.Series[e]
		fs, hs := ser.Samples, ser.Histograms
		if int(e) == cur {
			fs, hs = fs[:nf], hs[:nh]
		}
		for _, smp := range fs {
			o.appended[seenKey{s.ref, smp.Timestamp}] = value{t: smp.Timestamp, v: smp.Value}
		}
		for _, h := range hs {
			o.appended[seenKey{s.ref, h.Timestamp}] = value{t: h.Timestamp, h: h.H, fh: h.FH}
		}
	}
}
