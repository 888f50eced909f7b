// Package tenantmetrics registers a tenant's collectors with a tenant
// label and unregisters them all when the tenant goes away. The libraries
// FluxPulse runs once per tenant (Prometheus's rules and notifier,
// Alertmanager's dispatcher, silences, notification log, …) register their
// own collectors and offer no way to remove them; without this a tenant
// that comes back would hit a duplicate registration.
package tenantmetrics

import (
	"fmt"
	"slices"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Registry is a prometheus.Registerer for one tenant. It is safe for
// concurrent use.
type Registry struct {
	reg prometheus.Registerer // nil: register nothing
	mu  sync.Mutex
	cs  []prometheus.Collector
}

var _ prometheus.Registerer = (*Registry)(nil)

// New returns a registry that adds tenant="<tenant>" to everything it
// registers on reg. A nil reg registers nothing.
func New(reg prometheus.Registerer, tenant string) *Registry {
	if reg == nil {
		return &Registry{}
	}
	return &Registry{reg: prometheus.WrapRegistererWith(prometheus.Labels{"tenant": tenant}, reg)}
}

// Register implements prometheus.Registerer.
func (t *Registry) Register(c prometheus.Collector) error {
	if t.reg == nil {
		return nil
	}
	if err := t.reg.Register(c); err != nil {
		return err
	}
	t.mu.Lock()
	t.cs = append(t.cs, c)
	t.mu.Unlock()
	return nil
}

// MustRegister implements prometheus.Registerer.
func (t *Registry) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := t.Register(c); err != nil {
			panic(fmt.Sprintf("BUG: register a tenant's metrics: %v", err))
		}
	}
}

// Unregister implements prometheus.Registerer.
func (t *Registry) Unregister(c prometheus.Collector) bool {
	if t.reg == nil {
		return false
	}
	t.mu.Lock()
	t.cs = slices.DeleteFunc(t.cs, func(x prometheus.Collector) bool { return x == c })
	t.mu.Unlock()
	return t.reg.Unregister(c)
}

// UnregisterAll removes every collector registered so far.
func (t *Registry) UnregisterAll() {
	t.mu.Lock()
	cs := t.cs
	t.cs = nil
	t.mu.Unlock()
	for _, c := range cs {
		t.reg.Unregister(c)
	}
}
