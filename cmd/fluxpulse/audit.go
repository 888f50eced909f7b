package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/fluxpulse/fluxpulse/audit"
	"github.com/fluxpulse/fluxpulse/runtimeconfig"
)

const auditUsage = "usage: fluxpulse audit verify [-data.dir dir] [-audit.log-file path]"

// auditRuntimeChanges records the changes a tenant or token command made to
// the runtime file, as the person running it. A failure to write is
// reported on stderr but does not undo the change.
func auditRuntimeChanges(files *cliFiles, old, cur *runtimeconfig.Config) {
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	l, err := audit.Open(files.auditFile, logger, nil)
	if err != nil {
		logger.Error("change not recorded in the audit log", "err", err)
		return
	}
	actor := cliActor()
	for _, ch := range runtimeconfig.Diff(old, cur) {
		l.Log(audit.Entry{Actor: actor, Tenant: ch.Tenant, Action: ch.Action, Target: ch.Target,
			Outcome: audit.OutcomeSuccess, Details: map[string]any{"runtime_file": files.runtimeFile}})
	}
	if err := l.Close(); err != nil {
		logger.Error("close audit log", "err", err)
	}
}

func runAudit(args []string, stdout, _ io.Writer) error {
	if len(args) == 0 {
		return errors.New(auditUsage)
	}
	switch args[0] {
	case "verify":
		return auditVerify(args[1:], stdout)
	}
	return fmt.Errorf("audit: unknown subcommand %q; %s", args[0], auditUsage)
}

// auditVerify checks the audit log's hash chain and anchor. It prints a
// summary and returns nil when the log is intact, and returns the kind and
// line of the first damage otherwise (the process then exits 1).
func auditVerify(args []string, stdout io.Writer) error {
	var files cliFiles
	fs := flag.NewFlagSet("fluxpulse audit verify", flag.ContinueOnError)
	fs.StringVar(&files.dataDir, "data.dir", "./data", "The server's data directory.")
	fs.StringVar(&files.auditFile, "audit.log-file", "", "The audit log (default <data.dir>/audit/audit.log).")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q; %s", fs.Arg(0), auditUsage)
	}
	files.resolve()
	path := files.auditFile
	rep, err := audit.Verify(path)
	if te, ok := errors.AsType[*audit.TamperError](err); ok {
		fmt.Fprintf(stdout, "%s: FAILED: %s at line %d, after %d intact entries (last seq %d)\n",
			path, te.Kind, te.Line, rep.Entries, rep.LastSeq)
		return fmt.Errorf("%s: %w", path, err)
	}
	if err != nil {
		return err
	}
	if rep.Entries == 0 {
		fmt.Fprintf(stdout, "%s: OK, empty\n", path)
		return nil
	}
	fmt.Fprintf(stdout, "%s: OK, %d entries, seq 1 to %d, last at %s, last hash %s\n",
		path, rep.Entries, rep.LastSeq, rep.LastTime.Format(time.RFC3339), rep.LastHash)
	if rep.Unanchored > 0 {
		fmt.Fprintf(stdout, "warning: the last %d entries come after the anchor (seq %d): written just before a crash, or appended by something other than FluxPulse\n",
			rep.Unanchored, rep.AnchorSeq)
	}
	return nil
}
