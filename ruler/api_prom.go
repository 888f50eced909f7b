package ruler

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
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
	r.mu.RLock()
	defer r.mu.RUnlock()
	if t := r.tenants[id]; t != nil {
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

// apiRuleGroup is a group as GET /api/v1/rules shows it, with the ruler
// that evaluates it when rulers share their groups over a ring.
type apiRuleGroup struct {
	*v1.RuleGroup
	Evaluator string `json:"evaluator,omitempty"`
}

// Peers reaches the other rulers of the ring (cmd/fluxpulse, over gRPC).
type Peers interface {
	// Groups returns, for the tenant of ctx, what OwnGroups returns on
	// every other healthy ruler of the ring for query.
	Groups(ctx context.Context, query string) ([][]byte, error)
}

// SetPeers makes GET /api/v1/rules answer for every group of the tenant,
// whichever ruler evaluates it: the other rulers are asked. Call it before
// serving.
func (r *Ruler) SetPeers(p Peers) { r.peers = p }

// OwnGroups returns the tenant's groups this ruler evaluates that the
// rules API's parameters in query select, as a JSON array of groups (each
// with its evaluator), without paging.
func (r *Ruler) OwnGroups(tenant, query string) ([]byte, error) {
	req := &http.Request{Method: http.MethodGet, URL: &url.URL{RawQuery: query}}
	f, err := parseRulesFilter(req, r.parser, tenant, r.deps.Limits.Limits(tenant))
	if err != nil {
		return nil, err
	}
	f.groupLimit, f.nextToken = 0, ""
	var out []apiRuleGroup
	for _, g := range r.groups(tenant) {
		if len(f.groups) > 0 && !f.groups[g.Name()] || len(f.files) > 0 && !f.files[g.File()] {
			continue
		}
		if ag := apiGroup(g, f); len(ag.Rules) > 0 {
			out = append(out, apiRuleGroup{RuleGroup: ag, Evaluator: r.Evaluator()})
		}
	}
	if out == nil {
		out = []apiRuleGroup{}
	}
	return json.Marshal(out)
}

// listedGroup is a group of the answer, encoded, with what sorts and pages
// it.
type listedGroup struct {
	File string `json:"file"`
	Name string `json:"name"`
	raw  json.RawMessage
}

// prometheusRules answers GET /prometheus/api/v1/rules like Prometheus,
// with the namespace as the file; with rulers sharing groups, for the
// groups of every ruler, each naming its evaluator.
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
	own, err := r.OwnGroups(id, req.URL.RawQuery)
	if err != nil {
		badData(w, "%v", err)
		return
	}
	parts := [][]byte{own}
	if r.peers != nil {
		more, err := r.peers.Groups(req.Context(), req.URL.RawQuery)
		if err != nil {
			r.logger.Error("rules API: ask the other rulers", "tenant", id, "err", err)
			writePromJSON(w, http.StatusServiceUnavailable, promResponse{Status: "error", ErrorType: "unavailable", Error: "another ruler did not answer: " + err.Error()})
			return
		}
		parts = append(parts, more...)
	}
	var all []listedGroup
	for _, p := range parts {
		var raws []json.RawMessage
		if err := json.Unmarshal(p, &raws); err != nil {
			r.serverErrorJSON(w, fmt.Errorf("decode a ruler's groups: %w", err))
			return
		}
		for _, raw := range raws {
			var lg listedGroup
			if err := json.Unmarshal(raw, &lg); err != nil {
				r.serverErrorJSON(w, fmt.Errorf("decode a ruler's group: %w", err))
				return
			}
			lg.raw = raw
			all = append(all, lg)
		}
	}
	listed := make(map[string]bool, len(all))
	for _, g := range all {
		listed[g.File+";"+g.Name] = true
	}
	missing, err := r.unevaluated(req.Context(), id, f, listed)
	if err != nil {
		r.serverErrorJSON(w, err)
		return
	}
	all = append(all, missing...)
	slices.SortFunc(all, func(a, b listedGroup) int {
		return cmp.Or(strings.Compare(a.File, b.File), strings.Compare(a.Name, b.Name))
	})
	res := struct {
		RuleGroups     []json.RawMessage `json:"groups"`
		GroupNextToken string            `json:"groupNextToken,omitempty"`
	}{RuleGroups: []json.RawMessage{}}
	found := f.nextToken == ""
	for _, g := range all {
		if !found {
			if found = groupToken(g.File, g.Name) == f.nextToken; !found {
				continue
			}
		}
		if f.groupLimit > 0 && len(res.RuleGroups) == f.groupLimit {
			res.GroupNextToken = groupToken(g.File, g.Name)
			break
		}
		res.RuleGroups = append(res.RuleGroups, g.raw)
	}
	if !found {
		badData(w, "invalid parameter \"group_next_token\": invalid group_next_token '%v'. were rule groups changed?", f.nextToken)
		return
	}
	writePromJSON(w, http.StatusOK, promResponse{Status: "success", Data: res})
}

// serverErrorJSON logs a fault and answers 500 in the API's envelope.
func (r *Ruler) serverErrorJSON(w http.ResponseWriter, err error) {
	r.logger.Error("rules API", "err", err)
	writePromJSON(w, http.StatusInternalServerError, promResponse{Status: "error", ErrorType: "internal", Error: "internal error; see the server log"})
}

func groupToken(file, name string) string {
	h := sha256.Sum256([]byte(file + ";" + name))
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
// every pending and firing alert of the tenant; with rulers sharing
// groups, the other rulers' too (read from their alerting rules).
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
	if r.peers != nil {
		more, err := r.peers.Groups(req.Context(), "type=alert")
		if err != nil {
			r.logger.Error("alerts API: ask the other rulers", "tenant", id, "err", err)
			writePromJSON(w, http.StatusServiceUnavailable, promResponse{Status: "error", ErrorType: "unavailable", Error: "another ruler did not answer: " + err.Error()})
			return
		}
		for _, p := range more {
			var gs []struct {
				Rules []struct {
					Alerts []*v1.Alert `json:"alerts"`
				} `json:"rules"`
			}
			if err := json.Unmarshal(p, &gs); err != nil {
				r.serverErrorJSON(w, fmt.Errorf("decode a ruler's groups: %w", err))
				return
			}
			for _, g := range gs {
				for _, rl := range g.Rules {
					res.Alerts = append(res.Alerts, rl.Alerts...)
				}
			}
		}
	}
	writePromJSON(w, http.StatusOK, promResponse{Status: "success", Data: res})
}
