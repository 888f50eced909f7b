package deletion

import (
	"fmt"
	"strconv"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/fluxpulse/fluxpulse/limits"
	"github.com/fluxpulse/fluxpulse/queryguard"
)

// Params are the parameters of a new request as the API received them.
type Params struct {
	Tenant    string
	Actor     string   // who asks: a token ID, "header", "cli:<user>"
	Selectors []string // match[]
	Start     string   // "" when not given: the start of time
	End       string   // "" when not given: now
}

// NewRequest checks p against the tenant's limits and returns the pending
// request it asks for, made at now and cancellable for cancelPeriod. Every
// refusal wraps ErrInvalid and names the parameter. The selectors go
// through queryguard before the parser sees them.
func NewRequest(p Params, lim limits.Limits, now time.Time, cancelPeriod time.Duration) (Request, error) {
	r := Request{Tenant: p.Tenant, Selectors: p.Selectors, CreatedAt: now.UTC(), CreatedBy: p.Actor, State: StatePending,
		CancellableUntil: now.Add(cancelPeriod).UTC()}
	if len(p.Selectors) == 0 {
		return r, invalid(`no match[] parameter provided: name the series to delete, for example match[]={instance="leaky:9100"}`)
	}
	if err := queryguard.Check(p.Tenant, lim, "match[]", p.Selectors...); err != nil {
		return r, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if err := r.Parse(); err != nil {
		return r, invalid(`invalid parameter "match[]": %v`, err)
	}
	var err error
	if r.Start, err = timeParam("start", p.Start, 0); err != nil {
		return r, err
	}
	if r.End, err = timeParam("end", p.End, now.UnixMilli()); err != nil {
		return r, err
	}
	if latest := now.Add(lim.CreationGracePeriod).UnixMilli(); r.End > latest {
		return r, invalid(`invalid parameter "end": %s is in the future, later than samples may be (now plus %s, %s); leave end out to delete up to now`,
			fmtMs(r.End), lim.CreationGracePeriod, limits.Source(limits.FlagCreationGracePeriod))
	}
	if r.Start > r.End {
		return r, invalid(`invalid parameters: start %s is after end %s`, fmtMs(r.Start), fmtMs(r.End))
	}
	for k, ms := range r.matchers {
		if matchesEmpty(ms) {
			return r, invalid(`invalid parameter "match[]": in %q every matcher matches the empty string, so it would delete every series without those labels; name at least one label value`, p.Selectors[k])
		}
		if (p.Start == "" || p.End == "") && unrestricted(ms) {
			return r, invalid(`invalid parameter "match[]": %q matches every series; to delete everything in a time range give both start and end`, p.Selectors[k])
		}
	}
	r.ID = ulid.Make().String()
	return r, nil
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}

func timeParam(name, v string, def int64) (int64, error) {
	if v == "" {
		return def, nil
	}
	t, err := ParseTime(v)
	if err != nil {
		return 0, invalid("invalid parameter %s: %v", strconv.Quote(name), err)
	}
	return t, nil
}

func fmtMs(ms int64) string { return time.UnixMilli(ms).UTC().Format(time.RFC3339Nano) }

// matchesEmpty reports whether every matcher matches the empty string: the
// selector would match every series that lacks its labels. Prometheus
// refuses such a selector in a query for the same reason.
func matchesEmpty(ms []*labels.Matcher) bool {
	for _, m := range ms {
		if !m.Matches("") {
			return false
		}
	}
	return true
}

// probes are values no real selector singles out: a matcher that accepts
// every one of them accepts (almost) any value.
var probes = []string{"x", "fluxpulse-probe-7f3a9c", "Ω 1", "a\nb", "0"}

// unrestricted reports whether every matcher accepts any non-empty value,
// so that the selector matches (nearly) every series of the tenant:
// {__name__=~".+"}, {job!="staging"}, {__name__!~"up|down"}.
func unrestricted(ms []*labels.Matcher) bool {
	for _, m := range ms {
		for _, p := range probes {
			if !m.Matches(p) {
				return false
			}
		}
	}
	return true
}
