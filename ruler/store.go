package ruler

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/fluxpulse/fluxpulse/bucket"
	"github.com/fluxpulse/fluxpulse/tenantauth"
)

// MaxNameLength is the longest namespace or group name accepted, in bytes:
// both are encoded into one object name, which must stay within
// bucket.MaxNameLength.
const MaxNameLength = 255

// maxObjectSize bounds what is read back from the bucket for one group.
const maxObjectSize = 4 * MaxGroupBytes

// ErrGroupNotFound is wrapped by the error for a missing rule group.
var ErrGroupNotFound = errors.New("group does not exist")

// ErrNamespaceNotFound is wrapped by the error for a namespace without
// groups.
var ErrNamespaceNotFound = errors.New("no rule groups found")

// store keeps rule groups in the bucket, one object per group at
// <tenant>/rules/<namespace>/<group>.yaml with namespace and group encoded in
// unpadded base64url: the encoding is injective, never yields "." or "..",
// and uses only characters every provider accepts.
type store struct {
	bkt bucket.Bucket
}

// storedGroup is one group object: its names and the YAML it holds.
type storedGroup struct {
	Namespace, Group string
	YAML             []byte
}

var nameEncoding = base64.RawURLEncoding

const rulesDir = "rules"

func tenantRulesDir(tenant string) string { return tenant + "/" + rulesDir + "/" }

func objectName(tenant, namespace, group string) string {
	return tenantRulesDir(tenant) + nameEncoding.EncodeToString([]byte(namespace)) + "/" + nameEncoding.EncodeToString([]byte(group)) + ".yaml"
}

// parseObjectName returns the namespace and group of an object below
// <tenant>/rules/.
func parseObjectName(tenant, name string) (namespace, group string, ok bool) {
	rest, ok := strings.CutPrefix(name, tenantRulesDir(tenant))
	if !ok {
		return "", "", false
	}
	ns, g, ok := strings.Cut(rest, "/")
	if !ok {
		return "", "", false
	}
	g, ok = strings.CutSuffix(g, ".yaml")
	if !ok {
		return "", "", false
	}
	nsb, err1 := nameEncoding.DecodeString(ns)
	gb, err2 := nameEncoding.DecodeString(g)
	if err1 != nil || err2 != nil {
		return "", "", false
	}
	return string(nsb), string(gb), true
}

// checkName rejects a namespace or group name that cannot be stored.
func checkName(what, v string) error {
	if v == "" {
		return fmt.Errorf("the %s must not be empty", what)
	}
	if len(v) > MaxNameLength {
		return fmt.Errorf("the %s is %d bytes long, the limit is %d", what, len(v), MaxNameLength)
	}
	return nil
}

// tenants returns the tenants that have a rules directory.
func (s *store) tenants(ctx context.Context) ([]string, error) {
	dirs, err := tenantauth.InBucket(ctx, s.bkt)
	if err != nil {
		return nil, fmt.Errorf("list tenants: %w", err)
	}
	var out []string
	for _, id := range dirs {
		has := false
		err := s.bkt.Iter(ctx, tenantRulesDir(id), bucket.IterOptions{Recursive: true}, func(string) error {
			has = true
			return errStopIter
		})
		if err != nil && !errors.Is(err, errStopIter) {
			return nil, fmt.Errorf("list rules of tenant %s: %w", id, err)
		}
		if has {
			out = append(out, id)
		}
	}
	return out, nil
}

var errStopIter = errors.New("stop iteration")

// list returns the names of the tenant's groups, in namespace (or the one
// namespace given) then group order, without reading them.
func (s *store) list(ctx context.Context, tenant, namespace string) ([]storedGroup, error) {
	dir := tenantRulesDir(tenant)
	if namespace != "" {
		dir += nameEncoding.EncodeToString([]byte(namespace)) + "/"
	}
	var out []storedGroup
	err := s.bkt.Iter(ctx, dir, bucket.IterOptions{Recursive: true}, func(name string) error {
		if ns, g, ok := parseObjectName(tenant, name); ok {
			out = append(out, storedGroup{Namespace: ns, Group: g})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list rule groups of tenant %s: %w", tenant, err)
	}
	slices.SortFunc(out, func(a, b storedGroup) int {
		if c := strings.Compare(a.Namespace, b.Namespace); c != 0 {
			return c
		}
		return strings.Compare(a.Group, b.Group)
	})
	return out, nil
}

// load lists the tenant's groups (of one namespace, or all) and reads them.
func (s *store) load(ctx context.Context, tenant, namespace string) ([]storedGroup, error) {
	gs, err := s.list(ctx, tenant, namespace)
	if err != nil {
		return nil, err
	}
	for k := range gs {
		if gs[k].YAML, err = s.get(ctx, tenant, gs[k].Namespace, gs[k].Group); err != nil {
			return nil, err
		}
	}
	return gs, nil
}

// get reads one group's YAML; a missing group is an error wrapping
// ErrGroupNotFound.
func (s *store) get(ctx context.Context, tenant, namespace, group string) ([]byte, error) {
	rc, err := s.bkt.Get(ctx, objectName(tenant, namespace, group))
	if bucket.IsNotFound(err) {
		return nil, fmt.Errorf("rule group %q in namespace %q: %w", group, namespace, ErrGroupNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("read rule group %q in namespace %q of tenant %s: %w", group, namespace, tenant, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxObjectSize+1))
	if err != nil {
		return nil, fmt.Errorf("read rule group %q in namespace %q of tenant %s: %w", group, namespace, tenant, err)
	}
	if len(b) > maxObjectSize {
		return nil, fmt.Errorf("rule group %q in namespace %q of tenant %s is larger than %d bytes", group, namespace, tenant, maxObjectSize)
	}
	return b, nil
}

func (s *store) put(ctx context.Context, tenant, namespace, group string, yamlGroup []byte) error {
	if err := s.bkt.Upload(ctx, objectName(tenant, namespace, group), bytes.NewReader(yamlGroup)); err != nil {
		return fmt.Errorf("store rule group %q in namespace %q of tenant %s: %w", group, namespace, tenant, err)
	}
	return nil
}

// delete removes one group; a missing group is an error wrapping
// ErrGroupNotFound.
func (s *store) delete(ctx context.Context, tenant, namespace, group string) error {
	name := objectName(tenant, namespace, group)
	ok, err := s.bkt.Exists(ctx, name)
	if err != nil {
		return fmt.Errorf("delete rule group %q in namespace %q of tenant %s: %w", group, namespace, tenant, err)
	}
	if !ok {
		return fmt.Errorf("rule group %q in namespace %q: %w", group, namespace, ErrGroupNotFound)
	}
	if err := s.bkt.Delete(ctx, name); err != nil {
		return fmt.Errorf("delete rule group %q in namespace %q of tenant %s: %w", group, namespace, tenant, err)
	}
	return nil
}

// deleteNamespace removes every group of a namespace and returns their
// names; a namespace without groups is an error wrapping
// ErrNamespaceNotFound.
func (s *store) deleteNamespace(ctx context.Context, tenant, namespace string) ([]string, error) {
	gs, err := s.list(ctx, tenant, namespace)
	if err != nil {
		return nil, err
	}
	if len(gs) == 0 {
		return nil, fmt.Errorf("namespace %q: %w", namespace, ErrNamespaceNotFound)
	}
	names := make([]string, 0, len(gs))
	for _, g := range gs {
		if err := s.bkt.Delete(ctx, objectName(tenant, namespace, g.Group)); err != nil {
			return names, fmt.Errorf("delete rule group %q in namespace %q of tenant %s: %w", g.Group, namespace, tenant, err)
		}
		names = append(names, g.Group)
	}
	return names, nil
}

// Group is one stored rule group of a tenant.
type Group struct {
	Namespace, Name string
	YAML            []byte // as stored
}

// Groups reads every rule group of tenant from bkt, the encrypting bucket
// the ruler keeps them in: for a copy of the tenant (#14).
func Groups(ctx context.Context, bkt bucket.Bucket, tenant string) ([]Group, error) {
	if err := tenantauth.ValidateID(tenant); err != nil {
		return nil, err
	}
	gs, err := (&store{bkt: bkt}).load(ctx, tenant, "")
	if err != nil {
		return nil, err
	}
	out := make([]Group, 0, len(gs))
	for _, g := range gs {
		out = append(out, Group{Namespace: g.Namespace, Name: g.Group, YAML: g.YAML})
	}
	return out, nil
}
