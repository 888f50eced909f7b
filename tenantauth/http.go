package tenantauth

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"
)

// Scope is what a request wants to do.
type Scope string

// The scopes a credential can carry.
const (
	ScopeWrite Scope = "write"
	ScopeRead  Scope = "read"
	ScopeRules Scope = "rules"
	// ScopeAlerts is the tenant's Alertmanager: its configuration,
	// alerts, silences and receivers. A token with the admin scope has it
	// too.
	ScopeAlerts Scope = "alerts"
	// ScopeDelete deletes series (#14); a token with admin may too.
	ScopeDelete Scope = "delete"
	ScopeAdmin  Scope = "admin"
)

// impliedBy names the scope that also grants a scope: a tenant's admin
// token may delete its series and use its Alertmanager.
var impliedBy = map[Scope]Scope{ScopeDelete: ScopeAdmin, ScopeAlerts: ScopeAdmin}

// has reports whether the entry's scopes grant scope.
func (e *entry) has(scope Scope) bool {
	if e.scopes[scope] {
		return true
	}
	by, ok := impliedBy[scope]
	return ok && e.scopes[by]
}

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
	// Mode is "token" (the default): every request carries a token, as a
	// bearer token or as the password of basic auth whose user is the
	// tenant; or "header": trust X-Scope-OrgID, for deployments behind an
	// authenticating proxy.
	Mode string
}

// Failure describes a refused request for the audit log. It never holds a
// secret: Actor is a token ID at most.
type Failure struct {
	Status int
	Reason string
	Actor  string
	Tenant string
	Scope  Scope
}

// Authenticator decides the tenants of requests.
type Authenticator struct {
	cfg       Config
	idx       atomic.Pointer[index]
	now       func() time.Time
	onFailure func(*http.Request, Failure)
}

// New returns an Authenticator. In token mode it accepts no token until
// SetCredentials is called.
func New(cfg Config) (*Authenticator, error) {
	switch cfg.Mode {
	case "token", "header":
	default:
		return nil, fmt.Errorf("unknown authentication mode %q: use token or header (-auth.mode)", cfg.Mode)
	}
	a := &Authenticator{cfg: cfg, now: time.Now}
	a.idx.Store(&index{byID: map[string]*entry{}, tenants: map[string]bool{}})
	return a, nil
}

// Mode returns the authentication mode.
func (a *Authenticator) Mode() string { return a.cfg.Mode }

// SetCredentials replaces every accepted token at once: requests already
// authenticated keep their decision, new ones see only c.
func (a *Authenticator) SetCredentials(c Credentials) error {
	ix, err := newIndex(c)
	if err != nil {
		return err
	}
	a.idx.Store(ix)
	return nil
}

// OnFailure sets a function told about every refused request (for the
// audit log). Set it before serving.
func (a *Authenticator) OnFailure(f func(*http.Request, Failure)) { a.onFailure = f }

// Authenticate returns r with its tenants and actor in the context, or an
// *Error: 400 for a malformed tenant, 401 for missing, unknown, revoked or
// expired credentials, 403 for a valid token without the scope or the
// tenant. Write, rules and admin requests must name exactly one tenant.
func (a *Authenticator) Authenticate(r *http.Request, scope Scope) (*http.Request, error) {
	var (
		actor    = "header"
		ids      []string
		err      *Error
		operator bool
	)
	if a.cfg.Mode == "header" {
		ids, err = a.headerTenants(r)
	} else {
		actor, ids, operator, err = a.tokenTenants(r, scope)
	}
	if err == nil && len(ids) > 1 && scope != ScopeRead {
		err = &Error{Status: http.StatusBadRequest, Msg: fmt.Sprintf("%s names %d tenants; only reads may name several", OrgIDHeader, len(ids))}
	}
	if err != nil {
		if a.onFailure != nil {
			a.onFailure(r, Failure{Status: err.Status, Reason: err.Msg, Actor: actor, Tenant: r.Header.Get(OrgIDHeader), Scope: scope})
		}
		return nil, err
	}
	return r.WithContext(context.WithValue(r.Context(), ctxKey{}, identity{tenants: ids, actor: actor, operator: operator})), nil
}

func (a *Authenticator) headerTenants(r *http.Request) ([]string, *Error) {
	h := r.Header.Get(OrgIDHeader)
	if h == "" {
		return nil, &Error{Status: http.StatusUnauthorized, Msg: "no tenant: set the " + OrgIDHeader + " header to the tenant ID"}
	}
	ids, err := ParseIDs(h)
	if err != nil {
		return nil, &Error{Status: http.StatusBadRequest, Msg: "invalid " + OrgIDHeader + " header: " + err.Error()}
	}
	return ids, nil
}

func (a *Authenticator) tokenTenants(r *http.Request, scope Scope) (string, []string, bool, *Error) {
	user, token, basic := r.BasicAuth()
	if !basic {
		token = bearerToken(r.Header.Get("Authorization"))
		if token == "" {
			return "", nil, false, &Error{Status: http.StatusUnauthorized, Msg: "no credentials: send Authorization: Bearer <token>, or basic auth with the tenant ID as user and the token as password"}
		}
	}
	e, err := a.idx.Load().check(strings.TrimSpace(token))
	if err != nil {
		return "", nil, false, &Error{Status: http.StatusUnauthorized, Msg: "invalid credentials: " + err.Error()}
	}
	if !e.expires.IsZero() && a.now().After(e.expires) {
		return e.id, nil, false, &Error{Status: http.StatusUnauthorized, Msg: fmt.Sprintf("token %s expired at %s", e.id, e.expires.UTC().Format(time.RFC3339))}
	}
	if !e.allows(scope) {
		return e.id, nil, false, &Error{Status: http.StatusForbidden, Msg: fmt.Sprintf("token %s does not have the %s scope", e.id, scope)}
	}
	var ids []string
	switch h := r.Header.Get(OrgIDHeader); {
	case h != "":
		var perr error
		if ids, perr = ParseIDs(h); perr != nil {
			return e.id, nil, false, &Error{Status: http.StatusBadRequest, Msg: "invalid " + OrgIDHeader + " header: " + perr.Error()}
		}
	case basic && user != "":
		if verr := ValidateID(user); verr != nil {
			return e.id, nil, false, &Error{Status: http.StatusBadRequest, Msg: "invalid basic-auth user (the tenant ID): " + verr.Error()}
		}
		ids = []string{user}
	case e.owner != "":
		ids = []string{e.owner}
	case e.all && scope == ScopeAdmin:
		return e.id, nil, true, nil // operator-wide: the handler decides what it allows
	default:
		return e.id, nil, false, &Error{Status: http.StatusBadRequest, Msg: "an operator token must name its tenant in " + OrgIDHeader}
	}
	if basic && user != "" && !slices.Contains(ids, user) {
		return e.id, nil, false, &Error{Status: http.StatusForbidden, Msg: fmt.Sprintf("basic-auth user %q is not among the tenants named in %s", user, OrgIDHeader)}
	}
	for _, id := range ids {
		if !e.all && !e.tenants[id] {
			return e.id, nil, false, &Error{Status: http.StatusForbidden, Msg: fmt.Sprintf("token %s may not access tenant %q", e.id, id)}
		}
	}
	return e.id, ids, e.all, nil
}

// bearerToken returns the token of an Authorization header with the Bearer
// scheme, or "". The scheme is case-insensitive and followed by one or more
// spaces (RFC 7235 section 2.1, RFC 6750 section 2.1).
func bearerToken(h string) string {
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(token)
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
			if status == http.StatusUnauthorized && a.cfg.Mode == "token" {
				w.Header().Set("WWW-Authenticate", `Basic realm="fluxpulse", Bearer realm="fluxpulse"`)
			}
			ew(w, r, status, err.Error())
			return
		}
		next.ServeHTTP(w, r2)
	})
}
