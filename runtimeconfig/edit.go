package runtimeconfig

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/fluxpulse/fluxpulse/tenantauth"
)

// ErrExists is wrapped by the errors of edits that would create what
// exists already (a tenant, a token ID).
var ErrExists = errors.New("exists already")

// ErrNotFound is wrapped by the errors of edits naming a tenant or token
// that does not exist.
var ErrNotFound = errors.New("does not exist")

// AddTenant adds a tenant without tokens.
func (f *File) AddTenant(id string) error {
	if err := tenantauth.ValidateID(id); err != nil {
		return err
	}
	if _, ok := f.Tenants[id]; ok {
		return fmt.Errorf("tenant %q %w", id, ErrExists)
	}
	f.Tenants[id] = &Tenant{}
	return nil
}

// RemoveTenant removes a tenant and its tokens: it can no longer push or
// query. Its stored data is untouched.
func (f *File) RemoveTenant(id string) error {
	if _, ok := f.Tenants[id]; !ok {
		return fmt.Errorf("tenant %q %w", id, ErrNotFound)
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
	token, entry, err = NewTokenEntry(spec, now)
	if err != nil {
		return "", entry, err
	}
	if err := f.addTokenEntry(spec.Tenant, entry); err != nil {
		return "", entry, err
	}
	return token, entry, nil
}

// NewTokenEntry creates a token for spec and the entry that stores its
// hash, without adding it anywhere.
func NewTokenEntry(spec TokenSpec, now time.Time) (token string, entry tenantauth.Token, err error) {
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
	return token, entry, nil
}

// addTokenEntry adds a checked token entry to tenant ("" for an admin
// token), refusing an ID the file has already.
func (f *File) addTokenEntry(tenant string, entry tenantauth.Token) error {
	if err := entry.Validate(); err != nil {
		return err
	}
	if f.hasToken(entry.ID) {
		return fmt.Errorf("token ID %s %w", entry.ID, ErrExists)
	}
	if tenant == "" {
		f.AdminTokens = append(f.AdminTokens, entry)
		return nil
	}
	t, ok := f.Tenants[tenant]
	if !ok {
		return fmt.Errorf("tenant %q %w: create it first with `fluxpulse tenant create -tenant %s`", tenant, ErrNotFound, tenant)
	}
	t.Tokens = append(t.Tokens, entry)
	return nil
}

// hasToken reports whether a token with the ID is in the file.
func (f *File) hasToken(id string) bool {
	match := func(t tenantauth.Token) bool { return t.ID == id }
	if slices.ContainsFunc(f.AdminTokens, match) {
		return true
	}
	for _, t := range f.Tenants {
		if slices.ContainsFunc(t.Tokens, match) {
			return true
		}
	}
	return false
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
	return "", fmt.Errorf("token with ID %q %w", id, ErrNotFound)
}
