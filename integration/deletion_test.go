package integration

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gogo/protobuf/proto"
	"github.com/golang/snappy"
	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/fluxpulse/fluxpulse/blockstore/blockstoretest"
	"github.com/fluxpulse/fluxpulse/bucket"
	"github.com/fluxpulse/fluxpulse/encryption"
	"github.com/fluxpulse/fluxpulse/rpc"
	"github.com/fluxpulse/fluxpulse/tenantauth"
	"github.com/fluxpulse/fluxpulse/testbin"
)

// delData is what the deletion tests push: fp_del{host="h00".."h19",
// source="del"}, every 15s over 20 minutes ending 5 minutes ago (shipped
// to the bucket), and over the last minute (kept in the head), with an
// exemplar on the newest sample of h05 and h19.
type delData struct {
	histStart, recentStart time.Time
	hosts                  []string
}

func newDelData() delData {
	now := time.Now()
	d := delData{histStart: now.Add(-25 * time.Minute).Truncate(15 * time.Second), recentStart: now.Add(-time.Minute).Truncate(15 * time.Second)}
	for k := range 20 {
		d.hosts = append(d.hosts, fmt.Sprintf("h%02d", k))
	}
	return d
}

// push sends the data to a tenant, in time order, one request a step.
func (d delData) push(t *testing.T, base, tenant string) {
	t.Helper()
	send := func(start time.Time, steps int, exemplars bool) {
		for step := range steps {
			ts := start.Add(time.Duration(step) * 15 * time.Second).UnixMilli()
			var req prompb.WriteRequest
			for k, h := range d.hosts {
				s := prompb.TimeSeries{Labels: []prompb.Label{{Name: "__name__", Value: "fp_del"}, {Name: "host", Value: h}, {Name: "source", Value: "del"}},
					Samples: []prompb.Sample{{Value: float64(k*1000 + step), Timestamp: ts}}}
				if exemplars && step == steps-1 && (h == "h05" || h == "h19") {
					s.Exemplars = []prompb.Exemplar{{Labels: []prompb.Label{{Name: "trace_id", Value: "trace-" + h}}, Value: 1, Timestamp: ts}}
				}
				req.Timeseries = append(req.Timeseries, s)
			}
			b, err := proto.Marshal(&req)
			if err != nil {
				t.Fatal(err)
			}
			if status, body := post(t, base, tenant, "application/x-protobuf", snappy.Encode(nil, b)); status != 204 {
				t.Fatalf("push: %d %s", status, body)
			}
		}
	}
	send(d.histStart, 80, false)
	send(d.recentStart, 5, true)
}

// The requests of the deletion tests: hosts h00-h04 lose seven minutes of
// their shipped history, h19 goes whole (head included), h10's request is
// cancelled.
func (d delData) rangeStart() time.Time { return d.histStart.Add(8 * time.Minute) }
func (d delData) rangeEnd() time.Time   { return d.histStart.Add(15 * time.Minute) }

func (d delData) deleted(host string, ts int64) bool {
	if host == "h19" {
		return true
	}
	return host >= "h00" && host <= "h04" && ts >= d.rangeStart().UnixMilli() && ts <= d.rangeEnd().UnixMilli()
}

// without is s without what the requests delete.
func (d delData) without(s series) series {
	out := series{}
	for host, samples := range s {
		for _, p := range samples {
			if !d.deleted(host, int64(p[0])) {
				out[host] = append(out[host], p)
			}
		}
	}
	return out
}

// deleteSeries makes a deletion request and returns its ID.
func deleteSeries(t *testing.T, base, tenant string, params url.Values) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+"/prometheus/api/v1/admin/tsdb/delete_series?"+params.Encode(), nil)
	req.Header.Set("X-Scope-OrgID", tenant)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	id := resp.Header.Get("X-FluxPulse-Delete-Request-Id")
	if resp.StatusCode != http.StatusNoContent || id == "" {
		t.Fatalf("delete_series %v: %s, request %q", params, resp.Status, id)
	}
	return id
}

// deletionStates returns the states of a tenant's deletion requests by ID.
func deletionStates(t *testing.T, base, tenant string) map[string]string {
	t.Helper()
	status, body := api(t, base, "/api/v1/admin/tsdb/delete_series", nil, tenant)
	if status != 200 {
		t.Fatalf("list deletion requests: %d %s", status, body)
	}
	var reqs []struct {
		ID    string `json:"request_id"`
		State string `json:"state"`
	}
	if err := json.Unmarshal(body, &reqs); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, r := range reqs {
		out[r.ID] = r.State
	}
	return out
}

// TestSeriesDeletionInS3 is #14's deletion end to end against a real
// server on a real S3 bucket (versitygw): series shipped to the bucket and
// in the head, a subset deleted by matchers and time range, every read
// endpoint hiding it at once, a restart before processing, a cancelled
// request, and after processing a scan of every block of the bucket
// through the decrypting block reader and of the ingester's TSDB finds no
// deleted sample, while every other series, and another tenant's identical
// ones, read exactly as before, sample by sample.
func TestSeriesDeletionInS3(t *testing.T) {
	s3, storage := s3Args(t)
	args := append([]string{"-auth.mode=header", "-distributor.ingestion-rate-limit=0", "-ingester.block-range=1m",
		"-ingester.ship-interval=300ms", "-ingester.retention-period=1m", "-blocks-storage.sync-interval=300ms",
		"-compactor.block-ranges=1m,4m,8m", "-compactor.deletion-delay=1s", "-compactor.compaction-interval=500ms",
		"-purger.delete-request-cancel-period=30s", "-ruler.min-evaluation-interval=1s"}, storage...)
	fp := startFluxPulse(t, args...)
	d := newDelData()
	d.push(t, fp.url(), "main")
	d.push(t, fp.url(), "other")
	testbin.Eventually(t, time.Minute, func() error {
		if live, _ := fp.blockCount(t, storage, "main"); live < 10 {
			return fmt.Errorf("%d blocks shipped so far", live)
		}
		return nil
	})
	startRule(t, fp)
	before := map[string]series{}
	for _, tenant := range []string{"main", "other"} {
		before[tenant], _, _ = exportBy(t, fp.url(), tenant, "fp_del", "host")
	}
	if n := len(before["main"]["h00"]); n != 85 {
		t.Fatalf("h00 has %d samples before the deletion, want 85", n)
	}

	ids := []string{
		deleteSeries(t, fp.url(), "main", url.Values{"match[]": {`fp_del{host=~"h0[0-4]"}`}, "start": {ts(d.rangeStart())}, "end": {ts(d.rangeEnd())}}),
		deleteSeries(t, fp.url(), "main", url.Values{"match[]": {`{host="h19"}`}}),
	}
	cancelled := deleteSeries(t, fp.url(), "main", url.Values{"match[]": {`{host="h10"}`}})
	req, _ := http.NewRequest(http.MethodPost, fp.url()+"/api/v1/admin/tsdb/cancel_delete_request?request_id="+cancelled, nil)
	req.Header.Set("X-Scope-OrgID", "main")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("cancel: %v %v", err, resp)
	}
	checkHidden(t, fp, d, before["main"])

	// A restart before the requests are carried out loses none of them.
	if err := fp.proc.Stop(time.Minute); err != nil {
		t.Fatal(err)
	}
	fp.start()
	states := deletionStates(t, fp.url(), "main")
	if states[ids[0]] != "pending" || states[ids[1]] != "pending" || states[cancelled] != "cancelled" {
		t.Fatalf("after the restart: %v", states)
	}
	checkHidden(t, fp, d, before["main"])
	testbin.Eventually(t, 3*time.Minute, func() error {
		if s := deletionStates(t, fp.url(), "main"); s[ids[0]] != "processed" || s[ids[1]] != "processed" {
			return fmt.Errorf("requests %v", s)
		}
		return nil
	})
	after, _, _ := exportBy(t, fp.url(), "main", "fp_del", "host")
	sameSeries(t, "tenant main after processing", after, d.without(before["main"]))
	other, _, _ := exportBy(t, fp.url(), "other", "fp_del", "host")
	sameSeries(t, "tenant other after processing", other, before["other"])

	if err := fp.proc.Stop(time.Minute); err != nil {
		t.Fatal(err)
	}
	// Every request, cancellation and completion is in the audit log.
	shown := fp.cli(t, "audit", "show", "-tenant", "main")
	for _, want := range []string{`"action":"deletion.request","target":"POST /prometheus/api/v1/admin/tsdb/delete_series"`,
		`"action":"deletion.cancel"`, `"action":"deletion.processed","target":"` + ids[0], `"action":"deletion.processed","target":"` + ids[1]} {
		if !strings.Contains(shown, want) {
			t.Errorf("the audit log lacks %s", want)
		}
	}
	scanned := scanBucket(t, s3.Config("test-1"), filepath.Join(fp.dir, encryption.DefaultKeyFileName), d)
	heads := scanTSDB(t, filepath.Join(fp.dir, "tsdb", "main"), d)
	t.Logf("scanned %d blocks of the bucket and %d samples of the ingester's TSDB: no deleted sample", scanned, heads)
}

// startRule makes the ruler record count(count_over_time(fp_del{host="h19"}[1h]))
// every second, and waits for its first result.
func startRule(t *testing.T, fp *fluxPulse) {
	t.Helper()
	group := []byte("name: del\ninterval: 1s\nrules:\n  - record: del:h19\n    expr: count(count_over_time(fp_del{host=\"h19\"}[1h]))\n")
	req, _ := http.NewRequest(http.MethodPost, fp.url()+"/prometheus/config/v1/rules/ns", strings.NewReader(string(group)))
	req.Header.Set("X-Scope-OrgID", "main")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("create rule group: %v %v", err, resp)
	}
	resp.Body.Close()
	testbin.Eventually(t, time.Minute, func() error {
		if len(instant(t, fp.url()+"/prometheus", "del:h19", time.Now(), "main")) == 0 {
			return fmt.Errorf("the rule recorded nothing yet")
		}
		return nil
	})
}

// checkHidden asks every read endpoint for what the requests delete.
func checkHidden(t *testing.T, fp *fluxPulse, d delData, before series) {
	t.Helper()
	base := fp.url() + "/prometheus"
	start, end := d.histStart.Add(-time.Minute), time.Now().Add(time.Minute)
	all := url.Values{"start": {ts(start)}, "end": {ts(end)}}
	inRange := url.Values{"start": {ts(d.rangeStart().Add(time.Minute))}, "end": {ts(d.rangeEnd().Add(-time.Minute))}}
	want := d.without(before)

	got, _, _ := exportBy(t, fp.url(), "main", "fp_del", "host")
	sameSeries(t, "export", got, want)
	counts := map[string]string{}
	for _, r := range instant(t, base, `count_over_time(fp_del[1h])`, time.Now(), "main") {
		m := r.(map[string]any)
		counts[m["metric"].(map[string]any)["host"].(string)] = m["value"].([]any)[1].(string)
	}
	for _, h := range d.hosts {
		if w := fmt.Sprint(len(want[h])); counts[h] != w && !(w == "0" && counts[h] == "") {
			t.Errorf("query: %s has %s samples, want %s", h, counts[h], w)
		}
	}
	rng := apiData(t, base, "/api/v1/query_range", with(inRange, "query", `count_over_time(fp_del{host=~"h0[0-4]|h19"}[1m])`, "step", "30"), "main")
	if res := rng.(map[string]any)["result"].([]any); len(res) != 0 {
		t.Errorf("query_range over the deleted range: %v", short(res))
	}
	check := func(what string, got, want any) {
		t.Helper()
		if !reflect.DeepEqual(normalize(got), normalize(want)) {
			t.Errorf("%s: %v, want %v", what, short(got), short(want))
		}
	}
	hostsOf := func(v any) []any {
		var out []any
		for _, s := range v.([]any) {
			out = append(out, s.(map[string]any)["host"])
		}
		return out
	}
	check("series in the deleted range", hostsOf(apiData(t, base, "/api/v1/series", with(inRange, "match[]", "fp_del"), "main")),
		[]any{"h05", "h06", "h07", "h08", "h09", "h10", "h11", "h12", "h13", "h14", "h15", "h16", "h17", "h18"})
	check("labels of h19", apiData(t, base, "/api/v1/labels", with(all, "match[]", `{host="h19"}`), "main"), []any{})
	values := apiData(t, base, "/api/v1/label/host/values", all, "main").([]any)
	check("label values of host", len(values), 19)
	ex := apiData(t, base, "/api/v1/query_exemplars", with(all, "query", "fp_del"), "main").([]any)
	if len(ex) != 1 || ex[0].(map[string]any)["seriesLabels"].(map[string]any)["host"] != "h05" {
		t.Errorf("exemplars: %v, want those of h05 alone", short(ex))
	}
	if n := remoteReadSeries(t, fp.url(), "main", "del", start, end); n != 19 {
		t.Errorf("remote read: %d series, want 19", n)
	}
	if n := remoteReadSeries(t, fp.url(), "main", "del", d.rangeStart().Add(time.Minute), d.rangeEnd().Add(-time.Minute)); n != 14 {
		t.Errorf("remote read of the deleted range: %d series, want 14", n)
	}
	testbin.Eventually(t, 30*time.Second, func() error {
		if res := instant(t, base, "del:h19", time.Now(), "main"); len(res) != 0 {
			return fmt.Errorf("the ruler still records h19: %v", short(res))
		}
		return nil
	})
	if got := instant(t, base, `count(fp_del)`, time.Now(), "other"); len(got) != 1 || valueOf(got) != "20" {
		t.Errorf("tenant other: count(fp_del) = %v, want 20", short(got))
	}
}

// with returns v with the name-value pairs kv added.
func with(v url.Values, kv ...string) url.Values {
	out := url.Values{}
	for k, vs := range v {
		out[k] = vs
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out.Add(kv[i], kv[i+1])
	}
	return out
}

// scanBucket reads every block of tenant main in the bucket through the
// block store's decrypting reader and fails on any deleted sample.
func scanBucket(t *testing.T, cfg bucket.S3Config, keyFile string, d delData) int {
	t.Helper()
	raw, err := bucket.NewS3(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	enc, _, err := encryption.New(encryption.Config{KeyFile: keyFile, KeyCacheTTL: time.Minute}, raw, nil)
	if err != nil {
		t.Fatal(err)
	}
	samples := 0
	n := blockstoretest.ScanBlocks(t, enc, "main", func(id ulid.ULID, ls labels.Labels, ts int64, _ float64) {
		samples++
		if d.deleted(ls.Get("host"), ts) {
			t.Fatalf("block %s holds %s at %s", id, ls, time.UnixMilli(ts).Format(time.TimeOnly))
		}
	})
	if n == 0 || samples < 15*80 {
		t.Fatalf("%d blocks with %d samples in the bucket", n, samples)
	}
	return n
}

// scanTSDB reads the ingester's TSDB of a tenant (head, WAL replayed with
// its tombstones, and local blocks) and fails on any deleted sample.
func scanTSDB(t *testing.T, dir string, d delData) int {
	t.Helper()
	db, err := tsdb.OpenDBReadOnly(dir, "", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	q, err := db.Querier(math.MinInt64, math.MaxInt64)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	n := 0
	ss := q.Select(t.Context(), false, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "fp_del"))
	for ss.Next() {
		it := ss.At().Iterator(nil)
		for it.Next() != chunkenc.ValNone {
			n++
			if d.deleted(ss.At().Labels().Get("host"), it.AtT()) {
				t.Fatalf("the ingester's TSDB holds %s at %s", ss.At().Labels(), time.UnixMilli(it.AtT()).Format(time.TimeOnly))
			}
		}
	}
	if err := ss.Err(); err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("the ingester's TSDB holds no sample of fp_del at all")
	}
	return n
}

// TestClusterSeriesDeletion is #14 with roles apart (3 ingesters, RF 3, a
// distributor, 2 queriers, a compactor): a request made on one querier
// hides the series at once there and within -purger.reload-period on the
// other; the compactor tells every ingester over gRPC, and once the request
// is processed each ingester's head, read through its own gRPC service,
// holds no deleted sample, and every other sample is there.
func TestClusterSeriesDeletion(t *testing.T) {
	c := startCluster(t, options{ingesters: 3, distributors: 1, queriers: 2, compactors: 1, args: []string{
		"-distributor.ingestion-rate-limit=0", "-purger.delete-request-cancel-period=0s", "-purger.reload-period=1s",
		"-compactor.compaction-interval=500ms"}})
	d := newDelData()
	d.push(t, c.distributors[0].url(), "main")
	q0, q1 := c.queriers[0].url(), c.queriers[1].url()
	before, _, _ := exportBy(t, q0, "main", "fp_del", "host")
	if n := len(before["h00"]); n != 85 {
		t.Fatalf("h00 has %d samples, want 85", n)
	}
	id := deleteSeries(t, q0, "main", url.Values{"match[]": {`fp_del{host=~"h0[0-4]"}`}, "start": {ts(d.rangeStart())}, "end": {ts(d.rangeEnd())}})
	deleteSeries(t, q0, "main", url.Values{"match[]": {`{host="h19"}`}})
	want := d.without(before)
	got, _, _ := exportBy(t, q0, "main", "fp_del", "host")
	sameSeries(t, "the querier that took the requests", got, want)
	testbin.Eventually(t, 30*time.Second, func() error {
		if got, _, _ := exportBy(t, q1, "main", "fp_del", "host"); !reflect.DeepEqual(got, want) {
			return fmt.Errorf("the other querier still shows %d samples of h19", len(got["h19"]))
		}
		return nil
	})
	testbin.Eventually(t, 2*time.Minute, func() error {
		if s := deletionStates(t, q1, "main"); s[id] != "processed" {
			return fmt.Errorf("requests %v", s)
		}
		return nil
	})
	cred, err := rpc.LoadCredential(filepath.Join(c.shared, "cluster-secret"))
	if err != nil {
		t.Fatal(err)
	}
	// Each replica may lack samples the others have (a write stored on a
	// quorum), so no head may hold a deleted sample and together they
	// hold every other one.
	ctx := tenantauth.With(t.Context(), "test", "main")
	union := map[string]map[[2]float64]bool{}
	for _, ing := range c.ingesters {
		cl, err := rpc.DialIngester(ing.grpc, cred, nil)
		if err != nil {
			t.Fatal(err)
		}
		ss := storage.NewSeriesSetFromChunkSeriesSet(cl.Select(ctx, math.MinInt64, math.MaxInt64, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "fp_del")))
		for ss.Next() {
			host := ss.At().Labels().Get("host")
			for it := ss.At().Iterator(nil); it.Next() != chunkenc.ValNone; {
				ts, v := it.At()
				if d.deleted(host, ts) {
					t.Fatalf("the head of %s holds %s at %s", ing.name, host, time.UnixMilli(ts).Format(time.TimeOnly))
				}
				if union[host] == nil {
					union[host] = map[[2]float64]bool{}
				}
				union[host][[2]float64{float64(ts), v}] = true
			}
		}
		if err := errors.Join(ss.Err(), cl.Close()); err != nil {
			t.Fatal(err)
		}
	}
	for host, samples := range want {
		if len(union[host]) != len(samples) {
			t.Errorf("the heads hold %d samples of %s, want %d", len(union[host]), host, len(samples))
		}
	}
	if len(union) != len(want) {
		t.Errorf("the heads hold %d series, want %d", len(union), len(want))
	}
	// Deleting the whole tenant reaches every ingester the same way.
	req, _ := http.NewRequest(http.MethodDelete, q0+"/api/v1/admin/tenants/main", nil)
	req.Header.Set("X-Scope-OrgID", "main")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("delete the tenant: %v %v", err, resp)
	}
	if got, _, _ := exportBy(t, q0, "main", "fp_del", "host"); len(got) != 0 {
		t.Fatalf("after deleting the tenant: %d series", len(got))
	}
}
