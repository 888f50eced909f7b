package frontend

import (
	"bytes"
	"context"
	"net/url"
	"testing"
)

// TestSealerFederated: a federated query's entries are named and sealed
// under a key of every tenant named together: neither tenant's own sealer,
// nor one whose generation changed, names or opens them.
func TestSealerFederated(t *testing.T) {
	f := &Frontend{
		key:        func(_ context.Context, tenant string) ([]byte, error) { return []byte("key of " + tenant), nil },
		generation: func(context.Context, string) (string, error) { return "g1", nil },
	}
	ab, err := f.newSealer(t.Context(), []string{"a", "b"})
	if err != nil {
		t.Fatal(err)
	}
	q := rangeQuery{form: url.Values{}, query: `up{job="secret-job"}`, step: 60_000}
	p := piece{start: 86_400_000, end: 2*86_400_000 - 60_000}
	key := ab.cacheKey(q, p, 86_400_000)
	value, err := ab.seal(key, extent{Start: p.start, End: p.end})
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains([]byte(key), []byte("secret")) || bytes.Contains(value, []byte("secret")) {
		t.Fatal("the entry shows the query")
	}
	if _, err := ab.open(key, value); err != nil {
		t.Fatalf("the federated sealer does not open its own entry: %v", err)
	}
	if _, err := ab.open(key+"x", value); err == nil {
		t.Error("an entry opened under another name")
	}
	for _, ids := range [][]string{{"a"}, {"b"}} {
		one, err := f.newSealer(t.Context(), ids)
		if err != nil {
			t.Fatal(err)
		}
		if one.cacheKey(q, p, 86_400_000) == key {
			t.Errorf("tenant %v names the federated entry", ids)
		}
		if _, err := one.open(key, value); err == nil {
			t.Errorf("tenant %v opens the federated entry", ids)
		}
	}
	f.generation = func(context.Context, string) (string, error) { return "g2", nil }
	next, err := f.newSealer(t.Context(), []string{"a", "b"})
	if err != nil {
		t.Fatal(err)
	}
	if next.cacheKey(q, p, 86_400_000) == key {
		t.Error("a new generation names the same entry")
	}
}
