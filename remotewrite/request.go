package remotewrite

import (
	"sync"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
)

// Version is the remote-write protocol version of a request.
type Version int

// The protocol versions FluxPulse accepts.
const (
	V1 Version = 1
	V2 Version = 2
)

// String returns the name the remote-write specifications use.
func (v Version) String() string {
	switch v {
	case V1:
		return "remote write 1.0"
	case V2:
		return "remote write 2.0"
	}
	return "unknown remote write version"
}

// Request is one decoded remote-write request. Strings in it alias the body
// it was decoded from; see the package documentation for their lifetime.
type Request struct {
	Version Version
	Series  []Series
	// Metadata is the family-level metadata of a 1.0 request. In a 2.0
	// request metadata travels with each series instead.
	Metadata []Metadata
	// Validate, when set, is applied by the Pusher to each series it does
	// not know yet; a series it stored before is known to be valid and
	// only has its samples' timestamps checked.
	Validate Validator
	// TrackSeries asks the Pusher for per-series outcomes in its Result
	// (Result.TrackSeries): an ingester answering a distributor sets it.
	TrackSeries bool

	lazy bool // DecodeWireLazy: labels stay encoded

	// Backing arrays, kept across Reset so that decoding reuses them.
	labels    []labels.Label
	samples   []Sample
	exemplars []Exemplar
	exLabels  []labels.Label
	hists     []Histogram
	symbols   []string
	spans     []span   // v2: raw time series messages, decoded after the symbols
	refs      []uint32 // v2: label references of the series being decoded
	exRefs    []uint32 // v2: label references of the exemplar being decoded
	symH1     []uint64 // v2: hashes of the symbols, for series keys
	symH2     []uint32
}

// Validator checks series against a tenant's limits on behalf of a
// Pusher.
type Validator interface {
	// Series returns why the series is refused as a whole, or "". It may
	// drop labels with empty values from s.Labels.
	Series(s *Series, index int) string
	// Samples removes from s, and records in res, the samples whose
	// timestamps are not accepted, and drops metadata that is not valid.
	Samples(s *Series, res *Result)
}

// Series is one time series of a request with everything sent for it.
type Series struct {
	// Labels as sent: the decoder neither sorts nor checks them.
	Labels     []labels.Label
	Samples    []Sample
	Histograms []Histogram
	Exemplars  []Exemplar
	// Metadata is set only by 2.0 requests.
	Metadata Metadata
	// Err is set when the series cannot be used at all, for example when a
	// 2.0 symbol reference is out of range. The other series of the request
	// are still valid.
	Err error
	// Key identifies the series' labels as sent; zero when Err is set.
	Key SeriesKey

	lbl, smp, exm, hst span
	// raw is the series' 1.0 TimeSeries message as sent, which the wire
	// encoder copies when validation left the series as it was.
	raw []byte
	// encLabels are the label fields DecodeWireLazy left encoded; nil
	// when Labels holds them.
	encLabels []byte
}

// AppendLabels adds the series' labels, in the order sent, to b: from
// Labels, or decoded from the body for a series DecodeWireLazy left
// encoded. The strings alias the body, as those of Labels do.
func (s *Series) AppendLabels(b *labels.ScratchBuilder) error {
	return s.eachLabel(func(l labels.Label) { b.Add(l.Name, l.Value) })
}

// MetricName is the value of the series' first __name__ label, or "".
func (s *Series) MetricName() string {
	var name string
	_ = s.eachLabel(func(l labels.Label) {
		if l.Name == labels.MetricName && name == "" {
			name = l.Value
		}
	})
	return name
}

// eachLabel calls f with each label of the series, decoded or not.
func (s *Series) eachLabel(f func(labels.Label)) error {
	if s.encLabels == nil {
		for _, l := range s.Labels {
			f(l)
		}
		return nil
	}
	return eachLabel(s.encLabels, f)
}

// Sample is one float sample.
type Sample struct {
	Timestamp      int64
	StartTimestamp int64
	Value          float64
}

// Histogram is one native histogram sample: exactly one of H and FH is set.
type Histogram struct {
	Timestamp      int64
	StartTimestamp int64
	H              *histogram.Histogram
	FH             *histogram.FloatHistogram
}

// Exemplar is one exemplar with its own labels.
type Exemplar struct {
	Labels    []labels.Label
	Value     float64
	Timestamp int64

	lbl span
}

// Metadata describes a metric family.
type Metadata struct {
	Type model.MetricType
	// FamilyName is set only for 1.0 requests, where metadata is sent per family.
	FamilyName string
	Help       string
	Unit       string
}

// IsEmpty reports whether nothing is known about the family.
func (m Metadata) IsEmpty() bool {
	return (m.Type == "" || m.Type == model.MetricTypeUnknown) && m.Help == "" && m.Unit == ""
}

type span struct{ start, end int }

// Counts returns the number of float samples, histogram samples and exemplars
// in the request.
func (r *Request) Counts() (samples, histograms, exemplars int) {
	for i := range r.Series {
		s := &r.Series[i]
		samples += len(s.Samples)
		histograms += len(s.Histograms)
		exemplars += len(s.Exemplars)
	}
	return samples, histograms, exemplars
}

// Reset empties the request and keeps its backing arrays for reuse.
//
// The series and their labels, the largest arrays (about 1.2 MB for 2,000
// series), are not cleared: decoding overwrites every entry it appends, and
// clearing them was 3% of the server's CPU (#18). What their stale strings
// keep alive is the body they were last decoded from, which the body pool
// reuses anyway, and the errors of refused series; the smaller arrays that
// can hold other objects (histograms, exemplar labels, metadata) are
// cleared as before.
func (r *Request) Reset() {
	clear(r.exLabels)
	clear(r.symbols)
	clear(r.hists)
	clear(r.Metadata)
	*r = Request{
		Series:    r.Series[:0],
		Metadata:  r.Metadata[:0],
		labels:    r.labels[:0],
		samples:   r.samples[:0],
		exemplars: r.exemplars[:0],
		exLabels:  r.exLabels[:0],
		hists:     r.hists[:0],
		symbols:   r.symbols[:0],
		spans:     r.spans[:0],
		refs:      r.refs[:0],
		exRefs:    r.exRefs[:0],
		symH1:     r.symH1[:0],
		symH2:     r.symH2[:0],
	}
}

// link points each series and exemplar at its part of the backing arrays,
// which may have moved while they grew during decoding.
func (r *Request) link() {
	for i := range r.exemplars {
		e := &r.exemplars[i]
		e.Labels = r.exLabels[e.lbl.start:e.lbl.end:e.lbl.end]
	}
	for i := range r.Series {
		s := &r.Series[i]
		s.Labels = r.labels[s.lbl.start:s.lbl.end:s.lbl.end]
		s.Samples = r.samples[s.smp.start:s.smp.end:s.smp.end]
		s.Exemplars = r.exemplars[s.exm.start:s.exm.end:s.exm.end]
		s.Histograms = r.hists[s.hst.start:s.hst.end:s.hst.end]
	}
}

var requestPool = sync.Pool{New: func() any { return new(Request) }}

// maxPooledSeries keeps one outsized request from pinning its memory forever.
const maxPooledSeries = 1 << 16

// GetRequest returns an empty request from a pool. Return it with Release.
func GetRequest() *Request {
	return requestPool.Get().(*Request)
}

// Release resets r and returns it to the pool. r and every string decoded
// into it must not be used afterwards.
func Release(r *Request) {
	if r == nil || cap(r.Series) > maxPooledSeries {
		return
	}
	r.Reset()
	requestPool.Put(r)
}
