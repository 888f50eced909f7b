package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/oklog/run"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/fluxpulse/fluxpulse/audit"
	"github.com/fluxpulse/fluxpulse/blockstore"
	"github.com/fluxpulse/fluxpulse/bucket"
	"github.com/fluxpulse/fluxpulse/compactor"
	"github.com/fluxpulse/fluxpulse/distributor"
	"github.com/fluxpulse/fluxpulse/encryption"
	"github.com/fluxpulse/fluxpulse/ingester"
	"github.com/fluxpulse/fluxpulse/limits"
	"github.com/fluxpulse/fluxpulse/querier"
	"github.com/fluxpulse/fluxpulse/ruler"
	"github.com/fluxpulse/fluxpulse/runtimeconfig"
	"github.com/fluxpulse/fluxpulse/tenantauth"
	"github.com/fluxpulse/fluxpulse/usage"
)

// serverConfig is every flag of the server.
type serverConfig struct {
	target          string
	dataDir         string
	httpAddr        string
	shutdownTimeout time.Duration
	logLevel        string
	logFormat       string
	printVersion    bool
	configPage      string // every flag and its value, secrets redacted
	runtimeFile     string
	runtimeReload   time.Duration
	auditFile       string
	auditSync       bool
	tls             tlsConfig

	auth        tenantauth.Config
	storage     bucket.Config
	encryption  encryption.Config
	store       blockstore.Config
	compactor   compactor.Config
	limits      limits.Limits
	distributor distributor.Config
	ingester    ingester.Config
	querier     querier.Config
	ruler       rulerConfig
}

func (c *serverConfig) registerFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.target, "target", "all", "Roles to run, comma-separated. all runs every role in this process.")
	fs.StringVar(&c.dataDir, "data.dir", "./data", "Directory for all local state: per-tenant TSDBs and their WALs.")
	fs.StringVar(&c.httpAddr, "server.http-listen-address", ":9009", "Address the HTTP API listens on.")
	fs.DurationVar(&c.shutdownTimeout, "server.graceful-shutdown-timeout", 30*time.Second, "How long in-flight requests may take to finish on shutdown.")
	fs.StringVar(&c.logLevel, "log.level", "info", "Log level: debug, info, warn or error.")
	fs.StringVar(&c.logFormat, "log.format", "logfmt", "Log format: logfmt or json.")
	fs.BoolVar(&c.printVersion, "version", false, "Print the version and exit.")
	fs.StringVar(&c.auth.Mode, "auth.mode", "token", "How tenants are decided: token (bearer token, or basic auth with the tenant as user and the token as password), or header (trust X-Scope-OrgID; only behind an authenticating proxy).")
	fs.StringVar(&c.runtimeFile, "runtime-config.file", "", "Runtime file with tenants, token hashes and limits, reloaded while running (default <data.dir>/runtime.yaml). In token mode a first start creates it with one tenant and token.")
	fs.DurationVar(&c.runtimeReload, "runtime-config.reload-period", 10*time.Second, "How often the runtime file is checked for changes.")
	fs.StringVar(&c.auditFile, "audit.log-file", "", "The audit log: every administrative and data-access action, hash-chained (default <data.dir>/audit/audit.log).")
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
	c.ruler.registerFlags(fs)
}

// knownTargets are the roles this binary has. Only "all" runs today: the
// roles reach each other in process.
var knownTargets = []string{"all", "distributor", "ingester", "querier", "ruler"}

func (c *serverConfig) validate() error {
	for _, t := range strings.Split(c.target, ",") {
		if !slices.Contains(knownTargets, t) {
			return fmt.Errorf("-target: unknown role %q; roles are %s", t, strings.Join(knownTargets, ", "))
		}
	}
	if c.target != "all" {
		return fmt.Errorf("-target=%s: running roles in separate processes is not available yet; use -target=all", c.target)
	}
	return c.limits.Validate()
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

func serve(args []string) error {
	var cfg serverConfig
	fs := flag.NewFlagSet("fluxpulse", flag.ContinueOnError)
	cfg.registerFlags(fs)
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		return nil // the usage is printed
	} else if err != nil {
		return err
	}
	if cfg.printVersion {
		rev, _ := buildRevision()
		fmt.Printf("fluxpulse %s (revision %s)\n", version, rev)
		return nil
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	var page strings.Builder
	fs.VisitAll(func(f *flag.Flag) { fmt.Fprintf(&page, "-%s=%s\n", f.Name, redactURLs(f.Value.String())) })
	cfg.configPage = page.String()
	if err := cfg.validate(); err != nil {
		return err
	}
	logger, err := newLogger(cfg.logLevel, cfg.logFormat)
	if err != nil {
		return err
	}
	cfg.ingester.Dir = filepath.Join(cfg.dataDir, "tsdb")
	warnUnencryptedDisk(cfg.ingester.Dir, logger)
	if cfg.runtimeFile == "" {
		cfg.runtimeFile = filepath.Join(cfg.dataDir, "runtime.yaml")
	}
	cfg.store.Dir = filepath.Join(cfg.dataDir, "store")
	if cfg.auditFile == "" {
		cfg.auditFile = filepath.Join(cfg.dataDir, "audit", "audit.log")
	}
	cfg.compactor.Dir = filepath.Join(cfg.dataDir, "compactor")
	if cfg.storage.Filesystem.Dir == "" {
		cfg.storage.Filesystem.Dir = filepath.Join(cfg.dataDir, "bucket")
	}
	if cfg.encryption.KeyFile == "" {
		cfg.encryption.KeyFile = filepath.Join(cfg.dataDir, encryption.DefaultKeyFileName)
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	s, err := newServer(cfg, logger, reg)
	if err != nil {
		return err
	}
	return s.run()
}

// server is the process: every role, wired in process, behind one HTTP
// listener.
type server struct {
	cfg      serverConfig
	logger   *slog.Logger
	bucket   bucket.Bucket // encrypted per tenant; the raw one is never used directly
	keyring  *encryption.Keyring
	ing      *ingester.Ingester
	store    *blockstore.Store
	comp     *compactor.Compactor
	audit    *audit.Logger
	usage    *usage.Recorder
	ruler    *ruler.Ruler
	runtime  *runtimeconfig.Watcher
	handler  http.Handler
	stopping atomic.Bool
}

func newServer(cfg serverConfig, logger *slog.Logger, reg *prometheus.Registry) (*server, error) {
	lim := limits.NewOverrides(cfg.limits)
	auth, err := tenantauth.New(cfg.auth)
	if err != nil {
		return nil, err
	}
	al, err := openServerAudit(cfg, logger.With("component", "audit"), reg)
	if err != nil {
		return nil, err
	}
	obs := &observers{audit: al}
	auth.OnFailure(obs.authFailure)
	onRuntimeChange = obs.runtimeChange
	watcher, err := loadRuntimeConfig(cfg, auth, lim, logger.With("component", "runtime-config"), reg)
	if err != nil {
		return nil, err
	}
	raw, err := bucket.New(cfg.storage, logger.With("component", "bucket"), reg)
	if err != nil {
		return nil, err
	}
	bkt, keyring, err := encryption.New(cfg.encryption, raw, logger.With("component", "encryption"))
	if err != nil {
		return nil, errors.Join(err, raw.Close())
	}
	ing, err := ingester.New(cfg.ingester, lim, bkt, logger.With("component", "ingester"), reg)
	if err != nil {
		return nil, err
	}
	dist, err := distributor.New(cfg.distributor, ing, lim, logger.With("component", "distributor"), reg)
	if err != nil {
		return nil, err
	}
	rev, date := buildRevision()
	store, err := blockstore.New(cfg.store, bkt, logger.With("component", "store"), reg)
	if err != nil {
		return nil, err
	}
	queryable := querier.NewQueryable(lim, cfg.querier.LookbackDelta, ing, ing, store)
	q, err := querier.New(cfg.querier, queryable, ing,
		querier.BuildInfo{Version: version, Revision: rev, BuildDate: date, Features: rulerFeatures()}, logger.With("component", "querier"), reg)
	if err != nil {
		return nil, err
	}
	rul, err := newRuler(cfg.ruler, ruler.Dependencies{Engine: q.Engine(), Queryable: queryable, Pusher: dist, Bucket: bkt, Limits: lim, Audit: al}, logger, reg)
	if err != nil {
		return nil, err
	}
	comp, err := compactor.New(cfg.compactor, raw, bkt, keyring, lim, logger.With("component", "compactor"), reg)
	if err != nil {
		return nil, err
	}
	gauges := func() map[string]usage.Gauges {
		active := ing.ActiveSeries()
		tenants := make([]string, 0, len(active))
		for t := range active {
			tenants = append(tenants, t)
		}
		stored := storedBytes(context.Background(), raw, tenants)
		out := map[string]usage.Gauges{}
		for t, n := range active {
			out[t] = usage.Gauges{ActiveSeries: n, StoredBytes: stored[t]}
		}
		return out
	}
	rec, err := usage.NewRecorder(usageDir(cfg.dataDir), gauges, logger.With("component", "usage"), reg)
	if err != nil {
		return nil, err
	}
	obs.usage = rec
	dist.Observe(obs.push)
	q.Observe(obs.query)
	s := &server{cfg: cfg, logger: logger, bucket: bkt, keyring: keyring, ing: ing, store: store, comp: comp, audit: al, usage: rec, ruler: rul, runtime: watcher}

	mux := http.NewServeMux()
	write := auth.Middleware(tenantauth.ScopeWrite, tenantauth.PlainError, dist)
	mux.Handle("POST /api/v1/push", write)
	mux.Handle("POST /api/v1/write", write)
	q.Register(mux, func(h http.Handler) http.Handler {
		return auth.Middleware(tenantauth.ScopeRead, querier.WriteError, h)
	})
	adm := &admin{raw: raw, enc: bkt, keys: keyring, ing: ing, store: store, logger: logger, audit: obs.admin}
	adm.register(mux, auth)
	registerRuler(mux, rul, auth)
	mux.Handle("GET /api/v1/admin/usage", auth.Middleware(tenantauth.ScopeAdmin, querier.WriteError, rec.Handler(allowedUsage)))
	// Profiles reveal code paths, not data; still, only operators get them.
	mux.Handle("/debug/pprof/", auth.Middleware(tenantauth.ScopeAdmin, querier.WriteError, http.HandlerFunc(pprof.Index)))
	mux.Handle("/debug/pprof/profile", auth.Middleware(tenantauth.ScopeAdmin, querier.WriteError, http.HandlerFunc(pprof.Profile)))
	mux.HandleFunc("GET /ready", s.ready)
	mux.HandleFunc("GET /config", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprint(w, cfg.configPage)
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("GET /{$}", index)
	s.handler = mux
	return s, nil
}

func (s *server) ready(w http.ResponseWriter, _ *http.Request) {
	switch {
	case s.stopping.Load():
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
	case !s.ing.Ready():
		http.Error(w, "ingester is replaying its write-ahead logs", http.StatusServiceUnavailable)
	default:
		fmt.Fprintln(w, "ready")
	}
}

func index(w http.ResponseWriter, _ *http.Request) {
	fmt.Fprintln(w, "FluxPulse", version)
	fmt.Fprintln(w, "remote write: POST /api/v1/push (or /api/v1/write) with X-Scope-OrgID")
	fmt.Fprintln(w, "Prometheus API for Grafana: /prometheus (data source URL), /api/v1/…")
	fmt.Fprintln(w, "operations: /ready /metrics")
}

// run serves until SIGTERM or SIGINT, then shuts down in order: stop
// accepting and finish in-flight requests, stop the roles, close every TSDB.
func (s *server) run() error {
	ln, err := net.Listen("tcp", s.cfg.httpAddr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", s.cfg.httpAddr, err)
	}
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       2 * time.Minute,
		WriteTimeout:      s.cfg.querier.Timeout + 30*time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    1 << 20,
		ErrorLog:          slog.NewLogLogger(s.logger.Handler(), slog.LevelWarn),
	}
	if s.cfg.tls.enabled() {
		tc, err := s.cfg.tls.serverConfig()
		if err != nil {
			ln.Close()
			return err
		}
		srv.TLSConfig = tc
		ln = tls.NewListener(ln, tc)
	}
	s.logger.Info("FluxPulse started", "version", version, "target", s.cfg.target, "http", ln.Addr().String(), "tls", s.cfg.tls.enabled(), "auth", s.cfg.auth.Mode, "data_dir", s.cfg.dataDir)

	var g run.Group
	g.Add(run.SignalHandler(context.Background(), os.Interrupt, syscall.SIGTERM))
	g.Add(func() error {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	}, func(error) {
		s.stopping.Store(true)
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.shutdownTimeout)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			s.logger.Warn("in-flight requests did not finish in time", "err", err)
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	g.Add(func() error { return s.ing.Run(ctx) }, func(error) { cancel() })
	if s.runtime != nil {
		g.Add(func() error { return s.runtime.Run(ctx) }, func(error) { cancel() })
	}
	g.Add(func() error { return s.comp.Run(ctx) }, func(error) { cancel() })
	g.Add(func() error { return s.audit.Run(ctx) }, func(error) { cancel() })
	g.Add(func() error { return s.usage.Run(ctx) }, func(error) { cancel() })
	g.Add(func() error { return s.runRuler(ctx) }, func(error) { cancel() })

	runErr := g.Run()
	if _, ok := errors.AsType[run.SignalError](runErr); ok {
		s.logger.Info("shutting down", "reason", runErr)
		runErr = nil
	}
	if err := s.ing.Close(); err != nil {
		return errors.Join(runErr, fmt.Errorf("close ingester: %w", err))
	}
	_ = s.store.Close()
	if err := s.audit.Close(); err != nil {
		s.logger.Error("close audit log", "err", err)
	}
	if err := s.bucket.Close(); err != nil {
		return errors.Join(runErr, fmt.Errorf("close bucket: %w", err))
	}
	s.logger.Info("stopped cleanly")
	return runErr
}

// redactURLs hides the passwords of URLs in a flag value (a comma-separated
// list of URLs, say), for the /config page. Secret-typed flags print
// themselves redacted.
func redactURLs(v string) string {
	parts := strings.Split(v, ",")
	for i, p := range parts {
		if u, err := url.Parse(strings.TrimSpace(p)); err == nil && u.User != nil {
			if _, has := u.User.Password(); has {
				u.User = url.UserPassword(u.User.Username(), "xxxxx")
				parts[i] = u.String()
			}
		}
	}
	return strings.Join(parts, ",")
}
