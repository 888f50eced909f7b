package runtimeconfig

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/fluxpulse/fluxpulse/limits"
	"github.com/fluxpulse/fluxpulse/tenantauth"
)

// The actions of an Op, named as the audit log names them.
const (
	OpTenantCreate = "tenant.create"
	OpTenantDelete = "tenant.delete"
	OpTokenCreate  = "token.create"
	OpTokenRevoke  = "token.revoke"
	OpLimitsSet    = "limits.change"
)

// Op is one change to the runtime configuration: what the admin API and the
// CLI do, and what the bucket backend stores, one object each (#17).
type Op struct {
	Action string `yaml:"action"`
	// Tenant is the tenant created, deleted or whose limits change, or
	// the owner of a created token ("" for an admin token).
	Tenant string `yaml:"tenant,omitempty"`
	// Token is the created token's entry (its hash, never the token).
	Token *tenantauth.Token `yaml:"token,omitempty"`
	// TokenID is the revoked token.
	TokenID string `yaml:"token_id,omitempty"`
	// Limits are set over the tenant's own limits, key by key, for
	// tenant.create and limits.change; a null value removes a key, so the
	// default applies again.
	Limits map[string]any `yaml:"limits,omitempty"`
	// Actor and Time say who made the change and when, for the record.
	Actor string    `yaml:"actor,omitempty"`
	Time  time.Time `yaml:"time,omitempty"`
}

// Apply makes the change op in f, checking it: a change that cannot apply
// (a tenant that exists already or does not exist, a bad limit) is an
// error and leaves f as it was.
func (f *File) Apply(op Op, flagDefaults limits.Limits) error {
	switch op.Action {
	case OpTenantCreate:
		if err := f.AddTenant(op.Tenant); err != nil {
			return err
		}
		if len(op.Limits) == 0 {
			return nil
		}
		if err := f.setLimits(op.Tenant, op.Limits, flagDefaults); err != nil {
			delete(f.Tenants, op.Tenant)
			return err
		}
		return nil
	case OpTenantDelete:
		return f.RemoveTenant(op.Tenant)
	case OpTokenCreate:
		if op.Token == nil {
			return errors.New("token.create without a token")
		}
		return f.addTokenEntry(op.Tenant, *op.Token)
	case OpTokenRevoke:
		_, err := f.RevokeToken(op.TokenID)
		return err
	case OpLimitsSet:
		return f.setLimits(op.Tenant, op.Limits, flagDefaults)
	}
	return fmt.Errorf("unknown runtime change %q", op.Action)
}

// setLimits sets the keys of set over the tenant's own limits and checks
// the result over the defaults of the file.
func (f *File) setLimits(tenant string, set map[string]any, flagDefaults limits.Limits) error {
	t, ok := f.Tenants[tenant]
	if !ok {
		return fmt.Errorf("tenant %q %w", tenant, ErrNotFound)
	}
	cur := map[string]any{}
	if !t.Limits.IsZero() {
		if err := t.Limits.Decode(&cur); err != nil {
			return fmt.Errorf("tenant %s: limits: %w", tenant, err)
		}
	}
	for k, v := range set {
		if v == nil {
			delete(cur, k)
			continue
		}
		cur[k] = v
	}
	var n yaml.Node
	if len(cur) > 0 {
		if err := n.Encode(cur); err != nil {
			return fmt.Errorf("tenant %s: limits: %w", tenant, err)
		}
	}
	def := flagDefaults
	if err := decodeLimits(&f.Defaults, &def); err != nil {
		return fmt.Errorf("defaults: %w", err)
	}
	l := def
	if err := decodeLimits(&n, &l); err != nil {
		return fmt.Errorf("tenant %s: limits: %w", tenant, err)
	}
	if err := l.Validate(); err != nil {
		return fmt.Errorf("tenant %s: %w", tenant, err)
	}
	t.Limits = n
	return nil
}

// LimitKeys lists the names of the limits a tenant may have, sorted.
func LimitKeys() []string { return limitKeys() }

// MarshalOp encodes a change as YAML.
func MarshalOp(op Op) ([]byte, error) { return yaml.Marshal(op) }

// ParseOp decodes a change written by MarshalOp, refusing unknown keys and
// actions.
func ParseOp(b []byte) (Op, error) {
	var op Op
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&op); err != nil && !errors.Is(err, io.EOF) {
		return op, fmt.Errorf("decode runtime change: %w", err)
	}
	known := []string{OpTenantCreate, OpTenantDelete, OpTokenCreate, OpTokenRevoke, OpLimitsSet}
	if !slices.Contains(known, op.Action) {
		return op, fmt.Errorf("runtime change: unknown action %q; actions are %s", op.Action, strings.Join(known, ", "))
	}
	return op, nil
}

// Clone returns a deep copy of f, for trying a change.
func (f *File) Clone() (*File, error) {
	b, err := f.Marshal()
	if err != nil {
		return nil, err
	}
	var g File
	if err := yaml.Unmarshal(b, &g); err != nil {
		return nil, err
	}
	if g.Tenants == nil {
		g.Tenants = map[string]*Tenant{}
	}
	for id, t := range g.Tenants {
		if t == nil {
			g.Tenants[id] = &Tenant{}
		}
	}
	return &g, nil
}
