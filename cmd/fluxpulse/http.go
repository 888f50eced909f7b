package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// httpServer is one listener of the process.
type httpServer struct {
	name    string
	srv     *http.Server
	ln      net.Listener
	timeout time.Duration
}

func (s *httpServer) serve() error {
	if err := s.srv.Serve(s.ln); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("%s listener: %w", s.name, err)
	}
	return nil
}

// shutdown stops accepting and lets in-flight requests finish; /ready says
// 503 from the first shutdown on.
func (s *httpServer) shutdown(p *process) {
	p.stopping.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		p.logger.Warn("in-flight requests did not finish in time", "listener", s.name, "err", err)
	}
}

// listen opens the public listener and, unless disabled, the internal one.
// The public one serves the API and /ready; the internal one serves
// /metrics, /config and profiles, for operators only (docs/security.md).
func (p *process) listen() ([]*httpServer, error) {
	p.public.HandleFunc("GET /ready", p.ready)
	p.public.HandleFunc("GET /{$}", index)
	p.internal.HandleFunc("GET /ready", p.ready)
	p.internal.HandleFunc("GET /config", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprint(w, p.cfg.configPage)
	})
	p.internal.Handle("GET /metrics", promhttp.HandlerFor(p.reg, promhttp.HandlerOpts{Registry: p.reg}))
	p.internal.HandleFunc("/debug/pprof/", pprof.Index)
	p.internal.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	p.internal.HandleFunc("/debug/pprof/profile", pprof.Profile)
	p.internal.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	p.internal.HandleFunc("/debug/pprof/trace", pprof.Trace)

	public, err := p.newHTTPServer("public", p.cfg.httpAddr, p.public)
	if err != nil {
		return nil, err
	}
	if p.cfg.tls.enabled() {
		tc, err := p.cfg.tls.serverConfig()
		if err != nil {
			return nil, errors.Join(err, public.ln.Close())
		}
		public.srv.TLSConfig = tc
		public.ln = tls.NewListener(public.ln, tc)
	}
	servers := []*httpServer{public}
	if p.cfg.internalAddr != "" {
		internal, err := p.newHTTPServer("internal", p.cfg.internalAddr, p.internal)
		if err != nil {
			return nil, errors.Join(err, public.ln.Close())
		}
		servers = append(servers, internal)
	}
	attrs := []any{"version", version, "target", p.cfg.target, "http", public.ln.Addr().String(), "tls", p.cfg.tls.enabled(),
		"auth", p.cfg.auth.Mode, "data_dir", p.cfg.dataDir}
	if len(servers) > 1 {
		attrs = append(attrs, "internal_http", servers[1].ln.Addr().String())
	}
	p.logger.Info("FluxPulse started", attrs...)
	return servers, nil
}

func (p *process) newHTTPServer(name, addr string, h http.Handler) (*httpServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s listener on %s: %w", name, addr, err)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       2 * time.Minute,
		WriteTimeout:      p.cfg.querier.Timeout + 30*time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    1 << 20,
		ErrorLog:          slog.NewLogLogger(p.logger.Handler(), slog.LevelWarn),
	}
	return &httpServer{name: name, srv: srv, ln: ln, timeout: p.cfg.shutdownTimeout}, nil
}

// ready answers 200 once every role is ready, 503 with the reason before
// and while shutting down.
func (p *process) ready(w http.ResponseWriter, _ *http.Request) {
	if p.stopping.Load() {
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	}
	for _, c := range p.checks {
		if why := c(); why != "" {
			http.Error(w, why, http.StatusServiceUnavailable)
			return
		}
	}
	fmt.Fprintln(w, "ready")
}

func index(w http.ResponseWriter, _ *http.Request) {
	fmt.Fprintln(w, "FluxPulse", version)
	fmt.Fprintln(w, "remote write: POST /api/v1/push (or /api/v1/write) with X-Scope-OrgID")
	fmt.Fprintln(w, "Prometheus API for Grafana: /prometheus (data source URL), /api/v1/…")
	fmt.Fprintln(w, "operations: /ready here; /metrics, /config and /debug/pprof on the internal listener (-server.internal-listen-address)")
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
