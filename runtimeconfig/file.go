package runtimeconfig

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/fluxpulse/fluxpulse/limits"
)

// Load reads and checks the runtime file at path. A missing file is
// reported with an error wrapping fs.ErrNotExist.
func Load(path string, flagDefaults limits.Limits) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read runtime file: %w", err)
	}
	c, err := Parse(b, flagDefaults)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Edit changes the runtime file under an exclusive lock: it reads it (an
// empty configuration if it does not exist), calls fn, checks the result and
// writes it atomically with mode 0600. Concurrent editors (several CLI
// commands) serialize; a running server picks the change up on its next
// reload.
func Edit(path string, flagDefaults limits.Limits, fn func(*File) error) (old, cur *Config, err error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, nil, err
	}
	lf, err := os.OpenFile(path+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("lock runtime file: %w", err)
	}
	defer lf.Close()
	if err := syscall.Flock(int(lf.Fd()), syscall.LOCK_EX); err != nil {
		return nil, nil, fmt.Errorf("lock runtime file: %w", err)
	}
	defer syscall.Flock(int(lf.Fd()), syscall.LOCK_UN) //nolint:errcheck // closing releases it anyway

	old, err = Load(path, flagDefaults)
	if errors.Is(err, fs.ErrNotExist) {
		old, err = Parse(nil, flagDefaults)
	}
	if err != nil {
		return nil, nil, err
	}
	if err := fn(old.File); err != nil {
		return nil, nil, err
	}
	b, err := old.File.Marshal()
	if err != nil {
		return nil, nil, err
	}
	// Re-parse what will be written: the file on disk must load.
	cur, err = Parse(b, flagDefaults)
	if err != nil {
		return nil, nil, fmt.Errorf("the change would make the runtime file invalid: %w", err)
	}
	// old was edited in place by fn; reload it for an honest diff.
	old, _ = Load(path, flagDefaults)
	if err := writeAtomic(path, b); err != nil {
		return nil, nil, err
	}
	return old, cur, nil
}

func writeAtomic(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".runtime-*.tmp")
	if err != nil {
		return fmt.Errorf("write runtime file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("write runtime file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// Applier receives each good configuration.
type Applier func(old, cur *Config)

// Watcher reloads the runtime file when it changes.
type Watcher struct {
	path         string // what it reads, for logs
	read         func(context.Context) ([]byte, error)
	period       time.Duration
	flagDefaults limits.Limits
	apply        Applier
	logger       *slog.Logger

	mu      sync.Mutex
	current *Config

	ok       prometheus.Gauge
	lastLoad prometheus.Gauge
}

// NewWatcher returns a Watcher; Load must succeed before Run.
func NewWatcher(path string, period time.Duration, flagDefaults limits.Limits, apply Applier, logger *slog.Logger, reg prometheus.Registerer) *Watcher {
	read := func(context.Context) ([]byte, error) { return os.ReadFile(path) }
	return newWatcher(path, read, period, flagDefaults, apply, logger, reg)
}

// NewStoreWatcher returns a Watcher of the configuration in a bucket store
// (#17); Load must succeed before Run.
func NewStoreWatcher(s *BucketStore, period time.Duration, apply Applier, logger *slog.Logger, reg prometheus.Registerer) *Watcher {
	return newWatcher("bucket", s.Read, period, s.flagDefaults, apply, logger, reg)
}

func newWatcher(path string, read func(context.Context) ([]byte, error), period time.Duration, flagDefaults limits.Limits, apply Applier, logger *slog.Logger, reg prometheus.Registerer) *Watcher {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	f := promauto.With(reg)
	return &Watcher{path: path, read: read, period: period, flagDefaults: flagDefaults, apply: apply, logger: logger,
		ok: f.NewGauge(prometheus.GaugeOpts{Name: "fluxpulse_runtime_config_last_reload_successful",
			Help: "1 if the last read of the runtime file was valid and applied, 0 if it was refused."}),
		lastLoad: f.NewGauge(prometheus.GaugeOpts{Name: "fluxpulse_runtime_config_last_reload_success_timestamp_seconds",
			Help: "When the runtime file was last applied."}),
	}
}

// Load reads the file and applies it. Unlike the reloads of Run, a failure
// here is returned: a server does not start on a bad runtime file.
func (w *Watcher) Load() error {
	b, err := w.read(context.Background())
	if err != nil {
		return fmt.Errorf("read runtime configuration: %w", err)
	}
	c, err := Parse(b, w.flagDefaults)
	if err != nil {
		return fmt.Errorf("%s: %w", w.path, err)
	}
	w.set(c)
	return nil
}

// Current returns the configuration in force.
func (w *Watcher) Current() *Config {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.current
}

func (w *Watcher) set(c *Config) {
	w.mu.Lock()
	old := w.current
	w.current = c
	w.mu.Unlock()
	w.apply(old, c)
	w.ok.Set(1)
	w.lastLoad.SetToCurrentTime()
}

// Run checks the file every period until ctx ends.
func (w *Watcher) Run(ctx context.Context) error {
	t := time.NewTicker(w.period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			w.reload(ctx)
		}
	}
}

// Reload reads the configuration now, as Run does every period; the admin
// API calls it so that its change applies at once in its own process.
func (w *Watcher) Reload(ctx context.Context) { w.reload(ctx) }

// reload applies the file if it changed and is valid; a bad file is logged
// and the configuration in force stays.
func (w *Watcher) reload(ctx context.Context) {
	b, err := w.read(ctx)
	if err != nil {
		w.ok.Set(0)
		w.logger.Error("runtime file not reloaded, keeping the configuration in force", "path", w.path, "err", err)
		return
	}
	if cur := w.Current(); cur != nil && sha256.Sum256(b) == cur.Hash {
		return
	}
	c, err := Parse(b, w.flagDefaults)
	if err != nil {
		w.ok.Set(0)
		w.logger.Error("runtime file refused, keeping the configuration in force", "path", w.path, "err", err)
		return
	}
	w.set(c)
	w.logger.Info("runtime file reloaded", "path", w.path, "tenants", len(c.Credentials.Tenants))
}
