package frontend

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/VictoriaMetrics/fastcache"
	"github.com/grafana/gomemcache/memcache"
)

// Cache backends.
const (
	BackendFastcache = "fastcache"
	BackendMemcached = "memcached"
	BackendNone      = "none"
)

// CacheConfig configures the results cache.
type CacheConfig struct {
	Backend         string
	FastcacheSizeMB int
	TTL             time.Duration
	Memcached       MemcachedConfig
}

// MemcachedConfig configures the memcached backend.
type MemcachedConfig struct {
	Addresses   string
	Timeout     time.Duration
	MaxItemSize int
}

// RegisterFlags registers the results cache's flags.
func (c *CacheConfig) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Backend, "query-frontend.results-cache.backend", BackendFastcache, "Where the query frontend keeps results, every value encrypted with the tenant's data key: fastcache (in this process), memcached (shared by every frontend; set the addresses) or none.")
	fs.IntVar(&c.FastcacheSizeMB, "query-frontend.results-cache.fastcache.max-size-mb", 256, "Memory of the in-process results cache, in MiB (at least 32).")
	fs.DurationVar(&c.TTL, "query-frontend.results-cache.ttl", 7*24*time.Hour, "How long memcached keeps a cached result.")
	fs.StringVar(&c.Memcached.Addresses, "query-frontend.results-cache.memcached.addresses", "", "Comma-separated host:port of the memcached servers of the results cache; keys are spread over them.")
	fs.DurationVar(&c.Memcached.Timeout, "query-frontend.results-cache.memcached.timeout", 500*time.Millisecond, "How long one memcached call may take; a slow cache is a miss.")
	fs.IntVar(&c.Memcached.MaxItemSize, "query-frontend.results-cache.memcached.max-item-size", 1<<20, "Largest value stored in memcached, in bytes (memcached's -I, 1 MiB by default); larger results are not cached.")
}

// Validate checks the configuration.
func (c CacheConfig) Validate() error {
	switch c.Backend {
	case BackendNone:
	case BackendFastcache:
		if c.FastcacheSizeMB < 32 {
			return fmt.Errorf("-query-frontend.results-cache.fastcache.max-size-mb must be at least 32, got %d", c.FastcacheSizeMB)
		}
	case BackendMemcached:
		if strings.TrimSpace(c.Memcached.Addresses) == "" {
			return errors.New("-query-frontend.results-cache.backend=memcached needs -query-frontend.results-cache.memcached.addresses")
		}
		if c.Memcached.Timeout <= 0 || c.Memcached.MaxItemSize <= 0 || c.TTL < time.Second {
			return errors.New("-query-frontend.results-cache.memcached.timeout, .max-item-size and -query-frontend.results-cache.ttl must be positive")
		}
	default:
		return fmt.Errorf("-query-frontend.results-cache.backend must be fastcache, memcached or none, got %q", c.Backend)
	}
	return nil
}

// Cache keeps encrypted results. Entries may vanish at any time; a
// backend that fails answers a miss. Implementations are safe for
// concurrent use.
type Cache interface {
	Fetch(ctx context.Context, key string) ([]byte, bool)
	Store(ctx context.Context, key string, value []byte)
	Close() error
}

// NewCache returns the configured backend, or nil for none.
func NewCache(cfg CacheConfig) (Cache, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	switch cfg.Backend {
	case BackendFastcache:
		return &fastCache{c: fastcache.New(cfg.FastcacheSizeMB << 20)}, nil
	case BackendMemcached:
		var addrs []string
		for _, a := range strings.Split(cfg.Memcached.Addresses, ",") {
			if a = strings.TrimSpace(a); a != "" {
				addrs = append(addrs, a)
			}
		}
		var sl memcache.ServerList
		if err := sl.SetServers(addrs...); err != nil {
			return nil, fmt.Errorf("-query-frontend.results-cache.memcached.addresses: %w", err)
		}
		c := memcache.NewFromSelector(&sl)
		c.Timeout = cfg.Memcached.Timeout
		c.MaxIdleConns = 16
		return &memcached{c: c, ttl: int32(cfg.TTL / time.Second), maxItem: cfg.Memcached.MaxItemSize}, nil
	}
	return nil, nil
}

// fastCache is the in-process backend. Values can be larger than
// fastcache's 64 KiB entries, so every entry is a big one.
type fastCache struct{ c *fastcache.Cache }

func (f *fastCache) Fetch(_ context.Context, key string) ([]byte, bool) {
	v := f.c.GetBig(nil, []byte(key))
	return v, len(v) > 0
}

func (f *fastCache) Store(_ context.Context, key string, value []byte) {
	f.c.SetBig([]byte(key), value)
}

func (f *fastCache) Close() error { f.c.Reset(); return nil }

// memcached is the shared backend.
type memcached struct {
	c       *memcache.Client
	ttl     int32
	maxItem int
}

func (m *memcached) Fetch(_ context.Context, key string) ([]byte, bool) {
	it, err := m.c.Get(key)
	if err != nil {
		return nil, false
	}
	return it.Value, true
}

func (m *memcached) Store(_ context.Context, key string, value []byte) {
	if len(key)+len(value) > m.maxItem-64 { // memcached's item header
		return
	}
	_ = m.c.Set(&memcache.Item{Key: key, Value: value, Expiration: m.ttl})
}

func (m *memcached) Close() error { m.c.Close(); return nil }
