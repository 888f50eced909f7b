package deletion

import (
	"errors"
	"flag"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/fluxpulse/fluxpulse/limits"
)

func testLimits(t testing.TB) limits.Limits {
	t.Helper()
	var l limits.Limits
	l.RegisterFlags(flag.NewFlagSet("t", flag.ContinueOnError))
	return l
}

// TestNewRequestRefusals is the table of every refusal of the deletion
// API's parameters (#14): each is ErrInvalid (400) and names the parameter.
func TestNewRequestRefusals(t *testing.T) {
	lim := testLimits(t)
	lim.MaxQueryExpressionSizeBytes = 200
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		p    Params
		want string
	}{
		{"no selector", Params{}, "no match[] parameter"},
		{"does not parse", Params{Selectors: []string{`up{`}}, `invalid parameter "match[]"`},
		{"a query, not a selector", Params{Selectors: []string{`rate(up[5m])`}}, `invalid parameter "match[]"`},
		{"range selector", Params{Selectors: []string{`up[5m]`}}, `invalid parameter "match[]"`},
		{"over the size limit", Params{Selectors: []string{`{a="` + strings.Repeat("x", 300) + `"}`}}, "max-query-expression-size-bytes"},
		{"too deep", Params{Selectors: []string{strings.Repeat("(", 100)}}, "max-query-expression-depth"},
		{"only empty matchers", Params{Selectors: []string{`{a=""}`}}, "every matcher matches the empty string"},
		{"only empty regex", Params{Selectors: []string{`{__name__=~".*"}`}}, "every matcher matches the empty string"},
		{"everything, no range", Params{Selectors: []string{`{__name__=~".+"}`}}, "matches every series"},
		{"everything, start only", Params{Selectors: []string{`{__name__!=""}`}, Start: "100"}, "matches every series"},
		{"everything, end only", Params{Selectors: []string{`{job=~".+"}`}, End: "100"}, "matches every series"},
		{"nearly everything", Params{Selectors: []string{`up`, `{__name__=~".+", __name__!~"up|down"}`}}, "matches every series"},
		{"bad start", Params{Selectors: []string{`up`}, Start: "yesterday"}, `invalid parameter "start"`},
		{"bad end", Params{Selectors: []string{`up`}, End: "NaN"}, `invalid parameter "end"`},
		{"end out of range", Params{Selectors: []string{`up`}, End: "1e300"}, `invalid parameter "end"`},
		{"start after end", Params{Selectors: []string{`up`}, Start: "2000", End: "1000"}, "is after end"},
		{"end in the future", Params{Selectors: []string{`up`}, End: now.Add(time.Hour).Format(time.RFC3339)}, "create-grace-period"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.p.Tenant = "t"
			_, err := NewRequest(tc.p, lim, now, time.Hour)
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want ErrInvalid mentioning %q", err, tc.want)
			}
		})
	}
}

func TestNewRequest(t *testing.T) {
	lim := testLimits(t)
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name       string
		p          Params
		start, end int64
	}{
		{"defaults", Params{Selectors: []string{`{instance="leaky"}`}}, 0, now.UnixMilli()},
		{"unix seconds", Params{Selectors: []string{`up`}, Start: "1000.5", End: "2000"}, 1000500, 2000000},
		{"RFC 3339", Params{Selectors: []string{`up`}, Start: "2026-05-01T10:00:00Z", End: "2026-05-01T11:00:00.25Z"},
			now.Add(-2 * time.Hour).UnixMilli(), now.Add(-time.Hour).UnixMilli() + 250},
		{"everything in a range", Params{Selectors: []string{`{__name__=~".+"}`}, Start: "1", End: "2"}, 1000, 2000},
		{"within the grace period", Params{Selectors: []string{`up`}, End: now.Add(5 * time.Minute).Format(time.RFC3339)}, 0, now.Add(5 * time.Minute).UnixMilli()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.p.Tenant, tc.p.Actor = "t", "tok"
			r, err := NewRequest(tc.p, lim, now, time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			if r.Start != tc.start || r.End != tc.end || r.State != StatePending || r.CreatedBy != "tok" ||
				!r.CancellableUntil.Equal(now.Add(time.Hour)) || ValidateID(r.ID) != nil {
				t.Fatalf("got %+v, want range [%d, %d]", r, tc.start, tc.end)
			}
		})
	}
}

func TestMatchesAndIntervals(t *testing.T) {
	lim := testLimits(t)
	now := time.Now()
	mk := func(sel, start, end string) Request {
		r, err := NewRequest(Params{Tenant: "t", Selectors: []string{sel}, Start: start, End: end}, lim, now, 0)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	reqs := []Request{mk(`{host="a"}`, "10", "20"), mk(`{host=~"a|b"}`, "15", "30"), mk(`{host="a"}`, "40", "50"), mk(`{host="c"}`, "0", "100")}
	cancelled := mk(`{host="a"}`, "60", "70")
	cancelled.State = StateCancelled
	reqs = append(reqs, cancelled)
	a := labels.FromStrings("host", "a")
	got := Intervals(reqs, a, 0, 1_000_000)
	want := []Interval{{10_000, 30_000}, {40_000, 50_000}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("intervals of host=a: %v, want %v", got, want)
	}
	if got := Intervals(reqs, a, 25_000, 45_000); fmt.Sprint(got) != fmt.Sprint([]Interval{{25_000, 30_000}, {40_000, 45_000}}) {
		t.Fatalf("clipped: %v", got)
	}
	if got := Intervals(reqs, labels.FromStrings("host", "d"), 0, 1_000_000); len(got) != 0 {
		t.Fatalf("host=d: %v", got)
	}
	for ts, in := range map[int64]bool{9_999: false, 10_000: true, 30_000: true, 30_001: false, 45_000: true, 65_000: false} {
		if InIntervals(got, ts) != in && len(got) > 0 {
			t.Errorf("InIntervals(%d) = %v", ts, !in)
		}
		if InIntervals(Intervals(reqs, a, 0, 1_000_000), ts) != in {
			t.Errorf("InIntervals(%d) = %v, want %v", ts, !in, in)
		}
	}
}

func TestAddInterval(t *testing.T) {
	var ivs []Interval
	for _, iv := range []Interval{{50, 60}, {10, 20}, {30, 40}, {21, 29}, {100, 200}, {55, 150}} {
		ivs = addInterval(ivs, iv)
	}
	if want := []Interval{{10, 40}, {50, 200}}; fmt.Sprint(ivs) != fmt.Sprint(want) {
		t.Fatalf("%v, want %v", ivs, want)
	}
}
