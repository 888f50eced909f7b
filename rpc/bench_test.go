package rpc

import (
	"bytes"
	"flag"
	"net/http"
	"net/http/httptest"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/fluxpulse/fluxpulse/distributor"
	"github.com/fluxpulse/fluxpulse/limits"
	"github.com/fluxpulse/fluxpulse/loadgen"
	"github.com/fluxpulse/fluxpulse/tenantauth"
)

// BenchmarkReplicatedPush measures the push path of roles apart in one
// process: HTTP handling, decode and validation in the distributor, each
// series written to three real ingesters over gRPC on loopback, quorum and
// answer. It reports the CPU time of the whole process per sample stored
// once (the three copies included), and allocations per sample.
func BenchmarkReplicatedPush(b *testing.B) {
	cred := credential(b, "0123456789abcdef0123")
	var addrs []string
	for range 3 {
		addrs = append(addrs, serve(b, cred))
	}
	rg := staticRing(b, addrs)
	clients := map[string]*IngesterClient{}
	for _, a := range addrs {
		clients[a] = dial(b, a, cred)
	}
	p := distributor.NewReplicatingPusher(distributor.ReplicationConfig{RemoteTimeout: 10 * time.Second}, rg,
		func(addr string) (distributor.IngesterClient, error) { return clients[addr], nil }, nil, nil)
	var lim limits.Limits
	var dcfg distributor.Config
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	lim.RegisterFlags(fs)
	dcfg.RegisterFlags(fs)
	lim.IngestionRate = 0
	d, err := distributor.New(dcfg, p, limits.NewOverrides(lim), nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	const perRequest = 2000
	series := loadgen.Fleet(loadgen.DefaultHost, 40, "bench") // 5,160 series
	start := time.Now().Add(-time.Hour).UnixMilli()
	ctx := tenantauth.With(b.Context(), "bench", "bench")
	push := func(body []byte) {
		req := httptest.NewRequestWithContext(ctx, http.MethodPost, "/api/v1/push", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/x-protobuf")
		req.Header.Set("Content-Encoding", "snappy")
		w := httptest.NewRecorder()
		d.ServeHTTP(w, req)
		if w.Code != http.StatusNoContent {
			b.Fatalf("push: %d %s", w.Code, w.Body)
		}
	}
	var bodies [][]byte
	var counts []int
	round := func(r int) {
		bodies, counts = bodies[:0], counts[:0]
		for k := 0; k < len(series); k += perRequest {
			end := min(k+perRequest, len(series))
			bodies = append(bodies, loadgen.EncodeV1(series[k:end], k, r, start+int64(r)*1000))
			counts = append(counts, end-k)
		}
	}
	round(0)
	for _, body := range bodies { // the series exist before the clock starts
		push(body)
	}
	var (
		ms              runtime.MemStats
		samples, r      int
		cpu             time.Duration
		mallocs, before uint64
	)
	next := len(bodies)
	b.ResetTimer()
	runtime.ReadMemStats(&ms)
	before = ms.Mallocs
	cpuBefore := processCPU(b)
	for i := 0; i < b.N; i++ {
		if next == len(bodies) {
			b.StopTimer()
			cpu += processCPU(b) - cpuBefore
			runtime.ReadMemStats(&ms)
			mallocs += ms.Mallocs - before
			r++
			round(r)
			next = 0
			runtime.ReadMemStats(&ms)
			before = ms.Mallocs
			cpuBefore = processCPU(b)
			b.StartTimer()
		}
		push(bodies[next])
		samples += counts[next]
		next++
	}
	b.StopTimer()
	cpu += processCPU(b) - cpuBefore
	runtime.ReadMemStats(&ms)
	mallocs += ms.Mallocs - before
	b.ReportMetric(float64(samples)/b.Elapsed().Seconds(), "samples/s")
	b.ReportMetric(float64(mallocs)/float64(samples), "allocs/sample")
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(samples), "cpu-ns/sample")
}

// processCPU returns the CPU time the process has used, user and system.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
