package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/grafana/dskit/ring"
	ringclient "github.com/grafana/dskit/ring/client"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	"google.golang.org/grpc/health/grpc_health_v1"

	"github.com/fluxpulse/fluxpulse/cluster"
	"github.com/fluxpulse/fluxpulse/distributor"
	"github.com/fluxpulse/fluxpulse/hatracker"
	"github.com/fluxpulse/fluxpulse/querier"
	"github.com/fluxpulse/fluxpulse/rpc"
	"github.com/fluxpulse/fluxpulse/tenantauth"
)

// clusterConfig is the configuration of roles that run apart.
type clusterConfig struct {
	cluster.Config
	grpcAddr     string
	grpcAuthFile string
	grpcTLS      struct{ cert, key, ca string }
	replication  distributor.ReplicationConfig
	ingesters    querier.RingConfig
}

func (c *clusterConfig) registerFlags(fs *flag.FlagSet) {
	c.Config.RegisterFlags(fs)
	fs.StringVar(&c.grpcAddr, "server.grpc-listen-address", ":9095", "Address an ingester's gRPC service listens on when roles run apart (-target=all opens no gRPC listener).")
	fs.StringVar(&c.grpcAuthFile, "server.grpc-auth-token-file", "", "File with the cluster's shared secret (at least 16 bytes, the same file on every process): every gRPC call between roles carries it and a call without it is refused. Required when roles run apart.")
	fs.StringVar(&c.grpcTLS.cert, "server.grpc-tls-cert-path", "", "Certificate (PEM) of this process's gRPC listener; with it, gRPC between roles uses TLS 1.2 or newer.")
	fs.StringVar(&c.grpcTLS.key, "server.grpc-tls-key-path", "", "Private key (PEM) of the gRPC listener.")
	fs.StringVar(&c.grpcTLS.ca, "server.grpc-tls-ca-path", "", "CA bundle (PEM) that gRPC clients verify the other roles' certificates with; setting it makes the clients use TLS.")
	c.replication.RegisterFlags(fs)
	c.ingesters.RegisterFlags(fs)
}

// validate checks that the roles can find and reach each other: each
// refusal names the flag to set.
func (c *clusterConfig) validate(r roles) error {
	if len(c.Memberlist.JoinMembers) == 0 {
		return fmt.Errorf("-target=%s: roles that run apart find each other through memberlist; set -%s to the memberlist address (host:port) of one or more processes of the cluster", r, cluster.FlagJoin)
	}
	if c.grpcAuthFile == "" {
		return fmt.Errorf("-target=%s: roles that run apart authenticate each other; set -server.grpc-auth-token-file to a file with the cluster's shared secret", r)
	}
	if (c.grpcTLS.cert == "") != (c.grpcTLS.key == "") {
		return errors.New("gRPC TLS needs both -server.grpc-tls-cert-path and -server.grpc-tls-key-path")
	}
	if err := c.Ring.Validate(); err != nil {
		return err
	}
	if r[roleIngester] {
		return c.Ring.ValidateIngester()
	}
	return nil
}

// serverTLS is the gRPC listener's TLS configuration, nil without TLS.
func (c *clusterConfig) serverTLS() (*tls.Config, error) {
	if c.grpcTLS.cert == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(c.grpcTLS.cert, c.grpcTLS.key)
	if err != nil {
		return nil, fmt.Errorf("gRPC TLS certificate: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// clientTLS is the gRPC clients' TLS configuration, nil without TLS.
func (c *clusterConfig) clientTLS() (*tls.Config, error) {
	if c.grpcTLS.ca == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(c.grpcTLS.ca)
	if err != nil {
		return nil, fmt.Errorf("-server.grpc-tls-ca-path: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("-server.grpc-tls-ca-path: no certificate in %s", c.grpcTLS.ca)
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}

// clusterMember is what a process whose roles run apart adds: membership,
// the cluster credential and the pool of ingester clients.
type clusterMember struct {
	node *cluster.Node
	cred rpc.Credential
	pool *ringclient.Pool
}

// joinCluster builds the process's membership and ingester client pool;
// both run as loops of the run group.
func (p *process) joinCluster() error {
	cc := &p.cfg.cluster
	node, err := cluster.New(cc.Config, p.logger.With("component", "cluster"), p.reg, hatracker.Codec{})
	if err != nil {
		return err
	}
	cred, err := rpc.LoadCredential(cc.grpcAuthFile)
	if err != nil {
		return err
	}
	ctls, err := cc.clientTLS()
	if err != nil {
		return err
	}
	factory := ringclient.PoolAddrFunc(func(addr string) (ringclient.PoolClient, error) {
		return rpc.DialIngester(addr, cred, ctls)
	})
	p.member = &clusterMember{node: node, cred: cred}
	p.addLoop(node.Run)
	p.member.pool = p.clientPool("ingester", node.Ring(), factory)
	p.internal.Handle("GET /ring", node.RingPage())
	p.internal.Handle("GET /memberlist", node.MemberlistPage())
	// The ring page's forget action changes the cluster: operators only.
	forget := p.auth.Middleware(tenantauth.ScopeAdmin, tenantauth.PlainError, operatorOnly(node.RingPage()))
	p.internal.Handle("POST /ring", forget)
	p.public.Handle("/ring", forget)
	p.public.Handle("/memberlist", p.auth.Middleware(tenantauth.ScopeAdmin, tenantauth.PlainError, operatorOnly(node.MemberlistPage())))
	return nil
}

// clientPool is a pool of clients of the instances of a role's ring
// (role: "ingester", "store-gateway"), run by the process, with their
// count in fluxpulse_<role>_clients. A client whose instance fails its
// health checks for the grace period is closed and dialled anew on next
// use; the grace covers an instance that is still starting.
func (p *process) clientPool(role string, rd ring.ReadRing, factory ringclient.PoolAddrFunc) *ringclient.Pool {
	clients := prometheus.NewGauge(prometheus.GaugeOpts{Name: "fluxpulse_" + strings.ReplaceAll(role, "-", "_") + "_clients",
		Help: "Open connections to " + role + "s."})
	p.reg.MustRegister(clients)
	pool := ringclient.NewPool(role, ringclient.PoolConfig{CheckInterval: 10 * time.Second, HealthCheckEnabled: true,
		HealthCheckTimeout: time.Second, HealthCheckGracePeriod: 30 * time.Second},
		ringclient.NewRingServiceDiscovery(rd), factory, clients, cluster.GoKit(p.logger.With("component", role+"-pool")))
	p.addLoop(func(ctx context.Context) error { return runService(ctx, pool) })
	return pool
}

// ingesterClient returns the pooled client of the ingester at addr.
func (m *clusterMember) ingesterClient(addr string) (*rpc.IngesterClient, error) {
	c, err := m.pool.GetClientFor(addr)
	if err != nil {
		return nil, err
	}
	return c.(*rpc.IngesterClient), nil
}

// serveIngester adds the ingester service to the gRPC listener, and
// registers the ingester in the ring once its WAL is replayed.
func (p *process) serveIngester(ing rpc.Ingester, replayed func() bool) error {
	cc := &p.cfg.cluster
	addr, err := cc.Ring.InstanceAddrFor(cc.grpcAddr)
	if err != nil {
		return err
	}
	node := p.member.node
	if err := node.RegisterIngester(addr, cc.Ring.TokensFile, replayed); err != nil {
		return err
	}
	// The service answers once the ingester registered ACTIVE, when
	// distributors may start sending; /ready also waits until the ring as
	// this process reads it shows that.
	ready := func() bool { return replayed() && node.Registered() }
	p.checks = append(p.checks, func() string {
		if !replayed() || !node.Active() {
			return "ingester is not ACTIVE in the ring yet"
		}
		return ""
	})
	if err := p.grpcService(func(srv *grpc.Server) { rpc.RegisterIngester(srv, ing, rpc.ServiceOptions{Ready: ready}) }, ready); err != nil {
		return err
	}
	p.logger.Info("ingester gRPC service", "advertised", addr)
	return nil
}

// grpcService adds a service to the process's gRPC listener, opening it
// on first use (every role reached over gRPC shares it). The listener's
// health is SERVING once ready of every service added says so.
func (p *process) grpcService(register func(*grpc.Server), ready func() bool) error {
	if gs := p.grpcServer; gs != nil {
		register(gs.srv)
		gs.readies = append(gs.readies, ready)
		return nil
	}
	cc := &p.cfg.cluster
	opts := append(p.member.cred.ServerOptions(), grpc.MaxRecvMsgSize(rpc.MaxMessageBytes), grpc.MaxSendMsgSize(rpc.MaxMessageBytes))
	stls, err := cc.serverTLS()
	if err != nil {
		return err
	}
	if stls != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(stls)))
	}
	srv := grpc.NewServer(opts...)
	register(srv)
	hs := health.NewServer()
	hs.SetServingStatus("", grpc_health_v1.HealthCheckResponse_NOT_SERVING)
	grpc_health_v1.RegisterHealthServer(srv, hs)
	ln, err := net.Listen("tcp", cc.grpcAddr)
	if err != nil {
		return fmt.Errorf("gRPC listener on %s: %w", cc.grpcAddr, err)
	}
	gs := &grpcServer{srv: srv, ln: ln, health: hs, readies: []func() bool{ready}}
	p.grpcServer = gs
	p.addLoop(func(ctx context.Context) error {
		if waitUntil(ctx, gs.ready) {
			hs.SetServingStatus("", grpc_health_v1.HealthCheckResponse_SERVING)
		}
		<-ctx.Done()
		return nil
	})
	p.logger.Info("gRPC listener", "listen", ln.Addr().String(), "tls", stls != nil)
	return nil
}

// roleRing adds the ring of a role other than the ingesters'; a process
// that runs the role (member) registers in it at its gRPC listener's
// address, keeps its tokens in <data.dir>/<name>-ring-tokens, and serves
// the ring's status page at /<name>/ring on the internal listener.
func (p *process) roleRing(name, prefix string, cfg cluster.RoleRingConfig, member bool) (*cluster.RoleRing, error) {
	var addr string
	if member {
		var err error
		if addr, err = cluster.AdvertiseAddr(cfg.InstanceAddr, prefix+".instance-addr", p.cfg.cluster.grpcAddr); err != nil {
			return nil, err
		}
		if cfg.TokensFile == "" {
			cfg.TokensFile = filepath.Join(p.cfg.dataDir, name+"-ring-tokens")
		}
	}
	rr, err := p.member.node.AddRing(name, prefix, cfg, addr)
	if err != nil {
		return nil, err
	}
	p.internal.Handle("GET /"+name+"/ring", rr.Page())
	return rr, nil
}

// grpcServer is the process's gRPC listener, shared by the services of
// the roles it runs.
type grpcServer struct {
	srv     *grpc.Server
	ln      net.Listener
	health  *health.Server
	readies []func() bool
}

func (s *grpcServer) ready() bool {
	for _, r := range s.readies {
		if !r() {
			return false
		}
	}
	return true
}

func (s *grpcServer) serve() error { return s.srv.Serve(s.ln) }

// shutdown refuses new calls and lets in-flight ones finish.
func (s *grpcServer) shutdown() {
	s.health.Shutdown()
	s.srv.GracefulStop()
}

// replicatingPusher writes to the ingesters of the ring.
func (p *process) replicatingPusher() *distributor.ReplicatingPusher {
	m := p.member
	rp := distributor.NewReplicatingPusher(p.cfg.cluster.replication, m.node.WriteRing(), func(addr string) (distributor.IngesterClient, error) {
		return m.ingesterClient(addr)
	}, p.logger.With("component", "distributor"), p.reg)
	rp.SetShardSize(p.shardSize)
	// Closed after the HTTP server has let its pushes finish: the writes
	// they left going on to slower replicas are not cut off by the exit.
	p.onClose("writes to ingesters", func() error { rp.Wait(); return nil })
	return rp
}

// shardSize is a tenant's shuffle-shard size.
func (p *process) shardSize(tenant string) int {
	return p.limits.Limits(tenant).IngestionTenantShardSize
}

// ringIngesters reads the ingesters of the ring.
func (p *process) ringIngesters() *querier.Ingesters {
	m := p.member
	in := querier.NewIngesters(p.cfg.cluster.ingesters, m.node.Ring(), func(addr string) (querier.IngesterReader, error) {
		return m.ingesterClient(addr)
	})
	in.SetShardSize(p.shardSize)
	return in
}

// ringHasIngesters is the readiness of distributors and queriers: the ring
// they read has ingesters.
func (p *process) ringHasIngesters() string {
	if _, err := p.member.node.Ring().GetReplicationSetForOperation(ring.Read); err != nil {
		return "no readable ingesters in the ring yet: " + err.Error()
	}
	return ""
}

// clusterTenants deletes a tenant's data on every ingester of the ring.
type clusterTenants struct{ m *clusterMember }

// DeleteTenant implements tenantDeleter. Every ingester of the ring must
// be healthy: one that is not would keep the tenant's data.
func (c clusterTenants) DeleteTenant(ctx context.Context, tenant string) error {
	return c.m.eachIngester(tenantauth.With(ctx, tenantauth.Actor(ctx), tenant), "the tenant's data", func(ctx context.Context, cl *rpc.IngesterClient) error {
		return cl.DeleteTenant(ctx)
	})
}

// eachIngester calls f for every ingester of the ring, with ctx (which
// names the tenant), once every one is healthy: an unhealthy one would
// keep what (say, "the tenant's data"), so nothing is done then.
func (m *clusterMember) eachIngester(ctx context.Context, what string, f func(context.Context, *rpc.IngesterClient) error) error {
	r := m.node.Ring()
	set, err := r.GetAllHealthy(ring.Reporting)
	if err != nil && !errors.Is(err, ring.ErrEmptyRing) {
		return err
	}
	if n := r.InstancesCount(); len(set.Instances) < n {
		return fmt.Errorf("%d of the %d ingesters of the ring are unhealthy and would keep %s: retry once they are back, or forget them on /ring", n-len(set.Instances), n, what)
	}
	for _, inst := range set.Instances {
		cl, err := m.ingesterClient(inst.Addr)
		if err == nil {
			err = f(ctx, cl)
		}
		if err != nil {
			return fmt.Errorf("ingester %s: %w", inst.Id, err)
		}
	}
	return nil
}

// runService runs a dskit service until ctx ends.
func runService(ctx context.Context, s services.Service) error {
	if err := services.StartAndAwaitRunning(context.Background(), s); err != nil {
		return err
	}
	<-ctx.Done()
	stop, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return services.StopAndAwaitTerminated(stop, s)
}

// waitUntil polls cond until it holds (true) or ctx ends (false).
func waitUntil(ctx context.Context, cond func() bool) bool {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return false
		case <-tick.C:
		}
	}
	return true
}
