package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gogo/protobuf/proto"
	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"

	"github.com/fluxpulse/fluxpulse/testbin"
)

// pushMany pushes series fp_exp{n="00000".."<series-1>"} with samples
// values, one a second ending now, in requests of 10,000 series, with
// auth for the credentials and tenant for X-Scope-OrgID.
func pushMany(t *testing.T, fp *fluxPulse, auth func(*http.Request), tenant string, series, samples int) {
	t.Helper()
	now := time.Now().Truncate(time.Second)
	for from := 0; from < series; from += 10_000 {
		var req prompb.WriteRequest
		for s := from; s < min(series, from+10_000); s++ {
			ts := prompb.TimeSeries{Labels: []prompb.Label{{Name: "__name__", Value: "fp_exp"}, {Name: "job", Value: "export-test"},
				{Name: "n", Value: fmt.Sprintf("%05d", s)}}}
			for i := range samples {
				ts.Samples = append(ts.Samples, prompb.Sample{Timestamp: now.Add(time.Duration(i-samples) * time.Second).UnixMilli(), Value: float64(s + i)})
			}
			req.Timeseries = append(req.Timeseries, ts)
		}
		b, err := proto.Marshal(&req)
		if err != nil {
			t.Fatal(err)
		}
		if status, body := fp.do(t, request{"POST", "/api/v1/push", snappy.Encode(nil, b), "application/x-protobuf"}, auth, tenant); status != 204 {
			t.Fatalf("push: %d %s", status, body)
		}
	}
}

// TestExportCommand is #14's client command: `fluxpulse export` with a
// token file writes a tenant's series in pages, is killed halfway, and run
// again with the same output resumes where it stopped; the file then holds
// exactly what one export request answers. A finished output is never
// overwritten.
func TestExportCommand(t *testing.T) {
	fp := startFluxPulse(t, "-runtime-config.reload-period=100ms", "-distributor.ingestion-rate-limit=0")
	fp.cli(t, "tenant", "create", "-tenant", "exp")
	tok, _ := fp.newToken(t, "-tenant", "exp", "-scopes", "write,read")
	bearer := func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }
	testbin.Eventually(t, 10*time.Second, func() error {
		if s, b := fp.do(t, request{"GET", "/prometheus/api/v1/labels", nil, ""}, bearer, ""); s != 200 {
			return fmt.Errorf("token not accepted yet: %d %s", s, b)
		}
		return nil
	})
	pushMany(t, fp, bearer, "", 2000, 3)
	_, want := fp.do(t, request{"GET", "/api/v1/export?" + url.Values{"match[]": {`{__name__=~".+"}`}, "format": {"openmetrics"}}.Encode(), nil, ""}, bearer, "")
	if !strings.HasSuffix(want, "# EOF\n") || strings.Count(want, "\n") != 6001 {
		t.Fatalf("the reference export has %d lines", strings.Count(want, "\n"))
	}

	dir := t.TempDir()
	tokenFile, out := filepath.Join(dir, "token"), filepath.Join(dir, "exp.om")
	if err := os.WriteFile(tokenFile, []byte(tok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"export", "-url", fp.url(), "-token-file", tokenFile, "-match", `{__name__=~".+"}`, "-format", "openmetrics",
		"-series-per-request", "1", "-o", out}
	first := testbin.Start(t, fp.bin, nil, args...)
	var progress struct{ Series int }
	testbin.Eventually(t, time.Minute, func() error {
		b, err := os.ReadFile(out + ".progress")
		if err == nil {
			err = json.Unmarshal(b, &progress)
		}
		if err != nil || progress.Series < 100 {
			return fmt.Errorf("progress %+v: %v", progress, err)
		}
		return nil
	})
	first.Kill()
	b, _ := os.ReadFile(out + ".progress")
	_ = json.Unmarshal(b, &progress)
	if progress.Series >= 2000 || !first.Contains("exported ") {
		t.Fatalf("the first run was not stopped halfway: %+v\n%s", progress, first.Output())
	}

	res, err := exec.Command(fp.bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("the second run: %v\n%s", err, res)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, []byte(want)) {
		t.Fatalf("the resumed export (%d bytes) differs from one export request (%d bytes)", len(got), len(want))
	}
	if !strings.Contains(string(res), fmt.Sprintf("resuming after %d series", progress.Series)) || !strings.Contains(string(res), "exported 2000 series") {
		t.Fatalf("the second run says:\n%s", res)
	}
	if _, err := os.Stat(out + ".progress"); !os.IsNotExist(err) {
		t.Fatalf("the progress file is left: %v", err)
	}
	if res, err := exec.Command(fp.bin, args...).CombinedOutput(); err == nil || !strings.Contains(string(res), "is not an unfinished export") {
		t.Fatalf("a third run over the finished file: %v\n%s", err, res)
	}
	t.Logf("first run stopped after %d series; the second wrote the rest", progress.Series)
}

// TestExportMemory is #14's bound on the export: 100,000 series of 120
// samples each, exported whole in jsonl, OpenMetrics and CSV, must not raise
// the server's resident memory by 100 MiB over its idle figure. It logs
// the throughput.
func TestExportMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("pushes 12 million samples")
	}
	const series, samples = 100_000, 120
	fp := startFluxPulse(t, "-auth.mode=header", "-distributor.ingestion-rate-limit=0", "-ingester.max-series-per-tenant=0")
	pushMany(t, fp, nil, "big", series, samples)
	client := &http.Client{Timeout: 5 * time.Minute}
	export := func(format string) (lines, bytes int64, took time.Duration) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, fp.url()+"/api/v1/export?"+url.Values{"match[]": {"fp_exp"}, "format": {format}}.Encode(), nil)
		req.Header.Set("X-Scope-OrgID", "big")
		start := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		buf := make([]byte, 256<<10)
		for {
			n, err := resp.Body.Read(buf)
			bytes += int64(n)
			lines += int64(strings.Count(string(buf[:n]), "\n"))
			if err != nil {
				break
			}
		}
		if status := resp.Trailer.Get("X-FluxPulse-Export-Status"); resp.StatusCode != 200 || status != "complete" {
			t.Fatalf("%s export: %d, %q", format, resp.StatusCode, status)
		}
		return lines, bytes, time.Since(start)
	}
	export("jsonl") // warm: code paths, pools and the head's postings are in use before the idle figure
	for _, tc := range []struct {
		format string
		lines  int64
	}{{"jsonl", series}, {"openmetrics", series*samples + 1}, {"csv", series*samples + 1}} {
		// Each export's garbage waits for the next collection (GOGC=200):
		// the idle figure is taken anew before each.
		idle := settledRSS(t, fp)
		stop := make(chan struct{})
		peak := peakRSS(t, fp.proc.Pid(), stop)
		lines, n, took := export(tc.format)
		close(stop)
		grew := <-peak - idle
		t.Logf("%s: %d samples, %d MiB in %s: %.0f samples/s; resident memory %d MiB idle, +%d MiB at the peak",
			tc.format, series*samples, n>>20, took.Round(time.Millisecond), float64(series*samples)/took.Seconds(), idle>>20, grew>>20)
		if lines != tc.lines {
			t.Errorf("%s: %d lines, want %d", tc.format, lines, tc.lines)
		}
		if grew > 100<<20 {
			t.Errorf("%s: resident memory grew by %d MiB during the export, more than 100 MiB", tc.format, grew>>20)
		}
	}
}

// settledRSS returns the process's resident memory once it has stopped
// falling: after a collection (pprof's heap profile with gc=1), the
// runtime hands freed memory back to the system over some seconds, and
// the distributor its buffers after 5s idle.
func settledRSS(t *testing.T, fp *fluxPulse) int64 {
	t.Helper()
	var readings []int64
	testbin.Eventually(t, 2*time.Minute, func() error {
		if _, err := get(fp.internalURL() + "/debug/pprof/heap?gc=1"); err != nil {
			return err
		}
		readings = append(readings, rss(t, fp.proc.Pid()))
		if n := len(readings); n < 6 || slices.Max(readings[n-5:])-slices.Min(readings[n-5:]) > 8<<20 {
			time.Sleep(time.Second)
			return fmt.Errorf("resident memory still moving: %d MiB", readings[n-1]>>20)
		}
		return nil
	})
	return readings[len(readings)-1]
}
