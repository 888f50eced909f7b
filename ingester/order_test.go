package ingester

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/fluxpulse/fluxpulse/limits"
	"github.com/fluxpulse/fluxpulse/remotewrite"
)

// pt is one sample of a test request: a float, or a histogram when h > 0
// (its count).
type pt struct {
	t int64 // seconds after the test's base time
	v float64
	h uint64
}

func hist(count uint64) *histogram.Histogram {
	return &histogram.Histogram{Count: count, Sum: float64(count), Schema: 0,
		PositiveSpans: []histogram.Span{{Offset: 0, Length: 1}}, PositiveBuckets: []int64{int64(count)}}
}

// entry is one series of a request; labels are name plus extra.
func entry(base int64, name string, extra []labels.Label, pts ...pt) remotewrite.Series {
	s := remotewrite.Series{Labels: append([]labels.Label{{Name: "__name__", Value: name}}, extra...)}
	for _, p := range pts {
		ts := base + p.t*1000
		if p.h > 0 {
			s.Histograms = append(s.Histograms, remotewrite.Histogram{Timestamp: ts, H: hist(p.h)})
		} else {
			s.Samples = append(s.Samples, remotewrite.Sample{Timestamp: ts, Value: p.v})
		}
	}
	return s
}

// stored returns the number of samples, floats and histograms, of the
// series named name.
func stored(t *testing.T, ing *Ingester, tenant, name string) int {
	t.Helper()
	n := 0
	eachSample(t, ing, tenant, name, func(chunkenc.ValueType, chunkenc.Iterator) { n++ })
	return n
}

// commitDrop is a case of TestSamplesDroppedAtCommitAreRefused.
type commitDrop struct {
	name     string
	window   time.Duration
	before   []pt // pushed first, in a request of their own
	series   [][]pt
	extra    []labels.Label // labels of the second entry, when it should differ as sent
	written  int            // counted as stored (equal duplicates are no-ops counted as stored)
	inHead   int            // samples a query finds
	refused  int
	reason   string
	noReason bool
}

// commitDrops are the shapes of request whose samples the head drops at
// Commit, and some it stores, for contrast.
func commitDrops() []commitDrop {
	empty := []labels.Label{{Name: "a", Value: ""}} // the same series once empty labels are dropped
	return []commitDrop{
		{name: "backwards in one series", series: [][]pt{{{t: 2, v: 1}, {t: 1, v: 2}}},
			written: 1, inHead: 1, refused: 1, reason: "out-of-order sample"},
		{name: "same series twice, the second older", series: [][]pt{{{t: 2, v: 1}}, {{t: 1, v: 2}}},
			written: 1, inHead: 1, refused: 1, reason: "out-of-order sample"},
		{name: "same series twice under another encoding", series: [][]pt{{{t: 2, v: 1}}, {{t: 1, v: 2}}}, extra: empty,
			written: 1, inHead: 1, refused: 1, reason: "out-of-order sample"},
		{name: "duplicate timestamp, other value", series: [][]pt{{{t: 1, v: 1}, {t: 1, v: 2}}},
			written: 1, inHead: 1, refused: 1, reason: "different value than the sample already stored"},
		{name: "duplicate timestamp in two entries", series: [][]pt{{{t: 1, v: 1}}, {{t: 1, v: 2}}},
			written: 1, inHead: 1, refused: 1, reason: "different value than the sample already stored"},
		{name: "duplicate timestamp, same value", series: [][]pt{{{t: 1, v: 1}, {t: 1, v: 1}}, {{t: 1, v: 1}}},
			written: 3, inHead: 1, noReason: true},
		{name: "in order", series: [][]pt{{{t: 1}, {t: 2}}, {{t: 3}}},
			written: 3, inHead: 3, noReason: true},
		{name: "backwards below an earlier push", before: []pt{{t: 10}}, series: [][]pt{{{t: 5}, {t: 4}}},
			written: 0, inHead: 1, refused: 2, reason: "out-of-order sample"},
		{name: "window: backwards inside it is stored", window: time.Hour, series: [][]pt{{{t: 2, v: 1}, {t: 1, v: 2}}, {{t: 0, v: 3}}},
			written: 3, inHead: 3, noReason: true},
		{name: "window: duplicate of the newest", window: time.Hour, series: [][]pt{{{t: 2, v: 1}, {t: 1, v: 2}}, {{t: 2, v: 3}}},
			written: 2, inHead: 2, refused: 1, reason: "different value than the sample already stored"},
		{name: "window: duplicate of an older sample", window: time.Hour, series: [][]pt{{{t: 5, v: 1}, {t: 1, v: 2}, {t: 1, v: 3}}},
			written: 2, inHead: 2, refused: 1, reason: "different value than the sample already stored"},
		{name: "window: duplicate of a sample before the newest", window: time.Hour, before: []pt{{t: 100}},
			series:  [][]pt{{{t: 50, v: 1}, {t: 60, v: 2}}, {{t: 50, v: 3}}},
			written: 2, inHead: 3, refused: 1, reason: "different value than the sample already stored"},
		{name: "window: equal duplicate of an older sample", window: time.Hour, series: [][]pt{{{t: 5, v: 1}, {t: 1, v: 2}}, {{t: 5, v: 1}, {t: 1, v: 2}}},
			written: 4, inHead: 2, noReason: true},
		{name: "window: backwards beyond it", window: time.Minute, series: [][]pt{{{t: 3600, v: 1}, {t: 1, v: 2}}},
			written: 1, inHead: 1, refused: 1, reason: "outside the out-of-order window"},
		{name: "histograms backwards", series: [][]pt{{{t: 2, h: 1}, {t: 1, h: 2}}},
			written: 1, inHead: 1, refused: 1, reason: "out-of-order sample"},
		{name: "histograms duplicate timestamp", series: [][]pt{{{t: 1, h: 1}}, {{t: 1, h: 2}}},
			written: 1, inHead: 1, refused: 1, reason: "different value than the sample already stored"},
		{name: "histograms equal duplicate", series: [][]pt{{{t: 1, h: 1}}, {{t: 1, h: 1}}},
			written: 2, inHead: 1, noReason: true},
		{name: "histogram and float at one timestamp", series: [][]pt{{{t: 1, v: 1}}, {{t: 1, h: 1}}},
			written: 1, inHead: 1, refused: 1, reason: "different value than the sample already stored"},
		{name: "window: histograms backwards inside it", window: time.Hour, series: [][]pt{{{t: 2, h: 1}, {t: 1, h: 2}}, {{t: 1, h: 3}}},
			written: 2, inHead: 2, refused: 1, reason: "different value than the sample already stored"},
	}
}

// TestSamplesDroppedAtCommitAreRefused sends, in one request, samples that
// the head's appender accepts one by one but drops at Commit (#12: they were
// answered 204 and lost): every sample must be stored or refused with the
// reason it gets when it comes alone in a request of its own.
func TestSamplesDroppedAtCommitAreRefused(t *testing.T) {
	for _, tc := range commitDrops() {
		for _, keyed := range []bool{false, true} {
			name := tc.name
			if keyed {
				name += ", keyed"
			}
			t.Run(name, func(t *testing.T) {
				ing := testIngester(t, t.TempDir(), func(_ *Config, l *limits.Limits) { l.OutOfOrderTimeWindow = tc.window })
				base := time.Now().Add(-time.Hour).Truncate(time.Minute).UnixMilli()
				if tc.before != nil {
					req := &remotewrite.Request{Series: []remotewrite.Series{entry(base, "m", nil, tc.before...)}}
					if res, err := ing.Push(t.Context(), "t", req); err != nil || res.Rejected() {
						t.Fatalf("first push: %v %s", err, res.Message(1))
					}
				}
				req := &remotewrite.Request{}
				sent := 0
				for k, pts := range tc.series {
					var extra []labels.Label
					if k == 1 {
						extra = tc.extra
					}
					s := entry(base, "m", extra, pts...)
					if keyed {
						// As the decoder keys them: by the labels as sent.
						s.Key = remotewrite.SeriesKey{H1: uint64(len(s.Labels)), H2: 1}
					}
					req.Series = append(req.Series, s)
					sent += len(pts)
				}
				res, err := ing.Push(t.Context(), "t", req)
				if err != nil {
					t.Fatal(err)
				}
				msg := res.Message(len(req.Series))
				if got := res.Samples + res.Histograms; got != tc.written || res.RejectedSamples != tc.refused {
					t.Fatalf("written %d refused %d, want %d and %d: %s", got, res.RejectedSamples, tc.written, tc.refused, msg)
				}
				if got := res.Samples + res.Histograms + res.RejectedSamples; got != sent {
					t.Fatalf("%d of %d samples accounted for: %s", got, sent, msg)
				}
				if tc.noReason == res.Rejected() || !strings.Contains(msg, tc.reason) {
					t.Fatalf("answer %q, want it to mention %q", msg, tc.reason)
				}
				if n := stored(t, ing, "t", "m"); n != tc.inHead {
					t.Fatalf("%d samples in the head, want %d", n, tc.inHead)
				}
			})
		}
	}
}
