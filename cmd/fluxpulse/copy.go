package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/fluxpulse/fluxpulse/audit"
	"github.com/fluxpulse/fluxpulse/bucket"
	"github.com/fluxpulse/fluxpulse/deletion"
	"github.com/fluxpulse/fluxpulse/encryption"
	"github.com/fluxpulse/fluxpulse/limits"
	"github.com/fluxpulse/fluxpulse/ruler"
	"github.com/fluxpulse/fluxpulse/runtimeconfig"
	"github.com/fluxpulse/fluxpulse/tenantauth"
	"github.com/fluxpulse/fluxpulse/tenantcopy"
	"github.com/fluxpulse/fluxpulse/usage"
)

// copyTenant answers GET /api/v1/admin/tenants/<tenant>/copy: a .tar.gz of
// what FluxPulse keeps about the tenant besides its samples (#14).
func (a *admin) copyTenant(w http.ResponseWriter, r *http.Request) {
	tenant, ok := a.tenantOf(w, r)
	if !ok {
		return
	}
	src, err := a.copySources()
	if err != nil {
		a.audit(r, "tenant.copy", tenant, audit.OutcomeFailure, map[string]any{"error": err.Error()})
		tenantauth.PlainError(w, r, http.StatusInternalServerError, err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/gzip")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="fluxpulse-copy-%s.tar.gz"`, tenant))
	// Written to the client as it is made: a failure after the first byte
	// leaves a truncated archive, which gzip readers refuse.
	if err := tenantcopy.Write(r.Context(), w, tenant, src); err != nil {
		a.audit(r, "tenant.copy", tenant, audit.OutcomeFailure, map[string]any{"error": err.Error()})
		a.logger.Warn("copy of a tenant failed", "tenant", tenant, "err", err)
		return
	}
	a.audit(r, "tenant.copy", tenant, audit.OutcomeSuccess, nil)
}

// copySources are where a running server's copy of a tenant comes from:
// its runtime file and limits, the bucket, its usage files and audit log.
func (p *process) copySources() (tenantcopy.Sources, error) {
	kf, err := encryption.LoadKeyFile(p.cfg.encryption.KeyFile)
	if err != nil {
		return tenantcopy.Sources{}, fmt.Errorf("the audit log's keys: %w", err)
	}
	src := copySources(p.storage.enc, p.deletions.store, p.limits.Limits)
	if p.runtime != nil {
		src.Runtime = p.runtime.Current()
	}
	// The usage of the whole cluster, as the usage report gives it (#17).
	usageOf := func(from, to time.Time, tenants []string) ([]usage.Row, error) {
		return p.usage.ClusterReport(context.Background(), from, to, tenants)
	}
	src.Usage, src.AuditFile, src.AuditKeys = usageOf, p.cfg.auditFile, kf.Derive(audit.KeyPurpose)
	return src, nil
}

// copySources are the sources every copy shares: rules, deletion requests
// and Alertmanager settings from the encrypting bucket.
func copySources(enc bucket.Bucket, store *deletion.Store, lim func(string) limits.Limits) tenantcopy.Sources {
	return tenantcopy.Sources{Limits: lim, Bucket: enc, Deletions: store.List,
		Rules: func(ctx context.Context, tenant string) ([]tenantcopy.RuleGroup, error) {
			gs, err := ruler.Groups(ctx, enc, tenant)
			out := make([]tenantcopy.RuleGroup, 0, len(gs))
			for _, g := range gs {
				out = append(out, tenantcopy.RuleGroup{Namespace: g.Namespace, Name: g.Name, YAML: string(g.YAML)})
			}
			return out, err
		}}
}

// runTenantCopy is `fluxpulse tenant copy`: the copy made offline, from
// the data directory, the runtime file and the bucket.
func runTenantCopy(args []string, stdout, stderr io.Writer) error {
	var (
		cfg                 keysConfig
		runtimeFile, output string
		auditFile           string
	)
	fs := flag.NewFlagSet("fluxpulse tenant copy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg.registerFlags(fs, true)
	fs.StringVar(&runtimeFile, "runtime-config.file", "", "The runtime file (default <data.dir>/runtime.yaml).")
	fs.StringVar(&auditFile, "audit.log-file", "", "The audit log (default <data.dir>/audit/audit.log).")
	fs.StringVar(&output, "o", "", "Output file (.tar.gz).")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 || output == "" {
		return errors.New("tenant copy: usage: fluxpulse tenant copy -tenant X -o FILE [-data.dir dir] [storage and key flags]")
	}
	if err := tenantauth.ValidateID(cfg.tenant); err != nil {
		return fmt.Errorf("tenant copy: -tenant: %w", err)
	}
	files := cliFiles{dataDir: cfg.dataDir, runtimeFile: runtimeFile, auditFile: auditFile, keyFile: cfg.encryption.KeyFile}
	files.resolve()
	cfg.encryption.KeyFile = files.keyFile
	rt, err := runtimeconfig.Load(files.runtimeFile, defaultLimits())
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	lim := limits.NewOverrides(defaultLimits())
	if rt != nil {
		lim.Set(rt.Defaults, rt.Limits)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	st, err := openStorage(cfg, slog.New(slog.NewTextHandler(stderr, nil)))
	if err != nil {
		return err
	}
	defer st.raw.Close()
	kf, err := encryption.LoadKeyFile(files.keyFile)
	if err != nil {
		return err
	}
	src := copySources(st.enc, deletion.NewStore(st.enc), lim.Limits)
	src.Runtime, src.AuditFile, src.AuditKeys = rt, files.auditFile, kf.Derive(audit.KeyPurpose)
	src.Usage = func(from, to time.Time, tenants []string) ([]usage.Row, error) {
		return usage.Report(usageDir(cfg.dataDir), from, to, tenants)
	}
	return writeCopy(ctx, output, cfg, src, stdout)
}

// writeCopy writes the copy to output through a temporary file, so that
// a failure leaves no partial archive.
func writeCopy(ctx context.Context, output string, cfg keysConfig, src tenantcopy.Sources, stdout io.Writer) error {
	f, err := os.CreateTemp(filepath.Dir(output), ".fluxpulse-copy-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	err = tenantcopy.Write(ctx, f, cfg.tenant, src)
	if err = errors.Join(err, f.Close()); err != nil {
		return fmt.Errorf("tenant copy: %w", err)
	}
	if err := os.Rename(f.Name(), output); err != nil {
		return err
	}
	auditCLI(cfg.dataDir, cfg.encryption.KeyFile, "tenant.copy", cfg.tenant)
	fmt.Fprintf(stdout, "copy of tenant %s written to %s\n", cfg.tenant, output)
	return nil
}
