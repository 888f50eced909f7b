package main

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/fluxpulse/fluxpulse/bucket"
)

// TestCloseRunsEveryCloser checks that a failing closer does not keep the
// others from running: a failure to close the ingester must still close
// the store, the audit log and the bucket (#12, item 9).
func TestCloseRunsEveryCloser(t *testing.T) {
	p := &process{logger: slog.New(slog.DiscardHandler)}
	var closed []string
	for _, name := range []string{"audit log", "bucket", "ingester", "block store"} {
		p.onClose(name, func() error {
			closed = append(closed, name)
			if name == "ingester" {
				return errors.New("disk full")
			}
			return nil
		})
	}
	err := p.close()
	if err == nil || !strings.Contains(err.Error(), "close ingester: disk full") {
		t.Fatalf("close: %v, want the ingester's error", err)
	}
	if want := []string{"block store", "ingester", "bucket", "audit log"}; !slices.Equal(closed, want) {
		t.Fatalf("closed %v, want %v", closed, want)
	}
}

// failingList is a bucket whose listings fail halfway: a fault a real
// bucket cannot be made to produce on demand.
type failingList struct{ bucket.Bucket }

func (b failingList) Iter(ctx context.Context, dir string, opts bucket.IterOptions, f func(string) error) error {
	return errors.New("listing interrupted")
}

// TestStoredBytesSkipsFailedListings checks that a tenant whose objects
// could not be listed gets no figure rather than a short one (#12, item 9).
func TestStoredBytesSkipsFailedListings(t *testing.T) {
	fs, err := bucket.NewFilesystem(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	got := storedBytes(t.Context(), failingList{fs}, []string{"team-a"}, slog.New(slog.DiscardHandler))
	if n, ok := got["team-a"]; ok {
		t.Fatalf("stored bytes of a failed listing: %d, want none", n)
	}
}
