package integration

import (
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/fluxpulse/fluxpulse/loadgen"
	"github.com/fluxpulse/fluxpulse/testbin"
)

// pusher sends numbered rounds of samples for its own series, one request
// per round, and remembers the last round FluxPulse acknowledged with 204.
type pusher struct {
	series []labels.Labels
	base   int64 // timestamp of round 0, in milliseconds
	acked  atomic.Int64
}

func newPushers(n, seriesEach int, base time.Time) []*pusher {
	ps := make([]*pusher, n)
	for k := range ps {
		var ss []labels.Labels
		for i := range seriesEach {
			ss = append(ss, labels.FromStrings("__name__", "crash_metric", "pusher", strconv.Itoa(k), "series", strconv.Itoa(i)))
		}
		ps[k] = &pusher{series: ss, base: base.UnixMilli()}
		ps[k].acked.Store(-1)
	}
	return ps
}

// run pushes rounds until stop is closed or a push fails.
func (p *pusher) run(t testing.TB, url, tenant string, stop <-chan struct{}) {
	for r := 0; ; r++ {
		select {
		case <-stop:
			return
		default:
		}
		body := loadgen.EncodeV1(p.series, 0, r, p.base+int64(r)*1000)
		status, _ := post(t, url, tenant, "application/x-protobuf", body)
		if status != 204 {
			return // the server went away: this round is not acknowledged
		}
		p.acked.Store(int64(r))
	}
}

// verify checks that every acknowledged round of every series is stored
// with its value.
func verify(t *testing.T, fp *fluxPulse, tenant string, ps []*pusher) {
	t.Helper()
	for k, p := range ps {
		acked := p.acked.Load()
		if acked < 0 {
			t.Fatalf("pusher %d got no acknowledgement before the crash", k)
		}
		end := time.UnixMilli(p.base + acked*1000)
		q := fmt.Sprintf(`count_over_time(crash_metric{pusher="%d"}[%ds])`, k, acked+1)
		res := instant(t, fp.url()+"/prometheus", q, end, tenant)
		if len(res) != len(p.series) {
			t.Fatalf("pusher %d: %d series after restart, want %d", k, len(res), len(p.series))
		}
		for _, r := range res {
			if got := r.(map[string]any)["value"].([]any)[1]; got != strconv.FormatInt(acked+1, 10) {
				t.Fatalf("pusher %d: series %v has %v samples up to round %d, want %d", k, r.(map[string]any)["metric"], got, acked, acked+1)
			}
		}
		// Values are checked at the last acknowledged round.
		v := instant(t, fp.url()+"/prometheus", fmt.Sprintf(`crash_metric{pusher="%d",series="0"}`, k), end, tenant)
		want := strconv.FormatFloat(loadgen.Value(0, int(acked)), 'f', -1, 64)
		if len(v) != 1 || v[0].(map[string]any)["value"].([]any)[1] != want {
			t.Fatalf("pusher %d: value at round %d is %v, want %s", k, acked, v, want)
		}
	}
}

// TestKill9LosesNoAcknowledgedSample pushes from several clients at once,
// kills FluxPulse with SIGKILL mid-stream, restarts it on the same data
// directory and checks that every sample it acknowledged is there.
func TestKill9LosesNoAcknowledgedSample(t *testing.T) {
	fp := startFluxPulse(t, "-auth.mode=header", "-distributor.ingestion-rate-limit=0")
	ps := newPushers(4, 300, time.Now().Add(-30*time.Minute))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, p := range ps {
		wg.Go(func() { p.run(t, fp.url(), "crash", stop) })
	}
	testbin.Eventually(t, time.Minute, func() error {
		for k, p := range ps {
			if p.acked.Load() < 20 {
				return fmt.Errorf("pusher %d has %d rounds acknowledged", k, p.acked.Load()+1)
			}
		}
		return nil
	})
	fp.proc.Kill() // SIGKILL while requests are in flight
	close(stop)
	wg.Wait()
	fp.start()
	verify(t, fp, "crash", ps)
}

// TestSIGTERMShutsDownCleanly stops FluxPulse with SIGTERM while pushes are
// in flight: it must exit with status 0, say so, and keep every
// acknowledged sample.
func TestSIGTERMShutsDownCleanly(t *testing.T) {
	fp := startFluxPulse(t, "-auth.mode=header", "-distributor.ingestion-rate-limit=0")
	ps := newPushers(2, 200, time.Now().Add(-30*time.Minute))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, p := range ps {
		wg.Go(func() { p.run(t, fp.url(), "term", stop) })
	}
	testbin.Eventually(t, time.Minute, func() error {
		if ps[0].acked.Load() < 10 || ps[1].acked.Load() < 10 {
			return fmt.Errorf("waiting for pushes")
		}
		return nil
	})
	if err := fp.proc.Stop(30 * time.Second); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
	close(stop)
	wg.Wait()
	for _, want := range []string{"shutting down", "stopped cleanly"} {
		if !fp.proc.Contains(want) {
			t.Errorf("output lacks %q", want)
		}
	}
	fp.start()
	verify(t, fp, "term", ps)
	// The restart replayed a cleanly closed WAL: no corruption was repaired.
	if fp.proc.Contains("repair") {
		t.Errorf("restart after a clean shutdown repaired the WAL:\n%s", fp.proc.Output())
	}
}
