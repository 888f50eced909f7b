package audit

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"
)

// Kind is a kind of damage Verify finds.
type Kind string

// The kinds of damage. Verify reports the first it meets.
const (
	// KindEdited: an entry's hash does not match its content, its prev
	// does not match the entry before it (that entry was changed and
	// re-hashed, or this one's prev was), or the last entry differs from
	// the anchor.
	KindEdited Kind = "edited"
	// KindRemoved: seq numbers skip (entries were removed from the
	// middle or the start), or the log ends before the seq the anchor
	// records (entries were removed from the end).
	KindRemoved Kind = "removed"
	// KindReordered: an entry stands out of seq order, or twice.
	KindReordered Kind = "reordered"
	// KindTruncated: the last line has no newline (the file was cut).
	KindTruncated Kind = "truncated"
	// KindMalformed: a line is not an entry in canonical form.
	KindMalformed Kind = "malformed"
	// KindAnchor: the log has entries but the anchor file is missing or
	// unreadable.
	KindAnchor Kind = "anchor"
)

// Report is the outcome of Verify.
type Report struct {
	Entries   int       // entries that verified, in order, before any damage
	LastSeq   uint64    // seq of the last entry that verified
	LastHash  string    // hash of the last entry that verified
	LastTime  time.Time // time of the last entry that verified
	AnchorSeq uint64    // seq the anchor records
	// Unanchored counts entries after the anchor's seq: appended after the
	// anchor was last updated (a crash between the two writes), or by
	// someone who bypassed the Logger. They verify but are not vouched
	// for by the anchor.
	Unanchored int
	// Kind, Line and Problem describe the first damage found; Kind is
	// empty when the log verified. Line counts from 1; damage past the
	// last line (removed entries at the end) is reported at the line after
	// it.
	Kind    Kind
	Line    int
	Problem string
}

// OK reports whether the log verified.
func (r Report) OK() bool { return r.Kind == "" }

// TamperError is the error Verify returns for a log that does not verify.
type TamperError struct {
	Kind    Kind
	Line    int
	Problem string
}

// Error implements error.
func (e *TamperError) Error() string {
	return fmt.Sprintf("audit log %s at line %d: %s", e.Kind, e.Line, e.Problem)
}

// Verify checks the audit log at path and its anchor: every line is an
// entry in canonical form whose hash matches, seq numbers run from 1
// without gaps, each prev is the hash of the entry before, and the last
// entry is the one the anchor records (or comes after it). Damage is
// returned as a *TamperError along with the Report; other errors are I/O
// errors. Verify reads the log as it was when it started, so appends by a
// running server do not disturb it.
func Verify(path string) (Report, error) {
	f, err := os.Open(path)
	if err != nil {
		return Report{}, fmt.Errorf("open audit log: %w", err)
	}
	defer f.Close()
	snap, err := takeSnapshot(f, path)
	if err != nil {
		return Report{}, err
	}
	v := verifier{r: bufio.NewReaderSize(io.NewSectionReader(f, 0, snap.size), MaxLineSize+1), anchor: snap.anchor}
	v.rep.AnchorSeq = snap.anchor.Seq
	v.rep.LastHash = ZeroHash
	if err := v.run(); err != nil {
		return v.rep, err
	}
	if v.rep.OK() {
		v.checkEnd(snap.anchorErr)
	}
	if !v.rep.OK() {
		return v.rep, &TamperError{Kind: v.rep.Kind, Line: v.rep.Line, Problem: v.rep.Problem}
	}
	return v.rep, nil
}

// snapshot is the log's size and its anchor at one moment.
type snapshot struct {
	size      int64
	anchor    anchorJSON
	anchorErr error // the anchor is missing or unreadable
}

// takeSnapshot reads the log's size and the anchor together, under a
// shared lock, so that they describe the same moment.
func takeSnapshot(f *os.File, path string) (s snapshot, err error) {
	if err := lockShared(f); err != nil {
		return s, fmt.Errorf("lock audit log: %w", err)
	}
	defer func() {
		if uerr := unlock(f); uerr != nil {
			err = errors.Join(err, fmt.Errorf("unlock audit log: %w", uerr))
		}
	}()
	fi, err := f.Stat()
	if err != nil {
		return s, fmt.Errorf("stat audit log: %w", err)
	}
	s.size = fi.Size()
	af, err := os.Open(AnchorPath(path))
	if errors.Is(err, fs.ErrNotExist) {
		s.anchorErr = fmt.Errorf("anchor file %s is missing", AnchorPath(path))
		return s, nil
	}
	if err != nil {
		return s, fmt.Errorf("open audit anchor: %w", err)
	}
	defer af.Close()
	s.anchor, s.anchorErr = readAnchor(af)
	return s, nil
}

// verifier walks a log line by line.
type verifier struct {
	r      *bufio.Reader
	anchor anchorJSON
	line   int
	rep    Report
}

func (v *verifier) fail(k Kind, line int, format string, args ...any) {
	v.rep.Kind, v.rep.Line, v.rep.Problem = k, line, fmt.Sprintf(format, args...)
}

// run checks every line, stopping at the first damage. It returns only
// I/O errors.
func (v *verifier) run() error {
	for {
		b, err := v.r.ReadSlice('\n')
		if len(b) == 0 && errors.Is(err, io.EOF) {
			return nil
		}
		v.line++
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			v.fail(KindMalformed, v.line, "line longer than %d bytes", MaxLineSize)
			return nil
		case errors.Is(err, io.EOF):
			v.fail(KindTruncated, v.line, "the last line has no newline: the file was cut")
			return nil
		case err != nil:
			return fmt.Errorf("read audit log: %w", err)
		}
		p, perr := parseLine(b[:len(b)-1])
		if perr != nil {
			v.fail(KindMalformed, v.line, "%v", perr)
			return nil
		}
		if !v.check(p) {
			return nil
		}
	}
}

// check verifies one parsed entry against the chain so far.
func (v *verifier) check(p parsedLine) bool {
	e := &p.entry
	want := v.rep.LastSeq + 1
	switch {
	case entryHash(e.Prev, p.canonical) != e.Hash:
		v.fail(KindEdited, v.line, "seq %d: the hash does not match the entry's content", e.Seq)
	case e.Seq < want:
		v.fail(KindReordered, v.line, "seq %d comes after seq %d", e.Seq, v.rep.LastSeq)
	case e.Seq > want && v.seqFollows(want):
		v.fail(KindReordered, v.line, "seq %d stands before seq %d", e.Seq, want)
	case e.Seq > want:
		v.fail(KindRemoved, v.line, "seq %d follows seq %d: %d entries are missing", e.Seq, v.rep.LastSeq, e.Seq-want)
	case e.Prev != v.rep.LastHash:
		v.fail(KindEdited, v.line, "seq %d: prev does not match the hash of the entry before (that entry was changed and re-hashed, or this entry's prev was)", e.Seq)
	case e.Seq == v.anchor.Seq && e.Hash != v.anchor.Hash:
		v.fail(KindEdited, v.line, "seq %d: the hash differs from the one the anchor records", e.Seq)
	default:
		v.rep.Entries++
		v.rep.LastSeq, v.rep.LastHash, v.rep.LastTime = e.Seq, e.Hash, e.Time
		return true
	}
	return false
}

// seqFollows reports whether an entry with seq stands later in the log,
// telling a reordering from a removal. It consumes the reader.
func (v *verifier) seqFollows(seq uint64) bool {
	for {
		b, err := v.r.ReadSlice('\n')
		if len(b) > 0 && err == nil {
			if p, perr := parseLine(b[:len(b)-1]); perr == nil && p.entry.Seq == seq {
				return true
			}
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return false
		}
	}
}

// checkEnd compares the end of an intact chain with the anchor.
func (v *verifier) checkEnd(anchorErr error) {
	switch {
	case anchorErr != nil && v.rep.Entries > 0:
		v.fail(KindAnchor, v.line+1, "%v", anchorErr)
	case anchorErr != nil:
		// An empty log without an anchor: nothing was ever written.
	case v.anchor.Seq > v.rep.LastSeq:
		v.fail(KindRemoved, v.line+1, "the log ends at seq %d but the anchor records seq %d: the last %d entries were removed",
			v.rep.LastSeq, v.anchor.Seq, v.anchor.Seq-v.rep.LastSeq)
	default:
		v.rep.Unanchored = int(v.rep.LastSeq - v.anchor.Seq)
	}
}

// ReadEntries returns every entry of the audit log at path, in file order,
// without checking the chain (use Verify for that). It fails on a line that
// is not an entry. Sealed entries come with Sealed set: see Unseal.
func ReadEntries(path string) ([]Entry, error) {
	var entries []Entry
	err := EachEntry(path, func(e Entry) error {
		entries = append(entries, e)
		return nil
	})
	return entries, err
}

// EachEntry calls f with every entry of the audit log at path, in file
// order, reading the log as a stream, without checking the chain. It fails
// on a line that is not an entry; an error from f stops it and is returned
// as it is.
func EachEntry(path string, f func(Entry) error) error {
	file, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("read audit log: %w", err)
	}
	defer file.Close()
	r := bufio.NewReaderSize(file, MaxLineSize+1)
	for line := 1; ; line++ {
		b, err := r.ReadSlice('\n')
		if len(b) == 0 && errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("audit log %s line %d: %w", path, line, err)
		}
		p, perr := parseLine(bytes.TrimSuffix(b, []byte{'\n'}))
		if perr != nil {
			return fmt.Errorf("audit log %s line %d: %w", path, line, perr)
		}
		if err := f(p.entry); err != nil {
			return err
		}
	}
}
