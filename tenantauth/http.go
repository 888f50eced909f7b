package tenantauth

import (
	"fmt"
	"net/http"
)

// Scope is what a request wants to do.
type Scope string

// The scopes a credential can carry.
const (
	ScopeWrite Scope = "write"
	ScopeRead  Scope = "read"
	ScopeRules Scope = "rules"
	ScopeAdmin Scope = "admin"
)

// Error is an authentication or authorization failure with the HTTP status
// it maps to: 400 for a malformed tenant, 401 for missing or unknown
// credentials, 403 for valid credentials that may not do this.
type Error struct {
	Status int
	Msg    string
}

func (e *Error) Error() string { return e.Msg }

// Config selects how tenants are decided.
type Config struct {
	// Mode is "header": trust X-Scope-OrgID, for deployments behind an
	// authenticating proxy.
	Mode string
}

// Authenticator decides the tenants of requests.
type Authenticator struct {
	cfg Config
}

// New returns an Authenticator.
func New(cfg Config) (*Authenticator, error) {
	switch cfg.Mode {
	case "header":
	default:
		return nil, fmt.Errorf("unknown authentication mode %q: the only mode is header", cfg.Mode)
	}
	return &Authenticator{cfg: cfg}, nil
}

// Authenticate returns r's context carrying its tenants, or an *Error.
// Write, rules and admin requests must name exactly one tenant.
func (a *Authenticator) Authenticate(r *http.Request, scope Scope) (*http.Request, error) {
	h := r.Header.Get(OrgIDHeader)
	if h == "" {
		return nil, &Error{Status: http.StatusUnauthorized, Msg: "no tenant: set the " + OrgIDHeader + " header to the tenant ID"}
	}
	ids, err := ParseIDs(h)
	if err != nil {
		return nil, &Error{Status: http.StatusBadRequest, Msg: "invalid " + OrgIDHeader + " header: " + err.Error()}
	}
	if len(ids) > 1 && scope != ScopeRead {
		return nil, &Error{Status: http.StatusBadRequest, Msg: fmt.Sprintf("%s names %d tenants; only reads may name several", OrgIDHeader, len(ids))}
	}
	return r.WithContext(With(r.Context(), "header", ids...)), nil
}

// ErrorWriter writes an authentication failure in the caller's format.
type ErrorWriter func(w http.ResponseWriter, r *http.Request, status int, msg string)

// PlainError writes msg as text/plain, the format of the remote-write
// endpoints.
func PlainError(w http.ResponseWriter, _ *http.Request, status int, msg string) {
	http.Error(w, msg, status)
}

// Middleware authenticates every request for scope and passes it on with its
// tenants in the context; failures are written with ew.
func (a *Authenticator) Middleware(scope Scope, ew ErrorWriter, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r2, err := a.Authenticate(r, scope)
		if err != nil {
			status := http.StatusUnauthorized
			if e, ok := err.(*Error); ok {
				status = e.Status
			}
			ew(w, r, status, err.Error())
			return
		}
		next.ServeHTTP(w, r2)
	})
}
