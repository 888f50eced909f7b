package encryption

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"time"

	"github.com/fluxpulse/fluxpulse/bucket"
)

// DefaultKeyFileName is the key file's name in the data directory when
// -encryption.key-file is not set.
const DefaultKeyFileName = "master-keys.json"

// Config configures encryption: where the master keys are and how long
// tenants' data keys are cached.
type Config struct {
	KeyFile     string        `yaml:"key_file"`
	KeyCacheTTL time.Duration `yaml:"key_cache_ttl"`
}

// RegisterFlags registers the -encryption.* flags with their defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.KeyFile, "encryption.key-file", "", "JSON file of master keys (mode 0600). Empty means <data.dir>/"+DefaultKeyFileName+"; the server creates it with a new key if it does not exist. Back it up: without it no data can be read.")
	fs.DurationVar(&c.KeyCacheTTL, "encryption.key-cache-ttl", time.Minute, "How long tenants' data keys are cached before the list is reread from the bucket; bounds how long a server keeps using a key that another process rotated or deleted.")
}

// Validate checks the configuration.
func (c Config) Validate() error {
	if c.KeyFile == "" {
		return errors.New("-encryption.key-file must be set")
	}
	if c.KeyCacheTTL <= 0 || c.KeyCacheTTL > time.Hour {
		return fmt.Errorf("-encryption.key-cache-ttl=%s must be above 0 and at most 1h", c.KeyCacheTTL)
	}
	return nil
}

// New loads the key file (creating it with a new master key if it does
// not exist) and returns an encrypting view of inner with its keyring.
func New(cfg Config, inner bucket.Bucket, logger *slog.Logger) (*Bucket, *Keyring, error) {
	if err := cfg.Validate(); err != nil {
		return nil, nil, err
	}
	kf, err := LoadOrCreate(cfg.KeyFile)
	if err != nil {
		return nil, nil, err
	}
	kr := NewKeyring(inner, kf, KeyringOptions{CacheTTL: cfg.KeyCacheTTL, Logger: logger})
	return NewBucket(inner, kr), kr, nil
}
