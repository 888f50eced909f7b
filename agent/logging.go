package agent

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// throttle is a slog.Handler that passes each message (per logger, i.e.
// per set of With attributes) at most once per window. node_exporter logs a
// failing collector at every collection and the remote-write queue logs
// every failed retry; on a host that is a log line every few seconds for
// as long as the problem lasts.
type throttle struct {
	next   slog.Handler
	prefix string // identifies the With attributes and groups
	state  *throttleState
}

type throttleState struct {
	window time.Duration
	mu     sync.Mutex
	last   map[string]time.Time
}

func newThrottle(next slog.Handler, window time.Duration) *throttle {
	return &throttle{next: next, state: &throttleState{window: window, last: map[string]time.Time{}}}
}

// Enabled implements slog.Handler.
func (t *throttle) Enabled(ctx context.Context, l slog.Level) bool { return t.next.Enabled(ctx, l) }

// Handle implements slog.Handler.
func (t *throttle) Handle(ctx context.Context, r slog.Record) error {
	key := t.prefix + "\x00" + r.Message
	s := t.state
	s.mu.Lock()
	last, seen := s.last[key]
	pass := !seen || r.Time.Sub(last) >= s.window
	if pass {
		s.last[key] = r.Time
		if len(s.last) > 10000 { // bounded, whatever logs through it
			clear(s.last)
		}
	}
	s.mu.Unlock()
	if !pass {
		return nil
	}
	return t.next.Handle(ctx, r)
}

// WithAttrs implements slog.Handler.
func (t *throttle) WithAttrs(as []slog.Attr) slog.Handler {
	p := t.prefix
	for _, a := range as {
		p += "\x00" + a.String()
	}
	return &throttle{next: t.next.WithAttrs(as), prefix: p, state: t.state}
}

// WithGroup implements slog.Handler.
func (t *throttle) WithGroup(name string) slog.Handler {
	return &throttle{next: t.next.WithGroup(name), prefix: t.prefix + "\x00[" + name + "]", state: t.state}
}

// watcherStarted is a slog.Handler that closes a channel when Prometheus'
// WAL watcher logs that it starts replaying, which it does right after
// fixing the time from which it sends samples (wlog.Watcher.loop). The
// agent needs that moment to hand over from its backlog sender to the
// queue without a gap; see Agent.handOver.
type watcherStarted struct {
	next slog.Handler
	once *sync.Once
	ch   chan struct{}
}

// watcherStartMessage is the message wlog.Watcher.Run logs first.
const watcherStartMessage = "Replaying WAL"

func newWatcherStarted(next slog.Handler) *watcherStarted {
	return &watcherStarted{next: next, once: &sync.Once{}, ch: make(chan struct{})}
}

// Enabled implements slog.Handler: it sees every Info record.
func (w *watcherStarted) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelInfo || w.next.Enabled(ctx, l)
}

// Handle implements slog.Handler.
func (w *watcherStarted) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == watcherStartMessage {
		w.once.Do(func() { close(w.ch) })
	}
	if !w.next.Enabled(ctx, r.Level) {
		return nil
	}
	return w.next.Handle(ctx, r)
}

// WithAttrs implements slog.Handler.
func (w *watcherStarted) WithAttrs(as []slog.Attr) slog.Handler {
	return &watcherStarted{next: w.next.WithAttrs(as), once: w.once, ch: w.ch}
}

// WithGroup implements slog.Handler.
func (w *watcherStarted) WithGroup(name string) slog.Handler {
	return &watcherStarted{next: w.next.WithGroup(name), once: w.once, ch: w.ch}
}
