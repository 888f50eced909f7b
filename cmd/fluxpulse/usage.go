package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"github.com/fluxpulse/fluxpulse/bucket"
	"github.com/fluxpulse/fluxpulse/encryption"
	"github.com/fluxpulse/fluxpulse/usage"
)

const usageUsage = `usage: fluxpulse usage report [-data.dir dir] [-bucket] [-from time] [-to time] [-tenant a,b] [-format json|csv]

  Prints the hourly usage of each tenant (samples, histograms, exemplars and
  bytes received, samples rejected, queries, samples and series queried,
  active series, stored bytes) from the files the server keeps in
  <data.dir>/usage. Times are RFC 3339 or unix seconds; the default is the
  last 24 hours. The hour in progress shows as far as the server last wrote
  it (every -usage.checkpoint-period), with partial=true. With -bucket it
  merges what every process of a cluster shipped to the bucket: counters
  add up (each is counted once where it happens: samples at the
  distributor, queries at the querier), active series are divided by the
  replication factor, stored bytes are the largest figure.`

// usageDir is where the server keeps its hourly usage files.
func usageDir(dataDir string) string { return filepath.Join(dataDir, "usage") }

func runUsage(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "report" {
		fmt.Fprintln(stderr, usageUsage)
		if len(args) == 0 {
			return errors.New("usage: no command given")
		}
		return fmt.Errorf("usage: unknown command %q", args[0])
	}
	flags := flag.NewFlagSet("fluxpulse usage report", flag.ContinueOnError)
	flags.SetOutput(stderr)
	flags.Usage = func() { fmt.Fprintln(stderr, usageUsage); flags.PrintDefaults() }
	dataDir := flags.String("data.dir", "./data", "The server's data directory.")
	fromFlag := flags.String("from", "", "Start of the report, RFC 3339 or unix seconds (default: 24 hours before -to).")
	toFlag := flags.String("to", "", "End of the report, RFC 3339 or unix seconds (default: now).")
	tenantFlag := flags.String("tenant", "", "Comma-separated tenants to report (default: every tenant).")
	format := flags.String("format", "json", "Output format: json or csv.")
	fromBucket := flags.Bool("bucket", false, "Report the whole cluster: merge the usage every process shipped to the bucket (with the server's -blocks-storage.* and -encryption.key-file flags) instead of reading <data.dir>/usage.")
	var storage bucket.Config
	storage.RegisterFlags(flags)
	keyFile := flags.String("encryption.key-file", "", "The master key file (default <data.dir>/"+encryption.DefaultKeyFileName+"), for -bucket.")
	if err := flags.Parse(args[1:]); err != nil {
		return err
	}
	if flags.NArg() > 0 {
		return fmt.Errorf("usage report: unexpected argument %q", flags.Arg(0))
	}
	write := usage.WriteJSON
	switch *format {
	case "json":
	case "csv":
		write = usage.WriteCSV
	default:
		return fmt.Errorf("usage report: -format must be json or csv, got %q", *format)
	}
	from, to, err := reportRange(*fromFlag, *toFlag, time.Now())
	if err != nil {
		return err
	}
	var tenants []string
	if *tenantFlag != "" {
		tenants = strings.Split(*tenantFlag, ",")
	}
	if *fromBucket {
		rows, err := bucketUsage(*dataDir, *keyFile, storage, func(remote usage.Remote) ([]usage.Row, error) {
			return usage.ReportRemote(context.Background(), remote, from, to, tenants)
		})
		if err != nil {
			return fmt.Errorf("usage report: %w", err)
		}
		return write(stdout, rows)
	}
	dir := usageDir(*dataDir)
	rows, err := usage.Report(dir, from, to, tenants)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("usage report: no usage recorded in %s (is -data.dir the server's?): %w", dir, err)
	}
	if err != nil {
		return fmt.Errorf("usage report: %w", err)
	}
	return write(stdout, rows)
}

// bucketUsage opens the usage every process shipped to the bucket and
// calls report with it.
func bucketUsage(dataDir, keyFile string, cfg bucket.Config, report func(usage.Remote) ([]usage.Row, error)) ([]usage.Row, error) {
	if cfg.Filesystem.Dir == "" {
		cfg.Filesystem.Dir = filepath.Join(dataDir, "bucket")
	}
	if keyFile == "" {
		keyFile = filepath.Join(dataDir, encryption.DefaultKeyFileName)
	}
	kf, err := encryption.LoadKeyFile(keyFile)
	if err != nil {
		return nil, err
	}
	raw, err := bucket.New(cfg, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		return nil, err
	}
	defer raw.Close()
	return report(encryption.NewSystemStore(raw, usageStoreDir, kf.Derive(usageKeyPurpose)))
}

// reportRange parses -from and -to, defaulting to the 24 hours before now.
func reportRange(fromFlag, toFlag string, now time.Time) (from, to time.Time, err error) {
	to = now
	if toFlag != "" {
		if to, err = usage.ParseTime(toFlag); err != nil {
			return from, to, fmt.Errorf("usage report: -to: %w", err)
		}
	}
	from = to.Add(-usage.DefaultReportRange)
	if fromFlag != "" {
		if from, err = usage.ParseTime(fromFlag); err != nil {
			return from, to, fmt.Errorf("usage report: -from: %w", err)
		}
	}
	if !from.Before(to) {
		return from, to, fmt.Errorf("usage report: -from %s must be before -to %s", from.Format(time.RFC3339), to.Format(time.RFC3339))
	}
	return from, to, nil
}
