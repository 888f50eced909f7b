package remotewrite

import (
	"encoding/binary"
	"math"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
)

// wireMetadataField is the TimeSeries field that carries a series' 2.0
// metadata in the wire encoding; 1.0 has no such field and DecodeV1
// skips it.
const wireMetadataField = 1001

// Encoder appends series in the wire encoding (DecodeWire): the 1.0
// TimeSeries message, with the 2.0 start timestamp as field 3 of each
// sample and 2.0 metadata as field 1001. A series decoded from a 1.0
// request that validation left as it was is copied as sent. An Encoder is
// not safe for concurrent use.
type Encoder struct {
	scratch []byte
}

// AppendSeries appends s to b as field 1 (timeseries) of a WriteRequest.
func (e *Encoder) AppendSeries(b []byte, s *Series) []byte {
	if msg := s.unchanged(); msg != nil {
		return appendBytesField(b, 1, msg)
	}
	e.scratch = appendSeriesBody(e.scratch[:0], s)
	return appendBytesField(b, 1, e.scratch)
}

// AppendMetadata appends family-level 1.0 metadata to b as field 3 of a
// WriteRequest.
func (e *Encoder) AppendMetadata(b []byte, m *Metadata) []byte {
	e.scratch = appendVarintField(e.scratch[:0], 1, uint64(metricTypeEnum(m.Type)))
	e.scratch = appendStringField(e.scratch, 2, m.FamilyName)
	e.scratch = appendStringField(e.scratch, 4, m.Help)
	e.scratch = appendStringField(e.scratch, 5, m.Unit)
	return appendBytesField(b, 3, e.scratch)
}

// unchanged returns the series' message as sent if it was decoded from a
// 1.0 request and validation changed nothing of it (validation only
// removes labels with empty values, samples and metadata).
func (s *Series) unchanged() []byte {
	if s.raw == nil || !s.Metadata.IsEmpty() || len(s.Labels) != s.lbl.len() || len(s.Samples) != s.smp.len() ||
		len(s.Histograms) != s.hst.len() || len(s.Exemplars) != s.exm.len() {
		return nil
	}
	return s.raw
}

func (sp span) len() int { return sp.end - sp.start }

func appendSeriesBody(b []byte, s *Series) []byte {
	for _, l := range s.Labels {
		b = appendLabel(b, 1, l)
	}
	for _, smp := range s.Samples {
		n := 1 + 8 + 1 + varintLen(uint64(smp.Timestamp))
		if smp.StartTimestamp != 0 {
			n += 1 + varintLen(uint64(smp.StartTimestamp))
		}
		b = appendTag(b, 2, wireBytes)
		b = binary.AppendUvarint(b, uint64(n))
		b = appendTag(b, 1, wireFixed64)
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(smp.Value))
		b = appendTag(b, 2, wireVarint)
		b = binary.AppendUvarint(b, uint64(smp.Timestamp))
		if smp.StartTimestamp != 0 {
			b = appendTag(b, 3, wireVarint)
			b = binary.AppendUvarint(b, uint64(smp.StartTimestamp))
		}
	}
	for _, ex := range s.Exemplars {
		n := 0
		for _, l := range ex.Labels {
			n += bytesFieldLen(labelLen(l))
		}
		n += 1 + 8 + 1 + varintLen(uint64(ex.Timestamp))
		b = appendTag(b, 3, wireBytes)
		b = binary.AppendUvarint(b, uint64(n))
		for _, l := range ex.Labels {
			b = appendLabel(b, 1, l)
		}
		b = appendTag(b, 2, wireFixed64)
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(ex.Value))
		b = appendTag(b, 3, wireVarint)
		b = binary.AppendUvarint(b, uint64(ex.Timestamp))
	}
	for _, h := range s.Histograms {
		var ph prompb.Histogram
		if h.FH != nil {
			ph = prompb.FromFloatHistogram(h.Timestamp, h.FH)
		} else {
			ph = prompb.FromIntHistogram(h.Timestamp, h.H)
		}
		n := ph.Size()
		b = appendTag(b, 4, wireBytes)
		b = binary.AppendUvarint(b, uint64(n))
		b = append(b, make([]byte, n)...)
		_, _ = ph.MarshalToSizedBuffer(b[len(b)-n:]) // cannot fail: the buffer has Size bytes
	}
	if !s.Metadata.IsEmpty() {
		m := s.Metadata
		n := 0
		if t := metricTypeEnum(m.Type); t != 0 {
			n += 1 + varintLen(uint64(t))
		}
		if m.Help != "" {
			n += bytesFieldLen(len(m.Help))
		}
		if m.Unit != "" {
			n += bytesFieldLen(len(m.Unit))
		}
		b = appendTag(b, wireMetadataField, wireBytes)
		b = binary.AppendUvarint(b, uint64(n))
		b = appendVarintField(b, 1, uint64(metricTypeEnum(m.Type)))
		b = appendStringField(b, 2, m.Help)
		b = appendStringField(b, 3, m.Unit)
	}
	return b
}

// decodeWireMetadata decodes field 1001 of a wire-encoded series.
func decodeWireMetadata(b []byte) (Metadata, error) {
	m := Metadata{Type: model.MetricTypeUnknown}
	rd := reader{b: b}
	for !rd.done() {
		field, wt, err := rd.key()
		if err != nil {
			return m, err
		}
		switch field {
		case 1:
			if err := expect(field, wt, wireVarint); err != nil {
				return m, err
			}
			t, err := rd.varint()
			if err != nil {
				return m, err
			}
			m.Type = metricTypeV1(t)
		case 2, 3:
			if err := expect(field, wt, wireBytes); err != nil {
				return m, err
			}
			s, err := rd.str()
			if err != nil {
				return m, err
			}
			if field == 2 {
				m.Help = s
			} else {
				m.Unit = s
			}
		default:
			if err := rd.skip(wt); err != nil {
				return m, err
			}
		}
	}
	return m, nil
}

// metricTypeEnum is the inverse of metricTypeV1.
func metricTypeEnum(t model.MetricType) int {
	switch t {
	case model.MetricTypeCounter:
		return 1
	case model.MetricTypeGauge:
		return 2
	case model.MetricTypeHistogram:
		return 3
	case model.MetricTypeGaugeHistogram:
		return 4
	case model.MetricTypeSummary:
		return 5
	case model.MetricTypeInfo:
		return 6
	case model.MetricTypeStateset:
		return 7
	}
	return 0
}

func labelLen(l labels.Label) int {
	return bytesFieldLen(len(l.Name)) + bytesFieldLen(len(l.Value))
}

func appendLabel(b []byte, field int, l labels.Label) []byte {
	b = appendTag(b, field, wireBytes)
	b = binary.AppendUvarint(b, uint64(labelLen(l)))
	b = appendBytesField(b, 1, unsafeBytes(l.Name))
	return appendBytesField(b, 2, unsafeBytes(l.Value))
}

func appendTag(b []byte, field, wt int) []byte {
	return binary.AppendUvarint(b, uint64(field)<<3|uint64(wt))
}

// appendBytesField appends a length-delimited field, even an empty one:
// label names and values must be present for the raw-bytes series key.
func appendBytesField(b []byte, field int, v []byte) []byte {
	b = appendTag(b, field, wireBytes)
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

func appendStringField(b []byte, field int, s string) []byte {
	if s == "" {
		return b
	}
	return appendBytesField(b, field, unsafeBytes(s))
}

func appendVarintField(b []byte, field int, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = appendTag(b, field, wireVarint)
	return binary.AppendUvarint(b, v)
}

func bytesFieldLen(n int) int { return 1 + varintLen(uint64(n)) + n }

func varintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}
