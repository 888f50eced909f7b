package frontend

import (
	"errors"
	"math"
	"net/url"
	"strconv"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql/parser"
)

// maxPoints is the most points per series Prometheus evaluates in one
// range query; over it, it refuses the query.
const maxPoints = 11000

// rangeQuery is a range query request whose parameters Prometheus would
// accept, in milliseconds.
type rangeQuery struct {
	form             url.Values // every parameter, as received
	query            string
	start, end, step int64
}

// parseRangeQuery reads the parameters of a range query as Prometheus does.
// It returns false when Prometheus would refuse them, so that the querier
// gives its own error.
func parseRangeQuery(form url.Values) (rangeQuery, bool) {
	q := rangeQuery{form: form, query: form.Get("query")}
	start, err1 := parseTime(form.Get("start"))
	end, err2 := parseTime(form.Get("end"))
	step, err3 := parseDuration(form.Get("step"))
	if err := errors.Join(err1, err2, err3); err != nil || end.Before(start) || step < time.Millisecond || step%time.Millisecond != 0 {
		return q, false
	}
	if end.Sub(start)/step > maxPoints {
		return q, false
	}
	q.start, q.end, q.step = start.UnixMilli(), end.UnixMilli(), step.Milliseconds()
	return q, true
}

// align moves start and end down to multiples of the step.
func (q *rangeQuery) align() {
	q.start = floorTo(q.start, q.step)
	q.end = floorTo(q.end, q.step)
}

// floorTo returns the largest multiple of m not after t.
func floorTo(t, m int64) int64 {
	r := t % m
	if r < 0 {
		r += m
	}
	return t - r
}

// piece is a part of a range query: its first and last evaluation
// timestamps, in milliseconds.
type piece struct{ start, end int64 }

// split cuts the evaluation timestamps start, start+step, …, up to end into
// pieces at multiples of interval. Each piece starts at the first timestamp
// of its interval and ends at its last, so the pieces hold exactly the
// unsplit query's timestamps, each once.
func split(start, end, step, interval int64) []piece {
	last := start + (end-start)/step*step
	if interval <= 0 {
		return []piece{{start, last}}
	}
	var out []piece
	for s := start; s <= last; {
		boundary := floorTo(s, interval) + interval
		e := s + (boundary-1-s)/step*step
		e = min(e, last)
		out = append(out, piece{s, e})
		s = e + step
	}
	return out
}

// splittable reports whether the pieces of the query give the answer of
// the whole (see the package documentation for the rule).
func splittable(p parser.Parser, q rangeQuery) bool {
	for _, name := range []string{"limit", "cost"} {
		if q.form.Get(name) != "" {
			return false
		}
	}
	expr, err := p.ParseExpr(q.query)
	if err != nil {
		return false
	}
	ok := true
	parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
		switch e := n.(type) {
		case *parser.VectorSelector:
			ok = ok && e.Timestamp == nil && e.StartOrEnd == 0
		case *parser.MatrixSelector:
			if vs, isVS := e.VectorSelector.(*parser.VectorSelector); isVS {
				ok = ok && vs.Timestamp == nil && vs.StartOrEnd == 0
			}
		case *parser.SubqueryExpr:
			ok = ok && e.Timestamp == nil && e.StartOrEnd == 0
		}
		return nil
	})
	return ok
}

// parseTime reads a timestamp as Prometheus's API does: Unix seconds with
// up to millisecond precision, or RFC 3339. (Prometheus's own names for the
// minimum and maximum times are not accepted: such a query passes through
// unsplit.)
func parseTime(s string) (time.Time, error) {
	if t, err := strconv.ParseFloat(s, 64); err == nil {
		sec, frac := math.Modf(t)
		frac = math.Round(frac*1000) / 1000
		if math.IsNaN(t) || math.IsInf(t, 0) || math.Abs(sec) > 1e12 {
			return time.Time{}, errors.New("timestamp out of range")
		}
		return time.Unix(int64(sec), int64(frac*float64(time.Second))).UTC(), nil
	}
	return time.Parse(time.RFC3339Nano, s)
}

// parseDuration reads a step as Prometheus's API does: seconds, or a
// Prometheus duration such as 1m.
func parseDuration(s string) (time.Duration, error) {
	if d, err := strconv.ParseFloat(s, 64); err == nil {
		ts := d * float64(time.Second)
		if math.IsNaN(ts) || ts >= float64(math.MaxInt64) || ts < float64(math.MinInt64) {
			return 0, errors.New("duration out of range")
		}
		return time.Duration(ts), nil
	}
	d, err := model.ParseDuration(s)
	return time.Duration(d), err
}

// formatTime writes a millisecond timestamp as Unix seconds, which
// parseTime (and Prometheus) read back exactly.
func formatTime(ms int64) string {
	return strconv.FormatFloat(float64(ms)/1000, 'f', 3, 64)
}
