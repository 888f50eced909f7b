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
