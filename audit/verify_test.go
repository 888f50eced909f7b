package audit

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// fixedClock returns a clock that starts at start and moves one second
// per call.
func fixedClock(start time.Time) func() time.Time {
	n := 0
	return func() time.Time {
		n++
		return start.Add(time.Duration(n) * time.Second)
	}
}

var testStart = time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)

// writeLog writes n entries to a new log and returns its path.
func writeLog(t *testing.T, n int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit", "audit.log")
	l, err := OpenWithOptions(path, Options{Now: fixedClock(testStart)}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		l.Log(Entry{Actor: "tok-" + string(rune('a'+i)), Tenant: "team-a", Action: ActionQuery,
			Target: "up", Outcome: OutcomeSuccess, Details: map[string]any{"series": i}})
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// logFiles is a log's lines (each with its newline) and its anchor.
type logFiles struct {
	lines  [][]byte
	anchor []byte // nil: no anchor file
}

func readLogFiles(t *testing.T, path string) logFiles {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	a, err := os.ReadFile(AnchorPath(path))
	if err != nil {
		t.Fatal(err)
	}
	return logFiles{lines: bytes.SplitAfter(b, []byte{'\n'})[:bytes.Count(b, []byte{'\n'})], anchor: a}
}

func (lf logFiles) write(t *testing.T, path string) {
	t.Helper()
	if err := os.WriteFile(path, bytes.Join(lf.lines, nil), 0o600); err != nil {
		t.Fatal(err)
	}
	if lf.anchor == nil {
		if err := os.Remove(AnchorPath(path)); err != nil {
			t.Fatal(err)
		}
		return
	}
	if err := os.WriteFile(AnchorPath(path), lf.anchor, 0o600); err != nil {
		t.Fatal(err)
	}
}

// rehash returns line i after edit, with its hash recomputed as an attacker
// who knows the format would.
func (lf logFiles) rehash(t *testing.T, i int, edit func(*Entry)) []byte {
	t.Helper()
	p, err := parseLine(bytes.TrimSuffix(lf.lines[i], []byte{'\n'}))
	if err != nil {
		t.Fatal(err)
	}
	edit(&p.entry)
	details, err := canonicalDetails(p.entry.Details)
	if err != nil {
		t.Fatal(err)
	}
	c := appendCanonical(nil, &p.entry, details)
	return appendLine(nil, c, entryHash(p.entry.Prev, c))
}

// anchorFor returns an anchor recording line i.
func anchorFor(t *testing.T, lf logFiles, i int) []byte {
	t.Helper()
	p, err := parseLine(bytes.TrimSuffix(lf.lines[i], []byte{'\n'}))
	if err != nil {
		t.Fatal(err)
	}
	return anchorBytes(p.entry.Seq, p.entry.Hash)
}

func anchorBytes(seq uint64, hash string) []byte {
	return []byte(`{"seq":` + strconv.FormatUint(seq, 10) + `,"hash":"` + hash + "\"}\n")
}

// verifyCases are the tampering cases of TestVerify: each writes n
// entries, tampers with the files and expects Verify to find kind at line
// (no kind: success) after entries intact entries.
var verifyCases = []struct {
	name    string
	n       int // entries written
	tamper  func(t *testing.T, lf *logFiles)
	kind    Kind
	line    int
	entries int // entries verified
}{
	{name: "untouched", n: 5, tamper: func(*testing.T, *logFiles) {}, entries: 5},
	{name: "empty log", n: 0, tamper: func(*testing.T, *logFiles) {}, entries: 0},
	{name: "edit a middle entry", n: 5, kind: KindEdited, line: 3, entries: 2, tamper: func(t *testing.T, lf *logFiles) {
		lf.lines[2] = bytes.Replace(lf.lines[2], []byte(`"actor":"tok-c"`), []byte(`"actor":"tok-x"`), 1)
	}},
	{name: "edit and re-hash a middle entry", n: 5, kind: KindEdited, line: 4, entries: 3, tamper: func(t *testing.T, lf *logFiles) {
		lf.lines[2] = lf.rehash(t, 2, func(e *Entry) { e.Outcome = OutcomeDenied })
	}},
	{name: "edit and re-hash the last entry", n: 5, kind: KindEdited, line: 5, entries: 4, tamper: func(t *testing.T, lf *logFiles) {
		lf.lines[4] = lf.rehash(t, 4, func(e *Entry) { e.Tenant = "team-b" })
	}},
	{name: "remove a middle entry", n: 5, kind: KindRemoved, line: 3, entries: 2, tamper: func(t *testing.T, lf *logFiles) {
		lf.lines = append(lf.lines[:2], lf.lines[3:]...)
	}},
	{name: "remove the first entry", n: 5, kind: KindRemoved, line: 1, entries: 0, tamper: func(t *testing.T, lf *logFiles) {
		lf.lines = lf.lines[1:]
	}},
	{name: "remove the last entry", n: 5, kind: KindRemoved, line: 5, entries: 4, tamper: func(t *testing.T, lf *logFiles) {
		lf.lines = lf.lines[:4]
	}},
	{name: "remove every entry", n: 3, kind: KindRemoved, line: 1, entries: 0, tamper: func(t *testing.T, lf *logFiles) {
		lf.lines = nil
	}},
	{name: "swap two entries", n: 5, kind: KindReordered, line: 2, entries: 1, tamper: func(t *testing.T, lf *logFiles) {
		lf.lines[1], lf.lines[2] = lf.lines[2], lf.lines[1]
	}},
	{name: "move an entry to the end", n: 5, kind: KindReordered, line: 2, entries: 1, tamper: func(t *testing.T, lf *logFiles) {
		lf.lines = append(append(lf.lines[:1:1], lf.lines[2:]...), lf.lines[1])
	}},
	{name: "duplicate an entry", n: 5, kind: KindReordered, line: 4, entries: 3, tamper: func(t *testing.T, lf *logFiles) {
		lf.lines = append(lf.lines[:3:3], append([][]byte{lf.lines[2]}, lf.lines[3:]...)...)
	}},
	{name: "malformed line", n: 5, kind: KindMalformed, line: 2, entries: 1, tamper: func(t *testing.T, lf *logFiles) {
		lf.lines[1] = []byte("not an entry\n")
	}},
	{name: "empty line", n: 5, kind: KindMalformed, line: 3, entries: 2, tamper: func(t *testing.T, lf *logFiles) {
		lf.lines = append(lf.lines[:2:2], append([][]byte{{'\n'}}, lf.lines[2:]...)...)
	}},
	{name: "whitespace added", n: 5, kind: KindMalformed, line: 2, entries: 1, tamper: func(t *testing.T, lf *logFiles) {
		lf.lines[1] = bytes.Replace(lf.lines[1], []byte(`,"seq"`), []byte(`, "seq"`), 1)
	}},
	{name: "truncated file", n: 5, kind: KindTruncated, line: 5, entries: 4, tamper: func(t *testing.T, lf *logFiles) {
		lf.lines[4] = lf.lines[4][:len(lf.lines[4])/2]
	}},
	{name: "cut before the newline", n: 5, kind: KindTruncated, line: 5, entries: 4, tamper: func(t *testing.T, lf *logFiles) {
		lf.lines[4] = lf.lines[4][:len(lf.lines[4])-1]
	}},
	{name: "anchor removed", n: 5, kind: KindAnchor, line: 6, entries: 5, tamper: func(t *testing.T, lf *logFiles) {
		lf.anchor = nil
	}},
	{name: "anchor garbled", n: 5, kind: KindAnchor, line: 6, entries: 5, tamper: func(t *testing.T, lf *logFiles) {
		lf.anchor = []byte("{}")
	}},
	{name: "anchor behind is unanchored, not damage", n: 5, entries: 5, tamper: func(t *testing.T, lf *logFiles) {
		lf.anchor = anchorFor(t, *lf, 3)
	}},
	{name: "anchor behind with another hash", n: 5, kind: KindEdited, line: 4, entries: 3, tamper: func(t *testing.T, lf *logFiles) {
		lf.anchor = anchorBytes(4, strings.Repeat("f", 64))
	}},
}

func TestVerify(t *testing.T) {
	for _, tc := range verifyCases {
		t.Run(tc.name, func(t *testing.T) {
			path := writeLog(t, tc.n)
			lf := readLogFiles(t, path)
			tc.tamper(t, &lf)
			lf.write(t, path)
			rep, err := Verify(path)
			if tc.kind == "" {
				if err != nil || !rep.OK() {
					t.Fatalf("Verify = %+v, %v; want success", rep, err)
				}
			} else {
				te, ok := errors.AsType[*TamperError](err)
				if !ok {
					t.Fatalf("Verify error = %v, want a *TamperError", err)
				}
				if te.Kind != tc.kind || te.Line != tc.line || rep.Kind != tc.kind || rep.Line != tc.line {
					t.Fatalf("Verify found %s at line %d (%s), want %s at line %d", te.Kind, te.Line, te.Problem, tc.kind, tc.line)
				}
			}
			if rep.Entries != tc.entries {
				t.Errorf("Verify checked %d entries, want %d", rep.Entries, tc.entries)
			}
		})
	}
}

func TestVerifyReportsUnanchored(t *testing.T) {
	path := writeLog(t, 4)
	lf := readLogFiles(t, path)
	lf.anchor = anchorFor(t, lf, 1)
	lf.write(t, path)
	rep, err := Verify(path)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Unanchored != 2 || rep.AnchorSeq != 2 || rep.LastSeq != 4 {
		t.Fatalf("report %+v, want 2 unanchored entries after anchor seq 2 of 4", rep)
	}
}

func TestVerifyMissingLog(t *testing.T) {
	_, err := Verify(filepath.Join(t.TempDir(), "nope.log"))
	if err == nil || errors.As(err, new(*TamperError)) || !strings.Contains(err.Error(), "open audit log") {
		t.Fatalf("Verify of a missing file: %v", err)
	}
}

func TestReadEntries(t *testing.T) {
	path := writeLog(t, 3)
	es, err := ReadEntries(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 3 || es[2].Seq != 3 || es[2].Actor != "tok-c" || es[0].Prev != ZeroHash || es[1].Prev != es[0].Hash {
		t.Fatalf("entries %+v", es)
	}
	if !es[0].Time.Equal(testStart.Add(time.Second)) {
		t.Fatalf("first entry time %v", es[0].Time)
	}
}
