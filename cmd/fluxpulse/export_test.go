package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestExportRefusals is the table of what `fluxpulse export` refuses
// before it asks the server anything (#14).
func TestExportRefusals(t *testing.T) {
	dir := t.TempDir()
	done := filepath.Join(dir, "done.jsonl")
	if err := os.WriteFile(done, []byte("{}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(dir, "other.jsonl")
	b, _ := json.Marshal(exportProgress{Job: exportJob{URL: "http://elsewhere", Match: []string{"up"}, Format: "jsonl"}})
	if err := os.WriteFile(other, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(other+".progress", b, 0o600); err != nil {
		t.Fatal(err)
	}
	base := []string{"-url", "http://127.0.0.1:1", "-match", "up"}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no url", []string{"-match", "up", "-o", "x"}, "-url must be set"},
		{"no match", []string{"-url", "http://x", "-o", "x"}, "-match must be set"},
		{"no output", base, "-o must be set"},
		{"bad format", append(base, "-o", "x", "-format", "xml"), "-format must be jsonl, openmetrics or csv"},
		{"columns without csv", append(base, "-o", "x", "-columns", "a"), "-columns applies to -format csv only"},
		{"no page size", append(base, "-o", "x", "-series-per-request", "0"), "-series-per-request must be positive"},
		{"missing token file", append(base, "-o", "x", "-token-file", filepath.Join(dir, "none")), "-token-file"},
		{"a finished file", append(base, "-o", done), "is not an unfinished export"},
		{"another job's file", append(base, "-o", other), "unfinished export with other flags"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			err := runExport(tc.args, &bytes.Buffer{}, &stderr)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error mentioning %q", err, tc.want)
			}
		})
	}
}

func TestProgressBar(t *testing.T) {
	var w bytes.Buffer
	p := &progressBar{w: &w, terminal: true}
	p.start(0, 200, 0)
	p.page(100, 3<<20)
	p.stop()
	if got := w.String(); !strings.Contains(got, "\r[===============               ] 100/200 series  3.0 MiB") || !strings.HasSuffix(got, "\n") {
		t.Fatalf("terminal: %q", got)
	}
	w.Reset()
	p = &progressBar{w: &w}
	p.start(5, 0, 10)
	p.page(7, 1<<20)
	if got := w.String(); got != "resuming after 5 series (10 bytes)\nexported 5 of ? series, 0.0 MiB\nexported 7 of ? series, 1.0 MiB\n" {
		t.Fatalf("plain: %q", got)
	}
}
