package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"syscall"

	"github.com/oklog/run"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/fluxpulse/fluxpulse/alertmanager"
	"github.com/fluxpulse/fluxpulse/audit"
	"github.com/fluxpulse/fluxpulse/cluster"
	"github.com/fluxpulse/fluxpulse/compactor"
	"github.com/fluxpulse/fluxpulse/distributor"
	"github.com/fluxpulse/fluxpulse/hatracker"
	"github.com/fluxpulse/fluxpulse/ingester"
	"github.com/fluxpulse/fluxpulse/limits"
	"github.com/fluxpulse/fluxpulse/runtimeconfig"
	"github.com/fluxpulse/fluxpulse/tenantauth"
	"github.com/fluxpulse/fluxpulse/usage"
)

func serve(args []string) error {
	var cfg serverConfig
	fs := flag.NewFlagSet("fluxpulse", flag.ContinueOnError)
	cfg.registerFlags(fs)
	if err := fs.Parse(args); err != nil {
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
	cfg.resolvePaths()
	warnUnencryptedDisk(cfg.ingester.Dir, logger)

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	var g run.Group
	p, err := newProcess(cfg, logger, reg)
	if err != nil {
		return err
	}
	if err := p.addRoles(&g); err != nil {
		return errors.Join(err, p.close())
	}
	return p.run(&g)
}

// process is what the roles of one process share. Each add<Role> function
// builds its role from it, adds the role's routes to the listeners and its
// background work to the run group, and registers what must be closed at
// shutdown.
type process struct {
	cfg        serverConfig
	logger     *slog.Logger
	reg        *prometheus.Registry
	limits     *limits.Overrides
	auth       *tenantauth.Authenticator
	audit      *audit.Logger
	obs        *observers
	usage      *usage.Recorder
	storage    *storage
	member     *clusterMember             // nil in -target=all
	sgRing     *cluster.RoleRing          // the store-gateway ring, once added
	ha         *hatracker.Tracker         // nil without -distributor.ha-tracker.enable
	grpcServer *grpcServer                // when roles run apart and one is reached over gRPC
	am         *alertmanager.Alertmanager // nil unless this process runs the alertmanager
	deletions  *deletions
	compactor  *compactor.Compactor   // nil without the compactor role
	runtime    *runtimeconfig.Watcher // nil: no runtime file (header mode)
	runtimeEd  runtimeEditor          // changes the runtime configuration (admin API)
	instance   string                 // this process's name in the bucket (instanceID)

	public   *http.ServeMux // the public listener: push, query, rules, admin API
	internal *http.ServeMux // the operator-only listener: /metrics, /config, pprof

	ctx      context.Context // the roles' background work; cancelled at shutdown
	cancel   context.CancelFunc
	loops    []func(ctx context.Context) error
	checks   []readyCheck // what /ready waits for
	closers  []closer     // closed in reverse order at shutdown
	stopping atomic.Bool
}

// readyCheck returns why the process is not ready yet, or "".
type readyCheck func() string

type closer struct {
	name  string
	close func() error
}

// newProcess opens what every role needs: the audit log, the runtime file
// with tenants and limits, and the bucket with its encryption.
func newProcess(cfg serverConfig, logger *slog.Logger, reg *prometheus.Registry) (*process, error) {
	auth, err := tenantauth.New(cfg.auth)
	if err != nil {
		return nil, err
	}
	p := &process{cfg: cfg, logger: logger, reg: reg, limits: limits.NewOverrides(cfg.limits), auth: auth,
		public: http.NewServeMux(), internal: http.NewServeMux()}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	if p.instance, err = instanceID(cfg); err != nil {
		return nil, err
	}
	if p.audit, err = openServerAudit(cfg, logger.With("component", "audit"), reg); err != nil {
		return nil, err
	}
	p.onClose("audit log", p.audit.Close)
	p.obs = &observers{audit: p.audit}
	auth.OnFailure(p.obs.authFailure)
	if p.storage, err = openServerStorage(cfg, logger, reg); err != nil {
		return nil, errors.Join(err, p.close())
	}
	p.onClose("bucket", p.storage.enc.Close)
	if err := p.shipAudit(); err != nil {
		return nil, errors.Join(err, p.close())
	}
	if err := p.openRuntimeConfig(); err != nil {
		return nil, errors.Join(err, p.close())
	}
	if err := p.openDeletions(); err != nil {
		return nil, errors.Join(err, p.close())
	}
	return p, nil
}

// addRoles builds the roles of -target.
func (p *process) addRoles(g *run.Group) error {
	if !p.cfg.roles.all() {
		return p.addApartRoles()
	}
	ing, err := p.addIngester()
	if err != nil {
		return err
	}
	if err := p.addHATracker(hatracker.NewMemStore()); err != nil {
		return err
	}
	dist, err := p.addDistributor(ing)
	if err != nil {
		return err
	}
	q, err := p.addQuerier(ing)
	if err != nil {
		return err
	}
	if err := p.addAlertmanager(); err != nil {
		return err
	}
	if err := p.addRuler(q, dist, ing.Ready); err != nil {
		return err
	}
	if err := p.addCompactor(ing); err != nil {
		return err
	}
	if err := p.addUsage(ing); err != nil {
		return err
	}
	p.addLoop(p.audit.Run)
	p.addAdmin(localTenants{ing}, q.store)
	return nil
}

// addApartRoles builds the roles of a process of a cluster: they reach the
// ingesters through the ring and gRPC, and a ruler gets a querier and a
// distributor of its own, in process, without their HTTP APIs.
func (p *process) addApartRoles() error {
	r := p.cfg.roles
	if err := p.joinCluster(); err != nil {
		return err
	}
	var ing *ingester.Ingester
	if r[roleIngester] {
		var err error
		if ing, err = p.addIngester(); err != nil {
			return err
		}
		rg := p.member.node.Ring()
		ing.SetSeriesShare(func(tenant string) (int, int) {
			n := rg.InstancesWithTokensCount()
			if size := p.limits.Limits(tenant).IngestionTenantShardSize; size > 0 && size < n {
				n = size
			}
			return rg.ReplicationFactor(), n
		})
		if err := p.serveIngester(ing, ing.Ready); err != nil {
			return err
		}
	}
	if r[roleDistributor] || r[roleQuerier] || r[roleRuler] {
		p.checks = append(p.checks, p.ringHasIngesters)
	}
	var dist *distributor.Distributor
	if r[roleDistributor] {
		store, err := p.member.node.KV(hatracker.Codec{}, "ha-tracker")
		if err != nil {
			return err
		}
		if err := p.addHATracker(store); err != nil {
			return err
		}
	}
	if r[roleDistributor] || r[roleRuler] {
		var err error
		if dist, err = p.newDistributor(p.replicatingPusher(), r[roleDistributor]); err != nil {
			return err
		}
	}
	var q *queryRole
	if r[roleQuerier] || r[roleRuler] {
		var err error
		if q, err = p.newQuerier(p.ringIngesters(), r[roleQuerier]); err != nil {
			return err
		}
		if r[roleQuerier] {
			p.addAdmin(clusterTenants{p.member}, q.store)
		}
	}
	if r[roleStoreGateway] {
		if err := p.addStoreGateway(); err != nil {
			return err
		}
	}
	if r[roleQueryFrontend] && !r[roleQuerier] {
		if err := p.addQueryFrontend(); err != nil {
			return err
		}
	}
	if r[roleAlertmanager] {
		if err := p.addAlertmanager(); err != nil {
			return err
		}
	}
	if r[roleRuler] {
		if err := p.addRuler(q, dist, func() bool { return p.ringHasIngesters() == "" }); err != nil {
			return err
		}
	}
	if r[roleCompactor] {
		if err := p.addCompactor(clusterHeads{p.member}); err != nil {
			return err
		}
	}
	var active activeSeries
	if ing != nil {
		active = ing
	}
	if err := p.addUsage(active); err != nil {
		return err
	}
	p.addLoop(p.audit.Run)
	return nil
}

// addLoop runs fn in the run group until shutdown.
func (p *process) addLoop(fn func(ctx context.Context) error) {
	p.loops = append(p.loops, fn)
}

// onClose registers what must be closed at shutdown, after every loop has
// stopped; closers run in reverse order of registration.
func (p *process) onClose(name string, fn func() error) {
	p.closers = append(p.closers, closer{name, fn})
}

// close closes everything registered, each even if another fails.
func (p *process) close() error {
	var errs []error
	for k := len(p.closers) - 1; k >= 0; k-- {
		c := p.closers[k]
		if err := c.close(); err != nil {
			p.logger.Error("shutdown: close failed", "what", c.name, "err", err)
			errs = append(errs, fmt.Errorf("close %s: %w", c.name, err))
		}
	}
	p.closers = nil
	return errors.Join(errs...)
}

// run serves until SIGTERM or SIGINT, then shuts down in order: stop
// accepting and finish in-flight requests, stop the roles' loops, close
// what the roles opened (every TSDB among them), the audit log and the
// bucket.
func (p *process) run(g *run.Group) error {
	servers, err := p.listen()
	if err != nil {
		return errors.Join(err, p.close())
	}
	g.Add(run.SignalHandler(context.Background(), os.Interrupt, syscall.SIGTERM))
	for _, s := range servers {
		g.Add(s.serve, func(error) { s.shutdown(p) })
	}
	if gs := p.grpcServer; gs != nil {
		// An ingester goes LEAVING in the ring and lets that spread
		// before the gRPC listener stops, so that distributors stop
		// writing to it first.
		g.Add(gs.serve, func(error) { p.member.node.Leave(); gs.shutdown() })
	}
	for _, fn := range p.loops {
		g.Add(func() error { return fn(p.ctx) }, func(error) { p.cancel() })
	}
	runErr := g.Run()
	if _, ok := errors.AsType[run.SignalError](runErr); ok {
		p.logger.Info("shutting down", "reason", runErr)
		runErr = nil
	}
	if err := p.close(); err != nil {
		return errors.Join(runErr, err)
	}
	p.logger.Info("stopped cleanly")
	return runErr
}
