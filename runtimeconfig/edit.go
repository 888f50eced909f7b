package runtimeconfig

import (
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/fluxpulse/fluxpulse/tenantauth"
)

// AddTenant adds a tenant without tokens.
func (f *File) AddTenant(id string) error {
	if err := tenantauth.ValidateID(id); err != nil {
		return err
	}
	if _, ok := f.Tenants[id]; ok {
		return fmt.Errorf("tenant %q exists already", id)
	}
	f.Tenants[id] = &Tenant{}
	return nil
}

// RemoveTenant removes a tenant and its tokens: it can no longer push or
// query. Its stored data is untouched.
func (f *File) RemoveTenant(id string) error {
	if _, ok := f.Tenants[id]; !ok {
		return fmt.Errorf("no tenant %q", id)
	}
	delete(f.Tenants, id)
	return nil
}

// TenantIDs returns the tenants, sorted.
func (f *File) TenantIDs() []string {
	out := make([]string, 0, len(f.Tenants))
	for id := range f.Tenants {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

// TokenSpec describes a token to create.
type TokenSpec struct {
	Tenant      string // "" for an admin token
	Scopes      []tenantauth.Scope
	TTL         time.Duration // 0: never expires
	Description string
	Tenants     []string // further tenants it may act for
}

// AddToken creates a token and returns it: the only time it is visible.
// The file keeps its hash.
func (f *File) AddToken(spec TokenSpec, now time.Time) (token string, entry tenantauth.Token, err error) {
	token, id, err := tenantauth.NewToken()
	if err != nil {
		return "", entry, err
	}
	entry = tenantauth.Token{ID: id, Hash: tenantauth.HashToken(token), Scopes: spec.Scopes,
		Created: now.UTC().Truncate(time.Second), Description: spec.Description, Tenants: spec.Tenants}
	if spec.TTL > 0 {
		entry.Expires = now.Add(spec.TTL).UTC().Truncate(time.Second)
	}
	if err := entry.Validate(); err != nil {
		return "", entry, err
	}
	if spec.Tenant == "" {
		f.AdminTokens = append(f.AdminTokens, entry)
		return token, entry, nil
	}
	t, ok := f.Tenants[spec.Tenant]
	if !ok {
		return "", entry, fmt.Errorf("no tenant %q: create it first with `fluxpulse tenant create -tenant %s`", spec.Tenant, spec.Tenant)
	}
	t.Tokens = append(t.Tokens, entry)
	return token, entry, nil
}

// RevokeToken removes the token with the given ID, wherever it is, and
// returns its tenant ("" for an admin token).
func (f *File) RevokeToken(id string) (string, error) {
	if i := slices.IndexFunc(f.AdminTokens, func(t tenantauth.Token) bool { return t.ID == id }); i >= 0 {
		f.AdminTokens = slices.Delete(f.AdminTokens, i, i+1)
		return "", nil
	}
	for tn, t := range f.Tenants {
		if i := slices.IndexFunc(t.Tokens, func(t tenantauth.Token) bool { return t.ID == id }); i >= 0 {
			t.Tokens = slices.Delete(t.Tokens, i, i+1)
			return tn, nil
		}
	}
	return "", fmt.Errorf("no token with ID %q", id)
}
