package main

import (
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/fluxpulse/fluxpulse/blockstore"
	"github.com/fluxpulse/fluxpulse/bucket"
	"github.com/fluxpulse/fluxpulse/compactor"
	"github.com/fluxpulse/fluxpulse/deletion"
	"github.com/fluxpulse/fluxpulse/distributor"
	"github.com/fluxpulse/fluxpulse/encryption"
	"github.com/fluxpulse/fluxpulse/hatracker"
	"github.com/fluxpulse/fluxpulse/ingester"
	"github.com/fluxpulse/fluxpulse/limits"
	"github.com/fluxpulse/fluxpulse/querier"
	"github.com/fluxpulse/fluxpulse/storegateway"
	"github.com/fluxpulse/fluxpulse/tenantauth"
)

// serverConfig is every flag of the server.
type serverConfig struct {
	target          string
	roles           roles // parsed from target
	dataDir         string
	httpAddr        string
	internalAddr    string
	shutdownTimeout time.Duration
	logLevel        string
	logFormat       string
	printVersion    bool
	configPage      string // every flag and its value, secrets redacted
	runtimeFile     string
	runtimeReload   time.Duration
	runtimeBackend  string
	instanceID      string
	usageCheckpoint time.Duration
	auditSegments   time.Duration
	auditFile       string
	auditSync       bool
	tls             tlsConfig

	auth         tenantauth.Config
	storage      bucket.Config
	encryption   encryption.Config
	store        blockstore.Config
	compactor    compactor.Config
	limits       limits.Limits
	distributor  distributor.Config
	ingester     ingester.Config
	querier      querier.Config
	frontend     frontendConfig
	ruler        rulerConfig
	alertmanager alertmanagerConfig
	cluster      clusterConfig
	ha           hatracker.Config
	deletion     deletion.Config
	storeGateway storegateway.Config
	sharding     shardingConfig
}

func (c *serverConfig) registerFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.target, "target", "all", "Roles to run: all (every role in this process, calling each other in process), or a comma-separated set of distributor, ingester, querier, query-frontend, store-gateway, compactor, ruler and alertmanager, which find each other through memberlist and the ingester ring (docs/scaling.md).")
	fs.StringVar(&c.dataDir, "data.dir", "./data", "Directory for all local state: per-tenant TSDBs and their WALs.")
	fs.StringVar(&c.httpAddr, "server.http-listen-address", ":9009", "Address the public HTTP API listens on: push, query, rules, admin API, /ready.")
	fs.StringVar(&c.internalAddr, "server.internal-listen-address", "127.0.0.1:9010", "Address the operator-only HTTP listener listens on: /metrics, /config, /debug/pprof, /ready. Keep it off public networks; empty disables it.")
	fs.DurationVar(&c.shutdownTimeout, "server.graceful-shutdown-timeout", 30*time.Second, "How long in-flight requests may take to finish on shutdown.")
	fs.StringVar(&c.logLevel, "log.level", "info", "Log level: debug, info, warn or error.")
	fs.StringVar(&c.logFormat, "log.format", "logfmt", "Log format: logfmt or json.")
	fs.BoolVar(&c.printVersion, "version", false, "Print the version and exit.")
	fs.StringVar(&c.auth.Mode, "auth.mode", "token", "How tenants are decided: token (bearer token, or basic auth with the tenant as user and the token as password), or header (trust X-Scope-OrgID; only behind an authenticating proxy).")
	fs.StringVar(&c.runtimeFile, "runtime-config.file", "", "Runtime file with tenants, token hashes and limits, reloaded while running (default <data.dir>/runtime.yaml). In token mode a first start creates it with one tenant and token.")
	fs.DurationVar(&c.runtimeReload, "runtime-config.reload-period", 10*time.Second, "How often the runtime configuration is checked for changes.")
	fs.StringVar(&c.runtimeBackend, "runtime-config.backend", runtimeBackendFile, "Where the runtime configuration (tenants, token hashes, limits) lives: file (-runtime-config.file, on each machine) or bucket (one configuration for the whole cluster, encrypted in the bucket, changed through the admin API or the CLI; docs/scaling.md).")
	fs.StringVar(&c.instanceID, "server.instance-id", "", "Name of this process in the bucket, where its usage hours and audit segments are kept. Default: the ingester ring ID for an ingester running apart, else an ID made on the first start and kept in <data.dir>/instance-id.")
	fs.DurationVar(&c.usageCheckpoint, "usage.checkpoint-period", time.Minute, "How often the usage of the hour in progress is written, to <data.dir>/usage and to the bucket.")
	fs.StringVar(&c.auditFile, "audit.log-file", "", "The audit log: every administrative and data-access action, hash-chained (default <data.dir>/audit/audit.log).")
	fs.DurationVar(&c.auditSegments, "audit.segment-period", time.Minute, "How often the entries appended to the audit log are sealed in a segment and shipped to the bucket, where `fluxpulse audit verify -bucket` checks every process's chain.")
	fs.BoolVar(&c.auditSync, "audit.sync", false, "fsync the audit log after every entry (slower; survives a power loss).")
	c.tls.registerFlags(fs)
	c.storage.RegisterFlags(fs)
	c.encryption.RegisterFlags(fs)
	c.store.RegisterFlags(fs)
	c.compactor.RegisterFlags(fs)
	c.limits.RegisterFlags(fs)
	c.distributor.RegisterFlags(fs)
	c.ingester.RegisterFlags(fs)
	c.querier.RegisterFlags(fs)
	c.frontend.registerFlags(fs)
	c.ruler.registerFlags(fs)
	c.alertmanager.registerFlags(fs)
	c.cluster.registerFlags(fs)
	c.ha.RegisterFlags(fs)
	c.deletion.RegisterFlags(fs)
	c.storeGateway.RegisterFlags(fs)
	c.sharding.registerFlags(fs)
}

func (c *serverConfig) validate() error {
	r, err := parseTarget(c.target)
	if err != nil {
		return err
	}
	c.roles = r
	if c.runtimeBackend != runtimeBackendFile && c.runtimeBackend != runtimeBackendBucket {
		return fmt.Errorf("-runtime-config.backend must be %s or %s, got %q", runtimeBackendFile, runtimeBackendBucket, c.runtimeBackend)
	}
	if err := c.ha.Validate(); err != nil {
		return err
	}
	if !r.all() {
		if err := c.cluster.validate(r); err != nil {
			return err
		}
	}
	if r[roleStoreGateway] && !c.storeGateway.ShardingEnabled {
		return fmt.Errorf("-target=%s: a store-gateway serves its share of the blocks to queriers that ask it; set -store-gateway.sharding-enabled on it and on every querier and ruler", r)
	}
	if err := c.frontend.validate(r); err != nil {
		return err
	}
	if err := c.alertmanager.validate(); err != nil {
		return err
	}
	return c.limits.Validate()
}

// resolvePaths puts every local path that has no flag of its own under
// the data directory, and derives the settings that follow from others.
func (c *serverConfig) resolvePaths() {
	c.ingester.Dir = filepath.Join(c.dataDir, "tsdb")
	// An idle tenant's TSDB is removed only once the queriers' block lists
	// (refreshed every -blocks-storage.sync-interval) have its last block.
	c.ingester.IdleCloseGrace = 2 * c.store.SyncInterval
	if c.runtimeFile == "" {
		c.runtimeFile = filepath.Join(c.dataDir, "runtime.yaml")
	}
	c.store.Dir = filepath.Join(c.dataDir, "store")
	c.storeGateway.SyncInterval = c.store.SyncInterval
	if c.auditFile == "" {
		c.auditFile = filepath.Join(c.dataDir, "audit", "audit.log")
	}
	c.compactor.Dir = filepath.Join(c.dataDir, "compactor")
	if c.storage.Filesystem.Dir == "" {
		c.storage.Filesystem.Dir = filepath.Join(c.dataDir, "bucket")
	}
	if c.encryption.KeyFile == "" {
		c.encryption.KeyFile = filepath.Join(c.dataDir, encryption.DefaultKeyFileName)
	}
	if c.cluster.Ring.TokensFile == "" {
		c.cluster.Ring.TokensFile = filepath.Join(c.dataDir, "ingester-ring-tokens")
	}
}

func newLogger(level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("-log.level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "logfmt":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("-log.format must be logfmt or json, got %q", format)
}
