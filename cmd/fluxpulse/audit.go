package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fluxpulse/fluxpulse/audit"
	"github.com/fluxpulse/fluxpulse/bucket"
	"github.com/fluxpulse/fluxpulse/encryption"
	"github.com/fluxpulse/fluxpulse/runtimeconfig"
)

const auditUsage = `usage: fluxpulse audit verify [-data.dir dir] [-audit.log-file path]
       fluxpulse audit verify -bucket [-instance ID] [-blocks-storage.* …] [-encryption.key-file path]
       fluxpulse audit show [-data.dir dir] [-audit.log-file path] [-encryption.key-file path] [-tenant X] [-action A]`

// openServerAudit opens the server's audit log with its entries' targets and
// details sealed under keys derived from the master keys (#12). Like the
// bucket's encryption, it creates the key file on a first start.
func openServerAudit(cfg serverConfig, logger *slog.Logger, reg prometheus.Registerer) (*audit.Logger, error) {
	kf, err := encryption.LoadOrCreate(cfg.encryption.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("audit log keys: %w", err)
	}
	return audit.OpenWithOptions(cfg.auditFile, audit.Options{Sync: cfg.auditSync, Keys: kf.Derive(audit.KeyPurpose)}, logger, reg)
}

// auditStoreDir is where every process ships its audit segments, below
// encryption.SystemPrefix; auditSegmentPurpose labels the keys sealing them.
const (
	auditStoreDir       = "audit"
	auditSegmentPurpose = "fluxpulse audit segments v1"
)

// shipAudit ships the audit log in segments to the bucket every
// -audit.segment-period, and once more at shutdown, before the bucket
// closes (#17).
func (p *process) shipAudit() error {
	kf, err := encryption.LoadKeyFile(p.cfg.encryption.KeyFile)
	if err != nil {
		return fmt.Errorf("audit segments: %w", err)
	}
	store := encryption.NewSystemStore(p.storage.raw, auditStoreDir, kf.Derive(auditSegmentPurpose))
	sh := audit.NewShipper(p.cfg.auditFile, store, p.instance, p.logger.With("component", "audit-shipper"))
	p.addLoop(func(ctx context.Context) error { return sh.Run(ctx, p.cfg.auditSegments) })
	// Closers run in reverse order: this one after every role's, before
	// the bucket's. Closing the log first (Close is idempotent) writes the
	// pending push summaries, so that they are shipped too.
	p.onClose("audit segments", func() error {
		return errors.Join(p.audit.Close(), sh.Ship(context.Background()))
	})
	return nil
}

// cliAuditKeys returns the keys that seal the CLI's audit entries, derived
// from the master keys in keyFile ("" is <dataDir>/master-keys.json). The
// CLI never creates a key file (a wrong path must not produce a new master
// key): without one its entries are written without their targets and
// details, never in clear.
func cliAuditKeys(dataDir, keyFile string) audit.Keys {
	if keyFile == "" {
		keyFile = filepath.Join(dataDir, encryption.DefaultKeyFileName)
	}
	kf, err := encryption.LoadKeyFile(keyFile)
	if err != nil {
		return missingKeys{err}
	}
	return kf.Derive(audit.KeyPurpose)
}

// missingKeys are the audit keys of a key file that could not be loaded.
type missingKeys struct{ err error }

func (m missingKeys) Current() (string, []byte, error) { return "", nil, m.err }
func (m missingKeys) Key(string) ([]byte, error)       { return nil, m.err }

// auditRuntimeChanges records the changes a tenant or token command made to
// the runtime file, as the person running it. A failure to write is
// reported on stderr but does not undo the change.
func auditRuntimeChanges(files *cliFiles, old, cur *runtimeconfig.Config) {
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	l, err := audit.OpenWithOptions(files.auditFile, audit.Options{Keys: cliAuditKeys(files.dataDir, files.keyFile)}, logger, nil)
	if err != nil {
		logger.Error("change not recorded in the audit log", "err", err)
		return
	}
	actor := cliActor()
	for _, ch := range runtimeconfig.Diff(old, cur) {
		l.Log(audit.Entry{Actor: actor, Tenant: ch.Tenant, Action: ch.Action, Target: ch.Target,
			Outcome: audit.OutcomeSuccess, Details: map[string]any{"runtime_file": files.where()}})
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
	case "show":
		return auditShow(args[1:], stdout)
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
	fromBucket := fs.Bool("bucket", false, "Check the chain of every process of the cluster from the segments they shipped to the bucket (with the server's -blocks-storage.* and -encryption.key-file flags) instead of the local log.")
	instance := fs.String("instance", "", "With -bucket: check only this instance.")
	fs.StringVar(&files.keyFile, "encryption.key-file", "", "With -bucket: the master key file (default <data.dir>/"+encryption.DefaultKeyFileName+").")
	files.remote.storage.RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q; %s", fs.Arg(0), auditUsage)
	}
	files.resolve()
	if *fromBucket {
		return auditVerifyBucket(&files, *instance, stdout)
	}
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

// auditVerifyBucket checks every instance's chain of segments in the
// bucket, printing a line per instance; it fails if any did not verify,
// naming the segment.
func auditVerifyBucket(files *cliFiles, only string, stdout io.Writer) error {
	cfg := files.remote.storage
	if cfg.Filesystem.Dir == "" {
		cfg.Filesystem.Dir = filepath.Join(files.dataDir, "bucket")
	}
	kf, err := encryption.LoadKeyFile(files.keyFile)
	if err != nil {
		return fmt.Errorf("audit verify -bucket needs the master keys: %w", err)
	}
	raw, err := bucket.New(cfg, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		return err
	}
	defer raw.Close()
	store := encryption.NewSystemStore(raw, auditStoreDir, kf.Derive(auditSegmentPurpose))
	ctx := context.Background()
	instances := []string{only}
	if only == "" {
		if instances, err = audit.Instances(ctx, store); err != nil {
			return err
		}
		if len(instances) == 0 {
			return errors.New("no audit segments in the bucket (is -blocks-storage.* the servers'?)")
		}
	}
	var failed []string
	for _, inst := range instances {
		rep, err := audit.VerifySegments(ctx, store, inst)
		if err != nil {
			return err
		}
		if !rep.OK() {
			fmt.Fprintf(stdout, "%s: FAILED: segment %s: %s (after %d intact segments, last seq %d)\n", inst, rep.Segment, rep.Problem, rep.Segments, rep.LastSeq)
			failed = append(failed, inst+": "+rep.Segment)
			continue
		}
		fmt.Fprintf(stdout, "%s: OK, %d segments, %d entries, seq 1 to %d\n", inst, rep.Segments, rep.Entries, rep.LastSeq)
	}
	if len(failed) > 0 {
		return fmt.Errorf("audit chains damaged: %s", strings.Join(failed, "; "))
	}
	return nil
}

// shownEntry is an entry as `fluxpulse audit show` prints it: opened, or
// with the reason it does not open.
type shownEntry struct {
	Time    string         `json:"time"`
	Seq     uint64         `json:"seq"`
	Actor   string         `json:"actor"`
	Tenant  string         `json:"tenant"`
	Action  string         `json:"action"`
	Target  string         `json:"target"`
	Outcome string         `json:"outcome"`
	Details map[string]any `json:"details,omitempty"`
	Error   string         `json:"error,omitempty"`
}

// auditShow prints the audit log's entries as JSON lines, their targets and
// details decrypted with the key file, for an operator (#12). It does not
// check the chain (audit verify does). An entry that does not open is
// printed with its error, and the command then fails after the last entry.
func auditShow(args []string, stdout io.Writer) error {
	var files cliFiles
	var tenant, action string
	fs := flag.NewFlagSet("fluxpulse audit show", flag.ContinueOnError)
	fs.StringVar(&files.dataDir, "data.dir", "./data", "The server's data directory.")
	fs.StringVar(&files.auditFile, "audit.log-file", "", "The audit log (default <data.dir>/audit/audit.log).")
	fs.StringVar(&files.keyFile, "encryption.key-file", "", "The server's master key file (default <data.dir>/"+encryption.DefaultKeyFileName+").")
	fs.StringVar(&tenant, "tenant", "", "Show only entries for this tenant (also federated ones naming it).")
	fs.StringVar(&action, "action", "", "Show only entries of this action (for example query, tenant.delete).")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q; %s", fs.Arg(0), auditUsage)
	}
	files.resolve()
	kf, err := encryption.LoadKeyFile(files.keyFile)
	if err != nil {
		return fmt.Errorf("audit show needs the master keys: %w", err)
	}
	keys := kf.Derive(audit.KeyPurpose)
	enc := json.NewEncoder(stdout)
	enc.SetEscapeHTML(false)
	failed := 0
	err = audit.EachEntry(files.auditFile, func(e audit.Entry) error {
		if tenant != "" && !slices.Contains(strings.Split(e.Tenant, "|"), tenant) || action != "" && e.Action != action {
			return nil
		}
		se := shownEntry{Time: e.Time.Format(audit.TimeLayout), Seq: e.Seq, Actor: e.Actor, Tenant: e.Tenant,
			Action: e.Action, Outcome: e.Outcome}
		if err := audit.Unseal(&e, keys); err != nil {
			failed++
			se.Error = err.Error()
		} else {
			se.Target, se.Details = e.Target, e.Details
		}
		return enc.Encode(se)
	})
	if err != nil {
		return err
	}
	if failed > 0 {
		return fmt.Errorf("%d entries could not be decrypted (is -encryption.key-file the server's, with the master keys they name?)", failed)
	}
	return nil
}
