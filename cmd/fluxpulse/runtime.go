package main

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fluxpulse/fluxpulse/bucket"
	"github.com/fluxpulse/fluxpulse/encryption"
	"github.com/fluxpulse/fluxpulse/limits"
	"github.com/fluxpulse/fluxpulse/runtimeconfig"
	"github.com/fluxpulse/fluxpulse/tenantauth"
)

// firstTenant is the tenant a first start in token mode creates.
const firstTenant = "tenant-1"

// The backends of the runtime configuration.
const (
	runtimeBackendFile   = "file"
	runtimeBackendBucket = "bucket"
)

// openRuntimeConfig loads the runtime configuration from its backend and
// keeps the authenticator and the limits in step with it; the admin API
// changes it through p.runtimeEd.
func (p *process) openRuntimeConfig() error {
	logger := p.logger.With("component", "runtime-config")
	apply := runtimeApplier(p.auth, p.limits, p.obs.runtimeChange, logger)
	var w *runtimeconfig.Watcher
	if p.cfg.runtimeBackend == runtimeBackendBucket {
		store, err := openRuntimeStore(p.cfg.encryption.KeyFile, p.storage.raw, p.cfg.limits)
		if err != nil {
			return err
		}
		w = runtimeconfig.NewStoreWatcher(store, p.cfg.runtimeReload, apply, logger, p.reg)
		if err := w.Load(); err != nil {
			return fmt.Errorf("runtime configuration in the bucket: %w", err)
		}
		if c := w.Current(); len(c.Credentials.Admins) == 0 && len(c.Credentials.Tenants) == 0 && p.cfg.auth.Mode == "token" {
			logger.Warn("the runtime configuration in the bucket is empty: create an operator token with `fluxpulse token create -runtime-config.backend=bucket` and the server's -blocks-storage.* and -encryption.key-file flags")
		}
		p.runtimeEd = store
	} else {
		var err error
		if w, err = loadRuntimeConfig(p.cfg, apply, logger, p.reg); err != nil {
			return err
		}
		p.runtimeEd = runtimeconfig.FileStore{Path: p.cfg.runtimeFile, FlagDefaults: p.cfg.limits}
	}
	if w != nil {
		p.runtime = w
		p.addLoop(w.Run)
		p.addRuntimeAdmin()
	}
	return nil
}

// openRuntimeStore returns the bucket backend of the runtime configuration,
// sealed with keys derived from the master keys of keyFile.
func openRuntimeStore(keyFile string, raw bucket.Bucket, flagDefaults limits.Limits) (*runtimeconfig.BucketStore, error) {
	kf, err := encryption.LoadKeyFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("runtime configuration keys: %w", err)
	}
	objs := encryption.NewSystemStore(raw, runtimeconfig.StoreDir, kf.Derive(runtimeconfig.KeyPurpose))
	return runtimeconfig.NewBucketStore(objs, flagDefaults), nil
}

// runtimeApplier applies each good configuration to the authenticator and
// the limits, and tells onChange about the load and every change, for the
// audit log.
func runtimeApplier(auth *tenantauth.Authenticator, lim *limits.Overrides, onChange func(runtimeconfig.Change), logger *slog.Logger) runtimeconfig.Applier {
	return func(old, cur *runtimeconfig.Config) {
		if err := auth.SetCredentials(cur.Credentials); err != nil {
			logger.Error("BUG: checked credentials refused", "err", err) // Parse validated them
			return
		}
		lim.Set(cur.Defaults, cur.Limits)
		if old == nil { // the start, not a change
			onChange(runtimeconfig.Change{Action: "config.load", Target: fmt.Sprintf("%d tenants", len(cur.Credentials.Tenants))})
			return
		}
		for _, ch := range runtimeconfig.Diff(old, cur) {
			onChange(ch)
		}
	}
}

// loadRuntimeConfig loads the runtime file and returns a watcher that
// applies it. In token mode a missing file is created with one tenant and
// one token, printed once; in header mode the file is optional (limits
// only).
func loadRuntimeConfig(cfg serverConfig, apply runtimeconfig.Applier, logger *slog.Logger, reg prometheus.Registerer) (*runtimeconfig.Watcher, error) {
	_, err := os.Stat(cfg.runtimeFile)
	switch {
	case errors.Is(err, fs.ErrNotExist) && cfg.auth.Mode == "header":
		logger.Info("no runtime file: flag limits apply to every tenant", "path", cfg.runtimeFile)
		return nil, nil
	case errors.Is(err, fs.ErrNotExist):
		if err := bootstrap(cfg.runtimeFile); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, fmt.Errorf("runtime file: %w", err)
	}
	w := runtimeconfig.NewWatcher(cfg.runtimeFile, cfg.runtimeReload, cfg.limits, apply, logger, reg)
	if err := w.Load(); err != nil {
		return nil, err
	}
	return w, nil
}

// bootstrap creates the runtime file of a first start: one tenant with one
// token holding every scope, printed once on standard output.
func bootstrap(path string) error {
	var token string
	_, _, err := runtimeconfig.Edit(path, defaultLimits(), func(f *runtimeconfig.File) error {
		if err := f.AddTenant(firstTenant); err != nil {
			return err
		}
		var err error
		token, _, err = f.AddToken(runtimeconfig.TokenSpec{Tenant: firstTenant, Scopes: tenantauth.AllScopes, Description: "created on first start"}, time.Now())
		return err
	})
	if err != nil {
		return fmt.Errorf("create runtime file: %w", err)
	}
	fmt.Printf(`
First start: created tenant %q with a token that has every scope:

    %s

It is shown only now; FluxPulse keeps only its hash, in %s.
Use it as a bearer token, or as the basic-auth password with user %q.
Manage tenants and tokens with "fluxpulse tenant" and "fluxpulse token".

`, firstTenant, token, path, firstTenant)
	return nil
}
