package remotewrite

import (
	"fmt"
)

// AppendResult appends r's protobuf encoding to b: what an ingester
// answers a distributor. Fields: 1-5 the counters, 6 the kept reasons, 7
// the number of further reasons, 8 the series outcomes.
func AppendResult(b []byte, r *Result) []byte {
	b = appendVarintField(b, 1, uint64(r.Samples))
	b = appendVarintField(b, 2, uint64(r.Histograms))
	b = appendVarintField(b, 3, uint64(r.Exemplars))
	b = appendVarintField(b, 4, uint64(r.RejectedSeries))
	b = appendVarintField(b, 5, uint64(r.RejectedSamples))
	for _, e := range r.errs {
		b = appendBytesField(b, 6, unsafeBytes(e))
	}
	b = appendVarintField(b, 7, uint64(r.dropped))
	var o []byte
	for _, so := range r.SeriesOutcomes() {
		o = appendVarintField(o[:0], 1, uint64(so.Index))
		o = appendVarintField(o, 2, uint64(so.Samples))
		o = appendVarintField(o, 3, uint64(so.Histograms))
		o = appendVarintField(o, 4, uint64(so.Exemplars))
		o = appendVarintField(o, 5, uint64(so.RejectedSeries))
		o = appendVarintField(o, 6, uint64(so.RejectedSamples))
		b = appendBytesField(b, 8, o)
	}
	return b
}

// maxCount bounds every decoded counter, so that a corrupt answer cannot
// overflow a sum of them.
const maxCount = 1 << 40

// DecodeResult decodes what AppendResult encodes. The result tracks
// series when the encoding carries any outcome.
func DecodeResult(b []byte) (Result, error) {
	var r Result
	rd := reader{b: b}
	for !rd.done() {
		field, wt, err := rd.key()
		if err != nil {
			return Result{}, fmt.Errorf("decode push result: %w", err)
		}
		switch field {
		case 1, 2, 3, 4, 5, 7:
			n, err := countField(&rd, field, wt)
			if err != nil {
				return Result{}, fmt.Errorf("decode push result: %w", err)
			}
			switch field {
			case 1:
				r.Samples = n
			case 2:
				r.Histograms = n
			case 3:
				r.Exemplars = n
			case 4:
				r.RejectedSeries = n
			case 5:
				r.RejectedSamples = n
			default:
				r.dropped = n
			}
		case 6:
			if err := expect(field, wt, wireBytes); err != nil {
				return Result{}, fmt.Errorf("decode push result: %w", err)
			}
			s, err := rd.bytes()
			if err != nil {
				return Result{}, fmt.Errorf("decode push result: %w", err)
			}
			if len(r.errs) < MaxReportedErrors {
				r.errs = append(r.errs, string(s))
			} else {
				r.dropped++
			}
		case 8:
			if err := expect(field, wt, wireBytes); err != nil {
				return Result{}, fmt.Errorf("decode push result: %w", err)
			}
			m, err := rd.bytes()
			if err != nil {
				return Result{}, fmt.Errorf("decode push result: %w", err)
			}
			o, err := decodeOutcome(m)
			if err != nil {
				return Result{}, fmt.Errorf("decode push result: series outcome: %w", err)
			}
			r.TrackSeries()
			r.tracker.out = append(r.tracker.out, o)
		default:
			if err := rd.skip(wt); err != nil {
				return Result{}, fmt.Errorf("decode push result: %w", err)
			}
		}
	}
	return r, nil
}

func decodeOutcome(b []byte) (SeriesOutcome, error) {
	var o SeriesOutcome
	rd := reader{b: b}
	for !rd.done() {
		field, wt, err := rd.key()
		if err != nil {
			return o, err
		}
		if field < 1 || field > 6 {
			if err := rd.skip(wt); err != nil {
				return o, err
			}
			continue
		}
		n, err := countField(&rd, field, wt)
		if err != nil {
			return o, err
		}
		switch field {
		case 1:
			o.Index = n
		case 2:
			o.Samples = n
		case 3:
			o.Histograms = n
		case 4:
			o.Exemplars = n
		case 5:
			o.RejectedSeries = n
		default:
			o.RejectedSamples = n
		}
	}
	return o, nil
}

func countField(rd *reader, field, wt int) (int, error) {
	if err := expect(field, wt, wireVarint); err != nil {
		return 0, err
	}
	v, err := rd.varint()
	if err != nil {
		return 0, err
	}
	if v > maxCount {
		return 0, fmt.Errorf("field %d: count %d is out of range", field, v)
	}
	return int(v), nil
}
