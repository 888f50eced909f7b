package ruler

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/rules"

	"github.com/fluxpulse/fluxpulse/tenantauth"
	"github.com/fluxpulse/fluxpulse/tenantmetrics"
)

// actorRuler is the actor of the queries and writes of rule evaluations.
const actorRuler = "ruler"

// tenant is one tenant's running rules. Only the Run goroutine changes it.
type tenant struct {
	id       string
	manager  *rules.Manager
	loader   *memLoader
	notifier *tenantNotifier
	reg      *tenantmetrics.Registry
	metrics  *rules.Metrics // shared by the managers the tenant has over time
	digest   [sha256.Size]byte
	done     chan struct{} // closed when manager.Run returns
	ctx      context.Context
	stored   []storedGroup     // as last read, for re-applying when groups change hands
	applied  map[groupKey]bool // the groups the manager runs
}

// newTenant starts a rules manager for the tenant, with no groups yet. Its
// queries and writes carry a context naming the tenant.
func (r *Ruler) newTenant(ctx context.Context, id string) *tenant {
	reg := tenantmetrics.New(r.reg, id)
	t := &tenant{
		id:       id,
		loader:   &memLoader{parser: r.parser},
		notifier: &tenantNotifier{tenant: id, reg: reg},
		reg:      reg,
		done:     make(chan struct{}),
	}
	var registerer prometheus.Registerer
	if r.reg != nil {
		registerer = reg
	}
	t.metrics = rules.NewGroupMetrics(registerer)
	t.ctx = ctx
	r.startManager(t)
	return t
}

// startManager starts a new rules manager for the tenant, with no groups.
func (r *Ruler) startManager(t *tenant) {
	id := t.id
	send := rules.SendAlerts(t.notifier, r.extURL.String())
	m := rules.NewManager(&rules.ManagerOptions{
		NameValidationScheme: model.UTF8Validation,
		ExternalURL:          r.extURL,
		QueryFunc:            rules.EngineQueryFunc(r.deps.Engine, r.deps.Queryable),
		NotifyFunc: func(ctx context.Context, expr string, alerts ...*rules.Alert) {
			if alerts = r.quiet(ctx, alerts); len(alerts) > 0 {
				send(ctx, expr, alerts...)
			}
		},
		Context:         tenantauth.With(t.ctx, actorRuler, id),
		AppendableV2:    &appendable{tenant: id, pusher: r.deps.Pusher, metrics: r.writes, logs: r.logs, logger: r.logger},
		Queryable:       r.deps.Queryable,
		Logger:          r.logger.With("tenant", id),
		Metrics:         t.metrics,
		OutageTolerance: r.cfg.OutageTolerance,
		ForGracePeriod:  r.cfg.ForGracePeriod,
		ResendDelay:     r.cfg.ResendDelay,
		GroupLoader:     t.loader,
		// Groups added to a running tenant may have been evaluated before
		// (by another process, or before a failed read): restore them too.
		RestoreNewRuleGroups: true,
		Parser:               r.parser,
	})
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.Run()
	}()
	r.mu.Lock()
	t.manager, t.done, t.applied, t.digest = m, done, map[groupKey]bool{}, [sha256.Size]byte{}
	r.mu.Unlock()
}

// applyGroups hands the tenant's stored groups to its manager, unless they
// are what it runs already. Groups that no longer validate are skipped.
func (r *Ruler) applyGroups(t *tenant, stored []storedGroup) {
	t.stored = stored
	if r.own != nil {
		stored = r.ownedOf(t, stored)
	}
	lim := r.deps.Limits.Limits(t.id)
	byNS := map[string][]rulefmt.RuleGroup{}
	var namespaces []string
	h := sha256.New()
	for _, sg := range stored {
		g, err := parseStored(t.id, lim, sg.YAML, r.parser)
		if err == nil && g.Name != sg.Group {
			err = fmt.Errorf("the object of group %q holds group %q", sg.Group, g.Name)
		}
		if err != nil {
			if r.logs.Allow("stored/" + t.id) {
				r.logger.Error("skipping a stored rule group that does not load", "tenant", t.id, "namespace", sg.Namespace, "group", sg.Group, "err", err)
			}
			continue
		}
		g.Interval = model.Duration(effectiveInterval(g, r.cfg.EvaluationInterval, lim.RulerMinEvaluationInterval))
		if _, ok := byNS[sg.Namespace]; !ok {
			namespaces = append(namespaces, sg.Namespace)
		}
		byNS[sg.Namespace] = append(byNS[sg.Namespace], g)
		for _, s := range []string{sg.Namespace, sg.Group, string(sg.YAML)} {
			_ = binary.Write(h, binary.LittleEndian, int64(len(s)))
			h.Write([]byte(s))
		}
		_ = binary.Write(h, binary.LittleEndian, int64(g.Interval))
	}
	var digest [sha256.Size]byte
	h.Sum(digest[:0])
	if digest == t.digest {
		return
	}
	t.loader.set(byNS)
	slices.Sort(namespaces)
	applied := make(map[groupKey]bool, len(stored))
	for _, sg := range stored {
		applied[groupKey{t.id, sg.Namespace, sg.Group}] = true
	}
	if err := t.manager.Update(r.cfg.EvaluationInterval, namespaces, r.extLabels, r.extURL.String(), r.evalIteration(t.id)); err != nil {
		r.m.syncFailures.Inc()
		r.logger.Error("load rule groups; keeping the previous ones", "tenant", t.id, "err", err)
		return
	}
	t.digest, t.applied = digest, applied
	r.logger.Info("rule groups loaded", "tenant", t.id, "namespaces", len(namespaces), "groups", len(stored), "evaluator", r.Evaluator())
}

// ownedOf returns the stored groups this ruler owns. When the tenant's
// manager runs a stored group the ruler no longer owns, the manager is
// replaced by a new one: a rules manager writes stale markers for the
// series of a group removed from it, ALERTS_FOR_STATE among them, and the
// new owner would then restore nothing; a stopped manager writes none.
// The groups kept restore their state from ALERTS_FOR_STATE, quietly for
// a resend delay (they were just sent).
func (r *Ruler) ownedOf(t *tenant, stored []storedGroup) []storedGroup {
	var out []storedGroup
	keep := map[groupKey]bool{}
	storedKeys := map[groupKey]bool{}
	for _, sg := range stored {
		k := groupKey{t.id, sg.Namespace, sg.Group}
		storedKeys[k] = true
		if _, ok := r.own.owns(k); ok {
			out = append(out, sg)
			keep[k] = true
		}
	}
	for k := range t.applied {
		if !keep[k] && storedKeys[k] {
			r.logger.Info("rule groups moved to another ruler; restarting the tenant's rules manager", "tenant", t.id)
			t.manager.Stop()
			<-t.done
			r.startManager(t)
			r.own.quietAll(t.id, time.Now(), r.cfg.ResendDelay)
			r.m.restarts.Inc()
			break
		}
	}
	return out
}

// stopTenant stops the tenant's evaluations, then its notifications (so
// that alerts of the last evaluations still go out), then removes its
// metrics.
func (r *Ruler) stopTenant(t *tenant) {
	t.manager.Stop()
	<-t.done
	t.notifier.stop()
	t.reg.UnregisterAll()
	r.writes.forget(t.id)
	r.logs.Forget(t.id)
	r.logs.Forget("stored/" + t.id)
	r.logs.Forget("notifier/" + t.id)
}

// memLoader is the rules.GroupLoader of one tenant: it returns the groups
// of a namespace from memory. The manager calls it from Update only.
type memLoader struct {
	parser parser.Parser
	mu     sync.Mutex
	groups map[string][]rulefmt.RuleGroup
}

var _ rules.GroupLoader = (*memLoader)(nil)

func (l *memLoader) set(groups map[string][]rulefmt.RuleGroup) {
	l.mu.Lock()
	l.groups = groups
	l.mu.Unlock()
}

// Load returns the groups of namespace.
func (l *memLoader) Load(namespace string, _ bool, _ model.ValidationScheme) (*rulefmt.RuleGroups, []error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	gs, ok := l.groups[namespace]
	if !ok {
		return nil, []error{fmt.Errorf("BUG: namespace %q was not set before the update", namespace)}
	}
	return &rulefmt.RuleGroups{Groups: gs}, nil
}

// Parse parses a rule's expression.
func (l *memLoader) Parse(query string) (parser.Expr, error) { return l.parser.ParseExpr(query) }
