package agent

import (
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/promql/promqltest"
)

// TestAlertRules checks the example rules shipped in deploy/agent: they
// parse as a Prometheus rule file, read only series the agent sends, and
// fire exactly for the situation they name.
func TestAlertRules(t *testing.T) {
	exprs := alertExprs(t)
	engine := promqltest.NewTestEngine(t, false, 0, 1e6)
	for _, tc := range []struct {
		alert, load, at, want string
	}{{
		alert: "HostDown",
		load: `fluxpulse_agent_heartbeat{instance="up"} 1x60
			fluxpulse_agent_heartbeat{instance="silent"} 1x20`,
		at:   "30m",
		want: `{instance="silent"} 1`,
	}, {
		alert: "HostAbsent",
		load:  `fluxpulse_agent_heartbeat{instance="web-1"} 1x60`,
		at:    "30m",
		want:  `{instance="db-1"} 1`,
	}, {
		alert: "DiskFillingUp",
		load: `node_filesystem_avail_bytes{mountpoint="/"} 90-0.1x400
			node_filesystem_size_bytes{mountpoint="/"} 1000x400
			node_filesystem_readonly{mountpoint="/"} 0x400
			node_filesystem_avail_bytes{mountpoint="/steady"} 50x400
			node_filesystem_size_bytes{mountpoint="/steady"} 1000x400
			node_filesystem_readonly{mountpoint="/steady"} 0x400`,
		at:   "6h",
		want: `{mountpoint="/"} 0.054`,
	}, {
		alert: "DiskAlmostFull",
		load: `node_filesystem_avail_bytes{mountpoint="/full"} 20x30
			node_filesystem_size_bytes{mountpoint="/full"} 1000x30
			node_filesystem_readonly{mountpoint="/full"} 0x30
			node_filesystem_avail_bytes{mountpoint="/cdrom"} 0x30
			node_filesystem_size_bytes{mountpoint="/cdrom"} 1000x30
			node_filesystem_readonly{mountpoint="/cdrom"} 1x30`,
		at:   "20m",
		want: `{mountpoint="/full"} 0.02`,
	}, {
		alert: "MemoryPressure",
		load: `node_memory_MemAvailable_bytes{instance="tight"} 5x30
			node_memory_MemTotal_bytes{instance="tight"} 100x30
			node_memory_MemAvailable_bytes{instance="roomy"} 50x30
			node_memory_MemTotal_bytes{instance="roomy"} 100x30`,
		at:   "20m",
		want: `{instance="tight"} 0.05`,
	}, {
		alert: "SystemdServiceFailed",
		load: `node_systemd_unit_state{name="a.service",state="failed"} 1x30
			node_systemd_unit_state{name="a.service",state="active"} 0x30
			node_systemd_unit_state{name="b.service",state="failed"} 0x30
			node_systemd_unit_state{name="b.service",state="active"} 1x30`,
		at:   "20m",
		want: `node_systemd_unit_state{name="a.service",state="failed"} 1`,
	}, {
		alert: "ProcessDown",
		load: `fluxpulse_agent_process_up{process="nginx"} 0x30
			fluxpulse_agent_process_up{process="postgres"} 1x30`,
		at:   "20m",
		want: `fluxpulse_agent_process_up{process="nginx"} 0`,
	}} {
		t.Run(tc.alert, func(t *testing.T) {
			expr, ok := exprs[tc.alert]
			if !ok {
				t.Fatalf("alert %s is missing from alerts.yml", tc.alert)
			}
			promqltest.RunTest(t, "load 1m\n\t"+tc.load+"\n\neval instant at "+tc.at+" "+expr+"\n\t"+tc.want+"\n", engine)
		})
	}
}

// alertExprs parses deploy/agent/alerts.yml as Prometheus does, checks
// that every rule reads only series the agent sends, and returns each
// alert's expression on one line.
func alertExprs(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile("../deploy/agent/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	p := parser.NewParser(parser.Options{})
	rgs, errs := rulefmt.Parse(b, false, model.UTF8Validation, p, slog.New(slog.DiscardHandler))
	if len(errs) > 0 {
		t.Fatalf("rule file does not parse: %v", errs)
	}
	exprs := map[string]string{}
	for _, g := range rgs.Groups {
		for _, r := range g.Rules {
			exprs[r.Alert] = strings.Join(strings.Fields(r.Expr), " ")
		}
	}
	for name, e := range exprs {
		expr, err := p.ParseExpr(e)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
			if vs, ok := n.(*parser.VectorSelector); ok && !Allowed(vs.Name) {
				t.Errorf("alert %s reads %s, which the agent never sends", name, vs.Name)
			}
			return nil
		})
	}

	return exprs
}
