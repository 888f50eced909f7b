package audit

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// helperEnv makes the test binary a writer process for
// TestConcurrentProcesses: "<path>|<actor>|<n>".
const helperEnv = "FLUXPULSE_AUDIT_TEST_WRITER"

func TestMain(m *testing.M) {
	if v := os.Getenv(helperEnv); v != "" {
		os.Exit(writerProcess(v))
	}
	os.Exit(m.Run())
}

func writerProcess(spec string) int {
	parts := strings.Split(spec, "|")
	n, _ := strconv.Atoi(parts[2])
	l, err := Open(parts[0], nil, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	for i := range n {
		l.Log(Entry{Actor: parts[1], Action: ActionTenantCreate, Target: strconv.Itoa(i), Outcome: OutcomeSuccess})
	}
	if err := l.Close(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// countActors verifies the log at path and counts its entries by actor.
func countActors(t *testing.T, path string) map[string]int {
	t.Helper()
	if rep, err := Verify(path); err != nil {
		t.Fatalf("Verify: %v (report %+v)", err, rep)
	}
	es, err := ReadEntries(path)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, e := range es {
		got[e.Actor]++
	}
	return got
}

func TestConcurrentWriters(t *testing.T) {
	const writers, each = 8, 200
	path := filepath.Join(t.TempDir(), "audit.log")
	// Half the goroutines share one Logger; the others have a Logger each
	// on the same file, as separate processes would.
	shared, err := Open(path, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for w := range writers {
		l := shared
		if w%2 == 1 {
			if l, err = Open(path, nil, nil); err != nil {
				t.Fatal(err)
			}
		}
		wg.Go(func() {
			for i := range each {
				l.Log(Entry{Actor: fmt.Sprintf("w%d", w), Action: ActionQuery, Target: strconv.Itoa(i), Outcome: OutcomeSuccess})
			}
			if l != shared {
				if err := l.Close(); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if err := shared.Close(); err != nil {
		t.Fatal(err)
	}
	got := countActors(t, path)
	for w := range writers {
		if got[fmt.Sprintf("w%d", w)] != each {
			t.Fatalf("entries by actor %v, want %d each", got, each)
		}
	}
}

func TestConcurrentProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	const each = 300
	path := filepath.Join(t.TempDir(), "audit", "audit.log")
	l, err := Open(path, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var cmds []*exec.Cmd
	for _, actor := range []string{"cli:p1", "cli:p2"} {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), helperEnv+"="+path+"|"+actor+"|"+strconv.Itoa(each))
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
	}
	// Keep writing until both processes are done, so that the three
	// writers overlap.
	exited := make(chan error, len(cmds))
	for _, cmd := range cmds {
		go func() { exited <- cmd.Wait() }()
	}
	server := 0
	for waiting := len(cmds); waiting > 0; server++ {
		select {
		case err := <-exited:
			if err != nil {
				t.Fatalf("writer process: %v", err)
			}
			waiting--
		default:
		}
		l.Log(Entry{Actor: "server", Action: ActionQuery, Target: strconv.Itoa(server), Outcome: OutcomeSuccess})
		time.Sleep(100 * time.Microsecond) // a pace, not a wait: leaves the lock to the others
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	got := countActors(t, path)
	if got["cli:p1"] != each || got["cli:p2"] != each || got["server"] != server {
		t.Fatalf("entries by actor %v, want %d per process and %d by the server", got, each, server)
	}
	es, _ := ReadEntries(path)
	switches := 0
	for i := 1; i < len(es); i++ {
		if es[i].Actor != es[i-1].Actor {
			switches++
		}
	}
	t.Logf("%d entries, the writer changed %d times", len(es), switches)
}

func TestLogContinuesAfterFragment(t *testing.T) {
	path := writeLog(t, 3)
	// A crash mid-append (or a cut) leaves a line without its newline.
	lf := readLogFiles(t, path)
	lf.lines = append(lf.lines[:2], lf.lines[2][:40])
	lf.write(t, path)
	l, err := Open(path, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	l.Log(Entry{Actor: "after", Action: ActionQuery})
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	// The fragment stays visible as damage, and the new entry chains on
	// after the cut entry, whose seq and hash the anchor kept.
	rep, err := Verify(path)
	if rep.Kind != KindMalformed || rep.Line != 3 || err == nil {
		t.Fatalf("Verify = %+v, %v; want the fragment reported as malformed at line 3", rep, err)
	}
	lf = readLogFiles(t, path)
	if len(lf.lines) != 4 {
		t.Fatalf("log has %d lines, want 4", len(lf.lines))
	}
	lf.lines = append(lf.lines[:2], lf.lines[3])
	lf.write(t, path)
	if rep, _ := Verify(path); rep.Kind != KindRemoved || rep.Line != 3 {
		t.Fatalf("without the fragment: %+v; want the cut entry reported as removed", rep)
	}
}

// TestLogDoesNotHideRemovals checks that appending to a log whose last
// entries were removed (or that was emptied) leaves a gap that Verify
// reports, rather than a fresh chain that would hide the removal.
func TestLogDoesNotHideRemovals(t *testing.T) {
	for _, tc := range []struct {
		name string
		keep int // lines kept of 4
		open bool
		line int
	}{
		{name: "emptied before open", keep: 0, open: true, line: 1},
		{name: "last entries cut before open", keep: 2, open: true, line: 3},
		{name: "emptied while open", keep: 0, line: 1},
		{name: "last entries cut while open", keep: 3, line: 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.log")
			l, err := Open(path, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			for range 4 {
				l.Log(Entry{Action: ActionQuery})
			}
			cut := func() {
				lf := readLogFiles(t, path)
				lf.lines = lf.lines[:tc.keep]
				lf.write(t, path)
			}
			if tc.open {
				l.Close()
				cut()
				if l, err = Open(path, nil, nil); err != nil {
					t.Fatal(err)
				}
			} else {
				cut()
			}
			l.Log(Entry{Action: ActionConfigReload})
			l.Close()
			rep, _ := Verify(path)
			if rep.Kind != KindRemoved || rep.Line != tc.line {
				t.Fatalf("Verify = %+v; want removed at line %d", rep, tc.line)
			}
		})
	}
}

func TestLogEdgeCases(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	reg := prometheus.NewPedanticRegistry()
	l, err := OpenWithOptions(path, Options{Sync: true}, nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("x", 2*MaxLineSize)
	l.Log(Entry{Actor: "a", Action: ActionQuery, Target: long, Details: map[string]any{"q": long}})
	l.Log(Entry{Actor: "a", Action: ActionQuery, Details: map[string]any{"bad": make(chan int)}})
	l.Log(Entry{Actor: "a", Action: ActionQuery, Details: map[string]any{"panics": panicker{}}})
	l.Log(Entry{Actor: "a\xff", Action: ActionQuery, Time: time.Date(20000, 1, 1, 0, 0, 0, 0, time.UTC)})
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	l.Log(Entry{Action: "after.close"})
	if rep, err := Verify(path); err != nil || rep.Entries != 4 {
		t.Fatalf("Verify = %+v, %v", rep, err)
	}
	es, err := ReadEntries(path)
	if err != nil {
		t.Fatal(err)
	}
	if es[0].Details["details_omitted"] == nil || len(es[0].Target) > 2000 {
		t.Errorf("long entry kept its details or target: %d bytes of target", len(es[0].Target))
	}
	for _, e := range es[1:3] {
		if !strings.Contains(fmt.Sprint(e.Details["details_error"]), "encode details") {
			t.Errorf("unencodable details became %v", e.Details)
		}
	}
	if es[3].Actor != "a\uFFFD" || es[3].Time.Year() > 9999 {
		t.Errorf("entry 4: actor %q time %v", es[3].Actor, es[3].Time)
	}
	if got := testutil.ToFloat64(l.failures); got != 1 {
		t.Errorf("write failures = %v, want 1 (the entry after Close)", got)
	}
	if got := testutil.ToFloat64(l.entries.WithLabelValues(ActionQuery)); got != 4 {
		t.Errorf("entries{action=query} = %v, want 4", got)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("log mode %v, %v; want 0600", fi.Mode(), err)
	}
}

type panicker struct{}

func (panicker) MarshalJSON() ([]byte, error) { panic("boom") }

func TestWriteFailureIsCounted(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l, err := Open(path, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	l.f.Close() // every write now fails
	l.Log(Entry{Action: ActionQuery})
	if got := testutil.ToFloat64(l.failures); got != 1 {
		t.Fatalf("write failures = %v, want 1", got)
	}
}

func TestNilLogger(t *testing.T) {
	var l *Logger
	l.Log(Entry{Action: ActionQuery})
	l.RecordPush("t", "a", PushStats{Samples: 1})
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := l.Run(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestOpenRegistersOnce(t *testing.T) {
	reg := prometheus.NewRegistry()
	dir := t.TempDir()
	l, err := Open(filepath.Join(dir, "a.log"), nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := Open(filepath.Join(dir, "b.log"), nil, reg); err == nil || !strings.Contains(err.Error(), "register audit metrics") {
		t.Fatalf("second Open on one registry: %v", err)
	}
}
