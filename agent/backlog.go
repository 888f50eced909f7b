package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/prometheus/prometheus/storage/remote"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/tsdb/record"
	"github.com/prometheus/prometheus/tsdb/wlog"
)

// backlog sends the samples of the WAL that the remote-write queue will not:
// Prometheus' WAL watcher sends only samples newer than its own start, so
// whatever an earlier run of the agent collected but could not send would
// be lost on restart. The backlog sender reads the WAL from the last
// checkpoint, sends every sample at or after `from` in WAL order, and keeps
// tailing the WAL (collections go on meanwhile) until it has caught up;
// then the agent starts the queue (session.handOver).
//
// Not safe for concurrent use.
type backlog struct {
	dir        string // the WAL directory
	from       int64  // samples older than this (ms) were sent already
	client     remote.WriteClient
	v2         bool
	batchSize  int
	maxBackoff time.Duration
	logger     *slog.Logger
	m          *metrics
	sent       *atomic.Int64 // highest timestamp sent, ms

	series     map[chunks.HeadSeriesRef]labels.Labels
	dec        record.Decoder
	samples    []record.RefSample
	refs       []record.RefSeries
	checkpoint []string // checkpoint files still to read, in order
	inCP       bool     // r reads checkpoint[0]
	seg        int      // segment being read, after the checkpoint
	name       string   // file r reads
	f          *wlog.Segment
	r          *wlog.LiveReader
	pending    batch
}

// batch is the samples of one remote-write request, grouped by series in
// the order they were read.
type batch struct {
	index  map[chunks.HeadSeriesRef]int
	series []batchSeries
	n      int
	maxT   int64
}

type batchSeries struct {
	ls      labels.Labels
	samples []prompb.Sample
}

func (b *batch) add(ref chunks.HeadSeriesRef, ls labels.Labels, t int64, v float64) {
	if b.index == nil {
		b.index = map[chunks.HeadSeriesRef]int{}
	}
	i, ok := b.index[ref]
	if !ok {
		i = len(b.series)
		b.index[ref] = i
		b.series = append(b.series, batchSeries{ls: ls})
	}
	b.series[i].samples = append(b.series[i].samples, prompb.Sample{Timestamp: t, Value: v})
	b.n++
	b.maxT = max(b.maxT, t)
}

func (b *batch) reset() {
	clear(b.index)
	b.series = b.series[:0]
	b.n, b.maxT = 0, 0
}

// open finds the last checkpoint, if any: its files are read first, then
// the segments after it.
func (bl *backlog) open() error {
	bl.series = map[chunks.HeadSeriesRef]labels.Labels{}
	bl.dec = record.NewDecoder(labels.NewSymbolTable(), bl.logger)
	cp, idx, err := wlog.LastCheckpoint(bl.dir)
	if errors.Is(err, record.ErrNotFound) {
		first, _, err := wlog.Segments(bl.dir)
		bl.seg = max(first, 0)
		return err
	}
	if err != nil {
		return fmt.Errorf("find WAL checkpoint: %w", err)
	}
	entries, err := os.ReadDir(cp)
	if err != nil {
		return fmt.Errorf("read WAL checkpoint: %w", err)
	}
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err == nil {
			bl.checkpoint = append(bl.checkpoint, filepath.Join(cp, e.Name()))
		}
	}
	bl.seg = idx + 1
	return nil
}

// pass sends every sample written to the WAL so far and returns how many it
// sent. It retries failed requests until ctx ends; a batch it could not
// send stays pending for the next pass.
func (bl *backlog) pass(ctx context.Context) (int, error) {
	total := 0
	for {
		if bl.pending.n >= bl.batchSize {
			if err := bl.flush(ctx); err != nil {
				return total, err
			}
			total += bl.pending.n
			bl.pending.reset()
		}
		rec, ok, err := bl.next()
		if err != nil {
			return total, err
		}
		if !ok {
			break
		}
		if err := bl.record(rec); err != nil {
			return total, err
		}
	}
	if bl.pending.n == 0 {
		return total, nil
	}
	if err := bl.flush(ctx); err != nil {
		return total, err
	}
	total += bl.pending.n
	bl.pending.reset()
	return total, nil
}

// record decodes one WAL record: series records name the series, sample
// records go into the pending batch. The agent writes no other kinds.
func (bl *backlog) record(rec []byte) error {
	var err error
	switch bl.dec.Type(rec) {
	case record.Series:
		bl.refs, err = bl.dec.Series(rec, bl.refs[:0])
		for _, s := range bl.refs {
			bl.series[s.Ref] = s.Labels
		}
	case record.Samples, record.SamplesV2:
		bl.samples, err = bl.dec.Samples(rec, bl.samples[:0])
		for _, s := range bl.samples {
			if s.T < bl.from {
				continue
			}
			ls, ok := bl.series[s.Ref]
			if !ok {
				bl.m.backlogFailed.Inc() // its series record was truncated away
				continue
			}
			bl.pending.add(s.Ref, ls, s.T, s.V)
		}
	}
	if err != nil {
		return fmt.Errorf("decode WAL record: %w", err)
	}
	return nil
}

// next returns the next record of the checkpoint or the WAL, or false when
// it has read everything written so far.
func (bl *backlog) next() ([]byte, bool, error) {
	for {
		if bl.r == nil {
			ok, err := bl.openNext()
			if !ok || err != nil {
				return nil, false, err
			}
		}
		if bl.r.Next() {
			return bl.r.Record(), true, nil
		}
		if err := bl.r.Err(); err != nil && !errors.Is(err, io.EOF) {
			return nil, false, fmt.Errorf("read WAL file %s: %w", bl.name, err)
		}
		if bl.inCP {
			bl.closeSegment()
			bl.checkpoint = bl.checkpoint[1:]
			continue
		}
		_, last, err := wlog.Segments(bl.dir)
		if err != nil {
			return nil, false, fmt.Errorf("list WAL segments: %w", err)
		}
		if last <= bl.seg {
			return nil, false, nil // caught up with the writer
		}
		// A later segment exists, so this one is complete; records may
		// have arrived between the read above and the listing.
		if bl.r.Next() {
			return bl.r.Record(), true, nil
		}
		bl.closeSegment()
		bl.seg++
	}
}

// openNext opens the next checkpoint file or else the current segment.
func (bl *backlog) openNext() (bool, error) {
	name := ""
	bl.inCP = len(bl.checkpoint) > 0
	if bl.inCP {
		name = bl.checkpoint[0]
	} else {
		first, last, err := wlog.Segments(bl.dir)
		if err != nil {
			return false, fmt.Errorf("list WAL segments: %w", err)
		}
		if last < 0 || bl.seg > last {
			return false, nil
		}
		if bl.seg < first {
			bl.logger.Warn("WAL segments were truncated before they were sent", "from_segment", bl.seg, "to_segment", first-1)
			bl.seg = first
		}
		name = wlog.SegmentName(bl.dir, bl.seg)
	}
	f, err := wlog.OpenReadSegment(name)
	if err != nil {
		return false, fmt.Errorf("open WAL segment: %w", err)
	}
	bl.f, bl.name = f, name
	bl.r = wlog.NewLiveReader(bl.logger, wlog.NewLiveReaderMetrics(nil), f)
	return true, nil
}

func (bl *backlog) closeSegment() {
	if bl.f != nil {
		_ = bl.f.Close()
	}
	bl.f, bl.r = nil, nil
}

// close releases the open segment.
func (bl *backlog) close() { bl.closeSegment() }

// flush sends the pending batch, retrying with backoff until it is stored,
// refused (4xx: retrying cannot help, and a FluxPulse or Prometheus
// receiver stores the valid rest of a refused request), or ctx ends.
func (bl *backlog) flush(ctx context.Context) error {
	req, err := bl.encode()
	if err != nil {
		return err
	}
	n, backoff := float64(bl.pending.n), 30*time.Millisecond
	for attempt := 0; ; attempt++ {
		_, err := bl.client.Store(ctx, req, attempt)
		if err == nil {
			bl.m.backlogSent.Add(n)
			bl.markSent(bl.pending.maxT)
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if _, ok := errors.AsType[remote.RecoverableError](err); !ok {
			bl.logger.Warn("remote write refused samples from the WAL backlog", "err", err)
			bl.m.backlogFailed.Add(n)
			bl.markSent(bl.pending.maxT)
			return nil
		}
		bl.m.backlogRetried.Add(n)
		bl.logger.Warn("remote write failed; retrying the WAL backlog", "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, bl.maxBackoff)
	}
}

func (bl *backlog) markSent(t int64) {
	for {
		old := bl.sent.Load()
		if t <= old || bl.sent.CompareAndSwap(old, t) {
			return
		}
	}
}

// encode builds the snappy-compressed remote-write request of the pending
// batch.
func (bl *backlog) encode() ([]byte, error) {
	var (
		raw []byte
		err error
	)
	if bl.v2 {
		st := writev2.NewSymbolTable()
		req := writev2.Request{Timeseries: make([]writev2.TimeSeries, 0, len(bl.pending.series))}
		for _, s := range bl.pending.series {
			ws := make([]writev2.Sample, len(s.samples))
			for i, smp := range s.samples {
				ws[i] = writev2.Sample{Value: smp.Value, Timestamp: smp.Timestamp}
			}
			req.Timeseries = append(req.Timeseries, writev2.TimeSeries{LabelsRefs: st.SymbolizeLabels(s.ls, nil), Samples: ws})
		}
		req.Symbols = st.Symbols()
		raw, err = req.Marshal()
	} else {
		req := prompb.WriteRequest{Timeseries: make([]prompb.TimeSeries, 0, len(bl.pending.series))}
		for _, s := range bl.pending.series {
			req.Timeseries = append(req.Timeseries, prompb.TimeSeries{Labels: prompb.FromLabels(s.ls, nil), Samples: s.samples})
		}
		raw, err = req.Marshal()
	}
	if err != nil {
		return nil, fmt.Errorf("BUG: encode remote-write request: %w", err)
	}
	return snappy.Encode(nil, raw), nil
}

// progressFile, in the WAL directory, holds the timestamp (ms) up to which
// samples were sent, so that a restarted agent knows where its backlog
// starts. It is a hint: sending a sample twice is harmless, since receivers
// ignore an exact duplicate and refuse an older one, and a stale file only
// means more is sent again.
const progressFile = "sent-until"

func loadProgress(dir string) (int64, error) {
	b, err := os.ReadFile(filepath.Join(dir, progressFile))
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parse %s: %w", filepath.Join(dir, progressFile), err)
	}
	return v, nil
}

func saveProgress(dir string, ms int64) error {
	tmp := filepath.Join(dir, progressFile+".tmp")
	if err := os.WriteFile(tmp, []byte(strconv.FormatInt(ms, 10)+"\n"), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, progressFile))
}
