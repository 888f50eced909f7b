package deletion

import (
	"encoding/json"
	"testing"
	"time"
)

// FuzzNewRequest feeds the deletion API's parameters, matcher text and
// times, to NewRequest (#14): it must never panic, and what it accepts
// must be a request that deletes something specific over an ordered range
// and reads back the same from its stored form.
func FuzzNewRequest(f *testing.F) {
	for _, s := range [][3]string{
		{`{host="leaky"}`, "", ""},
		{`up{job=~"a|b"}`, "100", "2026-05-01T10:00:00Z"},
		{`{__name__=~".+"}`, "1", "2"},
		{`{"my.metric", "lab el"="v"}`, "1.5", "99.25"},
		{`{a=""}`, "", ""},
		{`up{`, "", ""},
		{`{a=~"(((("}`, "", ""},
		{`x{a!~".*"}`, "-1e9", "1e9"},
	} {
		f.Add(s[0], s[1], s[2])
	}
	lim := testLimits(f)
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, sel, start, end string) {
		r, err := NewRequest(Params{Tenant: "t", Selectors: []string{sel}, Start: start, End: end}, lim, now, time.Hour)
		if err != nil {
			return
		}
		if r.Start > r.End || r.End > now.Add(lim.CreationGracePeriod).UnixMilli() || ValidateID(r.ID) != nil {
			t.Fatalf("accepted a bad request: %+v", r)
		}
		if len(r.Matchers()) != 1 || matchesEmpty(r.Matchers()[0]) {
			t.Fatalf("accepted %q, which matches series that lack its labels", sel)
		}
		if (start == "" || end == "") && unrestricted(r.Matchers()[0]) {
			t.Fatalf("accepted %q, which matches every series, without a range", sel)
		}
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		var back Request
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		if err := back.Parse(); err != nil || back.Start != r.Start || back.End != r.End || len(back.Matchers()) != 1 {
			t.Fatalf("stored form of %q does not read back: %v", sel, err)
		}
	})
}

// FuzzParseTime checks that any time parameter either fails or gives a
// time within ±2^53 ms.
func FuzzParseTime(f *testing.F) {
	for _, s := range []string{"0", "1777629600", "1777629600.123", "-1", "1e300", "NaN", "+Inf", "2026-05-01T10:00:00Z", "2026-05-01T10:00:00.123456789+02:00", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ms, err := ParseTime(s)
		if err == nil && (ms > 1<<53 || ms < -(1<<53)) && len(s) < 40 {
			// RFC 3339 years are four digits: at most year 9999.
			t.Fatalf("%q gives %d ms", s, ms)
		}
	})
}
