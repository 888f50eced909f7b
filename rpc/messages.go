package rpc

import (
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/prompb"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/fluxpulse/fluxpulse/remotewrite"
)

// PushRequest is a batch of validated series for one ingester, in the
// remote-write 1.0 encoding (a prompb.WriteRequest), as remotewrite's
// encoder builds it.
type PushRequest struct {
	Body []byte
}

// Marshal implements selfMarshaler.
func (m *PushRequest) Marshal() ([]byte, error) { return m.Body, nil }

// Unmarshal implements selfMarshaler. It copies, into a pooled buffer that
// the push returns when it is done: the decoded series alias the body for
// as long as the push runs.
func (m *PushRequest) Unmarshal(b []byte) error {
	m.Body = append(getBody(len(b)), b...)
	return nil
}

// unmarshalBuffers implements bufferUnmarshaler: the pieces are copied
// straight into the pooled buffer.
func (m *PushRequest) unmarshalBuffers(data mem.BufferSlice) error {
	n := data.Len()
	m.Body = getBody(n)[:n]
	data.CopyTo(m.Body)
	return nil
}

// Bodies of pushes are pooled: at hundreds of kilobytes each, a fresh one
// per call would keep the garbage collector busy.
var bodies = sync.Pool{New: func() any { return new([]byte) }}

// maxPooledBody keeps an outsized push from pinning its memory.
const maxPooledBody = 8 << 20

func getBody(n int) []byte {
	b := *(bodies.Get().(*[]byte))
	if cap(b) < n {
		return make([]byte, 0, n)
	}
	return b[:0]
}

func putBody(b []byte) {
	if cap(b) > 0 && cap(b) <= maxPooledBody {
		b = b[:0]
		bodies.Put(&b)
	}
}

// PushResponse is what an ingester stored and refused of a PushRequest,
// with the refusals of each series by its index in the batch.
type PushResponse struct {
	Result remotewrite.Result
}

// Marshal implements selfMarshaler.
func (m *PushResponse) Marshal() ([]byte, error) {
	return remotewrite.AppendResult(nil, &m.Result), nil
}

// Unmarshal implements selfMarshaler.
func (m *PushResponse) Unmarshal(b []byte) error {
	var err error
	m.Result, err = remotewrite.DecodeResult(b)
	return err
}

// Empty is a message without fields: the tenant, in the call's metadata,
// says it all.
type Empty struct{}

// Marshal implements selfMarshaler.
func (*Empty) Marshal() ([]byte, error) { return nil, nil }

// Unmarshal implements selfMarshaler.
func (*Empty) Unmarshal([]byte) error { return nil }

// LabelsRequest asks for label names (Name empty) or the values of label
// Name, of the series matching Matchers in [Start, End]. Asked of a
// store-gateway, it names the blocks to read (Blocks).
type LabelsRequest struct {
	Start, End int64
	Name       string
	Matchers   []*prompb.LabelMatcher
	Limit      int64
	Blocks     []ulid.ULID
}

// Marshal implements selfMarshaler.
func (m *LabelsRequest) Marshal() ([]byte, error) {
	var b []byte
	b = appendVarint(b, 1, uint64(m.Start))
	b = appendVarint(b, 2, uint64(m.End))
	b = appendString(b, 3, m.Name)
	var err error
	if b, err = appendMatchers(b, 4, m.Matchers); err != nil {
		return nil, err
	}
	b = appendVarint(b, 5, uint64(m.Limit))
	return appendBlocks(b, 6, m.Blocks), nil
}

// Unmarshal implements selfMarshaler.
func (m *LabelsRequest) Unmarshal(b []byte) error {
	*m = LabelsRequest{}
	return walk(b, func(num protowire.Number, typ protowire.Type, v uint64, raw []byte) error {
		switch num {
		case 1:
			m.Start = int64(v)
		case 2:
			m.End = int64(v)
		case 3:
			m.Name = string(raw)
		case 4:
			var lm prompb.LabelMatcher
			if err := lm.Unmarshal(raw); err != nil {
				return err
			}
			m.Matchers = append(m.Matchers, &lm)
		case 5:
			m.Limit = int64(v)
		case 6:
			return appendBlock(&m.Blocks, raw)
		}
		return nil
	})
}

// LabelsResponse holds sorted label names or values; from a store-gateway,
// also the blocks they are of (those of the request it holds).
type LabelsResponse struct {
	Values []string
	Blocks []ulid.ULID
}

// Marshal implements selfMarshaler.
func (m *LabelsResponse) Marshal() ([]byte, error) {
	var b []byte
	for _, v := range m.Values {
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendString(b, v)
	}
	return appendBlocks(b, 2, m.Blocks), nil
}

// Unmarshal implements selfMarshaler.
func (m *LabelsResponse) Unmarshal(b []byte) error {
	*m = LabelsResponse{}
	return walk(b, func(num protowire.Number, _ protowire.Type, _ uint64, raw []byte) error {
		switch num {
		case 1:
			m.Values = append(m.Values, string(raw))
		case 2:
			return appendBlock(&m.Blocks, raw)
		}
		return nil
	})
}

// MetadataRequest asks for the metadata of one metric family (Metric) or
// of all, bounded as the Prometheus metadata API bounds them (negative:
// no bound).
type MetadataRequest struct {
	Metric                string
	Limit, LimitPerMetric int64
}

// Marshal implements selfMarshaler.
func (m *MetadataRequest) Marshal() ([]byte, error) {
	b := appendString(nil, 1, m.Metric)
	b = appendVarint(b, 2, uint64(m.Limit))
	return appendVarint(b, 3, uint64(m.LimitPerMetric)), nil
}

// Unmarshal implements selfMarshaler.
func (m *MetadataRequest) Unmarshal(b []byte) error {
	*m = MetadataRequest{}
	return walk(b, func(num protowire.Number, _ protowire.Type, v uint64, raw []byte) error {
		switch num {
		case 1:
			m.Metric = string(raw)
		case 2:
			m.Limit = int64(v)
		case 3:
			m.LimitPerMetric = int64(v)
		}
		return nil
	})
}

// MetadataResponse holds metric metadata, one entry per family and
// distinct metadata.
type MetadataResponse struct {
	Metadata []prompb.MetricMetadata
}

// Marshal implements selfMarshaler.
func (m *MetadataResponse) Marshal() ([]byte, error) {
	var b []byte
	for k := range m.Metadata {
		enc, err := m.Metadata[k].Marshal()
		if err != nil {
			return nil, err
		}
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendBytes(b, enc)
	}
	return b, nil
}

// Unmarshal implements selfMarshaler.
func (m *MetadataResponse) Unmarshal(b []byte) error {
	*m = MetadataResponse{}
	return walk(b, func(num protowire.Number, _ protowire.Type, _ uint64, raw []byte) error {
		if num != 1 {
			return nil
		}
		var md prompb.MetricMetadata
		if err := md.Unmarshal(raw); err != nil {
			return err
		}
		m.Metadata = append(m.Metadata, md)
		return nil
	})
}

// ExemplarsRequest asks for the exemplars in [Start, End] of the series
// matching any of the matcher sets.
type ExemplarsRequest struct {
	Start, End  int64
	MatcherSets [][]*prompb.LabelMatcher
}

// Marshal implements selfMarshaler.
func (m *ExemplarsRequest) Marshal() ([]byte, error) {
	b := appendVarint(nil, 1, uint64(m.Start))
	b = appendVarint(b, 2, uint64(m.End))
	for _, set := range m.MatcherSets {
		inner, err := appendMatchers(nil, 1, set)
		if err != nil {
			return nil, err
		}
		b = protowire.AppendTag(b, 3, protowire.BytesType)
		b = protowire.AppendBytes(b, inner)
	}
	return b, nil
}

// Unmarshal implements selfMarshaler.
func (m *ExemplarsRequest) Unmarshal(b []byte) error {
	*m = ExemplarsRequest{}
	return walk(b, func(num protowire.Number, _ protowire.Type, v uint64, raw []byte) error {
		switch num {
		case 1:
			m.Start = int64(v)
		case 2:
			m.End = int64(v)
		case 3:
			var set []*prompb.LabelMatcher
			err := walk(raw, func(num protowire.Number, _ protowire.Type, _ uint64, raw []byte) error {
				if num != 1 {
					return nil
				}
				var lm prompb.LabelMatcher
				if err := lm.Unmarshal(raw); err != nil {
					return err
				}
				set = append(set, &lm)
				return nil
			})
			if err != nil {
				return err
			}
			m.MatcherSets = append(m.MatcherSets, set)
		}
		return nil
	})
}

// ExemplarsResponse holds series with their exemplars.
type ExemplarsResponse struct {
	Series []prompb.TimeSeries
}

// Marshal implements selfMarshaler.
func (m *ExemplarsResponse) Marshal() ([]byte, error) {
	w := prompb.WriteRequest{Timeseries: m.Series}
	return w.Marshal()
}

// Unmarshal implements selfMarshaler.
func (m *ExemplarsResponse) Unmarshal(b []byte) error {
	var w prompb.WriteRequest
	if err := w.Unmarshal(b); err != nil {
		return err
	}
	m.Series = w.Timeseries
	return nil
}

// DeletionRequest is a due series deletion request (#14) for the tenant of
// the call: the ingester tombstones what it deletes.
type DeletionRequest struct {
	ID         string
	Selectors  []string
	Start, End int64
}

// Marshal implements selfMarshaler.
func (m *DeletionRequest) Marshal() ([]byte, error) {
	b := appendString(nil, 1, m.ID)
	for _, s := range m.Selectors {
		b = protowire.AppendTag(b, 2, protowire.BytesType)
		b = protowire.AppendString(b, s)
	}
	b = appendVarint(b, 3, uint64(m.Start))
	return appendVarint(b, 4, uint64(m.End)), nil
}

// Unmarshal implements selfMarshaler.
func (m *DeletionRequest) Unmarshal(b []byte) error {
	*m = DeletionRequest{}
	return walk(b, func(num protowire.Number, _ protowire.Type, v uint64, raw []byte) error {
		switch num {
		case 1:
			m.ID = string(raw)
		case 2:
			m.Selectors = append(m.Selectors, string(raw))
		case 3:
			m.Start = int64(v)
		case 4:
			m.End = int64(v)
		}
		return nil
	})
}

func appendVarint(b []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

func appendString(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func appendMatchers(b []byte, num protowire.Number, ms []*prompb.LabelMatcher) ([]byte, error) {
	for _, lm := range ms {
		enc, err := lm.Marshal()
		if err != nil {
			return nil, err
		}
		b = protowire.AppendTag(b, num, protowire.BytesType)
		b = protowire.AppendBytes(b, enc)
	}
	return b, nil
}

var errWireType = errors.New("unexpected wire type")

// walk calls f for every field of message b: varints with v set,
// length-delimited fields with raw set. Other wire types are refused, as
// none of these messages has them.
func walk(b []byte, f func(num protowire.Number, typ protowire.Type, v uint64, raw []byte) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("field tag: %w", protowire.ParseError(n))
		}
		b = b[n:]
		var (
			v   uint64
			raw []byte
		)
		switch typ {
		case protowire.VarintType:
			v, n = protowire.ConsumeVarint(b)
		case protowire.BytesType:
			raw, n = protowire.ConsumeBytes(b)
		default:
			return fmt.Errorf("field %d: %w %d", num, errWireType, typ)
		}
		if n < 0 {
			return fmt.Errorf("field %d: %w", num, protowire.ParseError(n))
		}
		b = b[n:]
		if err := f(num, typ, v, slices.Clip(raw)); err != nil {
			return fmt.Errorf("field %d: %w", num, err)
		}
	}
	return nil
}
