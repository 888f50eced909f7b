package main

import (
	"fmt"
	"slices"
	"strings"
)

// Roles one process can run.
const (
	roleAll         = "all"
	roleDistributor = "distributor"
	roleIngester    = "ingester"
	roleQuerier     = "querier"
	// roleQueryFrontend runs the query frontend alone, in front of queriers
	// reached over HTTP; -target=all and a process that also runs the
	// querier put it in front of their own querier.
	roleQueryFrontend = "query-frontend"
	roleCompactor     = "compactor"
	roleRuler         = "ruler"
	roleAlertmanager  = "alertmanager"
	roleStoreGateway  = "store-gateway"
)

// knownRoles are the roles -target may name, besides all.
var knownRoles = []string{roleDistributor, roleIngester, roleQuerier, roleQueryFrontend, roleCompactor, roleRuler, roleAlertmanager, roleStoreGateway}

// roles is the set of roles of a process.
type roles map[string]bool

// parseTarget reads -target: "all", or a comma-separated set of roles.
func parseTarget(target string) (roles, error) {
	r := roles{}
	for _, t := range strings.Split(target, ",") {
		t = strings.TrimSpace(t)
		if t != roleAll && !slices.Contains(knownRoles, t) {
			return nil, fmt.Errorf("-target: unknown role %q; roles are all or a comma-separated set of %s", t, strings.Join(knownRoles, ", "))
		}
		r[t] = true
	}
	if r[roleAll] && len(r) > 1 {
		return nil, fmt.Errorf("-target=%s: all already runs every role; name all alone or a set of roles", target)
	}
	return r, nil
}

// all reports whether every role runs in this process, calling each other
// in process.
func (r roles) all() bool { return r[roleAll] }

// has reports whether role runs here, alone or as part of all.
func (r roles) has(role string) bool { return r[roleAll] || r[role] }

// String lists the roles, sorted.
func (r roles) String() string {
	names := make([]string, 0, len(r))
	for n := range r {
		names = append(names, n)
	}
	slices.Sort(names)
	return strings.Join(names, ",")
}
