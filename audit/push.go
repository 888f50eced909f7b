package audit

import (
	"cmp"
	"math"
	"slices"
	"strconv"
	"sync"
	"time"
)

// PushStats describes one push request, for RecordPush.
type PushStats struct {
	Samples         int64 // float samples stored
	Histograms      int64 // native histogram samples stored
	Exemplars       int64 // exemplars stored
	RejectedSamples int64 // samples and histograms refused
	Bytes           int64 // request body size as received (compressed)
	StatusCode      int   // HTTP status of the answer
}

// pushKey identifies one push summary: a tenant, an actor and a minute.
type pushKey struct {
	tenant, actor string
	minute        int64 // unix seconds of the minute's start
}

// pushAgg is the sum of a minute's pushes.
type pushAgg struct {
	requests, samples, histograms, exemplars, rejected, bytes int64
	status                                                    map[int]int64
}

// pushAggregator holds the summaries not written yet.
type pushAggregator struct {
	mu      sync.Mutex
	pending map[pushKey]*pushAgg
	latest  int64 // the newest minute seen; older minutes are complete
}

// RecordPush counts one push request of tenant by actor. Pushes are not
// logged one by one: each minute gets one push.summary entry per tenant and
// actor, written by Run shortly after the minute ends (or, when Run is not
// running, by the first RecordPush of a later minute), or by Close.
func (l *Logger) RecordPush(tenant, actor string, p PushStats) {
	if l == nil {
		return
	}
	minute := l.now().Truncate(time.Minute).Unix()
	a := &l.pushes
	a.mu.Lock()
	k := pushKey{tenant: tenant, actor: actor, minute: minute}
	agg := a.pending[k]
	if agg == nil {
		agg = &pushAgg{status: map[int]int64{}}
		a.pending[k] = agg
	}
	agg.requests++
	agg.samples += p.Samples
	agg.histograms += p.Histograms
	agg.exemplars += p.Exemplars
	agg.rejected += p.RejectedSamples
	agg.bytes += p.Bytes
	agg.status[p.StatusCode]++
	var due []summary
	if minute > a.latest {
		a.latest = minute
		if !l.running.Load() { // else Run writes them, off the push path
			due = a.take(minute)
		}
	}
	a.mu.Unlock()
	l.writeSummaries(due)
}

// summary is a push summary taken out of the aggregator.
type summary struct {
	key pushKey
	agg *pushAgg
}

// take removes and returns the summaries of minutes before minute, in a
// stable order. a.mu is held.
func (a *pushAggregator) take(minute int64) []summary {
	var due []summary
	for k, agg := range a.pending {
		if k.minute < minute {
			due = append(due, summary{k, agg})
			delete(a.pending, k)
		}
	}
	slices.SortFunc(due, func(x, y summary) int {
		return cmp.Or(cmp.Compare(x.key.minute, y.key.minute),
			cmp.Compare(x.key.tenant, y.key.tenant), cmp.Compare(x.key.actor, y.key.actor))
	})
	return due
}

// flushPushes writes the summaries of complete minutes, or of every minute
// when all is set.
func (l *Logger) flushPushes(all bool) {
	a := &l.pushes
	minute := int64(math.MaxInt64)
	if !all {
		minute = l.now().Truncate(time.Minute).Unix()
	}
	a.mu.Lock()
	due := a.take(minute)
	a.mu.Unlock()
	l.writeSummaries(due)
}

func (l *Logger) writeSummaries(due []summary) {
	for _, s := range due {
		status := make(map[string]any, len(s.agg.status))
		outcome := OutcomeSuccess
		for code, n := range s.agg.status {
			status[strconv.Itoa(code)] = n
			if code >= 400 || code < 200 {
				outcome = OutcomeFailure
			}
		}
		l.Log(Entry{
			Actor:   s.key.actor,
			Tenant:  s.key.tenant,
			Action:  ActionPushSummary,
			Target:  time.Unix(s.key.minute, 0).UTC().Format(time.RFC3339),
			Outcome: outcome,
			Details: map[string]any{
				"requests":         s.agg.requests,
				"samples":          s.agg.samples,
				"histograms":       s.agg.histograms,
				"exemplars":        s.agg.exemplars,
				"rejected_samples": s.agg.rejected,
				"bytes":            s.agg.bytes,
				"status":           status,
			},
		})
	}
}
