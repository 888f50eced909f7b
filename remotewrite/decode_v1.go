package remotewrite

import (
	"fmt"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
)

// DecodeV1 decodes a remote-write 1.0 WriteRequest (uncompressed protobuf)
// into r, which must be empty. Strings in r alias body.
func DecodeV1(r *Request, body []byte) error {
	return r.decodeV1(body, false)
}

// DecodeWire decodes what AppendSeries encodes: a 1.0 WriteRequest whose
// samples may carry start timestamps (field 3, as in 2.0) and whose series
// may carry 2.0 metadata (field 1001). This is how validated series travel
// from a distributor to an ingester.
func DecodeWire(r *Request, body []byte) error {
	return r.decodeV1(body, true)
}

// DecodeWireLazy is DecodeWire leaving the labels of each series encoded
// (as every Encoder writes them, one field after the other): Labels is
// empty, and AppendLabels and MetricName read them from the body when they
// are needed. An ingester needs them only for a series its reference cache
// does not know, and decoding them was a tenth of its CPU (#13). A
// malformed label is then found when it is read, not here. Not for a
// request that a Validator checks: validators read Labels.
func DecodeWireLazy(r *Request, body []byte) error {
	r.lazy = true
	return r.decodeV1(body, true)
}

func (r *Request) decodeV1(body []byte, ext bool) error {
	r.Version = V1
	rd := reader{b: body}
	for !rd.done() {
		field, wire, err := rd.key()
		if err != nil {
			return fmt.Errorf("decode write request: %w", err)
		}
		switch field {
		case 1:
			if err := expect(field, wire, wireBytes); err != nil {
				return fmt.Errorf("decode write request: %w", err)
			}
			b, err := rd.bytes()
			if err != nil {
				return fmt.Errorf("decode write request: time series %d: %w", len(r.Series), err)
			}
			if err := r.decodeSeriesV1(b, ext); err != nil {
				return fmt.Errorf("decode write request: time series %d: %w", len(r.Series), err)
			}
		case 3:
			if err := expect(field, wire, wireBytes); err != nil {
				return fmt.Errorf("decode write request: %w", err)
			}
			b, err := rd.bytes()
			if err != nil {
				return fmt.Errorf("decode write request: metadata %d: %w", len(r.Metadata), err)
			}
			m, err := decodeMetadataV1(b)
			if err != nil {
				return fmt.Errorf("decode write request: metadata %d: %w", len(r.Metadata), err)
			}
			r.Metadata = append(r.Metadata, m)
		default:
			if err := rd.skip(wire); err != nil {
				return fmt.Errorf("decode write request: field %d: %w", field, err)
			}
		}
	}
	r.link()
	return nil
}

func (r *Request) decodeSeriesV1(b []byte, ext bool) error {
	s := Series{
		lbl: span{len(r.labels), len(r.labels)},
		smp: span{len(r.samples), len(r.samples)},
		exm: span{len(r.exemplars), len(r.exemplars)},
		hst: span{len(r.hists), len(r.hists)},
	}
	rd := reader{b: b}
	// The label fields, when they come one after the other (as every
	// encoder writes them), are keyed by their raw bytes.
	lblStart, lblEnd, contiguous := -1, -1, true
	whole := b
	unknown := false
	for !rd.done() {
		at := len(whole) - len(rd.b)
		field, wt, err := rd.key()
		if err != nil {
			return err
		}
		if field >= 1 && field <= 4 {
			if err := expect(field, wt, wireBytes); err != nil {
				return err
			}
		}
		switch field {
		case 1:
			switch {
			case lblStart < 0:
				lblStart = at
			case lblEnd != at:
				if contiguous && r.lazy {
					// Not as an encoder writes them: the labels so far
					// are decoded after all, and the rest as they come.
					if err := eachLabel(whole[lblStart:lblEnd], func(l labels.Label) { r.labels = append(r.labels, l) }); err != nil {
						return err
					}
				}
				contiguous = false
			}
			b, err := rd.bytes()
			if err != nil {
				return err
			}
			lblEnd = len(whole) - len(rd.b)
			if contiguous && r.lazy {
				continue
			}
			l, err := decodeLabel(b)
			if err != nil {
				return fmt.Errorf("label %d: %w", len(r.labels)-s.lbl.start, err)
			}
			r.labels = append(r.labels, l)
		case 2:
			b, err := rd.bytes()
			if err != nil {
				return err
			}
			v := V1
			if ext {
				v = V2 // the start timestamp is field 3, as in 2.0
			}
			smp, err := decodeSample(b, v)
			if err != nil {
				return fmt.Errorf("sample %d: %w", len(r.samples)-s.smp.start, err)
			}
			r.samples = append(r.samples, smp)
		case 3:
			b, err := rd.bytes()
			if err != nil {
				return err
			}
			if err := r.decodeExemplarV1(b); err != nil {
				return fmt.Errorf("exemplar %d: %w", len(r.exemplars)-s.exm.start, err)
			}
		case 4:
			b, err := rd.bytes()
			if err != nil {
				return err
			}
			var h prompb.Histogram
			if err := h.Unmarshal(b); err != nil {
				return fmt.Errorf("histogram %d: %w", len(r.hists)-s.hst.start, err)
			}
			hs := Histogram{Timestamp: h.Timestamp}
			if h.IsFloatHistogram() {
				hs.FH = h.ToFloatHistogram()
			} else {
				hs.H = h.ToIntHistogram()
			}
			r.hists = append(r.hists, hs)
		case wireMetadataField:
			if !ext {
				unknown = true
				if err := rd.skip(wt); err != nil {
					return err
				}
				continue
			}
			if err := expect(field, wt, wireBytes); err != nil {
				return err
			}
			b, err := rd.bytes()
			if err != nil {
				return err
			}
			if s.Metadata, err = decodeWireMetadata(b); err != nil {
				return fmt.Errorf("metadata: %w", err)
			}
		default:
			unknown = true
			if err := rd.skip(wt); err != nil {
				return err
			}
		}
	}
	s.lbl.end, s.smp.end, s.exm.end, s.hst.end = len(r.labels), len(r.samples), len(r.exemplars), len(r.hists)
	if !ext && !unknown {
		// Copied as sent to an ingester, which decodes the wire encoding:
		// a field unknown to 1.0 could mean something there, so such a
		// series is encoded anew instead.
		s.raw = whole
	}
	switch {
	case lblStart >= 0 && contiguous:
		s.Key = keyOfBytes(whole[lblStart:lblEnd])
		if r.lazy {
			s.encLabels = whole[lblStart:lblEnd]
		}
	default:
		s.Key = keyOfLabels(r.labels[s.lbl.start:s.lbl.end])
	}
	r.Series = append(r.Series, s)
	return nil
}

// eachLabel calls f with each label of consecutive label fields (field 1
// of a TimeSeries), strings aliasing b.
func eachLabel(b []byte, f func(labels.Label)) error {
	rd := reader{b: b}
	for n := 0; !rd.done(); n++ {
		field, wt, err := rd.key()
		if err != nil {
			return err
		}
		if err := expect(field, wt, wireBytes); err != nil {
			return err
		}
		raw, err := rd.bytes()
		if err != nil {
			return err
		}
		l, err := decodeLabel(raw)
		if err != nil {
			return fmt.Errorf("label %d: %w", n, err)
		}
		f(l)
	}
	return nil
}

func decodeLabel(b []byte) (labels.Label, error) {
	// Fast path: name then value, each shorter than 128 bytes, nothing
	// else, as every encoder writes a label (#18). Anything else, including
	// a malformed message, takes the general decoder below.
	if len(b) >= 4 && b[0] == 0x0a && b[1] < 0x80 {
		n := 2 + int(b[1])
		if n+2 <= len(b) && b[n] == 0x12 && b[n+1] < 0x80 && n+2+int(b[n+1]) == len(b) {
			return labels.Label{Name: yoloString(b[2:n]), Value: yoloString(b[n+2:])}, nil
		}
	}
	var l labels.Label
	rd := reader{b: b}
	for !rd.done() {
		field, wire, err := rd.key()
		if err != nil {
			return l, err
		}
		switch field {
		case 1, 2:
			if err := expect(field, wire, wireBytes); err != nil {
				return l, err
			}
			s, err := rd.str()
			if err != nil {
				return l, err
			}
			if field == 1 {
				l.Name = s
			} else {
				l.Value = s
			}
		default:
			if err := rd.skip(wire); err != nil {
				return l, err
			}
		}
	}
	return l, nil
}

// decodeSample decodes both the 1.0 and the 2.0 Sample message: 2.0 only
// adds field 3, the start timestamp, which 1.0 skips as unknown.
func decodeSample(b []byte, v Version) (Sample, error) {
	var s Sample
	rd := reader{b: b}
	for !rd.done() {
		field, wire, err := rd.key()
		if err != nil {
			return s, err
		}
		switch field {
		case 1:
			if err := expect(field, wire, wireFixed64); err != nil {
				return s, err
			}
			if s.Value, err = rd.double(); err != nil {
				return s, err
			}
		case 2:
			if err := expect(field, wire, wireVarint); err != nil {
				return s, err
			}
			if s.Timestamp, err = rd.int64(); err != nil {
				return s, err
			}
		case 3:
			if v != V2 {
				if err := rd.skip(wire); err != nil {
					return s, err
				}
				continue
			}
			if err := expect(field, wire, wireVarint); err != nil {
				return s, err
			}
			if s.StartTimestamp, err = rd.int64(); err != nil {
				return s, err
			}
		default:
			if err := rd.skip(wire); err != nil {
				return s, err
			}
		}
	}
	return s, nil
}

func (r *Request) decodeExemplarV1(b []byte) error {
	e := Exemplar{lbl: span{len(r.exLabels), len(r.exLabels)}}
	rd := reader{b: b}
	for !rd.done() {
		field, wire, err := rd.key()
		if err != nil {
			return err
		}
		switch field {
		case 1:
			if err := expect(field, wire, wireBytes); err != nil {
				return err
			}
			b, err := rd.bytes()
			if err != nil {
				return err
			}
			l, err := decodeLabel(b)
			if err != nil {
				return err
			}
			r.exLabels = append(r.exLabels, l)
		case 2:
			if err := expect(field, wire, wireFixed64); err != nil {
				return err
			}
			if e.Value, err = rd.double(); err != nil {
				return err
			}
		case 3:
			if err := expect(field, wire, wireVarint); err != nil {
				return err
			}
			if e.Timestamp, err = rd.int64(); err != nil {
				return err
			}
		default:
			if err := rd.skip(wire); err != nil {
				return err
			}
		}
	}
	e.lbl.end = len(r.exLabels)
	r.exemplars = append(r.exemplars, e)
	return nil
}

func decodeMetadataV1(b []byte) (Metadata, error) {
	m := Metadata{Type: model.MetricTypeUnknown}
	rd := reader{b: b}
	for !rd.done() {
		field, wire, err := rd.key()
		if err != nil {
			return m, err
		}
		switch field {
		case 1:
			if err := expect(field, wire, wireVarint); err != nil {
				return m, err
			}
			t, err := rd.varint()
			if err != nil {
				return m, err
			}
			m.Type = metricTypeV1(t)
		case 2, 4, 5:
			if err := expect(field, wire, wireBytes); err != nil {
				return m, err
			}
			s, err := rd.str()
			if err != nil {
				return m, err
			}
			switch field {
			case 2:
				m.FamilyName = s
			case 4:
				m.Help = s
			default:
				m.Unit = s
			}
		default:
			if err := rd.skip(wire); err != nil {
				return m, err
			}
		}
	}
	return m, nil
}

// metricTypeV1 maps the enum shared by both versions (1.0 MetricType and 2.0
// Metadata.MetricType use the same numbers) to the Prometheus type name.
func metricTypeV1(t uint64) model.MetricType {
	switch t {
	case 1:
		return model.MetricTypeCounter
	case 2:
		return model.MetricTypeGauge
	case 3:
		return model.MetricTypeHistogram
	case 4:
		return model.MetricTypeGaugeHistogram
	case 5:
		return model.MetricTypeSummary
	case 6:
		return model.MetricTypeInfo
	case 7:
		return model.MetricTypeStateset
	}
	return model.MetricTypeUnknown
}
