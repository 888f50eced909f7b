package ruler

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/fluxpulse/fluxpulse/limits"
	"github.com/fluxpulse/fluxpulse/tenantauth"
	"github.com/fluxpulse/fluxpulse/testbin"
)

// alertSink records, per tenant of the request's context, the alerts
// posted to it and what else it was asked.
type alertSink struct {
	mu     sync.Mutex
	alerts map[string]int
	other  []string
}

func (s *alertSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var alerts []map[string]any
	tenant, err := tenantauth.Tenant(r.Context())
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil || r.Method != http.MethodPost || r.URL.Path != "/api/v2/alerts" || json.NewDecoder(r.Body).Decode(&alerts) != nil {
		s.other = append(s.other, fmt.Sprintf("%s %s tenant %q", r.Method, r.URL.Path, tenant))
		http.Error(w, "unexpected", http.StatusBadRequest)
		return
	}
	s.alerts[tenant] += len(alerts)
}

func (s *alertSink) got() (map[string]int, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]int{}
	for k, v := range s.alerts {
		out[k] = v
	}
	return out, append([]string(nil), s.other...)
}

// TestOwnAlertmanager: without -ruler.alertmanager-url a tenant's alerts
// go to FluxPulse's own Alertmanager, in process with the tenant in the
// context, or over the network with the cluster secret; a tenant's
// ruler_alertmanager_url still sends its alerts elsewhere (#16).
func TestOwnAlertmanager(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte("cluster-secret-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	inProcess := &alertSink{alerts: map[string]int{}}
	remote := &alertSink{alerts: map[string]int{}}
	// The alertmanager's internal route, as cmd/fluxpulse serves it.
	internal := httptest.NewServer(http.StripPrefix("/internal", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer cluster-secret-0123456789" {
			http.Error(w, "no cluster secret", http.StatusUnauthorized)
			return
		}
		remote.ServeHTTP(w, r.WithContext(tenantauth.With(r.Context(), "ruler", r.Header.Get(tenantauth.OrgIDHeader))))
	})))
	t.Cleanup(internal.Close)
	elsewhere := newFakeAlertmanager(t)
	for _, tc := range []struct {
		name string
		am   *Alertmanager
		sink *alertSink
	}{
		{"in process", &Alertmanager{URL: "http://alertmanager.in-process.invalid", Handler: inProcess}, inProcess},
		{"over the network", &Alertmanager{URL: internal.URL + "/internal", BearerTokenFile: secret}, remote},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.ResendDelay = 100 * time.Millisecond
			e := newEnv(t, cfg, nil, nil, func(d *Dependencies) { d.Alertmanager = tc.am })
			limB := defaultLimits(t)
			limB.RulerAlertmanagerURL = elsewhere.URL + "/am"
			e.lim.Set(defaultLimits(t), map[string]limits.Limits{"team-b": limB})
			e.appendNow(map[string]float64{`up{job="a",instance="i1"}`: 1, `up{job="a",instance="i2"}`: 0})
			e.post("team-a", "prod", evalGroup)
			e.post("team-b", "prod", evalGroup)
			testbin.Eventually(t, 10*time.Second, func() error {
				got, other := tc.sink.got()
				if len(other) > 0 {
					t.Fatalf("unexpected requests: %v", other)
				}
				if got["team-a"] < 2 || len(got) != 1 {
					return fmt.Errorf("own Alertmanager got alerts of %v, want several of team-a only", got)
				}
				if tenants, _ := elsewhere.received(); tenants["team-b"] == 0 {
					return fmt.Errorf("team-b's own URL got %v", tenants)
				}
				return nil
			})
		})
	}
}
