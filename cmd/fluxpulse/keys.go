package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/fluxpulse/fluxpulse/bucket"
	"github.com/fluxpulse/fluxpulse/encryption"
)

const keysUsage = `usage: fluxpulse keys <command> [flags]

Commands:
  rotate-master            add a new master key to the key file, make it current
                           and re-wrap every tenant's data keys with it
  rotate-tenant -tenant X  create a new data key for tenant X; new objects use it
  list -tenant X           list tenant X's data keys

Every command takes the server's -data.dir, -blocks-storage.* and
-encryption.key-file flags; run "fluxpulse keys <command> -h" for them.`

// keysConfig is the flags of the keys subcommands.
type keysConfig struct {
	dataDir    string
	tenant     string
	storage    bucket.Config
	encryption encryption.Config
}

func (c *keysConfig) registerFlags(fs *flag.FlagSet, withTenant bool) {
	fs.StringVar(&c.dataDir, "data.dir", "./data", "Directory for all local state; the defaults of -blocks-storage.filesystem.dir and -encryption.key-file are below it.")
	if withTenant {
		fs.StringVar(&c.tenant, "tenant", "", "Tenant ID.")
	}
	c.storage.RegisterFlags(fs)
	c.encryption.RegisterFlags(fs)
}

func runKeys(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, keysUsage)
		return errors.New("keys: no command given")
	}
	cmd := args[0]
	withTenant := cmd == "rotate-tenant" || cmd == "list"
	if !withTenant && cmd != "rotate-master" {
		fmt.Fprintln(stderr, keysUsage)
		return fmt.Errorf("keys: unknown command %q", cmd)
	}
	var cfg keysConfig
	fs := flag.NewFlagSet("fluxpulse keys "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg.registerFlags(fs, withTenant)
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("keys %s: unexpected argument %q", cmd, fs.Arg(0))
	}
	if withTenant && cfg.tenant == "" {
		return fmt.Errorf("keys %s: -tenant must be set", cmd)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	kr, closeBucket, err := openKeyring(cfg, logger)
	if err != nil {
		return fmt.Errorf("keys %s: %w", cmd, err)
	}
	defer closeBucket()
	switch cmd {
	case "rotate-master":
		mk, st, err := kr.RotateMaster(ctx)
		if err != nil && mk.ID != "" {
			return fmt.Errorf("keys rotate-master: %w (the new master key %s is in the key file; run the command again to finish re-wrapping)", err, mk.ID)
		}
		if err != nil {
			return fmt.Errorf("keys rotate-master: %w", err)
		}
		auditCLI(cfg.dataDir, cfg.encryption.KeyFile, "keys.rotate-master", "")
		fmt.Fprintf(stdout, "master key %s is current; re-wrapped %d data keys of %d tenants (%d were already current)\n", mk.ID, st.Rewrapped, st.Tenants, st.Current)
	case "rotate-tenant":
		id, err := kr.RotateTenant(ctx, cfg.tenant)
		if err != nil {
			return fmt.Errorf("keys rotate-tenant: %w", err)
		}
		auditCLI(cfg.dataDir, cfg.encryption.KeyFile, "keys.rotate-tenant", cfg.tenant)
		fmt.Fprintf(stdout, "tenant %s: new data key %s; servers use it for new objects within -encryption.key-cache-ttl\n", cfg.tenant, id)
	case "list":
		infos, err := kr.Keys(ctx, cfg.tenant)
		if err != nil {
			return fmt.Errorf("keys list: %w", err)
		}
		for _, in := range infos {
			state := "wrapped by master key " + in.MasterKeyID
			if in.Deleted {
				state = "deleted"
			}
			fmt.Fprintf(stdout, "%s\tcreated %s\t%s\n", in.ID, in.ID.Created().Format("2006-01-02T15:04:05Z"), state)
		}
	}
	return nil
}

// openKeyring opens the bucket and the existing key file. It never
// creates a key file: a wrong path must not produce a new master key.
func openKeyring(cfg keysConfig, logger *slog.Logger) (*encryption.Keyring, func(), error) {
	st, err := openStorage(cfg, logger)
	if err != nil {
		return nil, nil, err
	}
	return st.keys, func() { st.raw.Close() }, nil
}

// storage is the bucket as the CLI sees it: raw, encrypting, and the keys.
type storage struct {
	raw  bucket.Bucket
	enc  *encryption.Bucket
	keys *encryption.Keyring
}

// openStorage opens the bucket and the existing key file (never creating
// one).
func openStorage(cfg keysConfig, logger *slog.Logger) (*storage, error) {
	if cfg.storage.Filesystem.Dir == "" {
		cfg.storage.Filesystem.Dir = filepath.Join(cfg.dataDir, "bucket")
	}
	if cfg.encryption.KeyFile == "" {
		cfg.encryption.KeyFile = filepath.Join(cfg.dataDir, encryption.DefaultKeyFileName)
	}
	if err := cfg.encryption.Validate(); err != nil {
		return nil, err
	}
	kf, err := encryption.LoadKeyFile(cfg.encryption.KeyFile)
	if err != nil {
		return nil, err
	}
	raw, err := bucket.New(cfg.storage, logger, nil)
	if err != nil {
		return nil, err
	}
	kr := encryption.NewKeyring(raw, kf, encryption.KeyringOptions{CacheTTL: cfg.encryption.KeyCacheTTL, Logger: logger})
	return &storage{raw: raw, enc: encryption.NewBucket(raw, kr), keys: kr}, nil
}
