package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/fluxpulse/fluxpulse/testbin"
)

// alertPosts sits in front of an Alertmanager and records every alert
// the rulers post to it, with when it arrived.
type alertPosts struct {
	*httptest.Server
	mu    sync.Mutex
	posts map[string][]time.Time // firing posts by alertname
}

func startAlertPosts(t *testing.T, target string) *alertPosts {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	next := httputil.NewSingleHostReverseProxy(u)
	p := &alertPosts{posts: map[string][]time.Time{}}
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == "/api/v2/alerts" {
			body, _ := httputil.DumpRequest(r, true)
			_, b, _ := strings.Cut(string(body), "\r\n\r\n")
			var alerts []struct {
				Labels map[string]string `json:"labels"`
				EndsAt time.Time         `json:"endsAt"`
			}
			if err := json.Unmarshal([]byte(b), &alerts); err == nil {
				now := time.Now()
				p.mu.Lock()
				for _, a := range alerts {
					if a.EndsAt.After(now) {
						p.posts[a.Labels["alertname"]] = append(p.posts[a.Labels["alertname"]], now)
					}
				}
				p.mu.Unlock()
			}
		}
		next.ServeHTTP(w, r)
	}))
	t.Cleanup(p.Close)
	return p
}

// rulerRingGroup is group k of a tenant: one alert that fires after 3s.
func rulerRingGroup(tenant string, k int) string {
	return fmt.Sprintf("name: g%02d\ninterval: 1s\nrules:\n  - alert: A_%s_g%02d\n    expr: vector(1)\n    for: 3s\n    labels: {tenant: %s}\n", k, tenant, k, tenant)
}

// ringGroup is what the rules API says of a group.
type ringGroup struct {
	File, Name, Evaluator string
	LastEvaluation        time.Time
	Rules                 []struct {
		Health string
		Alerts []struct {
			State    string
			ActiveAt time.Time
		}
	}
}

// ringGroups reads every group of the tenants from one ruler's rules API.
func ringGroups(t *testing.T, n *node, tenants []string) ([]ringGroup, error) {
	t.Helper()
	var out []ringGroup
	for _, tn := range tenants {
		req, _ := http.NewRequest(http.MethodGet, n.url()+"/prometheus/api/v1/rules", nil)
		req.Header.Set("X-Scope-OrgID", tn)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, err
		}
		var body struct {
			Data struct{ Groups []ringGroup }
		}
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("%s: rules of %s: %s %v", n.name, tn, resp.Status, err)
		}
		for _, g := range body.Data.Groups {
			g.File = tn + "/" + g.File
			out = append(out, g)
		}
	}
	return out, nil
}

// evaluators maps each group to its evaluator, failing if a group is
// listed twice (two rulers evaluate it), is listed without an evaluator
// (stored, but in the middle of a handover), or fewer than want are
// listed.
func evaluators(gs []ringGroup, want int) (map[string]string, error) {
	out := map[string]string{}
	for _, g := range gs {
		k := g.File + "/" + g.Name
		if e, ok := out[k]; ok {
			return nil, fmt.Errorf("group %s is evaluated by %s and %s", k, e, g.Evaluator)
		}
		if g.Evaluator == "" {
			return nil, fmt.Errorf("group %s is listed but not evaluated yet", k)
		}
		out[k] = g.Evaluator
	}
	if len(out) != want {
		return nil, fmt.Errorf("%d groups listed, want %d", len(out), want)
	}
	return out, nil
}

// evaluatorsOn is evaluators of the 40 groups as a ruler's rules API lists
// them.
func evaluatorsOn(t *testing.T, n *node, tenants []string) (map[string]string, error) {
	gs, err := ringGroups(t, n, tenants)
	if err != nil {
		return nil, err
	}
	return evaluators(gs, 40)
}

// The flags of TestClusterRulerRing.
const ringResend, ringTimeout = 4 * time.Second, 3 * time.Second

// startRulerRing starts TestClusterRulerRing's Alertmanager (behind a
// recorder of posts, sending to a webhook) and cluster (an ingester, two
// rulers), and posts 10 groups for each of 4 tenants.
func startRulerRing(t *testing.T) (*cluster, *webhook, *alertPosts, []string) {
	t.Helper()
	hook := startWebhook(t)
	am := runAlertmanager(t, fmt.Sprintf("route: {receiver: hook, group_by: [alertname], group_wait: 0s, group_interval: 1s, repeat_interval: 1h}\n"+
		"receivers: [{name: hook, webhook_configs: [{url: %q, send_resolved: true}]}]\n", hook.URL+"/ring"))
	posts := startAlertPosts(t, am)
	c := startCluster(t, options{ingesters: 1, rulers: 2, args: []string{"-ingester.ring.replication-factor=1",
		"-ruler.min-evaluation-interval=1s", "-ruler.poll-interval=1s", "-ruler.resend-delay=" + ringResend.String(),
		"-ruler.for-grace-period=1s", "-ruler.alertmanager-url=" + posts.URL, "-ruler.ring.heartbeat-period=500ms",
		"-ruler.ring.heartbeat-timeout=" + ringTimeout.String(), "-ruler.ring.stable-period=2s"}})
	tenants := []string{"t0", "t1", "t2", "t3"}
	for _, tn := range tenants {
		for k := range 10 {
			if code, msg := amCall(t, http.MethodPost, c.rulers[0].url()+"/prometheus/config/v1/rules/ns", "", tn, rulerRingGroup(tn, k)); code != http.StatusAccepted {
				t.Fatalf("POST rules: %d %s", code, msg)
			}
		}
	}
	return c, hook, posts, tenants
}

// TestClusterRulerRing: two rulers, 40 rule groups of 4 tenants, alerts
// through a real Alertmanager to a webhook. Each group is evaluated by
// exactly one ruler, as the rules API of either shows; after one is
// killed with SIGKILL the other evaluates all 40 within the ring's
// heartbeat timeout (and a check and an evaluation), the moved alerts keep
// their activeAt (restored from ALERTS_FOR_STATE), the Alertmanager never
// gets an alert twice within a resend delay, and the webhook gets each
// alert firing once, never resolved; all of which holds again when the
// killed ruler comes back and takes its groups back (#17).
func TestClusterRulerRing(t *testing.T) {
	const resend, timeout = ringResend, ringTimeout
	c, hook, posts, tenants := startRulerRing(t)
	var before map[string]string
	testbin.Eventually(t, 2*time.Minute, func() error {
		var first map[string]string
		for _, n := range c.rulers {
			m, err := evaluatorsOn(t, n, tenants)
			if err != nil {
				return fmt.Errorf("%s: %w", n.name, err)
			}
			if first != nil && fmt.Sprint(m) != fmt.Sprint(first) {
				return fmt.Errorf("the rulers disagree: %v, %v", first, m)
			}
			first = m
		}
		if got := len(hook.got("/ring")); got < 40 {
			return fmt.Errorf("%d notifications so far", got)
		}
		before = first
		return nil
	})
	counts := map[string]int{}
	for _, e := range before {
		counts[e]++
	}
	if counts["ruler-0"] == 0 || counts["ruler-1"] == 0 {
		t.Fatalf("evaluators %v: want both rulers to evaluate some groups", counts)
	}
	checkConfigEvaluators(t, c, tenants, before)
	activeBefore := activeAts(t, c.rulers[0], tenants)
	victim := c.rulers[1]
	victim.kill9()
	killed := time.Now()
	var moved time.Duration
	testbin.Eventually(t, time.Minute, func() error {
		m, err := evaluatorsOn(t, c.rulers[0], tenants)
		if err != nil {
			return err
		}
		for k, e := range m {
			if e != "ruler-0" {
				return fmt.Errorf("group %s evaluated by %q", k, e)
			}
		}
		moved = time.Since(killed)
		return nil
	})
	t.Logf("evaluators before the kill: %v; all 40 on ruler-0 %s after it", counts, moved.Round(100*time.Millisecond))
	if moved > timeout+2*time.Second {
		t.Errorf("the groups moved %s after the kill, want within the heartbeat timeout %s (+2s for the heartbeat's resolution and a check)", moved, timeout)
	}
	// Moved alerts fire on with their activeAt, and go on being sent.
	testbin.Eventually(t, time.Minute, func() error {
		after := activeAts(t, c.rulers[0], tenants)
		for name, at := range activeBefore {
			if a, ok := after[name]; !ok || a.Sub(at).Abs() > 1500*time.Millisecond {
				return fmt.Errorf("alert %s: activeAt %s after, %s before", name, a.Format(time.TimeOnly), at.Format(time.TimeOnly))
			}
		}
		return nil
	})
	time.Sleep(3 * resend) // watch a few resend delays after the handover
	checkPosts(t, posts, resend, killed)
	checkRejoin(t, c, tenants, before)
	checkPosts(t, posts, resend, killed)
	checkNotifications(t, hook, 40)
}

// checkRejoin starts the killed ruler again (same ID and tokens): it takes
// its groups back once the ring has been stable, from a live ruler.
func checkRejoin(t *testing.T, c *cluster, tenants []string, before map[string]string) {
	t.Helper()
	victim := c.rulers[1]
	c.restart(victim)
	testbin.Eventually(t, time.Minute, func() error {
		m, err := evaluatorsOn(t, c.rulers[0], tenants)
		if err != nil {
			return err
		}
		if fmt.Sprint(m) != fmt.Sprint(before) {
			return fmt.Errorf("evaluators %v, want those before the kill", m)
		}
		return nil
	})
	time.Sleep(3 * ringResend)
	// ruler-0 gave groups back without stale markers: it replaced the
	// rules managers of the tenants that lost groups.
	if n := metricSum(t, "http://"+c.rulers[0].internal+"/metrics", "fluxpulse_ruler_manager_restarts_total", nil); n == 0 {
		t.Error("ruler-0 gave groups back without replacing a rules manager")
	}
	t.Logf("alerts quieted after a take: %v on ruler-0, %v on ruler-1",
		metricSum(t, "http://"+c.rulers[0].internal+"/metrics", "fluxpulse_ruler_handover_quieted_alerts_total", nil),
		metricSum(t, "http://"+victim.internal+"/metrics", "fluxpulse_ruler_handover_quieted_alerts_total", nil))
}

// checkConfigEvaluators reads every tenant's groups from the
// configuration API of each ruler: each names the evaluator the rules API
// names.
func checkConfigEvaluators(t *testing.T, c *cluster, tenants []string, want map[string]string) {
	t.Helper()
	for _, n := range c.rulers {
		got := map[string]string{}
		for _, tn := range tenants {
			code, body := amCall(t, http.MethodGet, n.url()+"/prometheus/config/v1/rules", "", tn, "")
			if code != http.StatusOK {
				t.Fatalf("%s: GET rules of %s: %d %s", n.name, tn, code, body)
			}
			var cfg map[string][]struct{ Name, Evaluator string }
			if err := yaml.Unmarshal([]byte(body), &cfg); err != nil {
				t.Fatal(err)
			}
			for ns, gs := range cfg {
				for _, g := range gs {
					got[tn+"/"+ns+"/"+g.Name] = g.Evaluator
				}
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: the configuration API names evaluators %v, the rules API %v", n.name, got, want)
		}
	}
}

// activeAts returns the activeAt of every firing alert.
func activeAts(t *testing.T, n *node, tenants []string) map[string]time.Time {
	t.Helper()
	gs, err := ringGroups(t, n, tenants)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]time.Time{}
	for _, g := range gs {
		for _, r := range g.Rules {
			for _, a := range r.Alerts {
				if a.State == "firing" {
					out[g.File+"/"+g.Name] = a.ActiveAt
				}
			}
		}
	}
	return out
}

// checkPosts fails if the Alertmanager got an alert twice within a resend
// delay (less 300ms for the evaluation's jitter), or if an alert was not
// posted again after the kill.
func checkPosts(t *testing.T, p *alertPosts, resend time.Duration, killed time.Time) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.posts) != 40 {
		t.Errorf("%d alerts posted, want 40", len(p.posts))
	}
	var gaps []string
	for name, ts := range p.posts {
		for k := 1; k < len(ts); k++ {
			if d := ts[k].Sub(ts[k-1]); d < resend-300*time.Millisecond {
				t.Errorf("alert %s posted twice %s apart at %s", name, d.Round(time.Millisecond), ts[k].Format("15:04:05.000"))
			}
		}
		if !ts[len(ts)-1].After(killed) {
			t.Errorf("alert %s not posted since the kill", name)
		}
		if k := sort.Search(len(ts), func(i int) bool { return ts[i].After(killed) }); k > 0 && k < len(ts) {
			gaps = append(gaps, ts[k].Sub(ts[k-1]).Round(100*time.Millisecond).String())
		}
	}
	slices.Sort(gaps)
	t.Logf("gaps between each alert's last post before the kill and its first after it: %v", gaps)
}

// checkNotifications fails unless the webhook got each of want alerts
// firing exactly once, and none resolved.
func checkNotifications(t *testing.T, wh *webhook, want int) {
	t.Helper()
	firing := map[string]int{}
	for _, n := range wh.got("/ring") {
		for _, a := range n.Alerts {
			if a.Status != "firing" {
				t.Errorf("alert %s was notified %s", a.Labels["alertname"], a.Status)
				continue
			}
			firing[a.Labels["alertname"]]++
		}
	}
	for name, n := range firing {
		if n != 1 {
			t.Errorf("alert %s was notified firing %d times, want once", name, n)
		}
	}
	if len(firing) != want {
		t.Errorf("%d alerts notified, want %d", len(firing), want)
	}
}
