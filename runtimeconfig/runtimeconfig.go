// Package runtimeconfig reads, checks and edits the runtime file: the
// tenants, their tokens (hashes only) and their limits, which a running
// server reloads without a restart.
//
// The file is YAML:
//
//	defaults:            # optional: limits for every tenant, over the flags
//	  ingestion_rate: 20000
//	admin_tokens:        # optional: operator tokens, any tenant
//	  - {id: 0123456789ab, hash: "sha256:…", scopes: [admin, read]}
//	tenants:
//	  team-a:
//	    limits:          # optional: this tenant's limits, over the defaults
//	      max_series: 500000
//	    tokens:
//	      - id: 89abcdef0123
//	        hash: "sha256:…"
//	        scopes: [write, read]
//	        expires: 2027-01-01T00:00:00Z
//	        description: prometheus in eu-1
//
// Unknown keys are errors, so that a typo never silently loses a limit. A
// bad file never replaces a good one: the server keeps what it had and logs
// why.
package runtimeconfig

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/fluxpulse/fluxpulse/limits"
	"github.com/fluxpulse/fluxpulse/tenantauth"
)

// File is the runtime file as written.
type File struct {
	Defaults    yaml.Node          `yaml:"defaults,omitempty"`
	AdminTokens []tenantauth.Token `yaml:"admin_tokens,omitempty"`
	Tenants     map[string]*Tenant `yaml:"tenants"`
}

// Tenant is one tenant's entry.
type Tenant struct {
	Limits yaml.Node          `yaml:"limits,omitempty"`
	Tokens []tenantauth.Token `yaml:"tokens,omitempty"`
}

// Config is a parsed and checked runtime file, ready to apply.
type Config struct {
	File        *File
	Credentials tenantauth.Credentials
	Defaults    limits.Limits
	Limits      map[string]limits.Limits // every tenant that has limits of its own
	Hash        [sha256.Size]byte        // of the file's bytes
}

// Parse decodes and checks a runtime file. flagDefaults are the limits set
// by flags; the file's defaults and tenant limits are applied over them.
func Parse(b []byte, flagDefaults limits.Limits) (*Config, error) {
	f := &File{}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(f); err != nil && !errors.Is(err, io.EOF) { // empty file: empty configuration
		return nil, fmt.Errorf("decode runtime file: %w", err)
	}
	if f.Tenants == nil {
		f.Tenants = map[string]*Tenant{}
	}
	return Check(f, flagDefaults, sha256.Sum256(b))
}

// Check validates f and computes the limits and credentials it defines.
func Check(f *File, flagDefaults limits.Limits, hash [sha256.Size]byte) (*Config, error) {
	c := &Config{File: f, Defaults: flagDefaults, Limits: map[string]limits.Limits{}, Hash: hash,
		Credentials: tenantauth.Credentials{Tenants: map[string][]tenantauth.Token{}, Admins: f.AdminTokens}}
	if err := decodeLimits(&f.Defaults, &c.Defaults); err != nil {
		return nil, fmt.Errorf("defaults: %w", err)
	}
	if err := c.Defaults.Validate(); err != nil {
		return nil, fmt.Errorf("defaults: %w", err)
	}
	for id, t := range f.Tenants {
		if err := tenantauth.ValidateID(id); err != nil {
			return nil, fmt.Errorf("tenants: %w", err)
		}
		if t == nil {
			t = &Tenant{}
			f.Tenants[id] = t
		}
		c.Credentials.Tenants[id] = t.Tokens
		if t.Limits.IsZero() {
			continue
		}
		l := c.Defaults
		if err := decodeLimits(&t.Limits, &l); err != nil {
			return nil, fmt.Errorf("tenant %s: limits: %w", id, err)
		}
		if err := l.Validate(); err != nil {
			return nil, fmt.Errorf("tenant %s: %w", id, err)
		}
		c.Limits[id] = l
	}
	if err := c.Credentials.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// decodeLimits applies the keys present in n over *l, refusing unknown keys.
func decodeLimits(n *yaml.Node, l *limits.Limits) error {
	if n.IsZero() {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: limits must be a mapping of limit names to values", n.Line)
	}
	known := limitKeys()
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k := n.Content[i].Value; !slices.Contains(known, k) {
			return fmt.Errorf("line %d: unknown limit %q; limits are %s", n.Content[i].Line, k, strings.Join(known, ", "))
		}
	}
	if err := n.Decode(l); err != nil {
		return err
	}
	return nil
}

// limitKeys lists the YAML keys of limits.Limits.
func limitKeys() []string {
	var out []string
	t := reflect.TypeFor[limits.Limits]()
	for i := range t.NumField() {
		if k, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ","); k != "" {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// Marshal encodes f as YAML.
func (f *File) Marshal() ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteString("# FluxPulse runtime configuration: tenants, token hashes and limits.\n")
	buf.WriteString("# Reloaded while running; edit with `fluxpulse tenant` and `fluxpulse token`.\n")
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(f); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Change is one difference between two configurations, for the audit log.
type Change struct {
	Action string // tenant.create, tenant.delete, token.create, token.revoke, limits.change
	Tenant string
	Target string
}

// Diff lists what changed from old to cur.
func Diff(old, cur *Config) []Change {
	var out []Change
	if old == nil { // everything in cur is new; its defaults are not a change
		old = &Config{Credentials: tenantauth.Credentials{Tenants: map[string][]tenantauth.Token{}}, Limits: map[string]limits.Limits{}, Defaults: cur.Defaults}
	}
	tokens := func(c *Config) map[string]string { // id -> tenant
		m := map[string]string{}
		for tn, ts := range c.Credentials.Tenants {
			for _, t := range ts {
				m[t.ID] = tn
			}
		}
		for _, t := range c.Credentials.Admins {
			m[t.ID] = "*"
		}
		return m
	}
	for tn := range cur.Credentials.Tenants {
		if _, ok := old.Credentials.Tenants[tn]; !ok {
			out = append(out, Change{"tenant.create", tn, tn})
		}
	}
	for tn := range old.Credentials.Tenants {
		if _, ok := cur.Credentials.Tenants[tn]; !ok {
			out = append(out, Change{"tenant.delete", tn, tn})
		}
	}
	ot, ct := tokens(old), tokens(cur)
	for id, tn := range ct {
		if _, ok := ot[id]; !ok {
			out = append(out, Change{"token.create", tn, id})
		}
	}
	for id, tn := range ot {
		if _, ok := ct[id]; !ok {
			out = append(out, Change{"token.revoke", tn, id})
		}
	}
	if old.Defaults != cur.Defaults {
		out = append(out, Change{"limits.change", "", "defaults"})
	}
	for tn, l := range cur.Limits {
		if ol, ok := old.Limits[tn]; !ok || ol != l {
			out = append(out, Change{"limits.change", tn, tn})
		}
	}
	for tn := range old.Limits {
		if _, ok := cur.Limits[tn]; !ok {
			out = append(out, Change{"limits.change", tn, tn})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		return a.Action+a.Tenant+a.Target < b.Action+b.Tenant+b.Target
	})
	return out
}
