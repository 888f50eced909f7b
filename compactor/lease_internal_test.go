package compactor

import (
	"context"
	"errors"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fluxpulse/fluxpulse/bucket"
)

// failingUploads fails every upload once fail is set: a holder that can
// no longer renew its lease.
type failingUploads struct {
	bucket.Bucket
	fail atomic.Bool
}

func (f *failingUploads) Upload(ctx context.Context, name string, r io.Reader) error {
	if f.fail.Load() {
		return errors.New("injected upload failure")
	}
	return f.Bucket.Upload(ctx, name, r)
}

// TestLeaseLostBeforeTaken: a holder that cannot renew stops (its work's
// context ends) within half the lease, and another compactor takes the
// lease only once it has seen it unchanged for the whole lease, after
// that; while the holder renews, nobody takes it (#17).
func TestLeaseLostBeforeTaken(t *testing.T) {
	raw, err := bucket.NewFilesystem(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	fb := &failingUploads{Bucket: raw}
	const dur = time.Second
	newLeases := func(owner string, b bucket.Bucket) *leases {
		return &leases{bkt: b, owner: owner, dur: dur, now: time.Now, seen: map[string]seenLease{}}
	}
	holder, other := newLeases("c1", fb), newLeases("c2", raw)
	ls, work, err := holder.take(t.Context(), "t")
	if err != nil {
		t.Fatal(err)
	}
	defer ls.release()
	// Renewing: the other never gets it over two lease durations.
	for end := time.Now().Add(2 * dur); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if _, _, err := other.take(t.Context(), "t"); !errors.Is(err, ErrLeased) {
			t.Fatalf("took a lease being renewed: %v", err)
		}
	}
	fb.fail.Store(true)
	failed := time.Now()
	var stopped, taken time.Time
	for deadline := time.Now().Add(5 * dur); time.Now().Before(deadline) && taken.IsZero(); time.Sleep(20 * time.Millisecond) {
		if stopped.IsZero() && work.Err() != nil {
			stopped = time.Now()
		}
		if _, _, err := other.take(t.Context(), "t"); err == nil {
			taken = time.Now()
		}
	}
	if stopped.IsZero() || taken.IsZero() {
		t.Fatalf("holder stopped at %v, other took it at %v", stopped, taken)
	}
	if !stopped.Before(taken) || stopped.Sub(failed) > dur/2+dur/8+100*time.Millisecond {
		t.Fatalf("renewals failed at 0, the holder stopped at %s, the other took it at %s", stopped.Sub(failed), taken.Sub(failed))
	}
	t.Logf("renewals failed at 0: the holder stopped at %s, the other took the lease at %s", stopped.Sub(failed).Round(time.Millisecond), taken.Sub(failed).Round(time.Millisecond))
}
