package remotewrite

import (
	"fmt"
	"testing"

	"github.com/gogo/protobuf/proto"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
)

// The fuzz targets check that no input panics the decoders and that they
// agree with the generated gogo/protobuf decoders of the Prometheus module:
// whatever gogo accepts, the hand-written decoder accepts with the same
// content. Seeds are in testdata/fuzz.

func FuzzDecodeV1(f *testing.F) {
	for _, n := range []int{0, 1, 7} {
		b, err := proto.Marshal(testV1Request(n))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r := GetRequest()
		defer Release(r)
		err := DecodeV1(r, body)
		var want prompb.WriteRequest
		if proto.Unmarshal(body, &want) != nil {
			return
		}
		if err != nil {
			t.Fatalf("gogo decodes %x, DecodeV1 fails: %v", body, err)
		}
		if diff := compareV1(r, &want); diff != "" {
			t.Fatalf("decoding %x: %s", body, diff)
		}
	})
}

func FuzzDecodeV2(f *testing.F) {
	for _, n := range []int{0, 1, 6} {
		b, err := proto.Marshal(testV2Request(n))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r := GetRequest()
		defer Release(r)
		err := DecodeV2(r, body)
		var want writev2.Request
		if proto.Unmarshal(body, &want) != nil {
			return
		}
		if err != nil {
			t.Fatalf("gogo decodes %x, DecodeV2 fails: %v", body, err)
		}
		if diff := compareV2(r, &want); diff != "" {
			t.Fatalf("decoding %x: %s", body, diff)
		}
	})
}

// FuzzDecodeWire decodes what a distributor could send an ingester: it
// never panics, and what it decodes survives encoding again unchanged.
func FuzzDecodeWire(f *testing.F) {
	for _, n := range []int{0, 1, 7} {
		b, err := proto.Marshal(testV1Request(n))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	r := GetRequest()
	if err := DecodeV2(r, mustMarshal(f, testV2Request(3))); err != nil {
		f.Fatal(err)
	}
	var e Encoder
	var wire []byte
	for k := range r.Series {
		wire = e.AppendSeries(wire, &r.Series[k])
	}
	f.Add(wire)
	Release(r)
	f.Fuzz(func(t *testing.T, body []byte) {
		r := GetRequest()
		defer Release(r)
		if DecodeWire(r, body) != nil {
			return
		}
		if d := sameAsLazy(r, body); d != "" {
			t.Fatalf("decoding %x lazily: %s", body, d)
		}
		for k := range r.Series {
			r.Series[k].raw = nil // encode anew: the copy of the bytes as sent is not what is under test
		}
		if d := sameSeries(wireRoundTrip(t, r), r); d != "" {
			t.Fatalf("decoding %x again after encoding: %s", body, d)
		}
	})
}

// sameAsLazy compares what DecodeWireLazy makes of body with r, what
// DecodeWire made of it: the same series, keys and samples, and the same
// labels once read.
func sameAsLazy(r *Request, body []byte) string {
	lazy := GetRequest()
	defer Release(lazy)
	if err := DecodeWireLazy(lazy, body); err != nil {
		return fmt.Sprintf("refused what DecodeWire took: %v", err)
	}
	if len(lazy.Series) != len(r.Series) {
		return fmt.Sprintf("%d series, want %d", len(lazy.Series), len(r.Series))
	}
	b := labels.NewScratchBuilder(8)
	for k := range r.Series {
		g, w := &lazy.Series[k], &r.Series[k]
		if g.Key != w.Key || len(g.Samples) != len(w.Samples) {
			return fmt.Sprintf("series %d: key %v and %d samples, want %v and %d", k, g.Key, len(g.Samples), w.Key, len(w.Samples))
		}
		b.Reset()
		if err := g.AppendLabels(&b); err != nil {
			return fmt.Sprintf("series %d: labels: %v", k, err)
		}
		got := b.Labels()
		var want []labels.Label
		got.Range(func(l labels.Label) { want = append(want, l) })
		if !sameLabels(want, w.Labels) {
			return fmt.Sprintf("series %d: labels %v, want %v", k, got, w.Labels)
		}
		if g.MetricName() != w.MetricName() {
			return fmt.Sprintf("series %d: metric name %q, want %q", k, g.MetricName(), w.MetricName())
		}
	}
	return ""
}

// FuzzDecodeResult decodes what an ingester could answer: it never panics
// and never yields a negative count.
func FuzzDecodeResult(f *testing.F) {
	var r Result
	r.TrackSeries()
	r.BeginSeries(3, 2, 0, 0)
	r.Reject(0, 1, "out of order")
	r.EndSeries()
	f.Add(AppendResult(nil, &r))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := DecodeResult(b)
		if err != nil {
			return
		}
		if got.Samples < 0 || got.RejectedSamples < 0 || got.Exemplars < 0 {
			t.Fatalf("negative count from %x: %+v", b, got)
		}
		for _, o := range got.SeriesOutcomes() {
			if o.Index < 0 || o.Samples < 0 || o.RejectedSamples < 0 {
				t.Fatalf("negative outcome from %x: %+v", b, o)
			}
		}
		again, err := DecodeResult(AppendResult(nil, &got))
		if err != nil || again.Message(1) != got.Message(1) || fmt.Sprint(again.SeriesOutcomes()) != fmt.Sprint(got.SeriesOutcomes()) {
			t.Fatalf("result of %x does not survive encoding: %v", b, err)
		}
	})
}

func mustMarshal(t testing.TB, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
