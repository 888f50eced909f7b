package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Options tune a Logger. The zero value is what Open uses.
type Options struct {
	// Now is the clock; nil means time.Now. Tests inject one to drive
	// push summaries across minutes.
	Now func() time.Time
	// Sync makes each append wait until the log and the anchor are on
	// stable storage (fsync). Without it an append survives a crash of the
	// process but not of the machine.
	Sync bool
	// Keys seal every entry's target and details (AES-256-GCM), which hold
	// customer data such as query expressions (#12); time, seq, actor,
	// tenant, action and outcome stay in clear, and the hash chain covers
	// the ciphertext, so Verify needs no keys. When the current key cannot
	// be had, an entry is written without its target and details, never in
	// clear. Nil stores entries in clear: for tests and tools only, the
	// server and the CLI always set it.
	Keys Keys
}

// Logger appends entries to one audit log. It is safe for concurrent use,
// also with other Loggers and other processes appending to the same file.
// A nil *Logger is a valid Logger that records nothing.
type Logger struct {
	path   string
	now    func() time.Time
	sync   bool
	keys   Keys
	tick   time.Duration // how often Run flushes push summaries
	logger *slog.Logger

	entries  *prometheus.CounterVec
	failures prometheus.Counter

	mu        sync.Mutex // guards what follows, and serialises appends in this process
	f         *os.File
	anchor    *os.File
	closed    bool
	size      int64  // size of the log when this process last read or wrote it; -1: unknown
	seq       uint64 // seq of the last entry
	hash      string // hash of the last entry
	fragment  bool   // the log ends without a newline: the next append starts with one
	anchorLen int    // length of the anchor this process last wrote; -1: none yet
	buf       []byte // canonical encoding
	line      []byte // stored line

	pushes  pushAggregator
	running atomic.Bool // Run is writing push summaries
}

// AnchorPath is the path of the anchor file kept next to the log at path.
func AnchorPath(path string) string { return path + ".anchor" }

// Open opens the audit log at path for appending, creating it, its anchor
// file (both mode 0600) and its directory (0700) as needed.
func Open(path string, logger *slog.Logger, reg prometheus.Registerer) (*Logger, error) {
	return OpenWithOptions(path, Options{}, logger, reg)
}

// OpenWithOptions is Open with options.
func OpenWithOptions(path string, opts Options, logger *slog.Logger, reg prometheus.Registerer) (_ *Logger, err error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create audit log directory: %w", err)
	}
	l := &Logger{path: path, now: opts.Now, sync: opts.Sync, keys: opts.Keys, tick: 10 * time.Second, logger: logger, size: -1, anchorLen: -1}
	l.pushes.pending = map[pushKey]*pushAgg{}
	if l.f, err = os.OpenFile(path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o600); err != nil {
		return nil, fmt.Errorf("open audit log: %w", err)
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, l.f.Close())
			if l.anchor != nil {
				err = errors.Join(err, l.anchor.Close())
			}
		}
	}()
	if l.anchor, err = os.OpenFile(AnchorPath(path), os.O_RDWR|os.O_CREATE, 0o600); err != nil {
		return nil, fmt.Errorf("open audit anchor: %w", err)
	}
	if err := lockExclusive(l.f); err != nil {
		return nil, fmt.Errorf("lock audit log %s: %w", path, err)
	}
	err = l.syncTail()
	if uerr := unlock(l.f); uerr != nil {
		err = errors.Join(err, fmt.Errorf("unlock audit log: %w", uerr))
	}
	if err != nil {
		return nil, err
	}
	if err := l.register(reg); err != nil {
		return nil, err
	}
	return l, nil
}

func (l *Logger) register(reg prometheus.Registerer) error {
	l.entries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "fluxpulse_audit_entries_total",
		Help: "Audit log entries written, by action.",
	}, []string{"action"})
	l.failures = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "fluxpulse_audit_write_failures_total",
		Help: "Audit log entries that could not be written.",
	})
	if reg == nil {
		return nil
	}
	for _, c := range []prometheus.Collector{l.entries, l.failures} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("register audit metrics: %w", err)
		}
	}
	return nil
}

// Log appends e, filling Time (when zero), Seq, Prev and Hash. It never
// fails the caller: a write error is logged and counted in
// fluxpulse_audit_write_failures_total.
func (l *Logger) Log(e Entry) {
	if l == nil {
		return
	}
	if e.Time.IsZero() || e.Time.UTC().Year() < 1 || e.Time.UTC().Year() > 9999 {
		e.Time = l.now()
	}
	e.Sealed = nil
	details, err := safeCanonicalDetails(e.Details)
	if err != nil {
		l.logger.Warn("audit entry details replaced: not encodable as JSON", "action", e.Action, "err", err)
		details, _ = json.Marshal(map[string]string{"details_error": err.Error()})
	}
	var s *sealer
	if l.keys != nil {
		if s, err = l.sealer(); err != nil {
			l.logger.Error("audit entry written without its target and details: no key to seal them", "action", e.Action, "tenant", e.Tenant, "err", err)
			e.Target = ""
			details, _ = json.Marshal(map[string]string{"details_withheld": "no key to seal them: " + err.Error()})
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		err = errors.New("audit log is closed")
	} else {
		err = l.append(&e, details, s)
	}
	if err != nil {
		l.failures.Inc()
		l.logger.Error("audit entry not written", "action", e.Action, "tenant", e.Tenant, "err", err)
		return
	}
	l.entries.WithLabelValues(e.Action).Inc()
}

// sealer returns the current sealing key. It may read the key file, so it
// runs before the log's lock is taken.
func (l *Logger) sealer() (*sealer, error) {
	id, key, err := l.keys.Current()
	if err != nil {
		return nil, err
	}
	if len(key) != 32 {
		return nil, fmt.Errorf("audit key %s is %d bytes, want 32", id, len(key))
	}
	return &sealer{id: id, key: key}, nil
}

// safeCanonicalDetails is canonicalDetails that turns a panicking
// MarshalJSON method into an error: Log never panics.
func safeCanonicalDetails(details map[string]any) (b []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			b, err = nil, fmt.Errorf("encode details: panic: %v", r)
		}
	}()
	return canonicalDetails(details)
}

// append writes one entry under the file lock, sealed with s unless s is
// nil. l.mu is held.
func (l *Logger) append(e *Entry, details []byte, s *sealer) (err error) {
	if err := lockExclusive(l.f); err != nil {
		return fmt.Errorf("lock audit log: %w", err)
	}
	defer func() {
		if uerr := unlock(l.f); uerr != nil {
			err = errors.Join(err, fmt.Errorf("unlock audit log: %w", uerr))
		}
	}()
	if err := l.syncTail(); err != nil {
		return err
	}
	e.Seq, e.Prev = l.seq+1, l.hash
	line, err := l.encode(e, details, s)
	if err != nil {
		return err
	}
	if l.fragment {
		line = append([]byte{'\n'}, line...)
	}
	n, err := l.f.Write(line)
	if err != nil {
		if n > 0 {
			// Take back a partial line, so that the next append does
			// not glue onto it. Nobody else appended: we hold the lock.
			err = errors.Join(err, l.f.Truncate(l.size))
		}
		l.size = -1
		return fmt.Errorf("append to audit log: %w", err)
	}
	if l.sync {
		if err := l.f.Sync(); err != nil {
			l.size = -1
			return fmt.Errorf("sync audit log: %w", err)
		}
	}
	l.size += int64(n)
	l.seq, l.hash, l.fragment = e.Seq, e.Hash, false
	return l.writeAnchor()
}

// encode returns the stored line of e, setting e.Hash, and e.Sealed when s
// is not nil. The line is only valid until the next call.
func (l *Logger) encode(e *Entry, details []byte, s *sealer) ([]byte, error) {
	if s != nil {
		if err := s.seal(e, details); err != nil {
			return nil, err
		}
	}
	canonical := appendCanonical(l.buf[:0], e, details)
	if len(canonical)+lineOverhead > MaxLineSize {
		shrink(e)
		details = []byte(`{"details_omitted":"entry too long"}`)
		if s != nil {
			if err := s.seal(e, details); err != nil {
				return nil, err
			}
		}
		canonical = appendCanonical(canonical[:0], e, details)
	}
	e.Hash = entryHash(e.Prev, canonical)
	line := appendLine(l.line[:0], canonical, e.Hash)
	l.buf, l.line = canonical, line
	if cap(canonical) > 2*MaxLineSize {
		l.buf = nil // do not keep a huge buffer for one huge entry
	}
	return line, nil
}

// lineOverhead is how much longer a stored line is than the canonical
// encoding: `,"hash":""`, 64 hex digits and the newline.
const lineOverhead = len(`,"hash":""`) + 64 + 1

// shrink cuts the strings of an entry too long to store to a size that
// fits (details are dropped by the caller).
func shrink(e *Entry) {
	const max = 1024
	for _, s := range []*string{&e.Actor, &e.Tenant, &e.Action, &e.Target, &e.Outcome} {
		if len(*s) > max {
			*s = (*s)[:max] + "…"
		}
	}
}

// anchorJSON is the anchor file: the seq and hash of the last entry
// appended.
type anchorJSON struct {
	Seq  uint64 `json:"seq"`
	Hash string `json:"hash"`
}

// writeAnchor records the last entry in the anchor file. The log's lock
// is held.
func (l *Logger) writeAnchor() error {
	b, _ := json.Marshal(anchorJSON{Seq: l.seq, Hash: l.hash})
	b = append(b, '\n')
	if _, err := l.anchor.WriteAt(b, 0); err != nil {
		return fmt.Errorf("write audit anchor: %w", err)
	}
	// The anchor only grows with seq, except when the log was emptied
	// and the chain restarted: truncate then, and on the first write.
	if len(b) < l.anchorLen || l.anchorLen < 0 {
		if err := l.anchor.Truncate(int64(len(b))); err != nil {
			return fmt.Errorf("write audit anchor: %w", err)
		}
	}
	l.anchorLen = len(b)
	if l.sync {
		if err := l.anchor.Sync(); err != nil {
			return fmt.Errorf("sync audit anchor: %w", err)
		}
	}
	return nil
}

// syncTail brings seq and hash up to date when the log changed since this
// process last saw it (another process appended). The chain continues from
// the latest of the log's last entry, the anchor and what this process
// wrote itself: if entries were cut from the end, the next entry's seq then
// leaves a gap that Verify reports, instead of covering it up. The log's
// lock is held.
func (l *Logger) syncTail() error {
	fi, err := l.f.Stat()
	if err != nil {
		return fmt.Errorf("stat audit log: %w", err)
	}
	size := fi.Size()
	if size == l.size {
		return nil
	}
	tail, err := readTail(l.f, size)
	if err != nil {
		return err
	}
	shrunk := size < l.size
	l.size, l.fragment = size, tail.fragment
	seq, hash := uint64(0), ZeroHash
	if tail.ok {
		seq, hash = tail.seq, tail.hash
	}
	a, aerr := readAnchor(l.anchor)
	if aerr == nil && a.Seq > seq {
		seq, hash = a.Seq, a.Hash
	}
	if l.seq > seq {
		seq, hash = l.seq, l.hash
	}
	if !tail.ok || shrunk || seq != tail.seq {
		l.logger.Error("audit log does not end with the last entry written; continuing the chain after it, audit verify will report the damage",
			"path", l.path, "seq", seq, "log_seq", tail.seq, "anchor_seq", a.Seq, "tail_err", tail.err, "anchor_err", aerr)
	}
	l.seq, l.hash = seq, hash
	return nil
}

// tailInfo describes the end of a log.
type tailInfo struct {
	ok       bool // seq and hash are those of the last complete line
	seq      uint64
	hash     string
	fragment bool  // the log does not end with a newline
	err      error // why the last complete line is not an entry
}

// readTail parses the last complete line of the first size bytes of f.
func readTail(f *os.File, size int64) (tailInfo, error) {
	if size == 0 {
		return tailInfo{ok: true, hash: ZeroHash}, nil
	}
	start := max(0, size-2*MaxLineSize)
	b := make([]byte, size-start)
	if _, err := f.ReadAt(b, start); err != nil {
		return tailInfo{}, fmt.Errorf("read audit log tail: %w", err)
	}
	var t tailInfo
	if b[len(b)-1] != '\n' {
		t.fragment = true
		b = b[:bytes.LastIndexByte(b, '\n')+1] // nothing left if there is no newline
	}
	if len(b) == 0 {
		t.err = errors.New("no complete line in the tail")
		return t, nil
	}
	b = b[:len(b)-1]
	i := bytes.LastIndexByte(b, '\n')
	if i < 0 && start > 0 {
		t.err = errors.New("last line longer than the maximum")
		return t, nil
	}
	p, err := parseLine(b[i+1:])
	if err != nil {
		t.err = err
		return t, nil
	}
	t.ok, t.seq, t.hash = true, p.entry.Seq, p.entry.Hash
	return t, nil
}

// readAnchor reads an anchor file; an empty file is the zero anchor.
func readAnchor(f *os.File) (anchorJSON, error) {
	var a anchorJSON
	fi, err := f.Stat()
	if err != nil {
		return a, err
	}
	if fi.Size() == 0 {
		return anchorJSON{Hash: ZeroHash}, nil
	}
	if fi.Size() > 1024 {
		return a, fmt.Errorf("anchor file is %d bytes, expected fewer than 1024", fi.Size())
	}
	b := make([]byte, fi.Size())
	if _, err := f.ReadAt(b, 0); err != nil {
		return a, err
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&a); err != nil {
		return a, fmt.Errorf("decode anchor: %w", err)
	}
	if !isHash(a.Hash) {
		return a, errors.New("anchor hash is not 64 lowercase hex digits")
	}
	return a, nil
}

// Run writes the push summaries of each minute shortly after it ends,
// until ctx ends. Close writes the rest.
func (l *Logger) Run(ctx context.Context) error {
	if l == nil {
		<-ctx.Done()
		return nil
	}
	l.running.Store(true)
	defer l.running.Store(false)
	t := time.NewTicker(l.tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			l.flushPushes(false)
		}
	}
}

// Close writes the pending push summaries and closes the log. Entries
// logged after Close are counted as failures. Close is idempotent.
func (l *Logger) Close() error {
	if l == nil {
		return nil
	}
	l.flushPushes(true)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	var err error
	if l.sync {
		err = l.f.Sync()
	}
	return errors.Join(err, l.f.Close(), l.anchor.Close())
}
