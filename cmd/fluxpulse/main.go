// Command fluxpulse is the FluxPulse server: a multi-tenant,
// Prometheus-compatible metrics backend. With -target=all (the default) it
// runs every role in one process with an embedded default configuration.
package main

import (
	"fmt"
	"os"
	"runtime/debug"
)

// Set with -ldflags "-X main.version=…" by release builds.
var version = "dev"

func main() {
	// FluxPulse keeps less than Prometheus in memory per series; trading
	// some of that for less collection work makes ingestion about a fifth
	// cheaper (docs/performance.md). GOGC in the environment still rules.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(200)
	}
	if err := dispatch(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "fluxpulse:", err)
		os.Exit(1)
	}
}

func dispatch(args []string) error {
	if len(args) > 0 {
		if cmd, ok := commands[args[0]]; ok {
			return cmd(args[1:])
		}
	}
	return serve(args)
}

// commands are the subcommands; anything else is a server flag.
var commands = map[string]func(args []string) error{}

func buildRevision() (revision, date string) {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "", ""
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			revision = s.Value
		case "vcs.time":
			date = s.Value
		}
	}
	return revision, date
}
