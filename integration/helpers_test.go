package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/gogo/protobuf/proto"
	"github.com/golang/snappy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/prometheus/prompb"

	"github.com/fluxpulse/fluxpulse/testbin"
)

// fluxPulse is a real FluxPulse process on loopback.
type fluxPulse struct {
	t        *testing.T
	bin      string
	dir      string
	addr     string
	internal string // the operator-only listener: /metrics, /config, pprof
	args     []string
	proc     *testbin.Process
}

func startFluxPulse(t *testing.T, args ...string) *fluxPulse {
	t.Helper()
	f := &fluxPulse{t: t, bin: testbin.FluxPulse(t, "fluxpulse"), dir: t.TempDir(), addr: testbin.FreePort(t), internal: testbin.FreePort(t), args: args}
	f.start()
	return f
}

func (f *fluxPulse) start() {
	f.t.Helper()
	f.proc = testbin.Start(f.t, f.bin, nil, f.commandLine()...)
	testbin.WaitHTTP(f.t, f.proc, f.url()+"/ready", time.Minute)
}

// commandLine is the process's arguments: its directory, its listeners
// and the test's flags.
func (f *fluxPulse) commandLine() []string {
	return append([]string{"-data.dir", f.dir, "-server.http-listen-address", f.addr, "-server.internal-listen-address", f.internal}, f.args...)
}

func (f *fluxPulse) url() string { return "http://" + f.addr }

// internalURL is the operator-only listener's base URL.
func (f *fluxPulse) internalURL() string { return "http://" + f.internal }

// api calls the Prometheus API of FluxPulse (under /prometheus) or of a
// Prometheus (base without prefix) and returns the status and body.
func api(t testing.TB, base, path string, params url.Values, tenant string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+path+"?"+params.Encode(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if tenant != "" {
		req.Header.Set("X-Scope-OrgID", tenant)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// apiData calls the API, requires success and decodes its data field.
func apiData(t testing.TB, base, path string, params url.Values, tenant string) any {
	t.Helper()
	status, body := api(t, base, path, params, tenant)
	if status != http.StatusOK {
		t.Fatalf("GET %s%s?%s: %d %s", base, path, params.Encode(), status, body)
	}
	var r struct {
		Status string `json:"status"`
		Data   any    `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
	return r.Data
}

// instant runs an instant query and returns the result list.
func instant(t testing.TB, base, q string, at time.Time, tenant string) []any {
	t.Helper()
	d := apiData(t, base, "/api/v1/query", url.Values{"query": {q}, "time": {ts(at)}}, tenant).(map[string]any)
	res, _ := d["result"].([]any)
	return res
}

func ts(t time.Time) string { return fmt.Sprintf("%.3f", float64(t.UnixMilli())/1000) }

// prometheus is a real Prometheus process.
type prometheusProc struct {
	url  string
	proc *testbin.Process
}

// startPrometheus starts Prometheus with the configuration that config
// returns for Prometheus's own listen address.
func startPrometheus(t *testing.T, config func(self string) string, features string) *prometheusProc {
	t.Helper()
	return startPrometheusOn(t, config, features, "")
}

// startPrometheusOn is startPrometheus on the TSDB in data ("": a new one).
func startPrometheusOn(t *testing.T, config func(self string) string, features, data string) *prometheusProc {
	t.Helper()
	return startPrometheusArgs(t, config, features, data)
}

// startPrometheusArgs is startPrometheusOn with more command-line flags.
func startPrometheusArgs(t *testing.T, config func(self string) string, features, data string, extra ...string) *prometheusProc {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "prometheus.yml")
	addr := testbin.FreePort(t)
	if err := os.WriteFile(cfg, []byte(config(addr)), 0o644); err != nil {
		t.Fatal(err)
	}
	if data == "" {
		data = filepath.Join(dir, "data")
	}
	args := []string{"--config.file=" + cfg, "--storage.tsdb.path=" + data, "--web.listen-address=" + addr}
	if features != "" {
		args = append(args, "--enable-feature="+features)
	}
	args = append(args, extra...)
	p := testbin.Start(t, testbin.Prometheus.Path(t), nil, args...)
	testbin.WaitHTTP(t, p, "http://"+addr+"/-/ready", time.Minute)
	return &prometheusProc{url: "http://" + addr, proc: p}
}

// target is a real scrape target: an HTTP server exposing a counter with
// exemplars, a histogram with both classic and native buckets, a gauge, and
// one family unique to this target.
func startTarget(t *testing.T, unique string) string {
	t.Helper()
	reg := prometheus.NewRegistry()
	reqs := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "fp_test_requests_total", Help: "Requests handled by the test target."}, []string{"path"})
	lat := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "fp_test_latency_seconds", Help: "Latency of the test target.",
		Buckets: prometheus.DefBuckets, NativeHistogramBucketFactor: 1.1})
	temp := prometheus.NewGauge(prometheus.GaugeOpts{Name: "fp_test_temperature_celsius", Help: "A wandering gauge.", ConstLabels: prometheus.Labels{"room": "a"}})
	only := prometheus.NewCounter(prometheus.CounterOpts{Name: unique, Help: "Only this target exposes this family."})
	reg.MustRegister(reqs, lat, temp, only)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		rnd := rand.New(rand.NewPCG(7, 8))
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for n := 0; ; n++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			trace := prometheus.Labels{"trace_id": fmt.Sprintf("%016x", rnd.Uint64())}
			reqs.WithLabelValues([]string{"/a", "/b", "/c"}[n%3]).(prometheus.ExemplarAdder).AddWithExemplar(1, trace)
			lat.(prometheus.ExemplarObserver).ObserveWithExemplar(rnd.ExpFloat64()/10, trace)
			temp.Set(20 + rnd.Float64()*5)
			only.(prometheus.ExemplarAdder).AddWithExemplar(1, trace)
		}
	}()
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{EnableOpenMetrics: true}))
	t.Cleanup(func() {
		close(stop)
		wg.Wait()
		srv.Close()
	})
	u, _ := url.Parse(srv.URL)
	return u.Host
}

// post sends a raw body to FluxPulse's push endpoint.
func post(t testing.TB, base, tenant, contentType string, body []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+"/api/v1/push", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Scope-OrgID", tenant)
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Content-Encoding", "snappy")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// remoteReadSeries asks FluxPulse's remote-read endpoint, as the tenant, for
// the series labelled source=<source> and returns how many came back.
func remoteReadSeries(t testing.TB, base, tenant, source string, start, end time.Time) int {
	t.Helper()
	rr := &prompb.ReadRequest{Queries: []*prompb.Query{{
		StartTimestampMs: start.UnixMilli(), EndTimestampMs: end.UnixMilli(),
		Matchers: []*prompb.LabelMatcher{{Type: prompb.LabelMatcher_EQ, Name: "source", Value: source}},
	}}}
	b, err := proto.Marshal(rr)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, base+"/prometheus/api/v1/read", bytes.NewReader(snappy.Encode(nil, b)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Scope-OrgID", tenant)
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("Content-Encoding", "snappy")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("remote read: %d %s", resp.StatusCode, body)
	}
	raw, err := snappy.Decode(nil, body)
	if err != nil {
		t.Fatal(err)
	}
	var res prompb.ReadResponse
	if err := proto.Unmarshal(raw, &res); err != nil {
		t.Fatal(err)
	}
	return len(res.Results[0].Timeseries)
}

func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }
