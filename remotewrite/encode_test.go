package remotewrite

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/gogo/protobuf/proto"
)

// wireRoundTrip encodes every series and the metadata of r the way a
// distributor sends them to an ingester and decodes the result.
func wireRoundTrip(t testing.TB, r *Request) *Request {
	t.Helper()
	var e Encoder
	var body []byte
	for k := range r.Series {
		body = e.AppendSeries(body, &r.Series[k])
	}
	for k := range r.Metadata {
		body = e.AppendMetadata(body, &r.Metadata[k])
	}
	got := GetRequest()
	t.Cleanup(func() { Release(got) })
	if err := DecodeWire(got, body); err != nil {
		t.Fatalf("decode what the encoder wrote: %v", err)
	}
	return got
}

// sameSeries compares everything the wire carries of two requests. 1.0
// histograms carry no start timestamp, so the wire has none for them.
func sameSeries(got, want *Request) string {
	if len(got.Series) != len(want.Series) || len(got.Metadata) != len(want.Metadata) {
		return fmt.Sprintf("%d series and %d metadata, want %d and %d", len(got.Series), len(got.Metadata), len(want.Series), len(want.Metadata))
	}
	for i := range want.Series {
		g, w := &got.Series[i], &want.Series[i]
		if !sameLabels(g.Labels, w.Labels) {
			return fmt.Sprintf("series %d: labels %v, want %v", i, g.Labels, w.Labels)
		}
		if len(g.Samples) != len(w.Samples) || len(g.Exemplars) != len(w.Exemplars) || len(g.Histograms) != len(w.Histograms) {
			return fmt.Sprintf("series %d: %d/%d/%d samples, exemplars, histograms; want %d/%d/%d", i,
				len(g.Samples), len(g.Exemplars), len(g.Histograms), len(w.Samples), len(w.Exemplars), len(w.Histograms))
		}
		for j := range w.Samples {
			gs, ws := g.Samples[j], w.Samples[j]
			if !sameFloat(gs.Value, ws.Value) || gs.Timestamp != ws.Timestamp || gs.StartTimestamp != ws.StartTimestamp {
				return fmt.Sprintf("series %d sample %d: %+v, want %+v", i, j, gs, ws)
			}
		}
		for j := range w.Exemplars {
			ge, we := g.Exemplars[j], w.Exemplars[j]
			if !sameLabels(ge.Labels, we.Labels) || !sameFloat(ge.Value, we.Value) || ge.Timestamp != we.Timestamp {
				return fmt.Sprintf("series %d exemplar %d: %+v, want %+v", i, j, ge, we)
			}
		}
		for j := range w.Histograms {
			gh, wh := g.Histograms[j], w.Histograms[j]
			same := gh.Timestamp == wh.Timestamp && ((wh.H != nil && gh.H != nil && gh.H.Equals(wh.H)) || (wh.FH != nil && gh.FH != nil && gh.FH.Equals(wh.FH)))
			if !same {
				return fmt.Sprintf("series %d histogram %d: %+v, want %+v", i, j, gh, wh)
			}
		}
		if g.Metadata != w.Metadata && !(g.Metadata.IsEmpty() && w.Metadata.IsEmpty()) {
			return fmt.Sprintf("series %d: metadata %+v, want %+v", i, g.Metadata, w.Metadata)
		}
	}
	for i := range want.Metadata {
		if got.Metadata[i] != want.Metadata[i] {
			return fmt.Sprintf("metadata %d: %+v, want %+v", i, got.Metadata[i], want.Metadata[i])
		}
	}
	return ""
}

func TestWireRoundTrip(t *testing.T) {
	v1, err := proto.Marshal(testV1Request(11))
	if err != nil {
		t.Fatal(err)
	}
	v2, err := proto.Marshal(testV2Request(7))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		body   []byte
		decode func(*Request, []byte) error
	}{{"remote write 1.0", v1, DecodeV1}, {"remote write 2.0", v2, DecodeV2}} {
		t.Run(c.name, func(t *testing.T) {
			r := GetRequest()
			defer Release(r)
			if err := c.decode(r, c.body); err != nil {
				t.Fatal(err)
			}
			if d := sameSeries(wireRoundTrip(t, r), r); d != "" {
				t.Fatal(d)
			}
		})
	}
}

// TestWireCopiesUnchangedSeries checks that a 1.0 series validation left
// alone travels as it was sent (so the ingester keys it as the sender
// encoded it), and that one validation changed is encoded anew.
func TestWireCopiesUnchangedSeries(t *testing.T) {
	body, err := proto.Marshal(testV1Request(2))
	if err != nil {
		t.Fatal(err)
	}
	r := GetRequest()
	defer Release(r)
	if err := DecodeV1(r, body); err != nil {
		t.Fatal(err)
	}
	var e Encoder
	if got := e.AppendSeries(nil, &r.Series[0]); !bytes.Equal(got, appendBytesField(nil, 1, r.Series[0].raw)) {
		t.Fatal("an unchanged series was encoded anew, not copied")
	}
	r.Series[1].Samples = r.Series[1].Samples[:1] // validation dropped a sample
	if got := e.AppendSeries(nil, &r.Series[1]); bytes.Equal(got, appendBytesField(nil, 1, r.Series[1].raw)) {
		t.Fatal("a series validation changed was copied as sent")
	}
	if d := sameSeries(wireRoundTrip(t, r), r); d != "" {
		t.Fatal(d)
	}
}

func TestResultRoundTrip(t *testing.T) {
	var r Result
	r.TrackSeries()
	r.BeginSeries(0, 2, 0, 1)
	r.Samples += 2
	r.Exemplars++
	r.BeginSeries(1, 3, 1, 0)
	r.Samples++
	r.Histograms++
	r.Reject(0, 2, "out of order")
	r.BeginSeries(2, 1, 0, 0)
	r.Reject(1, 1, "series limit")
	r.EndSeries()
	for k := range MaxReportedErrors + 3 {
		r.Reject(0, 0, fmt.Sprint("reason ", k))
	}
	got, err := DecodeResult(AppendResult(nil, &r))
	if err != nil {
		t.Fatal(err)
	}
	if got.Samples != 3 || got.Histograms != 1 || got.Exemplars != 1 || got.RejectedSeries != 1 || got.RejectedSamples != 3 {
		t.Fatalf("counters %+v", got)
	}
	want := []SeriesOutcome{{Index: 1, Samples: 1, Histograms: 1, RejectedSamples: 2}, {Index: 2, RejectedSeries: 1, RejectedSamples: 1}}
	if o := got.SeriesOutcomes(); fmt.Sprint(o) != fmt.Sprint(want) {
		t.Fatalf("outcomes %+v, want %+v (series 0 was stored whole and is not listed)", o, want)
	}
	if got.Message(3) != r.Message(3) {
		t.Fatalf("message %q, want %q", got.Message(3), r.Message(3))
	}
}
