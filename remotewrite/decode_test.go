package remotewrite

import (
	"fmt"
	"math"
	"testing"

	"github.com/gogo/protobuf/proto"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
)

// testV1Request builds a 1.0 request exercising every field the decoder reads.
func testV1Request(series int) *prompb.WriteRequest {
	req := &prompb.WriteRequest{}
	for i := range series {
		ts := prompb.TimeSeries{
			Labels: []prompb.Label{
				{Name: "__name__", Value: "node_cpu_seconds_total"},
				{Name: "cpu", Value: fmt.Sprint(i % 4)},
				{Name: "instance", Value: fmt.Sprintf("host-%d:9100", i)},
				{Name: "mode", Value: "idle"},
			},
			Samples: []prompb.Sample{{Value: float64(i), Timestamp: 1000}, {Value: math.Inf(1), Timestamp: 2000}},
		}
		if i%3 == 0 {
			ts.Exemplars = []prompb.Exemplar{{Labels: []prompb.Label{{Name: "trace_id", Value: "abc"}}, Value: 1.5, Timestamp: 1500}}
		}
		if i%5 == 0 {
			h := &histogram.Histogram{Count: 5, Sum: 12.5, Schema: 1, ZeroThreshold: 0.001, ZeroCount: 1,
				PositiveSpans: []histogram.Span{{Offset: 0, Length: 2}}, PositiveBuckets: []int64{2, 0}}
			ts.Histograms = []prompb.Histogram{prompb.FromIntHistogram(3000, h), prompb.FromFloatHistogram(4000, h.ToFloat(nil))}
		}
		req.Timeseries = append(req.Timeseries, ts)
	}
	req.Metadata = []prompb.MetricMetadata{{Type: prompb.MetricMetadata_COUNTER, MetricFamilyName: "node_cpu_seconds_total", Help: "Seconds.", Unit: "seconds"}}
	return req
}

func testV2Request(series int) *writev2.Request {
	st := writev2.NewSymbolTable()
	req := &writev2.Request{}
	for i := range series {
		ls := labels.FromStrings("__name__", "node_network_receive_bytes_total", "device", fmt.Sprintf("eth%d", i), "instance", "a:9100")
		ts := writev2.TimeSeries{
			LabelsRefs: st.SymbolizeLabels(ls, nil),
			Samples:    []writev2.Sample{{Value: float64(i), Timestamp: 1000, StartTimestamp: 10}},
			Metadata:   writev2.Metadata{Type: writev2.Metadata_METRIC_TYPE_COUNTER, HelpRef: st.Symbolize("Bytes received."), UnitRef: st.Symbolize("bytes")},
		}
		if i%2 == 0 {
			ts.Exemplars = []writev2.Exemplar{{LabelsRefs: st.SymbolizeLabels(labels.FromStrings("trace_id", "t1"), nil), Value: 2, Timestamp: 900}}
			h := &histogram.Histogram{Count: 3, Sum: 1, Schema: 0, PositiveSpans: []histogram.Span{{Offset: 1, Length: 1}}, PositiveBuckets: []int64{3}}
			ts.Histograms = []writev2.Histogram{writev2.FromIntHistogram(5, 3000, h)}
		}
		req.Timeseries = append(req.Timeseries, ts)
	}
	req.Symbols = st.Symbols()
	return req
}

func TestDecodeV1MatchesGogo(t *testing.T) {
	in := testV1Request(20)
	body, err := proto.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	r := GetRequest()
	defer Release(r)
	if err := DecodeV1(r, body); err != nil {
		t.Fatal(err)
	}
	if diff := compareV1(r, in); diff != "" {
		t.Fatal(diff)
	}
	// Reuse: a second decode into a reset request gives the same result.
	r.Reset()
	if err := DecodeV1(r, body); err != nil {
		t.Fatal(err)
	}
	if diff := compareV1(r, in); diff != "" {
		t.Fatal("after reset:", diff)
	}
}

func TestDecodeV2MatchesGogo(t *testing.T) {
	in := testV2Request(20)
	body, err := proto.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	r := GetRequest()
	defer Release(r)
	if err := DecodeV2(r, body); err != nil {
		t.Fatal(err)
	}
	if diff := compareV2(r, in); diff != "" {
		t.Fatal(diff)
	}
}

func TestDecodeV2SymbolsAfterSeries(t *testing.T) {
	in := testV2Request(3)
	// Marshal the series first and the symbols after them: legal protobuf.
	onlySeries, err := proto.Marshal(&writev2.Request{Timeseries: in.Timeseries})
	if err != nil {
		t.Fatal(err)
	}
	onlySymbols, err := proto.Marshal(&writev2.Request{Symbols: in.Symbols})
	if err != nil {
		t.Fatal(err)
	}
	r := GetRequest()
	defer Release(r)
	if err := DecodeV2(r, append(onlySeries, onlySymbols...)); err != nil {
		t.Fatal(err)
	}
	if diff := compareV2(r, in); diff != "" {
		t.Fatal(diff)
	}
}

func TestDecodeV2BadReferences(t *testing.T) {
	in := &writev2.Request{
		Symbols: []string{"", "__name__", "up"},
		Timeseries: []writev2.TimeSeries{
			{LabelsRefs: []uint32{1, 2}, Samples: []writev2.Sample{{Value: 1, Timestamp: 1}}},
			{LabelsRefs: []uint32{1, 9}, Samples: []writev2.Sample{{Value: 1, Timestamp: 1}}},
			{LabelsRefs: []uint32{1}, Samples: []writev2.Sample{{Value: 1, Timestamp: 1}}},
			{LabelsRefs: []uint32{1, 2}, Metadata: writev2.Metadata{HelpRef: 7}},
		},
	}
	body, err := proto.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	r := GetRequest()
	defer Release(r)
	if err := DecodeV2(r, body); err != nil {
		t.Fatal(err)
	}
	wantErr := []string{"", "label reference 9 out of range of 3 symbols", "labels_refs has odd length 1", "metadata: symbol reference 7 out of range of 3 symbols"}
	for i, want := range wantErr {
		got := ""
		if err := r.Series[i].Err; err != nil {
			got = err.Error()
		}
		if got != want {
			t.Errorf("series %d: error %q, want %q", i, got, want)
		}
	}
}

func TestDecodeMalformed(t *testing.T) {
	good, err := proto.Marshal(testV1Request(2))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		body []byte
	}{
		{"truncated", good[:len(good)-3]},
		{"field zero", []byte{0x00, 0x01}},
		{"length past end", []byte{0x0a, 0x7f, 0x01}},
		{"wrong wire type for series", []byte{0x08, 0x01, 0x28, 0x01}},
		{"end group without start", []byte{0x0c}},
		{"varint never ends", []byte{0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, dec := range []func(*Request, []byte) error{DecodeV1, DecodeV2} {
				r := GetRequest()
				if err := dec(r, tc.body); err == nil {
					t.Errorf("decoded %x without error", tc.body)
				}
				Release(r)
			}
		})
	}
}

func TestDecodeV1Allocations(t *testing.T) {
	body, err := proto.Marshal(&prompb.WriteRequest{Timeseries: testV1Request(100).Timeseries[1:5]})
	if err != nil {
		t.Fatal(err)
	}
	r := GetRequest()
	if err := DecodeV1(r, body); err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(100, func() {
		r.Reset()
		if err := DecodeV1(r, body); err != nil {
			t.Fatal(err)
		}
	})
	// Series 1-4 carry no histograms, the only part that allocates.
	if allocs != 0 {
		t.Fatalf("decoding a reused request allocated %v times, want 0", allocs)
	}
}

func labelsOf(ps []prompb.Label) []labels.Label {
	var out []labels.Label
	for _, p := range ps {
		out = append(out, labels.Label{Name: p.Name, Value: p.Value})
	}
	return out
}

func compareV1(got *Request, want *prompb.WriteRequest) string {
	if len(got.Series) != len(want.Timeseries) {
		return fmt.Sprintf("%d series, want %d", len(got.Series), len(want.Timeseries))
	}
	for i, ws := range want.Timeseries {
		gs := got.Series[i]
		if !sameLabels(gs.Labels, labelsOf(ws.Labels)) {
			return fmt.Sprintf("series %d: labels %v, want %v", i, gs.Labels, ws.Labels)
		}
		if len(gs.Samples) != len(ws.Samples) {
			return fmt.Sprintf("series %d: %d samples, want %d", i, len(gs.Samples), len(ws.Samples))
		}
		for j, s := range ws.Samples {
			if !sameFloat(gs.Samples[j].Value, s.Value) || gs.Samples[j].Timestamp != s.Timestamp {
				return fmt.Sprintf("series %d sample %d: %+v, want %+v", i, j, gs.Samples[j], s)
			}
		}
		if len(gs.Exemplars) != len(ws.Exemplars) {
			return fmt.Sprintf("series %d: %d exemplars, want %d", i, len(gs.Exemplars), len(ws.Exemplars))
		}
		for j, e := range ws.Exemplars {
			ge := gs.Exemplars[j]
			if !sameLabels(ge.Labels, labelsOf(e.Labels)) || !sameFloat(ge.Value, e.Value) || ge.Timestamp != e.Timestamp {
				return fmt.Sprintf("series %d exemplar %d: %+v, want %+v", i, j, ge, e)
			}
		}
		if len(gs.Histograms) != len(ws.Histograms) {
			return fmt.Sprintf("series %d: %d histograms, want %d", i, len(gs.Histograms), len(ws.Histograms))
		}
		for j, h := range ws.Histograms {
			if d := compareHistogram(gs.Histograms[j], h.Timestamp, 0, h.IsFloatHistogram(), h.ToIntHistogram, h.ToFloatHistogram); d != "" {
				return fmt.Sprintf("series %d histogram %d: %s", i, j, d)
			}
		}
	}
	if len(got.Metadata) != len(want.Metadata) {
		return fmt.Sprintf("%d metadata, want %d", len(got.Metadata), len(want.Metadata))
	}
	for i, m := range want.Metadata {
		g := got.Metadata[i]
		if g.FamilyName != m.MetricFamilyName || g.Help != m.Help || g.Unit != m.Unit || g.Type != metricTypeV1(uint64(m.Type)) {
			return fmt.Sprintf("metadata %d: %+v, want %+v", i, g, m)
		}
	}
	return ""
}

func compareV2(got *Request, want *writev2.Request) string {
	if len(got.Series) != len(want.Timeseries) {
		return fmt.Sprintf("%d series, want %d", len(got.Series), len(want.Timeseries))
	}
	for i, ws := range want.Timeseries {
		gs := got.Series[i]
		if gs.Err != nil {
			continue // references out of range: nothing to compare
		}
		var wl []labels.Label
		for k := 0; k+1 < len(ws.LabelsRefs); k += 2 {
			wl = append(wl, labels.Label{Name: want.Symbols[ws.LabelsRefs[k]], Value: want.Symbols[ws.LabelsRefs[k+1]]})
		}
		if !sameLabels(gs.Labels, wl) {
			return fmt.Sprintf("series %d: labels %v, want %v", i, gs.Labels, wl)
		}
		if len(gs.Samples) != len(ws.Samples) {
			return fmt.Sprintf("series %d: %d samples, want %d", i, len(gs.Samples), len(ws.Samples))
		}
		for j, s := range ws.Samples {
			g := gs.Samples[j]
			if !sameFloat(g.Value, s.Value) || g.Timestamp != s.Timestamp || g.StartTimestamp != s.StartTimestamp {
				return fmt.Sprintf("series %d sample %d: %+v, want %+v", i, j, g, s)
			}
		}
		if len(gs.Exemplars) != len(ws.Exemplars) {
			return fmt.Sprintf("series %d: %d exemplars, want %d", i, len(gs.Exemplars), len(ws.Exemplars))
		}
		if len(gs.Histograms) != len(ws.Histograms) {
			return fmt.Sprintf("series %d: %d histograms, want %d", i, len(gs.Histograms), len(ws.Histograms))
		}
		for j, h := range ws.Histograms {
			if d := compareHistogram(gs.Histograms[j], h.Timestamp, h.StartTimestamp, h.IsFloatHistogram(), h.ToIntHistogram, h.ToFloatHistogram); d != "" {
				return fmt.Sprintf("series %d histogram %d: %s", i, j, d)
			}
		}
		// An unspecified type is unknown to Prometheus and empty here; a type
		// number outside the enum is empty in both.
		m, _ := ws.ToMetadata(want.Symbols)
		sameType := gs.Metadata.Type == m.Type || gs.Metadata.Type == "" && m.Type == model.MetricTypeUnknown
		if m.Help != gs.Metadata.Help || m.Unit != gs.Metadata.Unit || !sameType {
			return fmt.Sprintf("series %d: metadata %+v, want %+v", i, gs.Metadata, m)
		}
	}
	return ""
}

func compareHistogram(g Histogram, ts, st int64, isFloat bool, toInt func() *histogram.Histogram, toFloat func() *histogram.FloatHistogram) string {
	if g.Timestamp != ts || g.StartTimestamp != st {
		return fmt.Sprintf("timestamps %d/%d, want %d/%d", g.Timestamp, g.StartTimestamp, ts, st)
	}
	if isFloat {
		if g.FH == nil || !g.FH.Equals(toFloat()) {
			return fmt.Sprintf("float histogram %v, want %v", g.FH, toFloat())
		}
		return ""
	}
	if g.H == nil || !g.H.Equals(toInt()) {
		return fmt.Sprintf("histogram %v, want %v", g.H, toInt())
	}
	return ""
}

func sameLabels(a, b []labels.Label) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func sameFloat(a, b float64) bool {
	return a == b || (math.IsNaN(a) && math.IsNaN(b)) || math.Float64bits(a) == math.Float64bits(b)
}

func TestSeriesKeys(t *testing.T) {
	keys := func(body []byte, dec func(*Request, []byte) error) []SeriesKey {
		r := GetRequest()
		defer Release(r)
		if err := dec(r, body); err != nil {
			t.Fatal(err)
		}
		var out []SeriesKey
		for _, s := range r.Series {
			out = append(out, s.Key)
		}
		return out
	}
	v1a, _ := proto.Marshal(testV1Request(30))
	v1b, _ := proto.Marshal(testV1Request(30)) // same labels, other requests
	ka, kb := keys(v1a, DecodeV1), keys(v1b, DecodeV1)
	v2a, _ := proto.Marshal(testV2Request(30))
	k2 := keys(v2a, DecodeV2)
	seen := map[SeriesKey]bool{}
	for i := range ka {
		if ka[i] != kb[i] || ka[i].IsZero() {
			t.Fatalf("series %d: keys %v and %v of the same labels", i, ka[i], kb[i])
		}
		if seen[ka[i]] || seen[k2[i]] {
			t.Fatalf("series %d: key seen before", i)
		}
		seen[ka[i]], seen[k2[i]] = true, true
	}
	// A 2.0 request with another symbol table gives the same keys.
	in := testV2Request(30)
	in.Symbols = append([]string{""}, append([]string{"unused"}, in.Symbols[1:]...)...)
	for i := range in.Timeseries {
		for j := range in.Timeseries[i].LabelsRefs {
			if in.Timeseries[i].LabelsRefs[j] > 0 {
				in.Timeseries[i].LabelsRefs[j]++
			}
		}
		in.Timeseries[i].Exemplars, in.Timeseries[i].Metadata = nil, writev2.Metadata{}
	}
	v2b, _ := proto.Marshal(in)
	for i, k := range keys(v2b, DecodeV2) {
		if k != k2[i] {
			t.Fatalf("series %d: 2.0 key depends on the symbol table", i)
		}
	}
}
