package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// SegmentStore is where the processes of a cluster ship their audit chains
// (#17): sealed whole objects (*encryption.SystemStore), each process's
// below its instance ID. It must be safe for concurrent use.
type SegmentStore interface {
	Put(ctx context.Context, name string, b []byte) error
	Get(ctx context.Context, name string) ([]byte, error)
	List(ctx context.Context, dir string, f func(name string) error) error
}

// MaxSegmentSize bounds the lines of one segment; a longer backlog is
// shipped as several.
const MaxSegmentSize = 8 << 20

// headObject names, below an instance, the object recording its newest
// segment: its name and the seq and hash of its last entry, so that a
// segment removed from the end is noticed like one from the middle.
const headObject = "head"

// segmentsDir holds an instance's segments, named <first seq>-<last seq>
// with 20 digits each, so that they sort in chain order and a missing one
// is named by the seqs around it.
const segmentsDir = "segments"

// SegmentName returns the name of the segment of an instance holding the
// entries from seq first to seq last.
func SegmentName(instance string, first, last uint64) string {
	return fmt.Sprintf("%s/%s/%020d-%020d", instance, segmentsDir, first, last)
}

// parseSegmentName returns the seqs of a segment name below its instance.
func parseSegmentName(name string) (first, last uint64, ok bool) {
	a, b, found := strings.Cut(filepath.Base(name), "-")
	if !found || len(a) != 20 || len(b) != 20 {
		return 0, 0, false
	}
	first, err1 := strconv.ParseUint(a, 10, 64)
	last, err2 := strconv.ParseUint(b, 10, 64)
	return first, last, err1 == nil && err2 == nil && first >= 1 && first <= last
}

// segmentHead is the content of an instance's head object, and of the
// shipper's local state file (which adds the log offset shipped).
type segmentHead struct {
	Segment string `json:"segment"`
	Seq     uint64 `json:"seq"`
	Hash    string `json:"hash"`
	Offset  int64  `json:"offset,omitempty"`
}

// Shipper seals the audit log of one process in segments and ships them:
// each pass takes the whole lines appended since the last one, as they are
// in the log, uploads them as a segment and then the head. It keeps what it
// shipped in <log>.shipped. One Shipper ships a log at a time.
type Shipper struct {
	path     string
	store    SegmentStore
	instance string
	logger   *slog.Logger
}

// NewShipper returns a shipper of the audit log at path to store, as the
// segments of instance.
func NewShipper(path string, store SegmentStore, instance string, logger *slog.Logger) *Shipper {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Shipper{path: path, store: store, instance: instance, logger: logger}
}

func (s *Shipper) statePath() string { return s.path + ".shipped" }

// Run ships every period until ctx ends, and once more then.
func (s *Shipper) Run(ctx context.Context, period time.Duration) error {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := s.Ship(ctx); err != nil && ctx.Err() == nil {
				s.logger.Error("audit segment not shipped; will retry", "err", err)
			}
		}
	}
}

// Ship ships what the log gained since the last shipment, if anything.
func (s *Shipper) Ship(ctx context.Context) error {
	st, err := s.state()
	if err != nil {
		return err
	}
	f, err := os.Open(s.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("open audit log: %w", err)
	}
	defer f.Close()
	snap, err := takeSnapshot(f, s.path)
	if err != nil {
		return err
	}
	for st.Offset < snap.size {
		n := min(snap.size-st.Offset, MaxSegmentSize)
		buf := make([]byte, n)
		if _, err := f.ReadAt(buf, st.Offset); err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("read audit log: %w", err)
		}
		end := bytes.LastIndexByte(buf, '\n')
		if end < 0 {
			return nil // a line being written, or longer than a segment (never: MaxLineSize)
		}
		buf = buf[:end+1]
		next, err := s.shipSegment(ctx, st, buf)
		if err != nil {
			return err
		}
		st = next
	}
	return nil
}

// shipSegment uploads the lines buf following the state st, then the head,
// then records the new state.
func (s *Shipper) shipSegment(ctx context.Context, st segmentHead, buf []byte) (segmentHead, error) {
	firstLine, _, _ := bytes.Cut(buf, []byte{'\n'})
	lastLine := buf[bytes.LastIndexByte(buf[:len(buf)-1], '\n')+1 : len(buf)-1]
	first, err := parseLine(firstLine)
	if err != nil {
		return st, fmt.Errorf("audit log at offset %d: %w", st.Offset, err)
	}
	last, err := parseLine(lastLine)
	if err != nil {
		return st, fmt.Errorf("audit log before offset %d: %w", st.Offset+int64(len(buf)), err)
	}
	name := SegmentName(s.instance, first.entry.Seq, last.entry.Seq)
	if err := s.store.Put(ctx, name, buf); err != nil {
		return st, fmt.Errorf("ship audit segment %s: %w", name, err)
	}
	next := segmentHead{Segment: name, Seq: last.entry.Seq, Hash: last.entry.Hash, Offset: st.Offset + int64(len(buf))}
	head, _ := json.Marshal(segmentHead{Segment: next.Segment, Seq: next.Seq, Hash: next.Hash})
	if err := s.store.Put(ctx, s.instance+"/"+headObject, head); err != nil {
		return st, fmt.Errorf("ship audit head: %w", err)
	}
	b, _ := json.Marshal(next)
	if err := writeFileAtomic(s.statePath(), b); err != nil {
		return st, err
	}
	return next, nil
}

// state reads what was shipped; nothing yet is the zero state.
func (s *Shipper) state() (segmentHead, error) {
	var st segmentHead
	b, err := os.ReadFile(s.statePath())
	if errors.Is(err, os.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("audit shipping state: %w", err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("audit shipping state %s: %w", s.statePath(), err)
	}
	return st, nil
}

func writeFileAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return os.Rename(tmp, path)
}
