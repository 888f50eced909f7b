package main

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
)

// matrixSeries is one series of a range query's answer.
type matrixSeries struct {
	Metric map[string]string `json:"metric"`
	Values [][2]any          `json:"values"`
}

type point struct {
	t float64
	v float64
}

// decodeMatrix reads a range query's result into series keyed by their
// labels.
func decodeMatrix(res []json.RawMessage) (map[string][]point, error) {
	out := make(map[string][]point, len(res))
	for _, raw := range res {
		var s matrixSeries
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, err
		}
		ps := make([]point, 0, len(s.Values))
		for _, tv := range s.Values {
			t, okT := tv[0].(float64)
			vs, okV := tv[1].(string)
			if !okT || !okV {
				return nil, fmt.Errorf("point %v is not [time, \"value\"]", tv)
			}
			v, err := strconv.ParseFloat(vs, 64)
			if err != nil {
				return nil, err
			}
			ps = append(ps, point{t, v})
		}
		b, _ := json.Marshal(s.Metric) // sorted keys
		out[string(b)] = ps
	}
	return out, nil
}

// sameMatrix compares two range query answers: the same series with the
// same points, values equal to 1e-9 relative (the order of a sum's terms
// may differ). With byValue (topk, whose ties either answer may break its
// own way) it compares the sorted values at each timestamp instead.
func sameMatrix(a, b []json.RawMessage, byValue bool) error {
	ma, err := decodeMatrix(a)
	if err != nil {
		return err
	}
	mb, err := decodeMatrix(b)
	if err != nil {
		return err
	}
	if byValue {
		return samePoints(valuesAt(ma), valuesAt(mb))
	}
	if len(ma) != len(mb) {
		return fmt.Errorf("%d series against %d", len(ma), len(mb))
	}
	for k, pa := range ma {
		pb, ok := mb[k]
		if !ok {
			return fmt.Errorf("series %s only in the first answer", k)
		}
		if len(pa) != len(pb) {
			return fmt.Errorf("series %s: %d points against %d", k, len(pa), len(pb))
		}
		for i := range pa {
			if pa[i].t != pb[i].t || !closeTo(pa[i].v, pb[i].v) {
				return fmt.Errorf("series %s: %v against %v", k, pa[i], pb[i])
			}
		}
	}
	return nil
}

func valuesAt(m map[string][]point) map[float64][]float64 {
	out := map[float64][]float64{}
	for _, ps := range m {
		for _, p := range ps {
			out[p.t] = append(out[p.t], p.v)
		}
	}
	for _, vs := range out {
		slices.Sort(vs)
	}
	return out
}

func samePoints(a, b map[float64][]float64) error {
	if len(a) != len(b) {
		return fmt.Errorf("%d timestamps against %d", len(a), len(b))
	}
	for t, va := range a {
		vb := b[t]
		if len(va) != len(vb) {
			return fmt.Errorf("at %v: %d values against %d", t, len(va), len(vb))
		}
		for i := range va {
			if !closeTo(va[i], vb[i]) {
				return fmt.Errorf("at %v: %v against %v", t, va, vb)
			}
		}
	}
	return nil
}

func closeTo(a, b float64) bool {
	if a == b || math.IsNaN(a) && math.IsNaN(b) {
		return true
	}
	return math.Abs(a-b) <= 1e-9*math.Max(math.Abs(a), math.Abs(b))
}
