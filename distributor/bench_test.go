package distributor_test

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/fluxpulse/fluxpulse/distributor"
	"github.com/fluxpulse/fluxpulse/limits"
	"github.com/fluxpulse/fluxpulse/loadgen"
	"github.com/fluxpulse/fluxpulse/tenantauth"
)

// BenchmarkPush measures the whole push path in process: snappy, decode,
// validation, TSDB append and WAL commit, for 2,000-sample requests of
// node_exporter-like series, as remote write 1.0 and 2.0: steady (the
// same series every round), new (every round's series are new: the
// series-creation path, #18) and large (steady with 100,000 series, so that
// the head and the reference cache no longer fit the CPU's caches). It reports
// samples per second, allocations per sample and the CPU time of the whole
// process per sample (garbage collection included), which a busy machine
// disturbs less than the elapsed time.
func BenchmarkPush(b *testing.B) {
	for _, tc := range []struct {
		name   string
		ct     string
		encode func([]labels.Labels, int, int, int64) []byte
	}{
		{"v1", ctV1, loadgen.EncodeV1},
		{"v2", ctV2, loadgen.EncodeV2},
	} {
		for _, shape := range []string{"steady", "new", "large"} {
			hosts := 40 // 5,160 series
			if shape == "large" {
				hosts = 776 // 100,104 series
			}
			b.Run(shape+"/"+tc.name, func(b *testing.B) { benchPush(b, tc.ct, tc.encode, hosts, shape == "new") })
		}
	}
}

func benchPush(b *testing.B, ct string, encode func([]labels.Labels, int, int, int64) []byte, hosts int, fresh bool) {
	d, _, _ := newDistributor(b, func(l *limits.Limits, _ *distributor.Config) {
		l.IngestionRate, l.MaxSeries = 0, 0
	})

	const perRequest = 2000
	series := loadgen.Fleet(loadgen.DefaultHost, hosts, "bench")
	batches := (len(series) + perRequest - 1) / perRequest
	start := time.Now().Add(-time.Hour).UnixMilli()
	// Requests are encoded ahead, a round (every series once) at a time,
	// outside the timed part.
	type encoded struct {
		body    []byte
		samples int
	}
	encodeRound := func(r int) []encoded {
		if fresh {
			series = loadgen.Fleet(loadgen.DefaultHost, hosts, fmt.Sprintf("bench%d", r))
		}
		out := make([]encoded, 0, batches)
		for k := 0; k < len(series); k += perRequest {
			end := min(k+perRequest, len(series))
			out = append(out, encoded{encode(series[k:end], k, r, start+int64(r)*1000), end - k})
		}
		return out
	}
	ctx := tenantauth.With(b.Context(), "bench", "bench")
	var (
		samples int
		mallocs uint64
		ms      runtime.MemStats
		round   = 0
		reqs    = encodeRound(0)
	)
	b.ResetTimer()
	runtime.ReadMemStats(&ms)
	before := ms.Mallocs
	var cpu time.Duration
	cpuBefore := cpuTime(b)
	for i := 0; i < b.N; i++ {
		if len(reqs) == 0 {
			b.StopTimer()
			cpu += cpuTime(b) - cpuBefore
			runtime.ReadMemStats(&ms)
			mallocs += ms.Mallocs - before
			round++
			reqs = encodeRound(round)
			runtime.ReadMemStats(&ms)
			before = ms.Mallocs
			cpuBefore = cpuTime(b)
			b.StartTimer()
		}
		next := reqs[0]
		reqs = reqs[1:]
		req := httptest.NewRequestWithContext(ctx, http.MethodPost, "/api/v1/push", bytes.NewReader(next.body))
		req.Header.Set("Content-Type", ct)
		req.Header.Set("Content-Encoding", "snappy")
		w := httptest.NewRecorder()
		d.ServeHTTP(w, req)
		if w.Code != http.StatusNoContent {
			b.Fatalf("push: %d %s", w.Code, w.Body)
		}
		samples += next.samples
	}
	b.StopTimer()
	cpu += cpuTime(b) - cpuBefore
	runtime.ReadMemStats(&ms)
	mallocs += ms.Mallocs - before
	b.ReportMetric(float64(samples)/b.Elapsed().Seconds(), "samples/s")
	b.ReportMetric(float64(mallocs)/float64(samples), "allocs/sample")
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(samples), "cpu-ns/sample")
}

// cpuTime returns the CPU time the process has used, user and system.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
