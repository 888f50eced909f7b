package rpc

import (
	"fmt"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage"
)

// ToMatchers converts label matchers to their wire form.
func ToMatchers(ms []*labels.Matcher) []*prompb.LabelMatcher {
	out := make([]*prompb.LabelMatcher, 0, len(ms))
	for _, m := range ms {
		var t prompb.LabelMatcher_Type
		switch m.Type {
		case labels.MatchEqual:
			t = prompb.LabelMatcher_EQ
		case labels.MatchNotEqual:
			t = prompb.LabelMatcher_NEQ
		case labels.MatchRegexp:
			t = prompb.LabelMatcher_RE
		case labels.MatchNotRegexp:
			t = prompb.LabelMatcher_NRE
		}
		out = append(out, &prompb.LabelMatcher{Type: t, Name: m.Name, Value: m.Value})
	}
	return out
}

// FromMatchers converts wire matchers back, compiling regular expressions.
func FromMatchers(ms []*prompb.LabelMatcher) ([]*labels.Matcher, error) {
	out := make([]*labels.Matcher, 0, len(ms))
	for _, m := range ms {
		var t labels.MatchType
		switch m.Type {
		case prompb.LabelMatcher_EQ:
			t = labels.MatchEqual
		case prompb.LabelMatcher_NEQ:
			t = labels.MatchNotEqual
		case prompb.LabelMatcher_RE:
			t = labels.MatchRegexp
		case prompb.LabelMatcher_NRE:
			t = labels.MatchNotRegexp
		default:
			return nil, fmt.Errorf("unknown label matcher type %d", m.Type)
		}
		lm, err := labels.NewMatcher(t, m.Name, m.Value)
		if err != nil {
			return nil, err
		}
		out = append(out, lm)
	}
	return out, nil
}

// toQuery is a select's wire form.
func toQuery(mint, maxt int64, hints *storage.SelectHints, ms []*labels.Matcher) *prompb.Query {
	q := &prompb.Query{StartTimestampMs: mint, EndTimestampMs: maxt, Matchers: ToMatchers(ms)}
	if hints != nil {
		q.Hints = &prompb.ReadHints{StartMs: hints.Start, EndMs: hints.End, StepMs: hints.Step, Func: hints.Func,
			Grouping: hints.Grouping, By: hints.By, RangeMs: hints.Range}
	}
	return q
}

// fromQuery is toQuery's inverse.
func fromQuery(q *prompb.Query) (*storage.SelectHints, []*labels.Matcher, error) {
	ms, err := FromMatchers(q.Matchers)
	if err != nil {
		return nil, nil, err
	}
	hints := &storage.SelectHints{Start: q.StartTimestampMs, End: q.EndTimestampMs}
	if h := q.Hints; h != nil {
		hints = &storage.SelectHints{Start: h.StartMs, End: h.EndMs, Step: h.StepMs, Func: h.Func, Grouping: h.Grouping, By: h.By, Range: h.RangeMs}
	}
	return hints, ms, nil
}

func labelsFromProto(ls []prompb.Label, b *labels.ScratchBuilder) labels.Labels {
	b.Reset()
	for _, l := range ls {
		b.Add(l.Name, l.Value)
	}
	b.Sort()
	return b.Labels()
}

func labelsToProto(ls labels.Labels, out []prompb.Label) []prompb.Label {
	out = out[:0]
	ls.Range(func(l labels.Label) { out = append(out, prompb.Label{Name: l.Name, Value: l.Value}) })
	return out
}
