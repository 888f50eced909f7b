package frontend

import (
	"net/url"
	"slices"
	"testing"
)

// points returns the evaluation timestamps of [start, end] at step.
func points(start, end, step int64) []int64 {
	var out []int64
	for t := start; t <= end; t += step {
		out = append(out, t)
	}
	return out
}

func TestSplitKeepsEveryTimestamp(t *testing.T) {
	const day = 86_400_000
	for _, tc := range []struct {
		name                       string
		start, end, step, interval int64
		pieces                     int
	}{
		{"within a day", 3600_000, 7200_000, 15_000, day, 1},
		{"two days, aligned", 0, 2*day - 60_000, 60_000, day, 2},
		{"odd start and step", 1_234_567, 3*day + 999, 7_000, day, 3},
		{"step larger than a day", 0, 10 * day, 3 * day, day, 4},
		{"end between points", 0, day + 59_999, 60_000, day, 2},
		{"negative times", -day - 5, day, 60_000, day, 3},
		{"no splitting", 0, 5 * day, 60_000, 0, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ps := split(tc.start, tc.end, tc.step, tc.interval)
			if len(ps) != tc.pieces {
				t.Errorf("%d pieces, want %d: %v", len(ps), tc.pieces, ps)
			}
			var got []int64
			for _, p := range ps {
				if tc.interval > 0 && floorTo(p.start, tc.interval) != floorTo(p.end, tc.interval) {
					t.Errorf("piece %v crosses a boundary", p)
				}
				got = append(got, points(p.start, p.end, tc.step)...)
			}
			if want := points(tc.start, tc.end, tc.step); !slices.Equal(got, want) {
				t.Errorf("timestamps differ: got %d, want %d", len(got), len(want))
			}
		})
	}
}

func TestParseRangeQuery(t *testing.T) {
	for _, tc := range []struct {
		start, end, step string
		ok               bool
	}{
		{"1700000000", "1700003600", "60", true},
		{"2026-11-01T00:00:00Z", "2026-11-02T00:00:00.5Z", "1m", true},
		{"1700000000.1234", "1700003600", "0.5", true},
		{"1700003600", "1700000000", "60", false}, // end before start
		{"1700000000", "1700003600", "0", false},  // step
		{"1700000000", "1700003600", "0.0001", false},
		{"1700000000", "1800000000", "1", false}, // more than 11,000 points
		{"yesterday", "1700003600", "60", false},
		{"1700000000", "1700003600", "NaN", false},
	} {
		_, ok := parseRangeQuery(url.Values{"query": {"up"}, "start": {tc.start}, "end": {tc.end}, "step": {tc.step}})
		if ok != tc.ok {
			t.Errorf("%s..%s step %s: ok %v, want %v", tc.start, tc.end, tc.step, ok, tc.ok)
		}
	}
}

// FuzzParseMatrix feeds the decoder of the queriers' answers; whatever it
// accepts re-encodes to JSON that it accepts again with the same series.
func FuzzParseMatrix(f *testing.F) {
	f.Add([]byte(`{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"a":"b"},"values":[[1,"2"]]}]},"warnings":["w"]}`))
	f.Add([]byte(`{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"histograms":[[1.5,{"count":"1","sum":"2"}]]}]}}`))
	f.Add([]byte(`{"status":"error","errorType":"bad_data","error":"x"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		_, data, err := parseMatrix(body)
		if err != nil {
			return
		}
		merged := mergeSeries([][]series{data.Result})
		_, again, err := parseMatrix(encodeMatrix(merged, nil, nil, nil))
		if err != nil {
			t.Fatalf("re-encoded answer does not decode: %v", err)
		}
		if len(again.Result) != len(merged) {
			t.Fatalf("%d series re-decoded, want %d", len(again.Result), len(merged))
		}
		for _, s := range again.Result {
			for _, p := range s.Values {
				_, _ = pointTime(p)
			}
		}
	})
}

// FuzzSplit: whatever parameters parse, the pieces of the range hold
// exactly its timestamps and cross no interval boundary.
func FuzzSplit(f *testing.F) {
	f.Add("1700000000", "1700864000", "60", int64(86_400_000))
	f.Add("2026-11-01T00:00:00.123Z", "2026-11-09T00:00:00Z", "7m", int64(3_600_000))
	f.Add("-100", "100", "0.5", int64(1000))
	f.Fuzz(func(t *testing.T, start, end, step string, interval int64) {
		q, ok := parseRangeQuery(url.Values{"query": {"up"}, "start": {start}, "end": {end}, "step": {step}})
		if !ok || interval < 0 || interval > 1<<40 {
			return
		}
		n := int64(0)
		prev := q.start - q.step
		for _, p := range split(q.start, q.end, q.step, interval) {
			if p.start != prev+q.step || p.end < p.start || (p.end-p.start)%q.step != 0 {
				t.Fatalf("piece %v after %d (step %d)", p, prev, q.step)
			}
			if interval > 0 && floorTo(p.start, interval) != floorTo(p.end, interval) {
				t.Fatalf("piece %v crosses a boundary of %d", p, interval)
			}
			n += (p.end-p.start)/q.step + 1
			prev = p.end
		}
		if want := (q.end-q.start)/q.step + 1; n != want {
			t.Fatalf("%d timestamps, want %d", n, want)
		}
	})
}
