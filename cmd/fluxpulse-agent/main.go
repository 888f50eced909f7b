// Command fluxpulse-agent is the FluxPulse host agent: node_exporter's
// collectors in process, limited by an allow-list, sending through a
// write-ahead log to FluxPulse's remote-write endpoint.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/oklog/run"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/fluxpulse/fluxpulse/agent"
)

// Set with -ldflags "-X main.version=…" by release builds.
var version = "dev"

func main() {
	if err := runMain(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "fluxpulse-agent:", err)
		os.Exit(1)
	}
}

func runMain(args []string) error {
	var (
		cfg                  agent.Config
		listen, level        string
		dryRun, printVersion bool
	)
	fs := flag.NewFlagSet("fluxpulse-agent", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	fs.StringVar(&listen, "web.listen-address", ":9100", "Address of the agent's own /metrics page; empty disables it.")
	fs.StringVar(&level, "log.level", "info", "Log level: debug, info, warn or error.")
	fs.BoolVar(&dryRun, "dry-run", false, "Collect once, print what would be sent in the Prometheus text format, and exit.")
	fs.BoolVar(&printVersion, "version", false, "Print the version and exit.")
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		return nil
	} else if err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if printVersion {
		fmt.Println("fluxpulse-agent", version)
		return nil
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return fmt.Errorf("-log.level: %w", err)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lv}))
	if os.Getenv("GOGC") == "" {
		// A small, long-lived process with a few MiB of live heap: collect
		// garbage sooner; it costs next to nothing at one collection every
		// 15s and keeps 2-3 MiB off the resident set (docs/agent.md).
		debug.SetGCPercent(50)
	}

	if dryRun {
		a, err := agent.New(cfg, logger, nil)
		if err != nil {
			return err
		}
		mfs, err := a.Gather()
		if err != nil {
			return err
		}
		return agent.WriteText(os.Stdout, mfs)
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	a, err := agent.New(cfg, logger, reg)
	if err != nil {
		return err
	}
	return serve(a, reg, listen, logger)
}

// serve runs the agent and its /metrics page until SIGTERM or SIGINT.
func serve(a *agent.Agent, reg *prometheus.Registry, listen string, logger *slog.Logger) error {
	var g run.Group
	g.Add(run.SignalHandler(context.Background(), os.Interrupt, syscall.SIGTERM))
	ctx, cancel := context.WithCancel(context.Background())
	g.Add(func() error { return a.Run(ctx) }, func(error) { cancel() })
	if listen != "" {
		ln, err := net.Listen("tcp", listen)
		if err != nil {
			return fmt.Errorf("-web.listen-address: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
		mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
			fmt.Fprintln(w, "FluxPulse agent", version, "- own metrics at /metrics")
		})
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		g.Add(func() error {
			if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		}, func(error) { _ = srv.Close() })
	}
	logger.Info("FluxPulse agent started", "version", version, "metrics", listen)
	err := g.Run()
	if _, ok := errors.AsType[run.SignalError](err); ok {
		logger.Info("shutting down", "reason", err)
		err = nil
	}
	return err
}
