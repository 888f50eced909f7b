package ruler

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/rules"
	v1 "github.com/prometheus/prometheus/web/api/v1"

	"github.com/fluxpulse/fluxpulse/limits"
	"github.com/fluxpulse/fluxpulse/queryguard"
	"github.com/fluxpulse/fluxpulse/tenantauth"
)

// promResponse is the envelope of the Prometheus HTTP API.
type promResponse struct {
	Status    string `json:"status"`
	Data      any    `json:"data,omitempty"`
	ErrorType string `json:"errorType,omitempty"`
	Error     string `json:"error,omitempty"`
}

func writePromJSON(w http.ResponseWriter, status int, v promResponse) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func badData(w http.ResponseWriter, format string, args ...any) {
	writePromJSON(w, http.StatusBadRequest, promResponse{Status: "error", ErrorType: "bad_data", Error: fmt.Sprintf(format, args...)})
}

// promTenant returns the one tenant of a rules or alerts request: rules are
// per tenant, so a federated read is refused.
func promTenant(w http.ResponseWriter, req *http.Request) (string, bool) {
	id, err := tenantauth.Tenant(req.Context())
	if err != nil {
		badData(w, "rules and alerts belong to one tenant: %v", err)
		return "", false
	}
	return id, true
}

// groups returns the tenant's rule groups, sorted by namespace and name.
func (r *Ruler) groups(id string) []*rules.Group {
	if t := r.tenant(id); t != nil {
		return t.manager.RuleGroups()
	}
	return nil
}

// rulesFilter is what GET /api/v1/rules selects, with Prometheus's
// parameters.
type rulesFilter struct {
	names, groups, files map[string]bool
	matchers             [][]*labels.Matcher
	alerts, records      bool
	excludeAlerts        bool
	groupLimit           int
	nextToken            string
}

func parseRulesFilter(req *http.Request, p parser.Parser, id string, lim limits.Limits) (rulesFilter, error) {
	if err := req.ParseForm(); err != nil {
		return rulesFilter{}, fmt.Errorf("error parsing form values: %w", err)
	}
	set := func(vs []string) map[string]bool {
		m := make(map[string]bool, len(vs))
		for _, v := range vs {
			m[v] = true
		}
		return m
	}
	f := rulesFilter{names: set(req.Form["rule_name[]"]), groups: set(req.Form["rule_group[]"]), files: set(req.Form["file[]"])}
	if ms := req.Form["match[]"]; len(ms) > 0 {
		if err := queryguard.Check(id, lim, "match[]", ms...); err != nil {
			return f, err
		}
		sets, err := p.ParseMetricSelectors(ms)
		if err != nil {
			return f, fmt.Errorf("invalid parameter \"match[]\": %w", err)
		}
		for _, set := range sets {
			if !slices.ContainsFunc(set, func(m *labels.Matcher) bool { return !m.Matches("") }) {
				return f, errors.New("match[] must contain at least one non-empty matcher")
			}
		}
		f.matchers = sets
	}
	switch typ := strings.ToLower(req.Form.Get("type")); typ {
	case "":
		f.alerts, f.records = true, true
	case "alert":
		f.alerts = true
	case "record":
		f.records = true
	default:
		return f, fmt.Errorf("invalid parameter \"type\": not supported value %q", typ)
	}
	if s := req.Form.Get("exclude_alerts"); s != "" {
		b, err := strconv.ParseBool(strings.ToLower(s))
		if err != nil {
			return f, fmt.Errorf("invalid parameter \"exclude_alerts\": %w", err)
		}
		f.excludeAlerts = b
	}
	f.nextToken = req.Form.Get("group_next_token")
	if s := req.Form.Get("group_limit"); s != "" {
		n, err := strconv.ParseInt(s, 10, 32)
		if err != nil || n <= 0 {
			return f, errors.New("invalid parameter \"group_limit\": group_limit needs to be a number greater than 0")
		}
		f.groupLimit = int(n)
	} else if f.nextToken != "" {
		return f, errors.New("invalid parameter \"group_next_token\": group_limit needs to be present in order to paginate over the groups")
	}
	return f, nil
}

// prometheusRules answers GET /prometheus/api/v1/rules like Prometheus,
// with the namespace as the file.
func (r *Ruler) prometheusRules(w http.ResponseWriter, req *http.Request) {
	id, ok := promTenant(w, req)
	if !ok {
		return
	}
	f, err := parseRulesFilter(req, r.parser, id, r.deps.Limits.Limits(id))
	if err != nil {
		badData(w, "%v", err)
		return
	}
	res := &v1.RuleDiscovery{RuleGroups: []*v1.RuleGroup{}}
	found := f.nextToken == ""
	for _, g := range r.groups(id) {
		if !found {
			found = nextToken(g) == f.nextToken
			if !found {
				continue
			}
		}
		if len(f.groups) > 0 && !f.groups[g.Name()] || len(f.files) > 0 && !f.files[g.File()] {
			continue
		}
		ag := apiGroup(g, f)
		if len(ag.Rules) == 0 {
			continue
		}
		if f.groupLimit > 0 && len(res.RuleGroups) == f.groupLimit {
			res.GroupNextToken = nextToken(g)
			break
		}
		res.RuleGroups = append(res.RuleGroups, ag)
	}
	if !found {
		badData(w, "invalid parameter \"group_next_token\": invalid group_next_token '%v'. were rule groups changed?", f.nextToken)
		return
	}
	writePromJSON(w, http.StatusOK, promResponse{Status: "success", Data: res})
}

func nextToken(g *rules.Group) string {
	h := sha256.Sum256([]byte(g.File() + ";" + g.Name()))
	return hex.EncodeToString(h[:])
}

// apiGroup describes a group and those of its rules the filter selects.
func apiGroup(g *rules.Group, f rulesFilter) *v1.RuleGroup {
	ag := &v1.RuleGroup{
		Name: g.Name(), File: g.File(), Interval: g.Interval().Seconds(), Limit: g.Limit(), Rules: []v1.Rule{},
		EvaluationTime: g.GetEvaluationTime().Seconds(), LastEvaluation: g.GetLastEvaluation(),
	}
	for _, rl := range g.Rules(f.matchers...) {
		if len(f.names) > 0 && !f.names[rl.Name()] {
			continue
		}
		lastError := ""
		if err := rl.LastError(); err != nil {
			lastError = err.Error()
		}
		switch rl := rl.(type) {
		case *rules.AlertingRule:
			if !f.alerts {
				continue
			}
			var alerts []*v1.Alert
			if !f.excludeAlerts {
				alerts = apiAlerts(rl.ActiveAlerts())
			}
			ag.Rules = append(ag.Rules, v1.AlertingRule{
				State: rl.State().String(), Name: rl.Name(), Query: rl.Query().String(),
				Duration: rl.HoldDuration().Seconds(), KeepFiringFor: rl.KeepFiringFor().Seconds(),
				Labels: rl.Labels(), Annotations: rl.Annotations(), Alerts: alerts,
				Health: rl.Health(), LastError: lastError,
				EvaluationTime: rl.GetEvaluationDuration().Seconds(), LastEvaluation: rl.GetEvaluationTimestamp(),
				Type: "alerting",
			})
		case *rules.RecordingRule:
			if !f.records {
				continue
			}
			ag.Rules = append(ag.Rules, v1.RecordingRule{
				Name: rl.Name(), Query: rl.Query().String(), Labels: rl.Labels(),
				Health: rl.Health(), LastError: lastError,
				EvaluationTime: rl.GetEvaluationDuration().Seconds(), LastEvaluation: rl.GetEvaluationTimestamp(),
				Type: "recording",
			})
		}
	}
	return ag
}

func apiAlerts(as []*rules.Alert) []*v1.Alert {
	out := make([]*v1.Alert, len(as))
	for k, a := range as {
		out[k] = &v1.Alert{
			Labels: a.Labels, Annotations: a.Annotations, State: a.State.String(),
			ActiveAt: &a.ActiveAt, Value: strconv.FormatFloat(a.Value, 'e', -1, 64),
		}
		if !a.KeepFiringSince.IsZero() {
			out[k].KeepFiringSince = &a.KeepFiringSince
		}
	}
	return out
}

// prometheusAlerts answers GET /prometheus/api/v1/alerts like Prometheus:
// every pending and firing alert of the tenant.
func (r *Ruler) prometheusAlerts(w http.ResponseWriter, req *http.Request) {
	id, ok := promTenant(w, req)
	if !ok {
		return
	}
	res := &v1.AlertDiscovery{Alerts: []*v1.Alert{}}
	for _, g := range r.groups(id) {
		for _, rl := range g.AlertingRules() {
			res.Alerts = append(res.Alerts, apiAlerts(rl.ActiveAlerts())...)
		}
	}
	writePromJSON(w, http.StatusOK, promResponse{Status: "success", Data: res})
}
