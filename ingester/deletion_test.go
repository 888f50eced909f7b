package ingester

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/fluxpulse/fluxpulse/deletion"
	"github.com/fluxpulse/fluxpulse/remotewrite"
)

// pushHosts pushes m{host=h} for each host, one sample a second from
// start on.
func pushHosts(t *testing.T, ing *Ingester, start int64, n int, extra []labels.Label, hosts ...string) {
	t.Helper()
	req := &remotewrite.Request{}
	for _, h := range hosts {
		s := remotewrite.Series{Labels: append([]labels.Label{{Name: "__name__", Value: "m"}, {Name: "host", Value: h}}, extra...)}
		for i := range n {
			s.Samples = append(s.Samples, remotewrite.Sample{Timestamp: start + int64(i)*1000, Value: float64(i)})
		}
		req.Series = append(req.Series, s)
	}
	if res, err := ing.Push(t.Context(), "t", req); err != nil || res.Rejected() {
		t.Fatalf("push: %v %s", err, res.Message(3))
	}
}

// counts returns the samples of each series of m, by its labels.
func counts(t *testing.T, ing *Ingester) map[string]int {
	t.Helper()
	q, err := ing.Querier(t.Context(), "t", math.MinInt64, math.MaxInt64)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	out := map[string]int{}
	ss := q.Select(context.Background(), true, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "m"))
	for ss.Next() {
		it := ss.At().Iterator(nil)
		n := 0
		for it.Next() != chunkenc.ValNone {
			n++
		}
		out[ss.At().Labels().String()] = n
	}
	if err := ss.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestApplyDeletion is the ingester's part of #14: a due request
// tombstones the head, survives a restart (the tombstones are in the WAL,
// the request in the tenant's directory), and is applied again before the
// head is cut, so that a late sample in its range does not reach a block.
func TestApplyDeletion(t *testing.T) {
	dir := t.TempDir()
	now := time.Now().Truncate(time.Second)
	start := now.Add(-100 * time.Second).UnixMilli()
	_, lim := defaults()
	req, err := deletion.NewRequest(deletion.Params{Tenant: "t", Selectors: []string{`m{host="a"}`},
		Start: "", End: ts(now.Add(-50 * time.Second))}, lim, now, 0)
	if err != nil {
		t.Fatal(err)
	}
	a, b := `{__name__="m", host="a"}`, `{__name__="m", host="b"}`
	late := `{__name__="m", host="a", late="1"}`
	func() {
		ing := testIngester(t, dir, nil)
		pushHosts(t, ing, start, 100, nil, "a", "b")
		if err := ing.ApplyDeletion(t.Context(), "t", req); err != nil {
			t.Fatal(err)
		}
		if err := ing.ApplyDeletion(t.Context(), "nobody", req); err != nil {
			t.Fatalf("a tenant without data here: %v", err)
		}
		if got := counts(t, ing); got[a] != 49 || got[b] != 100 {
			t.Fatalf("after the deletion: %v", got)
		}
		if err := ing.Close(); err != nil {
			t.Fatal(err)
		}
	}()
	if _, err := os.Stat(filepath.Join(dir, "t", deletionsFile)); err != nil {
		t.Fatalf("the request is not kept: %v", err)
	}
	ing := testIngester(t, dir, nil)
	if got := counts(t, ing); got[a] != 49 || got[b] != 100 {
		t.Fatalf("after a restart: %v", got)
	}
	// A new series of the range arrives late: visible until the head is
	// cut, then deleted with it.
	pushHosts(t, ing, now.Add(-60*time.Second).UnixMilli(), 20, []labels.Label{{Name: "late", Value: "1"}}, "a")
	if got := counts(t, ing); got[late] != 20 {
		t.Fatalf("the late series: %v", got)
	}
	if err := ing.Flush("t"); err != nil {
		t.Fatal(err)
	}
	if got := counts(t, ing); got[late] != 9 || got[a] != 49 || got[b] != 100 || len(ing.tenants["t"].db.Blocks()) == 0 {
		t.Fatalf("after cutting the head into %d blocks: %v", len(ing.tenants["t"].db.Blocks()), got)
	}
}

func ts(t time.Time) string { return time.UnixMilli(t.UnixMilli()).UTC().Format(time.RFC3339Nano) }
