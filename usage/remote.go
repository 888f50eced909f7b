package usage

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"path"
	"slices"
	"strings"
	"time"
)

// Remote is where every process of a cluster ships its hour files (#17):
// one sealed object per process and hour, <instance>/<hour>.json
// (*encryption.SystemStore). It must be safe for concurrent use.
type Remote interface {
	Put(ctx context.Context, name string, b []byte) error
	Get(ctx context.Context, name string) ([]byte, error)
	List(ctx context.Context, dir string, f func(name string) error) error
}

// remoteTimeout bounds one shipment or one report's reads.
const remoteTimeout = 30 * time.Second

// ship writes an hour file to the remote as this instance's. r.mu is held.
func (r *Recorder) ship(hf *hourFile) error {
	if r.remote == nil {
		return nil
	}
	hf.Instance, hf.ReplicationFactor = r.instance, r.rf
	b, err := json.Marshal(hf)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), remoteTimeout)
	defer cancel()
	return r.remote.Put(ctx, r.instance+"/"+fileName(hf.Hour), b)
}

// merger sums hour files of several processes into one per hour: counters
// add up (each is counted where it happens once: samples at the
// distributor, queries at the querier), active series are summed over the
// ingesters and divided by the replication factor each recorded, as every
// series is in that many heads, and stored bytes, which every ingester
// measures of the same bucket, take the largest figure.
type merger struct {
	hours  map[time.Time]*hourFile
	active map[time.Time]map[string]float64
}

func newMerger() *merger {
	return &merger{hours: map[time.Time]*hourFile{}, active: map[time.Time]map[string]float64{}}
}

func (m *merger) add(hf *hourFile) {
	out := m.hours[hf.Hour]
	if out == nil {
		out = &hourFile{Version: fileVersion, Hour: hf.Hour, Tenants: map[string]Usage{}}
		m.hours[hf.Hour] = out
		m.active[hf.Hour] = map[string]float64{}
	}
	out.Partial = out.Partial || hf.Partial
	rf := float64(max(hf.ReplicationFactor, 1))
	for tenant, u := range hf.Tenants {
		o := out.Tenants[tenant]
		for k := range numKinds {
			*o.Counter(k) += *u.Counter(k)
		}
		o.StoredBytes = max(o.StoredBytes, u.StoredBytes)
		m.active[hf.Hour][tenant] += float64(u.ActiveSeries) / rf
		o.ActiveSeries = int64(math.Round(m.active[hf.Hour][tenant]))
		out.Tenants[tenant] = o
	}
}

// readRemote adds to m the hour files in the remote of the hours that
// overlap [from, to), but those of the instance skip.
func readRemote(ctx context.Context, remote Remote, from, to time.Time, skip string, m *merger) error {
	ctx, cancel := context.WithTimeout(ctx, remoteTimeout)
	defer cancel()
	var names []string
	err := remote.List(ctx, "", func(name string) error {
		instance, base := path.Split(name)
		hour, ok := parseFileName(base)
		if ok && strings.TrimSuffix(instance, "/") != skip && overlaps(hour, from, to) {
			names = append(names, name)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("list usage in the bucket: %w", err)
	}
	for _, name := range names {
		b, err := remote.Get(ctx, name)
		if err != nil {
			return fmt.Errorf("read usage %s: %w", name, err)
		}
		var hf hourFile
		if err := json.Unmarshal(b, &hf); err != nil {
			return fmt.Errorf("usage %s: %w", name, err)
		}
		hour, _ := parseFileName(path.Base(name))
		if hf.Version != fileVersion || !hf.Hour.Equal(hour) {
			return fmt.Errorf("usage %s: version %d of hour %s, want version %d of hour %s", name, hf.Version,
				hf.Hour.Format(time.RFC3339), fileVersion, hour.Format(time.RFC3339))
		}
		m.add(&hf)
	}
	return nil
}

// ReportRemote returns the rows of every process's hour files in the remote,
// merged per tenant and hour (see merger), for the hours that overlap
// [from, to); tenants selects tenants, nil means all.
func ReportRemote(ctx context.Context, remote Remote, from, to time.Time, tenants []string) ([]Row, error) {
	m := newMerger()
	if err := readRemote(ctx, remote, from, to, "", m); err != nil {
		return nil, err
	}
	return rows(m.hours, tenants), nil
}

// ClusterReport is the report of the whole cluster: the hour files the
// other processes shipped to the remote merged with this recorder's own
// figures, up to date to the call. Without a remote it is Report.
func (r *Recorder) ClusterReport(ctx context.Context, from, to time.Time, tenants []string) ([]Row, error) {
	if r == nil || r.remote == nil {
		return r.Report(from, to, tenants)
	}
	m := newMerger()
	if err := readRemote(ctx, r.remote, from, to, r.instance, m); err != nil {
		return nil, err
	}
	r.mu.Lock()
	own, err := r.hoursLocked(from, to)
	r.mu.Unlock()
	if err != nil {
		return nil, err
	}
	hours := make([]time.Time, 0, len(own))
	for h := range own {
		hours = append(hours, h)
	}
	slices.SortFunc(hours, func(a, b time.Time) int { return cmp.Compare(a.Unix(), b.Unix()) })
	for _, h := range hours {
		hf := *own[h]
		hf.ReplicationFactor = r.rf
		m.add(&hf)
	}
	return rows(m.hours, tenants), nil
}
