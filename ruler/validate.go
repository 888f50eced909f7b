package ruler

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v3"

	"github.com/fluxpulse/fluxpulse/limits"
	"github.com/fluxpulse/fluxpulse/queryguard"
)

// MaxGroupBytes is the largest request body the rules configuration API
// accepts.
const MaxGroupBytes = 1 << 20

// ErrInvalidGroup is wrapped by every error about a rule group that cannot
// be stored: bad YAML, missing or unknown fields, bad PromQL, bad
// templates, duplicate group names, names too long, or a limit.
var ErrInvalidGroup = errors.New("invalid rules configuration")

// fileForm is a Prometheus rule file. The API accepts it as well as a single
// group, so that a rule file can be uploaded to a namespace as it is.
type fileForm struct {
	Groups []rulefmt.RuleGroup `yaml:"groups"`
}

type fileNodes struct {
	Groups []rulefmt.RuleGroupNode `yaml:"groups"`
}

// parseBody decodes a request body: one rule group as Cortex and Mimir
// take it, or a rule file with a groups list. Unknown fields are errors, so
// that a misspelt field never silently drops a setting.
func parseBody(body []byte) ([]rulefmt.RuleGroup, []rulefmt.RuleGroupNode, error) {
	var probe struct {
		Groups yaml.Node `yaml:"groups"`
	}
	if err := yaml.Unmarshal(body, &probe); err != nil {
		return nil, nil, fmt.Errorf("%w: the body is not a YAML rule group: %v", ErrInvalidGroup, err)
	}
	if probe.Groups.Kind != 0 {
		var f fileForm
		var n fileNodes
		if err := decodeStrict(body, &f, &n); err != nil {
			return nil, nil, err
		}
		if len(f.Groups) == 0 {
			return nil, nil, fmt.Errorf("%w: the rule file has no groups", ErrInvalidGroup)
		}
		return f.Groups, n.Groups, nil
	}
	var g rulefmt.RuleGroup
	var n rulefmt.RuleGroupNode
	if err := decodeStrict(body, &g, &n); err != nil {
		return nil, nil, err
	}
	return []rulefmt.RuleGroup{g}, []rulefmt.RuleGroupNode{n}, nil
}

// decodeStrict decodes one YAML document into v, refusing unknown fields,
// and into nodes, which keeps line numbers for error messages.
func decodeStrict(body []byte, v, nodes any) error {
	dec := yaml.NewDecoder(bytes.NewReader(body))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("%w: the body is empty", ErrInvalidGroup)
		}
		return fmt.Errorf("%w: %v", ErrInvalidGroup, err)
	}
	var extra any
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: the body holds more than one YAML document", ErrInvalidGroup)
	}
	if err := yaml.Unmarshal(body, nodes); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidGroup, err)
	}
	return nil
}

// validateGroups checks groups as Prometheus checks a rule file (names,
// fields, PromQL, templates, labels) plus what the API needs: a non-empty
// name that fits in an object name, at least one rule, no negative
// durations, and no group name twice.
func validateGroups(gs []rulefmt.RuleGroup, nodes []rulefmt.RuleGroupNode, p parser.Parser) []error {
	var errs []error
	seen := map[string]bool{}
	for j, g := range gs {
		if g.Name == "" {
			errs = append(errs, errors.New("rule group name must not be empty"))
			continue
		}
		if err := checkName("rule group name", g.Name); err != nil {
			errs = append(errs, err)
		}
		if seen[g.Name] {
			errs = append(errs, fmt.Errorf("rule group %q is defined more than once", g.Name))
		}
		seen[g.Name] = true
		if len(g.Rules) == 0 {
			errs = append(errs, fmt.Errorf("rule group %q has no rules", g.Name))
		}
		if g.Interval < 0 || g.QueryOffset != nil && *g.QueryOffset < 0 || g.Limit < 0 {
			errs = append(errs, fmt.Errorf("rule group %q: interval, query_offset and limit must not be negative", g.Name))
		}
		for k, v := range g.Labels {
			if !model.UTF8Validation.IsValidLabelName(k) || k == model.MetricNameLabel || !model.LabelValue(v).IsValid() {
				errs = append(errs, fmt.Errorf("rule group %q: invalid label %q=%q", g.Name, k, v))
			}
		}
		var rn []rulefmt.RuleNode
		if j < len(nodes) {
			rn = nodes[j].Rules
		}
		for i, r := range g.Rules {
			var node rulefmt.RuleNode
			if i < len(rn) {
				node = rn[i]
			}
			for _, we := range r.Validate(node, model.UTF8Validation, p) {
				name := r.Alert
				if name == "" {
					name = r.Record
				}
				errs = append(errs, &rulefmt.Error{Group: g.Name, Rule: i + 1, RuleName: name, Err: we})
			}
		}
	}
	return errs
}

// checkExprs applies the tenant's PromQL size and depth limits to every
// rule's expr before the parser sees it (#12): a rule group is posted by a
// tenant like a query, and parsed again on every load.
func checkExprs(tenant string, lim limits.Limits, gs []rulefmt.RuleGroup) error {
	for _, g := range gs {
		for i, rl := range g.Rules {
			name := rl.Alert + rl.Record
			if err := queryguard.Check(tenant, lim, fmt.Sprintf("rule %d (%q) of group %q", i+1, name, g.Name), rl.Expr); err != nil {
				return fmt.Errorf("%w: %w", ErrInvalidGroup, err)
			}
		}
	}
	return nil
}

// joinErrors makes one ErrInvalidGroup error of validation errors.
func joinErrors(errs []error) error {
	msgs := make([]string, len(errs))
	for k, e := range errs {
		msgs[k] = e.Error()
	}
	return fmt.Errorf("%w: %s", ErrInvalidGroup, strings.Join(msgs, "; "))
}

// checkLimits applies the tenant's limits to groups about to be stored.
// existing is how many groups the tenant will keep besides these.
func checkLimits(tenant string, gs []rulefmt.RuleGroup, existing int, lim limits.Limits, defaultInterval time.Duration) error {
	if n := existing + len(gs); lim.RulerMaxRuleGroups > 0 && n > lim.RulerMaxRuleGroups {
		return fmt.Errorf("%w: tenant %s would have %d rule groups, more than the limit of %d (%s)",
			ErrInvalidGroup, tenant, n, lim.RulerMaxRuleGroups, limits.Source(limits.FlagRulerMaxRuleGroups))
	}
	for _, g := range gs {
		if lim.RulerMaxRulesPerGroup > 0 && len(g.Rules) > lim.RulerMaxRulesPerGroup {
			return fmt.Errorf("%w: rule group %q has %d rules, more than the limit of %d rules per rule group (%s)",
				ErrInvalidGroup, g.Name, len(g.Rules), lim.RulerMaxRulesPerGroup, limits.Source(limits.FlagRulerMaxRulesPerGroup))
		}
		itv, what := time.Duration(g.Interval), "an evaluation interval"
		if itv == 0 {
			itv, what = defaultInterval, "no interval, so the default of -ruler.evaluation-interval,"
		}
		if itv < lim.RulerMinEvaluationInterval {
			return fmt.Errorf("%w: rule group %q has %s %s, shorter than the minimum evaluation interval of %s (%s)",
				ErrInvalidGroup, g.Name, what, itv, lim.RulerMinEvaluationInterval, limits.Source(limits.FlagRulerMinEvalInterval))
		}
	}
	return nil
}

// parseStored decodes and checks a group of tenant read from the bucket,
// with the tenant's limits on PromQL as they are now.
func parseStored(tenant string, lim limits.Limits, b []byte, p parser.Parser) (rulefmt.RuleGroup, error) {
	gs, nodes, err := parseBody(b)
	if err != nil {
		return rulefmt.RuleGroup{}, err
	}
	if len(gs) != 1 {
		return rulefmt.RuleGroup{}, fmt.Errorf("%w: a stored object holds %d groups", ErrInvalidGroup, len(gs))
	}
	if err := checkExprs(tenant, lim, gs); err != nil {
		return rulefmt.RuleGroup{}, err
	}
	if errs := validateGroups(gs, nodes, p); len(errs) > 0 {
		return rulefmt.RuleGroup{}, joinErrors(errs)
	}
	return gs[0], nil
}

// effectiveInterval is the interval a group is evaluated at: its own or
// the default, raised to the tenant's minimum if that went up since the
// group was stored.
func effectiveInterval(g rulefmt.RuleGroup, def, minimum time.Duration) time.Duration {
	itv := time.Duration(g.Interval)
	if itv == 0 {
		itv = def
	}
	return max(itv, minimum)
}
