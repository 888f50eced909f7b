package ruler

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/prometheus/prometheus/model/rulefmt"
	"go.yaml.in/yaml/v3"

	"github.com/fluxpulse/fluxpulse/audit"
	"github.com/fluxpulse/fluxpulse/tenantauth"
)

// configPrefixes are where the rules configuration API is served: the
// Cortex path and the Mimir path (the one mimirtool and Grafana use).
var configPrefixes = []string{"/api/v1/rules", "/prometheus/config/v1/rules"}

// Register adds the ruler's routes to mux: the rules configuration API
// wrapped by rulesAuth (which must put one tenant in the context; scope
// rules), and the Prometheus API's rules and alerts wrapped by readAuth
// (scope read).
func (r *Ruler) Register(mux *http.ServeMux, rulesAuth, readAuth func(http.Handler) http.Handler) {
	h := func(f http.HandlerFunc) http.Handler { return rulesAuth(f) }
	for _, p := range configPrefixes {
		mux.Handle("GET "+p, h(r.listRules))
		mux.Handle("GET "+p+"/{namespace}", h(r.listRules))
		mux.Handle("POST "+p+"/{namespace}", h(r.createGroups))
		mux.Handle("DELETE "+p+"/{namespace}", h(r.deleteNamespace))
		mux.Handle("GET "+p+"/{namespace}/{group}", h(r.getGroup))
		mux.Handle("DELETE "+p+"/{namespace}/{group}", h(r.deleteGroup))
	}
	mux.Handle("GET /prometheus/api/v1/rules", readAuth(http.HandlerFunc(r.prometheusRules)))
	mux.Handle("GET /prometheus/api/v1/alerts", readAuth(http.HandlerFunc(r.prometheusAlerts)))
}

// configTenant returns the tenant of a configuration request, or writes
// the error.
func configTenant(w http.ResponseWriter, req *http.Request) (string, bool) {
	id, err := tenantauth.Tenant(req.Context())
	if err != nil {
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return "", false
	}
	return id, true
}

// listRules answers GET /api/v1/rules[/{namespace}]: a YAML map from
// namespace to its groups. No groups at all is an empty map, as in Mimir; a
// namespace without groups is 404, as in Cortex.
func (r *Ruler) listRules(w http.ResponseWriter, req *http.Request) {
	id, ok := configTenant(w, req)
	if !ok {
		return
	}
	ns := req.PathValue("namespace")
	stored, err := r.store.load(req.Context(), id, ns)
	if err != nil {
		r.serverError(w, err)
		return
	}
	if ns != "" && len(stored) == 0 {
		http.Error(w, ErrNamespaceNotFound.Error(), http.StatusNotFound)
		return
	}
	out := map[string][]configGroup{}
	for _, sg := range stored {
		var g rulefmt.RuleGroup
		if err := yaml.Unmarshal(sg.YAML, &g); err != nil {
			r.serverError(w, fmt.Errorf("decode stored rule group %q in namespace %q: %w", sg.Group, sg.Namespace, err))
			return
		}
		out[sg.Namespace] = append(out[sg.Namespace], configGroup{RuleGroup: g, Evaluator: r.ownerOf(id, sg.Namespace, sg.Group)})
	}
	writeYAML(w, out)
}

// getGroup answers GET /api/v1/rules/{namespace}/{group} with the group's
// YAML.
func (r *Ruler) getGroup(w http.ResponseWriter, req *http.Request) {
	id, ok := configTenant(w, req)
	if !ok {
		return
	}
	b, err := r.store.get(req.Context(), id, req.PathValue("namespace"), req.PathValue("group"))
	if errors.Is(err, ErrGroupNotFound) {
		http.Error(w, ErrGroupNotFound.Error(), http.StatusNotFound)
		return
	}
	if err != nil {
		r.serverError(w, err)
		return
	}
	if e := r.ownerOf(id, req.PathValue("namespace"), req.PathValue("group")); e != "" {
		line, _ := yaml.Marshal(map[string]string{"evaluator": e})
		b = append(bytes.TrimRight(b, "\n"), '\n')
		b = append(b, line...)
	}
	w.Header().Set("Content-Type", "application/yaml")
	_, _ = w.Write(b)
}

// configGroup is a group as the configuration API shows it: with rulers
// sharing groups over a ring, with the ruler that owns it there (which
// evaluates it, or takes it within the ring's stable period).
type configGroup struct {
	rulefmt.RuleGroup `yaml:",inline"`
	Evaluator         string `yaml:"evaluator,omitempty"`
}

// ownerOf is the ruler that owns a group on the ring; empty when the
// ruler is not sharded or the ring has no healthy ruler.
func (r *Ruler) ownerOf(tenant, namespace, group string) string {
	if r.own == nil {
		return ""
	}
	id, err := r.own.ring.Owner(r.own.cfg.Token(tenant, namespace, group))
	if err != nil {
		return ""
	}
	return id
}

// stripEvaluator removes the evaluator field that GET answers add to
// each group (with rulers sharing groups), so that a group read back can
// be posted again as it is. A body that is not one YAML document is left
// as it is, for the validation to refuse.
func stripEvaluator(body []byte) []byte {
	dec := yaml.NewDecoder(bytes.NewReader(body))
	var doc, extra yaml.Node
	if dec.Decode(&doc) != nil || dec.Decode(&extra) == nil || len(doc.Content) != 1 {
		return body
	}
	root := doc.Content[0]
	groups := []*yaml.Node{root}
	if root.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(root.Content); i += 2 {
			if root.Content[i].Value == "groups" && root.Content[i+1].Kind == yaml.SequenceNode {
				groups = root.Content[i+1].Content
			}
		}
	}
	removed := false
	for _, g := range groups {
		if g.Kind != yaml.MappingNode {
			continue
		}
		for i := 0; i+1 < len(g.Content); i += 2 {
			if g.Content[i].Value == "evaluator" {
				g.Content = append(g.Content[:i], g.Content[i+2:]...)
				removed = true
				break
			}
		}
	}
	if !removed {
		return body
	}
	out, err := yaml.Marshal(&doc)
	if err != nil {
		return body
	}
	return out
}

// createGroups answers POST /api/v1/rules/{namespace}: it stores the group
// in the body (or every group of a rule file), replacing groups of the same
// name in the namespace, and answers 202 Accepted: evaluation starts with
// the next sync, at once in this process.
func (r *Ruler) createGroups(w http.ResponseWriter, req *http.Request) {
	id, ok := configTenant(w, req)
	if !ok {
		return
	}
	ns := req.PathValue("namespace")
	entry := audit.Entry{Actor: tenantauth.Actor(req.Context()), Tenant: id, Target: ns,
		Details: map[string]any{"method": req.Method, "namespace": ns}}
	status, err := r.storeGroups(w, req, id, ns, &entry)
	if err != nil {
		entry.Outcome = audit.OutcomeFailure
		entry.Details["status"] = status
		entry.Details["error"] = err.Error()
		r.audit(entry)
		if status >= 500 {
			r.serverError(w, err)
			return
		}
		http.Error(w, err.Error(), status)
		return
	}
	entry.Outcome = audit.OutcomeSuccess
	r.audit(entry)
	r.notifyChange(id)
	writeAccepted(w)
}

// storeGroups validates the body and stores its groups. It returns the
// status to answer with when it fails.
func (r *Ruler) storeGroups(w http.ResponseWriter, req *http.Request, id, ns string, entry *audit.Entry) (int, error) {
	if err := checkName("namespace", ns); err != nil {
		return http.StatusBadRequest, fmt.Errorf("%w: %v", ErrInvalidGroup, err)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, MaxGroupBytes))
	if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
		return http.StatusRequestEntityTooLarge, fmt.Errorf("the body is larger than %d bytes", MaxGroupBytes)
	}
	if err != nil {
		return http.StatusBadRequest, fmt.Errorf("read the body: %w", err)
	}
	gs, nodes, err := parseBody(stripEvaluator(body))
	if err != nil {
		return http.StatusBadRequest, err
	}
	names := make([]string, len(gs))
	for k, g := range gs {
		names[k] = g.Name
	}
	entry.Target = ns + "/" + strings.Join(names, ",")
	entry.Details["groups"] = names
	lim := r.deps.Limits.Limits(id)
	if err := checkExprs(id, lim, gs); err != nil {
		return http.StatusBadRequest, err
	}
	if errs := validateGroups(gs, nodes, r.parser); len(errs) > 0 {
		return http.StatusBadRequest, joinErrors(errs)
	}
	existing, err := r.store.list(req.Context(), id, "")
	if err != nil {
		return http.StatusInternalServerError, err
	}
	kept := 0
	for _, e := range existing {
		if e.Namespace != ns || !containsName(gs, e.Group) {
			kept++
		}
	}
	if err := checkLimits(id, gs, kept, lim, r.cfg.EvaluationInterval); err != nil {
		return http.StatusBadRequest, err
	}
	for _, g := range gs {
		b, err := yaml.Marshal(&g)
		if err != nil {
			return http.StatusInternalServerError, fmt.Errorf("encode rule group %q: %w", g.Name, err)
		}
		if err := r.store.put(req.Context(), id, ns, g.Name, b); err != nil {
			return http.StatusInternalServerError, err
		}
	}
	return 0, nil
}

func containsName(gs []rulefmt.RuleGroup, name string) bool {
	for _, g := range gs {
		if g.Name == name {
			return true
		}
	}
	return false
}

// deleteNamespace answers DELETE /api/v1/rules/{namespace}.
func (r *Ruler) deleteNamespace(w http.ResponseWriter, req *http.Request) {
	id, ok := configTenant(w, req)
	if !ok {
		return
	}
	ns := req.PathValue("namespace")
	deleted, err := r.store.deleteNamespace(req.Context(), id, ns)
	r.finishDelete(w, req, id, ns, deleted, err)
}

// deleteGroup answers DELETE /api/v1/rules/{namespace}/{group}.
func (r *Ruler) deleteGroup(w http.ResponseWriter, req *http.Request) {
	id, ok := configTenant(w, req)
	if !ok {
		return
	}
	ns, g := req.PathValue("namespace"), req.PathValue("group")
	err := r.store.delete(req.Context(), id, ns, g)
	var deleted []string
	if err == nil {
		deleted = []string{g}
	}
	r.finishDelete(w, req, id, ns, deleted, err)
}

// finishDelete audits a deletion and answers it: 202, 404 for nothing to
// delete, 500 for a storage fault (after which some groups may be gone).
func (r *Ruler) finishDelete(w http.ResponseWriter, req *http.Request, id, ns string, deleted []string, err error) {
	target := ns
	if g := req.PathValue("group"); g != "" {
		target = ns + "/" + g
	}
	entry := audit.Entry{Actor: tenantauth.Actor(req.Context()), Tenant: id, Target: target, Outcome: audit.OutcomeSuccess,
		Details: map[string]any{"method": req.Method, "namespace": ns, "groups": deleted}}
	if len(deleted) > 0 {
		r.notifyChange(id)
	}
	notFound := errors.Is(err, ErrGroupNotFound) || errors.Is(err, ErrNamespaceNotFound)
	if err != nil {
		entry.Outcome = audit.OutcomeFailure
		entry.Details["error"] = err.Error()
	}
	if err == nil || !notFound {
		r.audit(entry) // a miss changed nothing: not worth an entry
	}
	switch {
	case errors.Is(err, ErrGroupNotFound):
		http.Error(w, ErrGroupNotFound.Error(), http.StatusNotFound)
	case errors.Is(err, ErrNamespaceNotFound):
		http.Error(w, ErrNamespaceNotFound.Error(), http.StatusNotFound)
	case err != nil:
		r.serverError(w, err)
	default:
		writeAccepted(w)
	}
}

// serverError logs a fault and answers 500 without its details.
func (r *Ruler) serverError(w http.ResponseWriter, err error) {
	r.logger.Error("rules API", "err", err)
	http.Error(w, "internal error reading or writing rule groups; see the server log", http.StatusInternalServerError)
}

func writeYAML(w http.ResponseWriter, v any) {
	b, err := yaml.Marshal(v)
	if err != nil {
		http.Error(w, "encode rule groups: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/yaml")
	_, _ = w.Write(b)
}

// writeAccepted writes Mimir's answer to a change: 202 with a success
// envelope.
func writeAccepted(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	_ = json.NewEncoder(w).Encode(struct {
		Status    string `json:"status"`
		Data      any    `json:"data"`
		ErrorType string `json:"errorType"`
		Error     string `json:"error"`
	}{Status: "success"})
}
