package frontend

import (
	"errors"
	"flag"
	"fmt"
	"time"
)

// Config configures the query frontend.
type Config struct {
	AlignQueriesWithStep   bool
	SplitQueriesByInterval time.Duration
	MaxQueryParallelism    int
	MaxCacheFreshness      time.Duration
	LogQueriesLongerThan   time.Duration
	ResultsCache           CacheConfig
}

// RegisterFlags registers the frontend's flags.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.BoolVar(&c.AlignQueriesWithStep, "query-frontend.align-queries-with-step", true, "Move the start and end of a range query to multiples of its step, as Grafana expects, so that repeated queries hit the results cache.")
	fs.DurationVar(&c.SplitQueriesByInterval, "query-frontend.split-queries-by-interval", 24*time.Hour, "Split range queries at multiples of this interval (UTC day boundaries by default) and run the pieces in parallel; 0 disables splitting.")
	fs.IntVar(&c.MaxQueryParallelism, "query-frontend.max-query-parallelism", 14, "Maximum number of pieces of one split query run at once.")
	fs.DurationVar(&c.MaxCacheFreshness, "query-frontend.max-cache-freshness", 10*time.Minute, "Results for timestamps newer than this before now are never cached: recent data may still arrive.")
	fs.DurationVar(&c.LogQueriesLongerThan, "query-frontend.log-queries-longer-than", 0, "Log every query that takes longer than this, with its split count, cache hit ratio, queue time and samples read; 0 disables the log.")
	c.ResultsCache.RegisterFlags(fs)
}

// Validate checks the configuration.
func (c Config) Validate() error {
	if c.SplitQueriesByInterval < 0 {
		return fmt.Errorf("-query-frontend.split-queries-by-interval must not be negative, got %s", c.SplitQueriesByInterval)
	}
	if c.MaxQueryParallelism <= 0 {
		return fmt.Errorf("-query-frontend.max-query-parallelism must be positive, got %d", c.MaxQueryParallelism)
	}
	if c.MaxCacheFreshness < 0 || c.LogQueriesLongerThan < 0 {
		return errors.New("-query-frontend.max-cache-freshness and -query-frontend.log-queries-longer-than must not be negative")
	}
	return c.ResultsCache.Validate()
}
