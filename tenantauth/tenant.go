package tenantauth

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/fluxpulse/fluxpulse/bucket"
)

// MaxIDLength is the longest tenant ID accepted.
const MaxIDLength = 150

// OrgIDHeader is the header that names the tenant, as in Cortex and Mimir.
const OrgIDHeader = "X-Scope-OrgID"

// FederationSeparator separates tenant IDs in a federated read.
const FederationSeparator = "|"

// MaxFederatedTenants bounds how many tenants one federated read may name.
const MaxFederatedTenants = 100

// ErrNoTenant is returned by Tenant and Tenants when the context carries no
// tenant.
var ErrNoTenant = errors.New("no tenant in request context")

// ValidateID checks that id can be used as a tenant ID: 1 to 150 characters
// from the set Cortex and Mimir allow (letters, digits and !-_.*'()),
// neither "." nor "..", and not starting with a name the storage layer
// reserves (bucket.ReservedPrefixes), so that it is safe as a path element
// and an object key prefix. This is the one place every tenant ID is
// checked: the runtime file, `fluxpulse tenant create`, the request headers
// and every directory or bucket listing go through it.
func ValidateID(id string) error {
	if id == "" {
		return errors.New("tenant ID is empty")
	}
	if len(id) > MaxIDLength {
		return fmt.Errorf("tenant ID is %d characters long, the limit is %d", len(id), MaxIDLength)
	}
	if id == "." || id == ".." {
		return fmt.Errorf("tenant ID %q is not allowed", id)
	}
	for i := 0; i < len(id); i++ {
		if !validIDByte(id[i]) {
			return fmt.Errorf("tenant ID %q contains %q at position %d; allowed are letters, digits and !-_.*'()", id, id[i], i)
		}
	}
	for _, p := range bucket.ReservedPrefixes() {
		if strings.HasPrefix(id, p) {
			return fmt.Errorf("tenant ID %q starts with %q, which is reserved for the storage layer's own files", id, p)
		}
	}
	return nil
}

// InBucket lists the tenants that have a prefix in bkt: its top-level
// directories that are valid tenant IDs (ValidateID). Whatever else sits at
// the top (the storage layer's own files) is not a tenant.
func InBucket(ctx context.Context, bkt bucket.Reader) ([]string, error) {
	var out []string
	err := bkt.Iter(ctx, "", bucket.IterOptions{}, func(name string) error {
		if id, ok := strings.CutSuffix(name, "/"); ok && ValidateID(id) == nil {
			out = append(out, id)
		}
		return nil
	})
	return out, err
}

func validIDByte(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("!-_.*'()", c) >= 0
}

// ParseIDs splits a header value into validated, sorted, de-duplicated
// tenant IDs.
func ParseIDs(v string) ([]string, error) {
	parts := strings.Split(v, FederationSeparator)
	if len(parts) > MaxFederatedTenants {
		return nil, fmt.Errorf("%d tenants named, the limit is %d", len(parts), MaxFederatedTenants)
	}
	for _, p := range parts {
		if err := ValidateID(p); err != nil {
			return nil, err
		}
	}
	slices.Sort(parts)
	return slices.Compact(parts), nil
}

type ctxKey struct{}

type identity struct {
	tenants  []string
	actor    string
	operator bool // an operator (admin) token: any tenant
}

// With returns a context that carries the given tenants and the actor (a
// token ID, or "header" in header mode) that asked for them. Only this
// package's middleware and trusted in-process callers (the ruler acting for a
// tenant) call it.
func With(ctx context.Context, actor string, tenants ...string) context.Context {
	return context.WithValue(ctx, ctxKey{}, identity{tenants: slices.Clone(tenants), actor: actor})
}

// Tenants returns the tenants of a read request: one, or several for a
// federated query.
func Tenants(ctx context.Context) ([]string, error) {
	id, ok := ctx.Value(ctxKey{}).(identity)
	if !ok || len(id.tenants) == 0 {
		return nil, ErrNoTenant
	}
	return id.tenants, nil
}

// Tenant returns the one tenant of a request; a federated request is an
// error, as writes and administrative calls name exactly one tenant.
func Tenant(ctx context.Context) (string, error) {
	ts, err := Tenants(ctx)
	if err != nil {
		return "", err
	}
	if len(ts) != 1 {
		return "", fmt.Errorf("this request must name exactly one tenant, it names %d", len(ts))
	}
	return ts[0], nil
}

// IsOperator reports whether the request carries an operator token, valid
// for every tenant. Such a request may name no tenant at all, for
// operator-wide endpoints such as the usage report.
func IsOperator(ctx context.Context) bool {
	id, _ := ctx.Value(ctxKey{}).(identity)
	return id.operator
}

// Actor returns who made the request: a token ID in token mode, "header" in
// header mode, or the name of an internal caller. It is never a secret.
func Actor(ctx context.Context) string {
	id, _ := ctx.Value(ctxKey{}).(identity)
	return id.actor
}
