package runtimeconfig

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fluxpulse/fluxpulse/bucket"
	"github.com/fluxpulse/fluxpulse/limits"
)

// ObjectStore is where the bucket backend keeps its change objects: sealed,
// whole objects below one directory (*encryption.SystemStore). It must be
// safe for concurrent use.
type ObjectStore interface {
	Put(ctx context.Context, name string, b []byte) error
	Get(ctx context.Context, name string) ([]byte, error)
	List(ctx context.Context, dir string, f func(name string) error) error
	Delete(ctx context.Context, name string) error
}

// changesDir holds one object per change, named <time>-<random>, where the
// time (milliseconds, 20 digits) is never older than the newest change its
// writer saw.
const changesDir = "changes"

// BucketStore keeps the runtime configuration in the bucket as a log of
// changes (#17): every change is an immutable object of its own, and the
// configuration is the result of applying them in name order to an empty
// one. Two processes changing it at once each write their own object, so
// neither change is lost: no conditional write is needed, which the
// filesystem bucket does not offer and versitygw checks before, not
// atomically with, the write. A change is named after the newest change its
// writer read, so a change made after another was seen sorts after it
// whatever the clocks say. A change that cannot apply where it sorts (a
// tenant created twice at once) is skipped by every reader alike, and
// removed by its writer, which reports the error.
//
// It is safe for concurrent use.
type BucketStore struct {
	objs         ObjectStore
	flagDefaults limits.Limits
	now          func() time.Time

	mu    sync.Mutex
	cache map[string]Op // change name → its content; changes never change
}

// NewBucketStore returns the store of the change objects in objs.
func NewBucketStore(objs ObjectStore, flagDefaults limits.Limits) *BucketStore {
	return &BucketStore{objs: objs, flagDefaults: flagDefaults, now: time.Now, cache: map[string]Op{}}
}

// replayed is the configuration the changes give.
type replayed struct {
	file    *File
	latest  int64            // time of the newest change, ms
	skipped map[string]error // changes that did not apply
}

// replay lists the changes, reads those it has not read before and applies
// them all in order.
func (s *BucketStore) replay(ctx context.Context) (replayed, error) {
	var names []string
	err := s.objs.List(ctx, changesDir, func(name string) error {
		if _, ok := changeTime(name); ok {
			names = append(names, name)
		}
		return nil
	})
	if err != nil {
		return replayed{}, fmt.Errorf("list runtime changes: %w", err)
	}
	slices.Sort(names)
	r := replayed{file: &File{Tenants: map[string]*Tenant{}}, skipped: map[string]error{}}
	for _, name := range names {
		op, err := s.op(ctx, name)
		if errors.Is(err, errGone) {
			continue // removed by its writer since it was listed
		}
		if err != nil {
			return replayed{}, err
		}
		r.latest, _ = changeTime(name)
		if err := r.file.Apply(op, s.flagDefaults); err != nil {
			r.skipped[name] = err
		}
	}
	return r, nil
}

var errGone = errors.New("change removed")

// op returns the change stored as name.
func (s *BucketStore) op(ctx context.Context, name string) (Op, error) {
	s.mu.Lock()
	op, ok := s.cache[name]
	s.mu.Unlock()
	if ok {
		return op, nil
	}
	b, err := s.objs.Get(ctx, name)
	if err != nil {
		if bucket.IsNotFound(err) {
			return op, errGone
		}
		return op, fmt.Errorf("read runtime change %s: %w", name, err)
	}
	if op, err = ParseOp(b); err != nil {
		return op, fmt.Errorf("runtime change %s: %w", name, err)
	}
	s.mu.Lock()
	s.cache[name] = op
	s.mu.Unlock()
	return op, nil
}

// changeTime parses the time of a change object's name.
func changeTime(name string) (int64, bool) {
	base := path.Base(name)
	ts, _, ok := strings.Cut(base, "-")
	if !ok || len(ts) != 20 || !strings.HasPrefix(name, changesDir+"/") {
		return 0, false
	}
	n, err := strconv.ParseInt(ts, 10, 64)
	return n, err == nil
}

// Read returns the configuration the changes give, as a runtime file's
// bytes: what the Watcher parses.
func (s *BucketStore) Read(ctx context.Context) ([]byte, error) {
	r, err := s.replay(ctx)
	if err != nil {
		return nil, err
	}
	return r.file.Marshal()
}

// Apply makes a change: it checks op against the configuration as the
// bucket has it now, writes it as a new change object and reads the changes
// again to confirm that it applied where it sorts. It returns the
// configuration before and after.
func (s *BucketStore) Apply(ctx context.Context, op Op) (old, cur *Config, err error) {
	before, err := s.replay(ctx)
	if err != nil {
		return nil, nil, err
	}
	if old, err = s.check(before.file); err != nil {
		return nil, nil, err
	}
	try, err := before.file.Clone()
	if err != nil {
		return nil, nil, err
	}
	if err := try.Apply(op, s.flagDefaults); err != nil {
		return nil, nil, err
	}
	if _, err := s.check(try); err != nil {
		return nil, nil, fmt.Errorf("the change would make the runtime configuration invalid: %w", err)
	}
	b, err := MarshalOp(op)
	if err != nil {
		return nil, nil, err
	}
	ts := max(s.now().UnixMilli(), before.latest+1)
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	name := fmt.Sprintf("%s/%020d-%s", changesDir, ts, hex.EncodeToString(rnd[:]))
	if err := s.objs.Put(ctx, name, b); err != nil {
		return nil, nil, fmt.Errorf("write runtime change: %w", err)
	}
	after, err := s.replay(ctx)
	if err != nil {
		return nil, nil, err
	}
	if serr, skipped := after.skipped[name]; skipped {
		// A change made at the same time by another process sorts
		// before this one and conflicts with it.
		if err := s.objs.Delete(ctx, name); err != nil {
			return nil, nil, errors.Join(serr, fmt.Errorf("remove runtime change that did not apply: %w", err))
		}
		return nil, nil, serr
	}
	if cur, err = s.check(after.file); err != nil {
		return nil, nil, err
	}
	return old, cur, nil
}

// check turns a replayed file into a Config.
func (s *BucketStore) check(f *File) (*Config, error) {
	b, err := f.Marshal()
	if err != nil {
		return nil, err
	}
	return Parse(b, s.flagDefaults)
}

// FileStore makes changes to a runtime file (Edit) for the admin API.
type FileStore struct {
	Path         string
	FlagDefaults limits.Limits
}

// Apply makes the change in the file under its lock.
func (s FileStore) Apply(_ context.Context, op Op) (old, cur *Config, err error) {
	return Edit(s.Path, s.FlagDefaults, func(f *File) error { return f.Apply(op, s.FlagDefaults) })
}
