package ruler

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	v1 "github.com/prometheus/prometheus/web/api/v1"
	"go.yaml.in/yaml/v3"
)

// unevaluated returns, encoded as the rules API lists them, the tenant's
// stored groups that no ruler listed (listed holds "namespace;group" of
// those that one did): groups in the middle of a handover, or whose ruler
// died and is not unhealthy yet. They have no evaluator, health unknown,
// and no alerts. A request with match[] gets none of them (their rules
// have no series labels to match yet).
func (r *Ruler) unevaluated(ctx context.Context, tenant string, f rulesFilter, listed map[string]bool) ([]listedGroup, error) {
	if r.own == nil || len(f.matchers) > 0 {
		return nil, nil
	}
	stored, err := r.store.load(ctx, tenant, "")
	if err != nil {
		return nil, err
	}
	var out []listedGroup
	for _, sg := range stored {
		if listed[sg.Namespace+";"+sg.Group] || len(f.groups) > 0 && !f.groups[sg.Group] || len(f.files) > 0 && !f.files[sg.Namespace] {
			continue
		}
		var g rulefmt.RuleGroup
		if err := yaml.Unmarshal(sg.YAML, &g); err != nil {
			return nil, fmt.Errorf("decode stored rule group %q in namespace %q: %w", sg.Group, sg.Namespace, err)
		}
		interval := time.Duration(g.Interval)
		if interval == 0 {
			interval = r.cfg.EvaluationInterval
		}
		ag := &v1.RuleGroup{Name: sg.Group, File: sg.Namespace, Interval: interval.Seconds(), Limit: g.Limit, Rules: []v1.Rule{}}
		for _, rl := range g.Rules {
			if len(f.names) > 0 && !f.names[rl.Alert+rl.Record] {
				continue
			}
			switch {
			case rl.Alert != "" && f.alerts:
				ag.Rules = append(ag.Rules, v1.AlertingRule{State: "inactive", Name: rl.Alert, Query: rl.Expr,
					Duration: time.Duration(rl.For).Seconds(), KeepFiringFor: time.Duration(rl.KeepFiringFor).Seconds(),
					Labels: labels.FromMap(rl.Labels), Annotations: labels.FromMap(rl.Annotations), Alerts: []*v1.Alert{},
					Health: "unknown", Type: "alerting"})
			case rl.Record != "" && f.records:
				ag.Rules = append(ag.Rules, v1.RecordingRule{Name: rl.Record, Query: rl.Expr, Labels: labels.FromMap(rl.Labels),
					Health: "unknown", Type: "recording"})
			}
		}
		if len(ag.Rules) == 0 {
			continue
		}
		raw, err := json.Marshal(apiRuleGroup{RuleGroup: ag})
		if err != nil {
			return nil, err
		}
		out = append(out, listedGroup{File: sg.Namespace, Name: sg.Group, raw: raw})
	}
	return out, nil
}
