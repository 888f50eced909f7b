package alertmanager

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fluxpulse/fluxpulse/testbin"
)

// TestFirewallCheck: which addresses notifications may connect to, and
// which flag decides (#16).
func TestFirewallCheck(t *testing.T) {
	def := FirewallConfig{BlockPrivateAddresses: true}
	allowLoopback := def
	allowLoopback.AllowCIDRs = CIDRList{netip.MustParsePrefix("127.0.0.0/8")}
	blockPublic := FirewallConfig{BlockCIDRs: CIDRList{netip.MustParsePrefix("203.0.113.0/24")}}
	own := []string{":9009", "127.0.0.1:9010"}
	for _, tc := range []struct {
		name string
		cfg  FirewallConfig
		addr string
		want string // "" allowed, else part of the error
	}{
		{"public", def, "8.8.8.8:443", ""},
		{"public IPv6", def, "[2001:4860:4860::8888]:443", ""},
		{"loopback", def, "127.0.0.1:8080", "loopback"},
		{"loopback IPv6", def, "[::1]:8080", "loopback"},
		{"cloud metadata", def, "169.254.169.254:80", "link-local"},
		{"link-local IPv6", def, "[fe80::1]:80", "link-local"},
		{"private 10/8", def, "10.1.2.3:25", "private"},
		{"private 172.16/12", def, "172.20.0.1:25", "private"},
		{"private 192.168/16", def, "192.168.1.1:25", "private"},
		{"unique local IPv6", def, "[fd00::1]:25", "private"},
		{"shared address space", def, "100.64.0.1:80", "reserved (100.64.0.0/10)"},
		{"this network", def, "0.0.0.0:80", "unspecified"},
		{"IPv4-mapped loopback", def, "[::ffff:127.0.0.1]:80", "loopback"},
		{"NAT64 to metadata", def, "[64:ff9b::a9fe:a9fe]:80", "NAT64"},
		{"allowed network", allowLoopback, "127.0.0.1:8080", ""},
		{"allowed network, metadata still refused", allowLoopback, "169.254.169.254:80", "link-local"},
		{"own listener on every interface", allowLoopback, "127.0.0.1:9009", "listener of this FluxPulse process"},
		{"own listener bound to loopback", allowLoopback, "127.0.0.1:9010", "listener of this FluxPulse process"},
		{"private allowed by flag", FirewallConfig{}, "10.1.2.3:25", ""},
		{"blocked network", blockPublic, "203.0.113.7:443", "-alertmanager.receivers-firewall-block-cidr-networks"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ap := netip.MustParseAddrPort(tc.addr)
			err := newFirewall(tc.cfg, own).check(ap.Addr(), ap.Port())
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && (err == nil || !errors.Is(err, ErrBlocked) || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("got %v, want a refusal naming %q", err, tc.want)
			}
		})
	}
}

// TestFirewallRefusesNotifications: with the default flags, webhooks to
// 127.0.0.1, to 169.254.169.254 and to a name that resolves to loopback,
// and e-mail to a smarthost on loopback, are refused when they connect:
// the receiver sees nothing, the refusal is counted per integration and
// is the notification's failure reason (#16).
func TestFirewallRefusesNotifications(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) }))
	defer srv.Close()
	smtp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer smtp.Close()
	go func() {
		for {
			c, err := smtp.Accept()
			if err != nil {
				return
			}
			hits.Add(1)
			c.Close()
		}
	}()
	cfg := testConfig(t)
	cfg.Firewall = FirewallConfig{BlockPrivateAddresses: true} // the default flags
	e := newEnv(t, cfg, "")
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	e.setConfig("a", wrap(fmt.Sprintf(`route: {receiver: all, group_wait: 0s}
receivers:
  - name: all
    webhook_configs:
      - url: %s/loopback
      - url: http://169.254.169.254/latest/meta-data/
      - url: http://localhost:%s/by-name
    email_configs:
      - {to: ops@example.com, from: fp@example.com, smarthost: '%s', require_tls: false}
`, srv.URL, port, smtp.Addr())))
	e.postAlerts("a", false, map[string]string{"alertname": "Probe"})
	testbin.Eventually(t, 20*time.Second, func() error {
		webhooks := e.counter("fluxpulse_alertmanager_notifications_blocked_total", map[string]string{"tenant": "a", "integration": "webhook"})
		mails := e.counter("fluxpulse_alertmanager_notifications_blocked_total", map[string]string{"tenant": "a", "integration": "email"})
		if webhooks != 3 || mails != 1 {
			return fmt.Errorf("blocked %v webhooks and %v e-mails", webhooks, mails)
		}
		failed := e.counter("fluxpulse_alertmanager_notifications_failed_total", map[string]string{"tenant": "a", "reason": "configError"})
		if failed != 4 {
			return fmt.Errorf("%v notifications failed as configError", failed)
		}
		return nil
	})
	if n := hits.Load(); n != 0 {
		t.Errorf("%d connections reached the receivers", n)
	}
}
