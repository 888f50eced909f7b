// Command fluxpulse is the FluxPulse server: a multi-tenant,
// Prometheus-compatible metrics backend. With -target=all (the default) it
// runs every role in one process with an embedded default configuration;
// -target=distributor,ingester,… runs chosen roles that find each other
// through a hash ring. The same binary holds the administration commands.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
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
	err := dispatch(os.Args[1:], os.Stdout, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return // -help printed the usage: not a failure
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "fluxpulse:", err)
		os.Exit(1)
	}
}

// command is a subcommand: its arguments after its name, and where it
// writes.
type command func(args []string, stdout, stderr io.Writer) error

// commands are the subcommands; anything else is a server flag.
var commands = map[string]command{
	"tenant": runTenant,
	"token":  runToken,
	"keys":   runKeys,
	"blocks": runBlocks,
	"usage":  runUsage,
	"audit":  runAudit,
	"export": runExport,
}

func dispatch(args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		if cmd, ok := commands[args[0]]; ok {
			return cmd(args[1:], stdout, stderr)
		}
	}
	return serve(args)
}

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
