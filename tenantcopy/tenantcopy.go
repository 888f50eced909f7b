// Package tenantcopy writes a copy of what FluxPulse keeps about a tenant
// besides its samples (#14, the right of access): one .tar.gz of
// machine-readable JSON files (the tenant record and limits, token
// metadata, rule groups, Alertmanager settings, deletion requests, usage,
// audit entries) and a README.txt that says what each is.
//
// A copy never holds a secret or another tenant's name: no token hash or
// token, no credential of an Alertmanager setting (every value under a key
// that names a password, secret, token, key, credential or URL is
// redacted), no name of the tenants a token may also read (only how many),
// and no audit entry of a read across several tenants.
//
// Each file is written to a temporary file first (a tar header needs the
// size), so memory stays small however long the audit log is.
package tenantcopy

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/fluxpulse/fluxpulse/audit"
	"github.com/fluxpulse/fluxpulse/bucket"
	"github.com/fluxpulse/fluxpulse/deletion"
	"github.com/fluxpulse/fluxpulse/limits"
	"github.com/fluxpulse/fluxpulse/runtimeconfig"
	"github.com/fluxpulse/fluxpulse/tenantauth"
	"github.com/fluxpulse/fluxpulse/usage"
)

// RuleGroup is one of the tenant's rule groups as stored.
type RuleGroup struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	YAML      string `json:"yaml"`
}

// Sources are where a copy comes from.
type Sources struct {
	// Runtime is the runtime file in force (nil: there is none).
	Runtime *runtimeconfig.Config
	// Limits are the limits that apply to the tenant.
	Limits func(tenant string) limits.Limits
	// Rules reads the tenant's rule groups.
	Rules func(ctx context.Context, tenant string) ([]RuleGroup, error)
	// Deletions lists the tenant's deletion requests.
	Deletions func(ctx context.Context, tenant string) ([]deletion.Request, error)
	// Bucket is the encrypting bucket: Alertmanager settings are read from
	// <tenant>/alertmanager/.
	Bucket bucket.Reader
	// Usage reports usage by hour (usage.Report or a Recorder's; nil:
	// none).
	Usage func(from, to time.Time, tenants []string) ([]usage.Row, error)
	// AuditFile is the audit log ("": none) and AuditKeys open its
	// sealed entries.
	AuditFile string
	AuditKeys audit.Keys
	Now       func() time.Time
}

// file is one file of the copy: its name, what README.txt says of it, and
// how to write it.
type file struct {
	name, about string
	write       func(ctx context.Context, w io.Writer) error
}

// Write writes the copy of tenant to w as a .tar.gz whose files are below
// fluxpulse-copy-<tenant>/.
func Write(ctx context.Context, w io.Writer, tenant string, src Sources) error {
	if err := tenantauth.ValidateID(tenant); err != nil {
		return err
	}
	if src.Now == nil {
		src.Now = time.Now
	}
	c := &copier{tenant: tenant, src: src}
	files := c.files()
	zw := gzip.NewWriter(w)
	tw := tar.NewWriter(zw)
	dir := "fluxpulse-copy-" + tenant + "/"
	now := src.Now().UTC()
	if err := addFile(tw, dir+"README.txt", now, strings.NewReader(readme(tenant, now, files))); err != nil {
		return err
	}
	for _, f := range files {
		if err := c.add(ctx, tw, dir+f.name, now, f); err != nil {
			return fmt.Errorf("copy of tenant %s: %s: %w", tenant, f.name, err)
		}
	}
	return errors.Join(tw.Close(), zw.Close())
}

// ReadArchive reads a copy that Write made: each file's content by its
// name below fluxpulse-copy-<tenant>/.
func ReadArchive(r io.Reader) (map[string][]byte, error) {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return nil, fmt.Errorf("not a copy: %w", err)
	}
	out := map[string][]byte{}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return nil, err
		}
		_, name, _ := strings.Cut(h.Name, "/")
		out[name] = b
	}
}

// add writes f to a temporary file, then into the archive.
func (c *copier) add(ctx context.Context, tw *tar.Writer, name string, now time.Time, f file) error {
	tmp, err := os.CreateTemp("", "fluxpulse-copy-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	if err := f.write(ctx, tmp); err != nil {
		return err
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return err
	}
	return addFile(tw, name, now, tmp)
}

func addFile(tw *tar.Writer, name string, now time.Time, r io.Reader) error {
	var size int64
	switch v := r.(type) {
	case *os.File:
		fi, err := v.Stat()
		if err != nil {
			return err
		}
		size = fi.Size()
	case *strings.Reader:
		size = v.Size()
	}
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o600, Size: size, ModTime: now, Typeflag: tar.TypeReg}); err != nil {
		return err
	}
	_, err := io.Copy(tw, r)
	return err
}

func readme(tenant string, now time.Time, files []file) string {
	var b strings.Builder
	fmt.Fprintf(&b, "FluxPulse: a copy of what is kept about tenant %s, besides its samples.\nMade %s.\n\n", tenant, now.Format(time.RFC3339))
	for _, f := range files {
		fmt.Fprintf(&b, "%s\n    %s\n\n", f.name, strings.ReplaceAll(f.about, "\n", "\n    "))
	}
	b.WriteString(`Not in this copy:
- the samples: GET /api/v1/export (jsonl, openmetrics or csv) or "fluxpulse export" write them;
- token secrets and their hashes (FluxPulse never keeps a token, only its hash);
- credentials of Alertmanager settings (shown as <redacted>);
- the names of other tenants, and audit entries of reads across several tenants;
- what other processes of a cluster recorded: usage and audit entries are those of the process that made this copy.
`)
	return b.String()
}

// copier writes the files of one copy.
type copier struct {
	tenant string
	src    Sources
}

func (c *copier) files() []file {
	return []file{
		{"tenant.json", "The tenant: whether the runtime file lists it, the limits that apply to it (limits), and those set for it\nalone in the runtime file (own_limits).", c.tenantRecord},
		{"tokens.json", "Its tokens: ID, scopes, description, creation and expiry, and how many other tenants each may also read.", c.tokens},
		{"rule-groups.json", "Its recording and alerting rule groups, as stored (YAML), by namespace.", c.rules},
		{"alertmanager.json", "Its Alertmanager settings (objects below <tenant>/alertmanager/ in the bucket), credentials redacted;\nother objects (state) by name and size only.", c.alertmanager},
		{"deletion-requests.json", "Its series deletion requests: selectors, time range, who made them, state.", c.deletions},
		{"usage.json", "Its hourly usage records (samples, queries, series, bytes), as the usage report gives them.", c.usage},
		{"audit.json", "The audit log's entries for it (decrypted): who did what, when, with what outcome.", c.audit},
	}
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func (c *copier) tenantRecord(_ context.Context, w io.Writer) error {
	rec := map[string]any{"tenant": c.tenant, "in_runtime_file": false, "limits": limitsMap(c.src.Limits(c.tenant))}
	if rt := c.src.Runtime; rt != nil {
		if t, ok := rt.File.Tenants[c.tenant]; ok {
			rec["in_runtime_file"] = true
			if !t.Limits.IsZero() {
				var own map[string]any
				if err := t.Limits.Decode(&own); err != nil {
					return err
				}
				rec["own_limits"] = own
			}
		}
	}
	return writeJSON(w, rec)
}

type tokenInfo struct {
	ID               string    `json:"id"`
	Scopes           []string  `json:"scopes"`
	Description      string    `json:"description,omitempty"`
	Created          time.Time `json:"created,omitzero"`
	Expires          time.Time `json:"expires,omitzero"`
	FederatedTenants int       `json:"federated_tenants"`
}

func (c *copier) tokens(_ context.Context, w io.Writer) error {
	out := []tokenInfo{}
	if rt := c.src.Runtime; rt != nil {
		for _, t := range rt.Credentials.Tenants[c.tenant] {
			ti := tokenInfo{ID: t.ID, Description: t.Description, Created: t.Created, Expires: t.Expires, FederatedTenants: len(t.Tenants)}
			for _, s := range t.Scopes {
				ti.Scopes = append(ti.Scopes, string(s))
			}
			out = append(out, ti)
		}
	}
	slices.SortFunc(out, func(a, b tokenInfo) int { return strings.Compare(a.ID, b.ID) })
	return writeJSON(w, out)
}

func (c *copier) rules(ctx context.Context, w io.Writer) error {
	gs, err := c.src.Rules(ctx, c.tenant)
	if err != nil {
		return err
	}
	if gs == nil {
		gs = []RuleGroup{}
	}
	return writeJSON(w, gs)
}

func (c *copier) deletions(ctx context.Context, w io.Writer) error {
	reqs, err := c.src.Deletions(ctx, c.tenant)
	if err != nil {
		return err
	}
	if reqs == nil {
		reqs = []deletion.Request{}
	}
	return writeJSON(w, reqs)
}

func (c *copier) usage(_ context.Context, w io.Writer) error {
	if c.src.Usage == nil {
		return usage.WriteJSON(w, nil)
	}
	rows, err := c.src.Usage(time.Unix(0, 0), c.src.Now(), []string{c.tenant})
	if err != nil {
		return err
	}
	return usage.WriteJSON(w, rows)
}

// auditEntry is an audit entry as the copy shows it.
type auditEntry struct {
	Time    string         `json:"time"`
	Seq     uint64         `json:"seq"`
	Actor   string         `json:"actor"`
	Action  string         `json:"action"`
	Target  string         `json:"target"`
	Outcome string         `json:"outcome"`
	Details map[string]any `json:"details,omitempty"`
	Error   string         `json:"error,omitempty"` // the entry did not decrypt
}

// audit writes the entries of the tenant alone, one a line of a JSON
// array.
func (c *copier) audit(_ context.Context, w io.Writer) error {
	if _, err := io.WriteString(w, "["); err != nil {
		return err
	}
	n := 0
	if c.src.AuditFile != "" {
		err := audit.EachEntry(c.src.AuditFile, func(e audit.Entry) error {
			if e.Tenant != c.tenant {
				return nil
			}
			ae := auditEntry{Time: e.Time.Format(audit.TimeLayout), Seq: e.Seq, Actor: e.Actor, Action: e.Action, Outcome: e.Outcome}
			if err := audit.Unseal(&e, c.src.AuditKeys); err != nil {
				ae.Error = err.Error()
			} else {
				ae.Target, ae.Details = e.Target, e.Details
			}
			b, err := json.Marshal(ae)
			if err != nil {
				return err
			}
			sep := ",\n"
			if n == 0 {
				sep = "\n"
			}
			n++
			_, err = io.WriteString(w, sep+string(b))
			return err
		})
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	_, err := io.WriteString(w, "\n]\n")
	return err
}
