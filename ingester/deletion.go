package ingester

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/fluxpulse/fluxpulse/deletion"
)

// deletionsFile keeps, in the tenant's directory, the deletion requests
// applied to its TSDB, so that they are applied again before every cut of
// the head, also after a restart.
const deletionsFile = "deletions.json"

// ApplyDeletion carries out a due deletion request (#14) on this
// ingester: tombstones, in the tenant's head (written to its WAL) and in
// its local blocks, for every sample the request deletes, so that no read
// sees them and no block cut from the head holds them. The request is kept
// and applied again before each cut until the head has moved past its
// end: samples of the range that arrive late (a new series, an
// out-of-order sample) are deleted too. A tenant without data here is not
// an error.
func (i *Ingester) ApplyDeletion(ctx context.Context, tenantID string, req deletion.Request) error {
	t, err := i.tenant(ctx, tenantID, false)
	if err != nil || t == nil {
		return err
	}
	defer t.release()
	if err := t.applyDeletion(ctx, req); err != nil {
		return fmt.Errorf("apply deletion request %s to tenant %s: %w", req.ID, tenantID, err)
	}
	return t.deletions.add(req)
}

// applyDeletion tombstones what req deletes.
func (t *tenant) applyDeletion(ctx context.Context, req deletion.Request) error {
	for _, ms := range req.Matchers() {
		if err := t.db.Delete(ctx, req.Start, req.End, ms...); err != nil {
			return err
		}
	}
	return nil
}

// reapplyDeletions applies the kept requests again before the head is cut,
// and forgets those the head has moved past.
func (t *tenant) reapplyDeletions(ctx context.Context) error {
	var errs []error
	for _, req := range t.deletions.current(t.db.Head().MinTime()) {
		errs = append(errs, t.applyDeletion(ctx, req))
	}
	return errors.Join(errs...)
}

// tenantDeletions are the requests applied to a tenant's TSDB.
type tenantDeletions struct {
	path string

	mu   sync.Mutex
	reqs []deletion.Request
}

func loadDeletions(dir string) (*tenantDeletions, error) {
	d := &tenantDeletions{path: filepath.Join(dir, deletionsFile)}
	b, err := os.ReadFile(d.path)
	if errors.Is(err, fs.ErrNotExist) {
		return d, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", d.path, err)
	}
	if err := json.Unmarshal(b, &d.reqs); err != nil {
		return nil, fmt.Errorf("decode %s: %w", d.path, err)
	}
	for k := range d.reqs {
		if err := d.reqs[k].Parse(); err != nil {
			return nil, fmt.Errorf("%s: %w", d.path, err)
		}
	}
	return d, nil
}

// add keeps req (once) and writes the file.
func (d *tenantDeletions) add(req deletion.Request) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if slices.ContainsFunc(d.reqs, func(r deletion.Request) bool { return r.ID == req.ID }) {
		return nil
	}
	d.reqs = append(d.reqs, req)
	return d.save()
}

// current returns the kept requests that end at or after headMin, and
// forgets the others: the head can no longer take samples they delete.
func (d *tenantDeletions) current(headMin int64) []deletion.Request {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := len(d.reqs)
	if headMin != math.MaxInt64 { // an empty head takes any sample
		d.reqs = slices.DeleteFunc(d.reqs, func(r deletion.Request) bool { return r.End < headMin })
	}
	if len(d.reqs) != n {
		_ = d.save() // a request kept longer is applied once more: harmless
	}
	return slices.Clone(d.reqs)
}

func (d *tenantDeletions) save() error { return writeJSON(d.path, d.reqs) }
