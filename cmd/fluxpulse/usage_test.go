package main

import (
	"bytes"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fluxpulse/fluxpulse/usage"
)

func TestUsageCommand(t *testing.T) {
	dataDir := t.TempDir()
	hour := time.Date(2025, 3, 4, 10, 0, 0, 0, time.UTC)
	r, err := usage.NewRecorderWithOptions(usageDir(dataDir), nil, usage.Options{Now: func() time.Time { return hour.Add(time.Minute) }}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	r.Add("team-a", usage.SamplesReceived, 42)
	r.Add("team-b", usage.Queries, 1)
	if err := r.Flush(); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := runUsage(append([]string{"report", "-data.dir", dataDir}, args...), &out, io.Discard)
		return out.String(), err
	}
	out, err := run("-from", "2025-03-04T00:00:00Z", "-to", "1741132800", "-tenant", "team-a", "-format", "csv")
	if err != nil {
		t.Fatal(err)
	}
	if want := "2025-03-04T10:00:00Z,team-a,true,42,"; !strings.Contains(out, want) || strings.Contains(out, "team-b") {
		t.Errorf("csv report %q, want a row starting %q and no team-b", out, want)
	}
	if out, err := run("-from", "2025-03-04T00:00:00Z", "-to", "2025-03-05T00:00:00Z"); err != nil || strings.Count(out, `"tenant"`) != 2 {
		t.Errorf("json report %q, %v", out, err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-from", "soon"}, "-from"},
		{[]string{"-from", "2025-03-05T00:00:00Z", "-to", "2025-03-04T00:00:00Z"}, "must be before"},
		{[]string{"-format", "xml"}, "json or csv"},
		{[]string{"-data.dir", filepath.Join(dataDir, "nope")}, "no usage recorded"},
	} {
		if _, err := run(tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("usage report %q: %v, want an error containing %q", tc.args, err, tc.want)
		}
	}
	if err := runUsage([]string{"show"}, io.Discard, io.Discard); err == nil {
		t.Error("unknown command accepted")
	}
}
