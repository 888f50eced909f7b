package ingester

import (
	"context"
	"errors"
	"math"
	"slices"
	"time"

	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/storage"

	"github.com/fluxpulse/fluxpulse/remotewrite"
)

// appendExemplars appends the exemplars of one series entry and counts the
// ones stored. Exemplars may come in an entry of their own, without samples:
// Prometheus sends them so, in both protocols, and may send them before the
// series has a sample anywhere (the remote-write 2.0 receiver compliance
// case exemplars_without_data expects them stored). Such a series is
// created, as its first sample would create it; exemplars the head refuses
// otherwise are dropped without failing the push, as in Prometheus, and not
// counted.
func (p *pusher) appendExemplars(ctx context.Context, st *seriesState, in []remotewrite.Exemplar) {
	p.exs = p.exs[:0]
	for _, e := range in {
		p.b.Reset()
		for _, l := range e.Labels {
			p.b.Add(l.Name, l.Value)
		}
		p.b.Sort()
		p.exs = append(p.exs, exemplar.Exemplar{Labels: p.b.Labels(), Value: e.Value, Ts: e.Timestamp, HasTs: true})
	}
	slices.SortFunc(p.exs, exemplar.Compare)
	ls := p.labels(st)
	_, err := p.app.AppendExemplars(st.ref, ls, p.exs)
	if errors.Is(err, storage.ErrNotFound) {
		if err := p.createSeries(ctx, st); err != nil {
			p.rejectSeries(err, 0)
			return
		}
		// Looked up by labels: the push's own appender may not know the
		// reference yet.
		_, err = p.app.AppendExemplars(0, ls, p.exs)
	}
	failed := 0
	if pe, ok := errors.AsType[*storage.AppendPartialError](err); ok {
		failed = len(pe.ExemplarErrors)
	} else if err != nil {
		failed = len(p.exs)
	}
	p.res.Exemplars += max(0, len(p.exs)-failed)
}

// createSeries makes the series exist in the head without giving it a
// sample: an appender of its own appends one and rolls it back. The head
// keeps series created by a rolled-back appender and writes them to the WAL,
// so the series is there for the exemplars and after a restart; the head
// drops it once it has neither samples nor exemplars in its time range. It
// returns only a series limit's refusal: whatever else the throwaway sample
// meets, the series was looked up or created before.
func (p *pusher) createSeries(ctx context.Context, st *seriesState) error {
	// The head's newest time is appendable for a series without samples. A
	// head with no samples at all takes its time range from the first
	// appended sample, even one rolled back: now is what a live sender's
	// first sample would give it.
	t := p.head.MaxTime()
	if t == math.MinInt64 {
		t = time.Now().UnixMilli()
	}
	app := p.db.AppenderV2(ctx)
	_, err := app.Append(0, p.labels(st), 0, t, 0, nil, nil, storage.AOptions{})
	_ = app.Rollback()
	if isSeriesLimitError(err) {
		return err
	}
	return nil
}
