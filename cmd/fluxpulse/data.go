package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/fluxpulse/fluxpulse/blockstore"
	"github.com/fluxpulse/fluxpulse/tenantauth"
)

// storageFlags parses the flags of a command that reads the bucket.
func storageFlags(name string, args []string, stderr io.Writer, extra func(*flag.FlagSet)) (keysConfig, error) {
	var cfg keysConfig
	fs := flag.NewFlagSet("fluxpulse "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg.registerFlags(fs, true)
	if extra != nil {
		extra(fs)
	}
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("%s: unexpected argument %q", name, fs.Arg(0))
	}
	if err := tenantauth.ValidateID(cfg.tenant); err != nil {
		return cfg, fmt.Errorf("%s: -tenant: %w", name, err)
	}
	return cfg, nil
}

// runBlocks prints a tenant's blocks: time ranges, sizes, bytes per sample.
func runBlocks(args []string, stdout, stderr io.Writer) error {
	format := "table"
	cfg, err := storageFlags("blocks", args, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&format, "format", "table", "Output format: table or json.")
	})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	st, err := openStorage(cfg, slog.New(slog.NewTextHandler(stderr, nil)))
	if err != nil {
		return err
	}
	defer st.raw.Close()
	infos, err := blockstore.Report(ctx, st.raw, st.enc, cfg.tenant)
	if err != nil {
		return err
	}
	return writeBlocks(stdout, infos, format)
}

func writeBlocks(w io.Writer, infos []blockstore.BlockInfo, format string) error {
	if format == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(infos)
	}
	if format != "table" {
		return fmt.Errorf("-format must be table or json, got %q", format)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "ULID\tFROM\tTO\tLEVEL\tSERIES\tSAMPLES\tSTORED BYTES\tBYTES/SAMPLE\tMARKED\t")
	var samples uint64
	var bytes int64
	for _, b := range infos {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%d\t%.2f\t%v\t\n", b.ULID, b.MinTime.Format(time.RFC3339), b.MaxTime.Format(time.RFC3339),
			b.Level, b.Series, b.Samples, b.StoredBytes, b.BytesPerSample, b.MarkedDeleted)
		if !b.MarkedDeleted {
			samples += b.Samples
			bytes += b.StoredBytes
		}
	}
	if samples > 0 {
		fmt.Fprintf(tw, "total\t\t\t\t\t%d\t%d\t%.2f\t\t\n", samples, bytes, float64(bytes)/float64(samples))
	}
	return tw.Flush()
}

// runDeleteData crypto-shreds a tenant offline: its data keys are deleted,
// so nothing of it can be read any more; the compactor removes the objects
// in the background. For a running server use the admin endpoint instead,
// which also drops the ingester's copy.
func runDeleteData(args []string, stdout, stderr io.Writer) error {
	cfg, err := storageFlags("tenant delete-data", args, stderr, nil)
	if err != nil {
		return err
	}
	st, err := openStorage(cfg, slog.New(slog.NewTextHandler(stderr, nil)))
	if err != nil {
		return err
	}
	defer st.raw.Close()
	if err := st.keys.DeleteTenantKeys(context.Background(), cfg.tenant); err != nil {
		return err
	}
	if err := os.RemoveAll(filepath.Join(cfg.dataDir, "tsdb", cfg.tenant)); err != nil {
		return err
	}
	auditCLI(cfg.dataDir, cfg.encryption.KeyFile, "tenant.delete-data", cfg.tenant)
	fmt.Fprintf(stdout, "tenant %s: data keys deleted, its data is unreadable now; the compactor removes its objects in the background\n", cfg.tenant)
	return nil
}
