package integration

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gogo/protobuf/proto"
	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
)

// vmRSS returns the resident memory of process pid, from /proc.
func vmRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) == 3 && f[0] == "VmRSS:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// attack is one request of the attacker.
// PromQL goes in the URL (GET) or a form (POST) as param, unless the
// attack has a body of its own.
type attack struct {
	method, path, param, text string
	contentType               string
	body                      []byte
}

func (a attack) request(base string) (*http.Request, error) {
	if a.body != nil {
		req, err := http.NewRequest(a.method, base+a.path, bytes.NewReader(a.body))
		if err == nil {
			req.Header.Set("Content-Type", a.contentType)
			req.Header.Set("Content-Encoding", "snappy")
		}
		return req, err
	}
	v := url.Values{a.param: {a.text}, "start": {"0"}, "end": {"60"}, "step": {"15"}}
	if a.method == http.MethodGet {
		return http.NewRequest(a.method, base+a.path+"?"+v.Encode(), nil)
	}
	req, err := http.NewRequest(a.method, base+a.path, strings.NewReader(v.Encode()))
	if err == nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	return req, err
}

// readAttack is a remote-read request whose one matcher is value.
func readAttack(t *testing.T, value string) attack {
	b, err := proto.Marshal(&prompb.ReadRequest{Queries: []*prompb.Query{{StartTimestampMs: 0, EndTimestampMs: 1,
		Matchers: []*prompb.LabelMatcher{{Type: prompb.LabelMatcher_RE, Name: "__name__", Value: value}}}}})
	if err != nil {
		t.Fatal(err)
	}
	return attack{method: http.MethodPost, path: "/prometheus/api/v1/read", contentType: "application/x-protobuf", body: snappy.Encode(nil, b)}
}

// latencies records how long calls took, and what went wrong.
type latencies struct {
	mu   sync.Mutex
	took []time.Duration
	errs []string
}

func (l *latencies) add(d time.Duration, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.took = append(l.took, d)
	if err != nil && len(l.errs) < 10 {
		l.errs = append(l.errs, err.Error())
	}
}

// p99 returns the 99th percentile and the number of calls.
func (l *latencies) p99() (time.Duration, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return p99(l.took), len(l.took)
}

// TestNestedPromQLAttack is the end-to-end test of #12 item 1 against a
// real FluxPulse: 50 clients of tenant "attacker" send, over and over, the
// nested PromQL of the report (depth 2,000, 10,000 and 50,000; 4 KB to
// 100 KB) and a subquery of a billion steps to every kind of endpoint, by
// GET and by form POST, plus remote reads with 100 KB of matchers or a
// snappy header claiming 1 GiB, and a rule group nested 2,000 deep. Every request is refused with 400, the process's
// resident memory stays within 256 MiB of its idle figure, and tenant
// "victim" keeps pushing and querying with a p99 under 1 s.
func TestNestedPromQLAttack(t *testing.T) {
	// The subquery of a billion steps is refused at evaluation, after the
	// request took one of the tenant's concurrent-query slots: with 50
	// clients the default 20 slots would answer some 429 instead (a right
	// answer, but not the one under test).
	fp := startFluxPulse(t, "-auth.mode=header", "-distributor.ingestion-rate-limit=0", "-querier.max-concurrent-queries=100")
	nested := func(n int) string { return strings.Repeat("(", n) + "1" + strings.Repeat(")", n) }
	attacks := []attack{
		{method: http.MethodGet, path: "/prometheus/api/v1/format_query", param: "query", text: nested(2000)},
		{method: http.MethodPost, path: "/prometheus/api/v1/parse_query", param: "query", text: nested(10_000)},
		{method: http.MethodGet, path: "/prometheus/api/v1/query", param: "query", text: nested(50_000)},
		{method: http.MethodPost, path: "/prometheus/api/v1/query_range", param: "query", text: nested(2000)},
		{method: http.MethodGet, path: "/prometheus/api/v1/series", param: "match[]", text: "up + " + nested(10_000)},
		{method: http.MethodPost, path: "/api/v1/export", param: "match[]", text: "up + " + nested(2000)},
		{method: http.MethodGet, path: "/prometheus/api/v1/query", param: "query", text: "count_over_time(vector(1)[1y:1ms])"},
		readAttack(t, strings.Repeat("a|", 50_000)),
		{method: http.MethodPost, path: "/prometheus/api/v1/read", contentType: "application/x-protobuf", body: []byte{0x80, 0x80, 0x80, 0x80, 0x04}},
		{method: http.MethodPost, path: "/api/v1/rules/ns", contentType: "application/yaml",
			body: []byte("name: g\nrules:\n  - record: x:y\n    expr: '" + nested(2000) + "'\n")},
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: time.Minute}
	call := func(req *http.Request, tenant string) (int, string, error) {
		req.Header.Set("X-Scope-OrgID", tenant)
		resp, err := client.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), err
	}
	victimPush := func() error {
		b, err := proto.Marshal(&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
			Labels:  []prompb.Label{{Name: "__name__", Value: "victim_metric"}},
			Samples: []prompb.Sample{{Value: 1, Timestamp: time.Now().UnixMilli()}},
		}}})
		if err != nil {
			return err
		}
		req, _ := http.NewRequest(http.MethodPost, fp.url()+"/api/v1/push", bytes.NewReader(snappy.Encode(nil, b)))
		req.Header.Set("Content-Type", "application/x-protobuf")
		req.Header.Set("Content-Encoding", "snappy")
		code, body, err := call(req, "victim")
		if err == nil && code != http.StatusNoContent {
			err = fmt.Errorf("push: %d %s", code, body)
		}
		return err
	}
	victimQuery := func() error {
		req, _ := http.NewRequest(http.MethodGet, fp.url()+"/prometheus/api/v1/query?query=sum(victim_metric)", nil)
		code, body, err := call(req, "victim")
		if err == nil && (code != http.StatusOK || !strings.Contains(body, `"success"`)) {
			err = fmt.Errorf("query: %d %.200s", code, body)
		}
		return err
	}
	for range 5 { // the victim's TSDB exists before the idle figure is taken
		if err := errors.Join(victimPush(), victimQuery()); err != nil {
			t.Fatal(err)
		}
	}
	idle, err := vmRSS(fp.proc.Pid())
	if err != nil {
		t.Fatal(err)
	}

	stop := make(chan struct{})
	var peak atomic.Int64
	var bg sync.WaitGroup
	bg.Go(func() {
		for {
			if rss, err := vmRSS(fp.proc.Pid()); err == nil && rss > peak.Load() {
				peak.Store(rss)
			}
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	})
	var pushes, queries latencies
	bg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			start := time.Now()
			err := victimPush()
			pushes.add(time.Since(start), err)
			start = time.Now()
			err = victimQuery()
			queries.add(time.Since(start), err)
		}
	})

	const clients, rounds = 50, 60
	var refused latencies
	var wrong atomic.Int64
	var attackers sync.WaitGroup
	for c := range clients {
		attackers.Go(func() {
			for r := range rounds {
				a := attacks[(c+r)%len(attacks)]
				req, err := a.request(fp.url())
				start := time.Now()
				var code int
				var body string
				if err == nil {
					code, body, err = call(req, "attacker")
				}
				if err == nil && (code != http.StatusBadRequest || !strings.Contains(body, "-querier.max-")) {
					err = fmt.Errorf("%s %s: %d %.200s", a.method, a.path, code, body)
				}
				if err != nil {
					wrong.Add(1)
				}
				refused.add(time.Since(start), err)
			}
		})
	}
	attackers.Wait()
	close(stop)
	bg.Wait()

	attackP99, n := refused.p99()
	t.Logf("%d attacks, p99 %s; resident memory idle %d MiB, peak %d MiB", n, attackP99, idle>>20, peak.Load()>>20)
	if w := wrong.Load(); w > 0 {
		t.Errorf("%d of %d attacks were not refused with 400 naming the limit: %v", w, n, refused.errs)
	}
	if attackP99 > 5*time.Second {
		t.Errorf("refusals took up to %s (p99): not refused before parsing", attackP99)
	}
	if grew := peak.Load() - idle; grew > 256<<20 {
		t.Errorf("resident memory grew by %d MiB under the attack, more than 256 MiB", grew>>20)
	}
	for name, l := range map[string]*latencies{"pushes": &pushes, "queries": &queries} {
		p99, n := l.p99()
		t.Logf("victim %s: %d, p99 %s", name, n, p99)
		if n < 10 || p99 >= time.Second || len(l.errs) > 0 {
			t.Errorf("victim %s during the attack: %d calls, p99 %s, errors %v", name, n, p99, l.errs)
		}
	}
}
