package tenantauth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Tokens look like fp_<id>_<secret>: the ID (not secret) lets the server
// find the one stored hash to compare against; the secret is 32 random bytes.
const tokenPrefix = "fp_"

// hashPrefix marks the hash algorithm in stored hashes.
const hashPrefix = "sha256:"

// NewToken returns a new token and its ID. Show the token once; store only
// HashToken(token).
func NewToken() (token, id string, err error) {
	idb := make([]byte, 6)
	secret := make([]byte, 32)
	if _, err := rand.Read(idb); err != nil {
		return "", "", fmt.Errorf("generate token: %w", err)
	}
	if _, err := rand.Read(secret); err != nil {
		return "", "", fmt.Errorf("generate token: %w", err)
	}
	id = hex.EncodeToString(idb)
	return tokenPrefix + id + "_" + base64.RawURLEncoding.EncodeToString(secret), id, nil
}

// HashToken returns the form in which a token is stored. Tokens are 256-bit
// random secrets, so a fast hash is enough: there is no password to guess.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hashPrefix + hex.EncodeToString(sum[:])
}

// tokenID returns the ID part of a token, or "" when it has not the shape
// of one.
func tokenID(token string) string {
	rest, ok := strings.CutPrefix(token, tokenPrefix)
	if !ok {
		return ""
	}
	id, _, ok := strings.Cut(rest, "_")
	if !ok || len(id) != 12 {
		return ""
	}
	return id
}

// Token is one credential as the runtime file lists it: never the token
// itself, only its hash.
type Token struct {
	ID          string    `yaml:"id"`
	Hash        string    `yaml:"hash"`
	Scopes      []Scope   `yaml:"scopes"`
	Expires     time.Time `yaml:"expires,omitempty"`
	Created     time.Time `yaml:"created,omitempty"`
	Description string    `yaml:"description,omitempty"`
	// Tenants are further tenants the token may act for, for federated
	// reads across a customer's tenants.
	Tenants []string `yaml:"tenants,omitempty"`
}

// Validate checks a token entry.
func (t Token) Validate() error {
	if len(t.ID) != 12 {
		return fmt.Errorf("token ID %q must be 12 hexadecimal characters", t.ID)
	}
	if _, err := hex.DecodeString(t.ID); err != nil {
		return fmt.Errorf("token ID %q must be 12 hexadecimal characters", t.ID)
	}
	h, ok := strings.CutPrefix(t.Hash, hashPrefix)
	if b, err := hex.DecodeString(h); !ok || err != nil || len(b) != sha256.Size {
		return fmt.Errorf("token %s: hash must be %s followed by 64 hexadecimal characters", t.ID, hashPrefix)
	}
	if len(t.Scopes) == 0 {
		return fmt.Errorf("token %s has no scopes", t.ID)
	}
	for _, s := range t.Scopes {
		if !slices.Contains(AllScopes, s) {
			return fmt.Errorf("token %s: unknown scope %q; scopes are %s", t.ID, s, scopeList())
		}
	}
	for _, tn := range t.Tenants {
		if err := ValidateID(tn); err != nil {
			return fmt.Errorf("token %s: %w", t.ID, err)
		}
	}
	return nil
}

// AllScopes lists every scope.
var AllScopes = []Scope{ScopeWrite, ScopeRead, ScopeRules, ScopeAlerts, ScopeDelete, ScopeAdmin}

// scopeList names every scope, for error messages.
func scopeList() string {
	names := make([]string, len(AllScopes))
	for i, s := range AllScopes {
		names[i] = string(s)
	}
	return strings.Join(names, ", ")
}

// ParseScopes parses a comma-separated scope list.
func ParseScopes(s string) ([]Scope, error) {
	var out []Scope
	for _, p := range strings.Split(s, ",") {
		sc := Scope(strings.TrimSpace(p))
		if !slices.Contains(AllScopes, sc) {
			return nil, fmt.Errorf("unknown scope %q; scopes are %s", sc, scopeList())
		}
		if !slices.Contains(out, sc) {
			out = append(out, sc)
		}
	}
	return out, nil
}

// Credentials are every token the server accepts.
type Credentials struct {
	// Tenants maps each tenant to its tokens.
	Tenants map[string][]Token
	// Admins are operator tokens: any tenant, any scope.
	Admins []Token
}

// Validate checks every tenant ID and token, and that token IDs are unique.
func (c Credentials) Validate() error {
	seen := map[string]bool{}
	check := func(t Token) error {
		if err := t.Validate(); err != nil {
			return err
		}
		if seen[t.ID] {
			return fmt.Errorf("token ID %s is used twice", t.ID)
		}
		seen[t.ID] = true
		return nil
	}
	for tenant, toks := range c.Tenants {
		if err := ValidateID(tenant); err != nil {
			return err
		}
		for _, t := range toks {
			if err := check(t); err != nil {
				return fmt.Errorf("tenant %s: %w", tenant, err)
			}
		}
	}
	for _, t := range c.Admins {
		if err := check(t); err != nil {
			return fmt.Errorf("admin tokens: %w", err)
		}
	}
	return nil
}

// entry is a token ready for checking.
type entry struct {
	id      string
	hash    [sha256.Size]byte
	owner   string // "" for admin tokens
	tenants map[string]bool
	all     bool
	scopes  map[Scope]bool
	expires time.Time
}

// allows reports whether the token may act with scope: operator tokens may
// do anything, a tenant's admin scope includes its Alertmanager (#16).
func (e *entry) allows(scope Scope) bool {
	return e.all || e.has(scope)
}

// index finds tokens by ID.
type index struct {
	byID    map[string]*entry
	tenants map[string]bool // tenants that exist
}

func newIndex(c Credentials) (*index, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	ix := &index{byID: map[string]*entry{}, tenants: map[string]bool{}}
	add := func(owner string, t Token, all bool) {
		e := &entry{id: t.ID, owner: owner, all: all, expires: t.Expires, tenants: map[string]bool{}, scopes: map[Scope]bool{}}
		b, _ := hex.DecodeString(strings.TrimPrefix(t.Hash, hashPrefix))
		copy(e.hash[:], b)
		if owner != "" {
			e.tenants[owner] = true
		}
		for _, tn := range t.Tenants {
			e.tenants[tn] = true
		}
		for _, s := range t.Scopes {
			e.scopes[s] = true
		}
		ix.byID[t.ID] = e
	}
	for tenant, toks := range c.Tenants {
		ix.tenants[tenant] = true
		for _, t := range toks {
			add(tenant, t, false)
		}
	}
	for _, t := range c.Admins {
		add("", t, true)
	}
	return ix, nil
}

// dummy is compared against when a token ID is unknown, so that an unknown
// ID costs the same time as a wrong secret.
var dummy [sha256.Size]byte

var errBadToken = errors.New("unknown or revoked token")

// check finds the entry of token and compares its hash in constant time.
func (ix *index) check(token string) (*entry, error) {
	sum := sha256.Sum256([]byte(token))
	e := ix.byID[tokenID(token)]
	want := dummy[:]
	if e != nil {
		want = e.hash[:]
	}
	if subtle.ConstantTimeCompare(sum[:], want) != 1 || e == nil {
		return nil, errBadToken
	}
	return e, nil
}
