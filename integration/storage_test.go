package integration

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gogo/protobuf/proto"
	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"

	"github.com/fluxpulse/fluxpulse/bucket"
	"github.com/fluxpulse/fluxpulse/bucket/buckettest"
	"github.com/fluxpulse/fluxpulse/testbin"
)

// series is what a test pushed: timestamps and values by series label.
type series map[string][][2]float64

// pushHistory pushes n series of metric (labels with "secret" names and
// values, to look for in the raw bucket), one sample every 15s over the
// given minutes ending 5 minutes ago, in time order.
func pushHistory(t *testing.T, base, tenant, metric string, n, minutes int) series {
	t.Helper()
	start := time.Now().Add(-time.Duration(minutes+5) * time.Minute).Truncate(15 * time.Second)
	return pushHistoryAt(t, base, tenant, metric, n, minutes, start)
}

// pushHistoryAt is pushHistory from start: two calls with the same start
// push identical samples.
func pushHistoryAt(t *testing.T, base, tenant, metric string, n, minutes int, start time.Time) series {
	t.Helper()
	want := series{}
	for step := range minutes * 4 {
		ts := start.Add(time.Duration(step) * 15 * time.Second).UnixMilli()
		var req prompb.WriteRequest
		for s := range n {
			id := fmt.Sprintf("fp_secret_value_%03d", s)
			v := float64(s*10000 + step)
			req.Timeseries = append(req.Timeseries, prompb.TimeSeries{
				Labels:  []prompb.Label{{Name: "__name__", Value: metric}, {Name: "fp_secret_label", Value: id}},
				Samples: []prompb.Sample{{Value: v, Timestamp: ts}},
			})
			want[id] = append(want[id], [2]float64{float64(ts), v})
		}
		b, err := proto.Marshal(&req)
		if err != nil {
			t.Fatal(err)
		}
		if status, body := post(t, base, tenant, "application/x-protobuf", snappy.Encode(nil, b)); status != 204 {
			t.Fatalf("push: %d %s", status, body)
		}
	}
	return want
}

// export reads a tenant's series of metric through the export API.
func export(t *testing.T, base, tenant, metric string) (series, int, string) {
	t.Helper()
	return exportBy(t, base, tenant, metric, "fp_secret_label")
}

// exportBy reads the series matching match through the export API, by
// the value of their label key.
func exportBy(t *testing.T, base, tenant, match, key string) (series, int, string) {
	t.Helper()
	status, body := api(t, base+"/prometheus", "/api/v1/export", url.Values{"match[]": {match}}, tenant)
	got := series{}
	if status != http.StatusOK {
		return got, status, string(body)
	}
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		var line struct {
			Metric     map[string]string
			Values     []float64
			Timestamps []int64
			Error      string
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("export line %q: %v", sc.Text(), err)
		}
		if line.Error != "" {
			return got, 500, line.Error
		}
		id := line.Metric[key]
		for i, ts := range line.Timestamps {
			got[id] = append(got[id], [2]float64{float64(ts), line.Values[i]})
		}
	}
	return got, status, string(body)
}

func sameSeries(t *testing.T, what string, got, want series) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		n := 0
		for _, v := range got {
			n += len(v)
		}
		m := 0
		for _, v := range want {
			m += len(v)
		}
		t.Fatalf("%s: %d series with %d samples, want %d series with %d samples", what, len(got), n, len(want), m)
	}
}

// s3Args returns the flags that point FluxPulse at a versitygw bucket over
// TLS, trusting its self-signed certificate.
func s3Args(t *testing.T) (*buckettest.S3Server, []string) {
	s3 := buckettest.StartS3(t, true)
	s3.NewBucket(t) // test-1
	c := s3.Config("test-1")
	return s3, []string{"-blocks-storage.backend=s3", "-blocks-storage.s3.endpoint=" + c.Endpoint, "-blocks-storage.s3.bucket-name=test-1",
		"-blocks-storage.s3.access-key-id=" + c.AccessKeyID, "-blocks-storage.s3.secret-access-key=" + string(c.SecretAccessKey),
		"-blocks-storage.s3.force-path-style", "-blocks-storage.s3.tls-ca-file=" + c.TLSCAFile}
}

// blockCount returns the tenant's live and marked blocks, from the CLI.
func (f *fluxPulse) blockCount(t *testing.T, storage []string, tenant string) (live, marked int) {
	t.Helper()
	out, err := exec.Command(f.bin, append([]string{"blocks", "-tenant", tenant, "-format", "json", "-data.dir", f.dir}, storage...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("fluxpulse blocks: %v\n%s", err, out)
	}
	var infos []struct {
		MarkedDeleted bool `json:"marked_for_deletion"`
	}
	if err := json.Unmarshal(out, &infos); err != nil {
		t.Fatalf("decode %s: %v", out, err)
	}
	for _, b := range infos {
		if b.MarkedDeleted {
			marked++
		} else {
			live++
		}
	}
	return live, marked
}

// TestBlocksInS3 is issue 3 end to end against a real S3 server: data spanning
// many blocks survives the loss of the ingester's disk, nothing readable is
// in the bucket, tampering is refused, compaction, retention, key rotation and
// tenant deletion keep their promises.
func TestBlocksInS3(t *testing.T) {
	s3, storage := s3Args(t)
	rt := filepath.Join(t.TempDir(), "runtime.yaml")
	if err := os.WriteFile(rt, []byte("tenants:\n  short:\n    limits: {compactor_blocks_retention_period: 12m}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	common := append([]string{"-auth.mode=header", "-runtime-config.file=" + rt, "-distributor.ingestion-rate-limit=0",
		"-ingester.block-range=1m", "-ingester.ship-interval=300ms", "-ingester.retention-period=1m", "-ingester.flush-on-shutdown",
		"-blocks-storage.sync-interval=300ms", "-compactor.block-ranges=1m,4m,8m", "-compactor.deletion-delay=1s"}, storage...)
	fp := startFluxPulse(t, append(common, "-compactor.compaction-interval=1h")...)

	want := pushHistory(t, fp.url(), "main", "fp_hist", 100, 20)
	short := pushHistory(t, fp.url(), "short", "fp_hist", 10, 20)
	pushHistory(t, fp.url(), "victim", "fp_hist", 10, 5)
	pushHistory(t, fp.url(), "gone", "fp_hist", 10, 5)
	testbin.Eventually(t, time.Minute, func() error {
		if live, _ := fp.blockCount(t, storage, "main"); live < 15 {
			return fmt.Errorf("%d blocks shipped so far", live)
		}
		return nil
	})

	// The ingester's disk is lost: everything must come back from S3.
	if err := fp.proc.Stop(time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(fp.dir, "tsdb")); err != nil {
		t.Fatal(err)
	}
	fp.args = append(common, "-compactor.compaction-interval=1h")
	fp.start()
	got, status, body := export(t, fp.url(), "main", "fp_hist")
	if status != 200 {
		t.Fatalf("export after losing the local disk: %d %s", status, body)
	}
	sameSeries(t, "after losing the local disk", got, want)
	before, _ := fp.blockCount(t, storage, "main")

	t.Run("no plaintext in the bucket", func(t *testing.T) { scanPlaintext(t, s3.Dir) })
	t.Run("tampering is refused", func(t *testing.T) { tamper(t, fp, s3) })

	// Compaction, retention and key rotation, on a running server.
	if err := fp.proc.Stop(time.Minute); err != nil {
		t.Fatal(err)
	}
	fp.args = append(common, "-compactor.compaction-interval=500ms")
	restarted := time.Now()
	fp.start()
	testbin.Eventually(t, 2*time.Minute, func() error {
		live, marked := fp.blockCount(t, storage, "main")
		if live > 4 || marked > 0 {
			return fmt.Errorf("%d live and %d marked blocks (%d before compaction)", live, marked, before)
		}
		return nil
	})
	after, _ := fp.blockCount(t, storage, "main")
	t.Logf("compaction: %d blocks before, %d after", before, after)
	got, _, _ = export(t, fp.url(), "main", "fp_hist")
	sameSeries(t, "after compaction", got, want)

	gotShort, _, _ := export(t, fp.url(), "short", "fp_hist")
	// Retention drops whole blocks: one whose newest sample is older than
	// 12m goes; a kept block (up to 8m, the largest range here) may hold
	// samples up to 20m old, counted from the first pass after the restart.
	cutoff := float64(restarted.Add(-20 * time.Minute).UnixMilli())
	for id, samples := range gotShort {
		if samples[0][0] < cutoff || len(samples) >= len(short[id]) {
			t.Fatalf("retention of 12m kept %d of %d samples of %s, the oldest at %s (restarted at %s)", len(samples), len(short[id]), id,
				time.UnixMilli(int64(samples[0][0])).Format(time.TimeOnly), restarted.Format(time.TimeOnly))
		}
	}

	for _, args := range [][]string{{"keys", "rotate-master"}, {"keys", "rotate-tenant", "-tenant", "main"}} {
		if out, err := exec.Command(fp.bin, append(append(args, "-data.dir", fp.dir), storage...)...).CombinedOutput(); err != nil {
			t.Fatalf("fluxpulse %v: %v\n%s", args, err, out)
		}
	}
	got, _, _ = export(t, fp.url(), "main", "fp_hist")
	sameSeries(t, "after key rotation", got, want)

	// Tenant deletion: unreadable at once, objects gone soon after.
	req, _ := http.NewRequest(http.MethodDelete, fp.url()+"/api/v1/admin/tenants/gone", nil)
	req.Header.Set("X-Scope-OrgID", "gone")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("delete tenant: %v %v", err, resp)
	}
	resp.Body.Close()
	if got, status, body := export(t, fp.url(), "gone", "fp_hist"); status != 200 || len(got) != 0 {
		t.Fatalf("a deleted tenant's export: %d, %d series: %s", status, len(got), body)
	}
	testbin.Eventually(t, time.Minute, func() error {
		if n := countFiles(t, filepath.Join(s3.Dir, "test-1", "gone")); n > 0 {
			return fmt.Errorf("%d objects of the deleted tenant left", n)
		}
		return nil
	})
}

// scanPlaintext reads every file the S3 server keeps and looks for the
// label names and values that were pushed. A file that vanishes while it
// is read (a part of an upload in progress, which the server keeps in a
// temporary directory) is skipped: it made the test fail now and then.
func scanPlaintext(t *testing.T, dir string) {
	files := 0
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		files++
		for _, s := range []string{"fp_secret", "fp_hist", "secret_value"} {
			if bytes.Contains(b, []byte(s)) {
				t.Errorf("%s holds %q in plaintext", p, s)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 20 {
		t.Fatalf("only %d files in the bucket", files)
	}
}

func countFiles(t *testing.T, dir string) int {
	n := 0
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			n++
		}
		return nil
	})
	return n
}

// tamper flips a bit in a chunk file of tenant victim, on the S3 server's
// disk, and copies a block of tenant main under tenant copycat through the
// S3 API, as someone with access to the bucket could: both must give a
// decryption error, never data.
func tamper(t *testing.T, fp *fluxPulse, s3 *buckettest.S3Server) {
	root := filepath.Join(s3.Dir, "test-1")
	var chunk string
	_ = filepath.WalkDir(filepath.Join(root, "victim", "blocks"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && filepath.Base(filepath.Dir(p)) == "chunks" && chunk == "" {
			chunk = p
		}
		return nil
	})
	if chunk == "" {
		t.Fatal("no chunk file to tamper with")
	}
	b, err := os.ReadFile(chunk)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x10
	if err := os.WriteFile(chunk, b, 0o600); err != nil {
		t.Fatal(err)
	}

	raw, err := bucket.NewS3(s3.Config("test-1"), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	var names []string
	if err := raw.Iter(ctx, "main/blocks", bucket.IterOptions{Recursive: true}, func(n string) error {
		names = append(names, n)
		return nil
	}); err != nil || len(names) == 0 {
		t.Fatalf("list main's objects: %v (%d)", err, len(names))
	}
	// A live block: complete (meta.json) and not marked for deletion by the
	// compactor, which runs once at every start.
	complete, marked := map[string]bool{}, map[string]bool{}
	for _, n := range names {
		dir := strings.Join(strings.SplitN(n, "/", 4)[:3], "/") // main/blocks/<ULID>
		complete[dir] = complete[dir] || strings.HasSuffix(n, "/meta.json")
		marked[dir] = marked[dir] || strings.HasSuffix(n, "/deletion-mark.json")
	}
	block := ""
	for dir := range complete {
		if complete[dir] && !marked[dir] {
			block = dir
		}
	}
	if block == "" {
		t.Fatal("no live block of main to copy")
	}
	for _, n := range names {
		// The compactor may have marked the block for deletion already: the
		// copy is of a live block.
		if !strings.HasPrefix(n, block+"/") || strings.HasSuffix(n, "/deletion-mark.json") {
			continue
		}
		r, err := raw.Get(ctx, n)
		if err != nil {
			t.Fatal(err)
		}
		err = raw.Upload(ctx, "copycat/"+strings.TrimPrefix(n, "main/"), r)
		r.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, tenant := range []string{"victim", "copycat"} {
		testbin.Eventually(t, 30*time.Second, func() error {
			got, status, body := export(t, fp.url(), tenant, "fp_hist")
			if !strings.Contains(strings.ToLower(body), "decrypt") {
				return fmt.Errorf("tenant %s: %d, %d series, %.300s: want a decryption error", tenant, status, len(got), body)
			}
			return nil
		})
	}
}
