package ingester

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/metadata"
)

// metadataStore keeps the distinct metadata seen for each metric family of
// one tenant, in memory, with a snapshot on disk so that a restart keeps it.
// Metadata is descriptive only: losing the newest changes in a crash is
// acceptable, losing samples is not, so it does not go through the WAL.
type metadataStore struct {
	path string

	mu       sync.RWMutex
	families map[string][]metadata.Metadata
	dirty    bool
}

func newMetadataStore(path string) *metadataStore {
	return &metadataStore{path: path, families: map[string][]metadata.Metadata{}}
}

// add records md for family, keeping at most maxPerFamily distinct entries
// (the newest win). It copies the strings it keeps, so they may alias a
// request body.
func (s *metadataStore) add(family string, md metadata.Metadata, maxPerFamily int) {
	if md.Type == "" {
		md.Type = model.MetricTypeUnknown
	}
	s.mu.RLock()
	known := slices.Contains(s.families[family], md)
	s.mu.RUnlock()
	if known {
		return
	}
	md = metadata.Metadata{Type: md.Type, Help: strings.Clone(md.Help), Unit: strings.Clone(md.Unit)}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := s.families[family]
	if slices.Contains(cur, md) {
		return
	}
	if maxPerFamily > 0 && len(cur) >= maxPerFamily {
		cur = slices.Delete(cur, 0, len(cur)-maxPerFamily+1)
	}
	if cur == nil {
		family = strings.Clone(family)
	}
	s.families[family] = append(cur, md)
	s.dirty = true
}

// get returns the metadata of one family, or of all families when metric is
// empty, with at most limit families and limitPerMetric entries each (<= 0:
// no limit), as the Prometheus metadata API does.
func (s *metadataStore) get(metric string, limit, limitPerMetric int, into map[string][]metadata.Metadata) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	collect := func(name string, ms []metadata.Metadata) {
		if limitPerMetric > 0 && len(ms) > limitPerMetric {
			ms = ms[len(ms)-limitPerMetric:]
		}
		for _, m := range ms {
			if !slices.Contains(into[name], m) {
				into[name] = append(into[name], m)
			}
		}
	}
	if metric != "" {
		if ms, ok := s.families[metric]; ok {
			collect(metric, ms)
		}
		return
	}
	for name, ms := range s.families {
		if limit > 0 && len(into) >= limit {
			if _, ok := into[name]; !ok {
				continue
			}
		}
		collect(name, ms)
	}
}

// sync writes the snapshot if anything changed since the last one.
func (s *metadataStore) sync() error {
	s.mu.Lock()
	if !s.dirty {
		s.mu.Unlock()
		return nil
	}
	b, err := json.Marshal(s.families)
	s.dirty = false
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("encode metadata: %w", err)
	}
	tmp := s.path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o640); err != nil {
		return fmt.Errorf("write metadata: %w", err)
	}
	if err := os.Rename(tmp, s.path); err != nil {
		return fmt.Errorf("write metadata: %w", err)
	}
	return nil
}

func (s *metadataStore) load() error {
	b, err := os.ReadFile(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read metadata: %w", err)
	}
	m := map[string][]metadata.Metadata{}
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("decode metadata %s: %w", s.path, err)
	}
	s.mu.Lock()
	s.families = m
	s.mu.Unlock()
	return nil
}

// familyName returns the metric family a series of the given type belongs to,
// for 2.0 requests where metadata travels per series: the classic histogram
// and summary series carry suffixes that their family name does not.
func familyName(metric string, typ model.MetricType) string {
	var suffixes []string
	switch typ {
	case model.MetricTypeHistogram, model.MetricTypeGaugeHistogram:
		suffixes = []string{"_bucket", "_sum", "_count"}
	case model.MetricTypeSummary:
		suffixes = []string{"_sum", "_count"}
	}
	for _, s := range suffixes {
		if f, ok := strings.CutSuffix(metric, s); ok {
			return f
		}
	}
	return metric
}
