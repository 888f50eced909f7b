package remotewrite

import (
	"fmt"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
)

// DecodeV2 decodes a remote-write 2.0 io.prometheus.write.v2.Request
// (uncompressed protobuf) into r, which must be empty. Strings in r alias
// body.
//
// A malformed message fails the whole request. A series whose symbol
// references are out of range is kept with Series.Err set, so that the
// rest of the request can still be stored.
func DecodeV2(r *Request, body []byte) error {
	r.Version = V2
	// Symbols may legally follow the series in the byte stream, so the series
	// are decoded once every symbol is known.
	rd := reader{b: body}
	base := len(body)
	for !rd.done() {
		field, wire, err := rd.key()
		if err != nil {
			return fmt.Errorf("decode write request: %w", err)
		}
		switch field {
		case 4, 5:
			if err := expect(field, wire, wireBytes); err != nil {
				return fmt.Errorf("decode write request: %w", err)
			}
			b, err := rd.bytes()
			if err != nil {
				return fmt.Errorf("decode write request: field %d: %w", field, err)
			}
			if field == 4 {
				r.symbols = append(r.symbols, yoloString(b))
				continue
			}
			end := base - len(rd.b)
			r.spans = append(r.spans, span{end - len(b), end})
		default:
			if err := rd.skip(wire); err != nil {
				return fmt.Errorf("decode write request: field %d: %w", field, err)
			}
		}
	}
	r.symbolHashes()
	for i, sp := range r.spans {
		if err := r.decodeSeriesV2(body[sp.start:sp.end]); err != nil {
			return fmt.Errorf("decode write request: time series %d: %w", i, err)
		}
	}
	r.link()
	return nil
}

func (r *Request) decodeSeriesV2(b []byte) error {
	s := Series{
		lbl: span{len(r.labels), len(r.labels)},
		smp: span{len(r.samples), len(r.samples)},
		exm: span{len(r.exemplars), len(r.exemplars)},
		hst: span{len(r.hists), len(r.hists)},
	}
	r.refs = r.refs[:0]
	rd := reader{b: b}
	for !rd.done() {
		field, wire, err := rd.key()
		if err != nil {
			return err
		}
		switch {
		case field == 1 && wire == wireVarint:
			// Unpacked repeated field: legal protobuf, unusual in practice.
			v, err := rd.uint32()
			if err != nil {
				return err
			}
			r.refs = append(r.refs, v)
		case field == 1:
			if err := expect(field, wire, wireBytes); err != nil {
				return err
			}
			b, err := rd.bytes()
			if err != nil {
				return err
			}
			if r.refs, err = appendPacked(r.refs, b); err != nil {
				return fmt.Errorf("labels_refs: %w", err)
			}
		case field >= 2 && field <= 5:
			if err := expect(field, wire, wireBytes); err != nil {
				return err
			}
			b, err := rd.bytes()
			if err != nil {
				return err
			}
			if err := r.decodeSeriesFieldV2(&s, field, b); err != nil {
				return err
			}
		default:
			if err := rd.skip(wire); err != nil {
				return err
			}
		}
	}
	if err := r.resolveRefs(&r.labels, r.refs); err != nil && s.Err == nil {
		s.Err = err
	} else if err == nil {
		s.Key = r.keyOfRefs(r.refs)
	}
	s.lbl.end, s.smp.end, s.exm.end, s.hst.end = len(r.labels), len(r.samples), len(r.exemplars), len(r.hists)
	r.Series = append(r.Series, s)
	return nil
}

// appendPacked appends a packed block of uint32 varints to dst.
func appendPacked(dst []uint32, b []byte) ([]uint32, error) {
	rd := reader{b: b}
	for !rd.done() {
		v, err := rd.uint32()
		if err != nil {
			return dst, err
		}
		dst = append(dst, v)
	}
	return dst, nil
}

// resolveRefs appends the name/value pairs that refs point at to *dst. On
// error it appends nothing.
func (r *Request) resolveRefs(dst *[]labels.Label, refs []uint32) error {
	if len(refs)%2 != 0 {
		return fmt.Errorf("labels_refs has odd length %d", len(refs))
	}
	for _, ref := range refs {
		if int(ref) >= len(r.symbols) {
			return fmt.Errorf("label reference %d out of range of %d symbols", ref, len(r.symbols))
		}
	}
	for i := 0; i < len(refs); i += 2 {
		*dst = append(*dst, labels.Label{Name: r.symbols[refs[i]], Value: r.symbols[refs[i+1]]})
	}
	return nil
}

func (r *Request) decodeSeriesFieldV2(s *Series, field int, b []byte) error {
	switch field {
	case 2:
		smp, err := decodeSample(b, V2)
		if err != nil {
			return fmt.Errorf("sample %d: %w", len(r.samples)-s.smp.start, err)
		}
		r.samples = append(r.samples, smp)
	case 3:
		var h writev2.Histogram
		if err := h.Unmarshal(b); err != nil {
			return fmt.Errorf("histogram %d: %w", len(r.hists)-s.hst.start, err)
		}
		hs := Histogram{Timestamp: h.Timestamp, StartTimestamp: h.StartTimestamp}
		if h.IsFloatHistogram() {
			hs.FH = h.ToFloatHistogram()
		} else {
			hs.H = h.ToIntHistogram()
		}
		r.hists = append(r.hists, hs)
	case 4:
		n := len(r.exemplars) - s.exm.start
		refErr, err := r.decodeExemplarV2(b)
		if err != nil {
			return fmt.Errorf("exemplar %d: %w", n, err)
		}
		if refErr != nil && s.Err == nil {
			s.Err = fmt.Errorf("exemplar %d: %w", n, refErr)
		}
	case 5:
		m, refErr, err := r.decodeMetadataV2(b)
		if err != nil {
			return fmt.Errorf("metadata: %w", err)
		}
		if refErr != nil && s.Err == nil {
			s.Err = fmt.Errorf("metadata: %w", refErr)
		}
		s.Metadata = m
	}
	return nil
}

// decodeExemplarV2 returns a non-nil refErr, and appends nothing, when the
// exemplar's label references are unusable; err is for malformed protobuf.
func (r *Request) decodeExemplarV2(b []byte) (refErr, err error) {
	e := Exemplar{}
	r.exRefs = r.exRefs[:0]
	rd := reader{b: b}
	for !rd.done() {
		field, wire, err := rd.key()
		if err != nil {
			return nil, err
		}
		switch {
		case field == 1 && wire == wireVarint:
			v, err := rd.uint32()
			if err != nil {
				return nil, err
			}
			r.exRefs = append(r.exRefs, v)
		case field == 1:
			if err := expect(field, wire, wireBytes); err != nil {
				return nil, err
			}
			b, err := rd.bytes()
			if err != nil {
				return nil, err
			}
			if r.exRefs, err = appendPacked(r.exRefs, b); err != nil {
				return nil, fmt.Errorf("labels_refs: %w", err)
			}
		case field == 2:
			if err := expect(field, wire, wireFixed64); err != nil {
				return nil, err
			}
			if e.Value, err = rd.double(); err != nil {
				return nil, err
			}
		case field == 3:
			if err := expect(field, wire, wireVarint); err != nil {
				return nil, err
			}
			if e.Timestamp, err = rd.int64(); err != nil {
				return nil, err
			}
		default:
			if err := rd.skip(wire); err != nil {
				return nil, err
			}
		}
	}
	e.lbl.start = len(r.exLabels)
	if err := r.resolveRefs(&r.exLabels, r.exRefs); err != nil {
		return err, nil
	}
	e.lbl.end = len(r.exLabels)
	r.exemplars = append(r.exemplars, e)
	return nil, nil
}

// decodeMetadataV2 returns a non-nil refErr when a symbol reference is out
// of range; err is for malformed protobuf.
func (r *Request) decodeMetadataV2(b []byte) (m Metadata, refErr, err error) {
	m.Type = model.MetricTypeUnknown
	rd := reader{b: b}
	for !rd.done() {
		field, wire, err := rd.key()
		if err != nil {
			return m, nil, err
		}
		switch field {
		case 1, 3, 4:
			if err := expect(field, wire, wireVarint); err != nil {
				return m, nil, err
			}
			v, err := rd.varint()
			if err != nil {
				return m, nil, err
			}
			switch {
			case field == 1:
				m.Type = metricTypeV1(v)
			case v >= uint64(len(r.symbols)):
				refErr = fmt.Errorf("symbol reference %d out of range of %d symbols", v, len(r.symbols))
			case field == 3:
				m.Help = r.symbols[v]
			default:
				m.Unit = r.symbols[v]
			}
		default:
			if err := rd.skip(wire); err != nil {
				return m, nil, err
			}
		}
	}
	return m, refErr, nil
}
