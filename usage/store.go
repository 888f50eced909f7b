package usage

import (
	"cmp"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// fileVersion is the version of the hour file format.
const fileVersion = 1

// fileLayout names hour files: <dir>/2026-05-01T10Z.json holds the hour
// from 10:00 to 11:00 UTC on 1 May 2026.
const fileLayout = "2006-01-02T15Z"

// hourFile is the content of one hour file.
type hourFile struct {
	Version int       `json:"version"`
	Hour    time.Time `json:"hour"`
	// Partial: written before the hour ended (a checkpoint, or the
	// server stopped within the hour).
	Partial bool             `json:"partial"`
	Written time.Time        `json:"written"`
	Tenants map[string]Usage `json:"tenants"`
	// Instance is the process that wrote it, in a cluster (#17).
	Instance string `json:"instance,omitempty"`
	// ReplicationFactor is how many ingesters hold each series, so that
	// active series summed over the ingesters can be divided by it.
	ReplicationFactor int `json:"replication_factor,omitempty"`
}

func fileName(hour time.Time) string { return hour.UTC().Format(fileLayout) + ".json" }

// parseFileName returns the hour of an hour file's name; ok is false for
// any other name (temporary files start with a dot).
func parseFileName(name string) (time.Time, bool) {
	base, found := strings.CutSuffix(name, ".json")
	if !found {
		return time.Time{}, false
	}
	t, err := time.Parse(fileLayout, base)
	return t, err == nil
}

// hourOf returns the start of t's hour in UTC.
func hourOf(t time.Time) time.Time { return t.UTC().Truncate(time.Hour) }

// writeHour writes an hour file atomically: a temporary file, fsync,
// rename, fsync of the directory.
func writeHour(dir string, hf hourFile) (err error) {
	b, err := json.Marshal(hf)
	if err != nil {
		return fmt.Errorf("encode usage of hour %s: %w", fileName(hf.Hour), err)
	}
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	tmp := filepath.Join(dir, "."+fileName(hf.Hour)+".tmp-"+hex.EncodeToString(rnd[:]))
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("write usage file: %w", err)
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, os.Remove(tmp))
		}
	}()
	if _, err := f.Write(append(b, '\n')); err != nil {
		return errors.Join(fmt.Errorf("write usage file: %w", err), f.Close())
	}
	if err := f.Sync(); err != nil {
		return errors.Join(fmt.Errorf("sync usage file: %w", err), f.Close())
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write usage file: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, fileName(hf.Hour))); err != nil {
		return fmt.Errorf("write usage file: %w", err)
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync usage directory: %w", err)
	}
	return errors.Join(d.Sync(), d.Close())
}

// readHour reads the hour file of hour; a missing file is (nil, nil).
func readHour(dir string, hour time.Time) (*hourFile, error) {
	name := filepath.Join(dir, fileName(hour))
	b, err := os.ReadFile(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read usage file: %w", err)
	}
	var hf hourFile
	if err := json.Unmarshal(b, &hf); err != nil {
		return nil, fmt.Errorf("usage file %s: %w", name, err)
	}
	switch {
	case hf.Version != fileVersion:
		return nil, fmt.Errorf("usage file %s: version %d, this FluxPulse reads version %d", name, hf.Version, fileVersion)
	case !hf.Hour.Equal(hour):
		return nil, fmt.Errorf("usage file %s holds hour %s", name, hf.Hour.Format(time.RFC3339))
	}
	return &hf, nil
}

// overlaps reports whether the hour starting at hour overlaps [from, to).
func overlaps(hour, from, to time.Time) bool {
	return hour.Add(time.Hour).After(from) && hour.Before(to)
}

// readHours reads the hour files in dir whose hours overlap [from, to).
func readHours(dir string, from, to time.Time) (map[time.Time]*hourFile, error) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read usage directory: %w", err)
	}
	hours := map[time.Time]*hourFile{}
	for _, de := range des {
		hour, ok := parseFileName(de.Name())
		if !ok || !de.Type().IsRegular() || !overlaps(hour, from, to) {
			continue
		}
		hf, err := readHour(dir, hour)
		if err != nil {
			return nil, err
		}
		if hf != nil {
			hours[hour] = hf
		}
	}
	return hours, nil
}

// Report reads the usage files in dir (a recorder's directory) and returns
// a row per tenant and hour for the hours that overlap [from, to), sorted by
// hour and tenant. tenants selects tenants; nil means every tenant. The
// hour in progress is included as far as a recorder last wrote it (it
// checkpoints every minute and on shutdown).
func Report(dir string, from, to time.Time, tenants []string) ([]Row, error) {
	hours, err := readHours(dir, from, to)
	if err != nil {
		return nil, err
	}
	return rows(hours, tenants), nil
}

// rows flattens hour files into sorted report rows.
func rows(hours map[time.Time]*hourFile, tenants []string) []Row {
	var out []Row
	for hour, hf := range hours {
		for tenant, u := range hf.Tenants {
			if tenants != nil && !slices.Contains(tenants, tenant) {
				continue
			}
			out = append(out, Row{Hour: hour.UTC(), Tenant: tenant, Partial: hf.Partial, Usage: u})
		}
	}
	slices.SortFunc(out, func(a, b Row) int {
		return cmp.Or(a.Hour.Compare(b.Hour), strings.Compare(a.Tenant, b.Tenant))
	})
	return out
}
