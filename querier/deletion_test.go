package querier

import (
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/fluxpulse/fluxpulse/blockstore/blockstoretest"
	"github.com/fluxpulse/fluxpulse/deletion"
	"github.com/fluxpulse/fluxpulse/remotewrite"
	"github.com/fluxpulse/fluxpulse/tenantauth"
)

// deletionEnv is a queryEnv whose reads hide the requests of a real
// deletion store on an encrypted filesystem bucket.
type deletionEnv struct {
	*queryEnv
	store *deletion.Store
	cache *deletion.Cache
}

func newDeletionEnv(t *testing.T) *deletionEnv {
	t.Helper()
	e := newQueryEnv(t)
	d := &deletionEnv{queryEnv: e, store: deletion.NewStore(blockstoretest.NewBuckets(t).Enc)}
	d.cache = deletion.NewCache(d.store, time.Hour)
	e.q.queryable.HideDeleted(d.cache)
	return d
}

// request stores a deletion request of tenant t.
func (d *deletionEnv) request(t *testing.T, sel string, start, end time.Time) {
	t.Helper()
	r, err := deletion.NewRequest(deletion.Params{Tenant: "t", Selectors: []string{sel}, Start: ts(start), End: ts(end)},
		d.base, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.store.Add(t.Context(), r, 0); err != nil {
		t.Fatal(err)
	}
	d.cache.Put(r)
}

// pushExemplars stores ex{s="0"} and ex{s="1"}, each a sample and an
// exemplar.
func (d *deletionEnv) pushExemplars(t *testing.T) {
	t.Helper()
	ex := &remotewrite.Request{}
	for _, v := range []string{"0", "1"} {
		ex.Series = append(ex.Series, remotewrite.Series{Labels: []labels.Label{{Name: "__name__", Value: "ex"}, {Name: "s", Value: v}},
			Samples:   []remotewrite.Sample{{Timestamp: d.now.UnixMilli(), Value: 1}},
			Exemplars: []remotewrite.Exemplar{{Labels: []labels.Label{{Name: "trace_id", Value: "t" + v}}, Value: 1, Timestamp: d.now.UnixMilli()}}})
	}
	if res, err := d.ing.Push(t.Context(), "t", ex); err != nil || res.Rejected() {
		t.Fatalf("push exemplars: %v %s", err, res.Message(2))
	}
}

func ts(t time.Time) string { return fmt.Sprintf("%.3f", float64(t.UnixMilli())/1000) }

// data decodes a successful API answer's data.
func (d *deletionEnv) data(t *testing.T, path string, params url.Values) any {
	t.Helper()
	status, _, body := d.get(t, path, params)
	if status != 200 {
		t.Fatalf("%s?%s: %d %s", path, params.Encode(), status, body)
	}
	var r struct{ Data any }
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatal(err)
	}
	return r.Data
}

// TestReadsHideDeletedSeries is #14's hiding at read time: from the moment
// a request is stored, every read path of the queryable hides what it
// deletes (a whole series, and part of another), and label names and
// values whose only series are deleted are gone, while the rest reads as
// before.
func TestReadsHideDeletedSeries(t *testing.T) {
	d := newDeletionEnv(t)
	d.push(t, "secret", 1, []float64{1, 2, 3}) // series secret{s="0"}, its own label name below
	d.pushExemplars(t)
	rng := url.Values{"start": {ts(d.now.Add(-10 * time.Minute))}, "end": {ts(d.now)}}
	before := d.data(t, "/api/v1/query_range", with(rng, "query", `m{s=~"0|3"}`, "step", "1"))

	// s=1 goes whole; s=2 loses its first 60 samples; secret goes whole.
	d.request(t, `m{s="1"}`, d.now.Add(-time.Hour), d.now)
	d.request(t, `{s="2"}`, d.now.Add(-time.Hour), d.now.Add(-60*time.Second))
	d.request(t, `secret`, d.now.Add(-time.Hour), d.now.Add(time.Minute))
	d.request(t, `ex{s="1"}`, d.now.Add(-time.Hour), d.now)

	if got := d.data(t, "/api/v1/query_range", with(rng, "query", `m{s=~"0|3"}`, "step", "1")); fmt.Sprint(got) != fmt.Sprint(before) {
		t.Fatal("series no request matches changed")
	}
	check := func(what string, got, want any) {
		t.Helper()
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: %v, want %v", what, got, want)
		}
	}
	series := d.data(t, "/api/v1/series", with(rng, "match[]", `{__name__=~"m|secret"}`)).([]any)
	var ss []string
	for _, s := range series {
		ss = append(ss, s.(map[string]any)["s"].(string))
	}
	check("series", ss, []string{"0", "2", "3", "4"}) // of m and secret
	exemplars := d.data(t, "/api/v1/query_exemplars", with(rng, "query", `ex`)).([]any)
	if len(exemplars) != 1 || exemplars[0].(map[string]any)["seriesLabels"].(map[string]any)["s"] != "0" {
		t.Errorf("exemplars: %v, want those of ex{s=\"0\"} alone", exemplars)
	}
	check("label values of s", d.data(t, "/api/v1/label/s/values", rng), []any{"0", "2", "3", "4"})
	check("label values of __name__", d.data(t, "/api/v1/label/__name__/values", rng), []any{"ex", "m"})
	check("label names of the deleted series", d.data(t, "/api/v1/labels", with(rng, "match[]", `m{s="1"}`)), []any{})
	check("label values, limited", d.data(t, "/api/v1/label/s/values", with(rng, "limit", "2")), []any{"0", "2"})
	res := d.data(t, "/api/v1/query", url.Values{"query": {`count_over_time(m[10m])`}, "time": {ts(d.now)}}).(map[string]any)["result"].([]any)
	counts := map[string]string{}
	for _, r := range res {
		counts[r.(map[string]any)["metric"].(map[string]any)["s"].(string)] = r.(map[string]any)["value"].([]any)[1].(string)
	}
	check("samples per series", counts, map[string]string{"0": "120", "2": "60", "3": "120", "4": "120"})

	status, lines, trailer := d.export(t, url.Values{"match[]": {`{__name__=~"m|secret"}`}})
	var exported []string
	for _, l := range lines {
		exported = append(exported, fmt.Sprintf("%s:%d", l.Metric["s"], len(l.Values)))
	}
	check("export", fmt.Sprintf("%d %v %s", status, exported, trailer), "200 [0:120 2:60 3:120 4:120] complete")

	// Remote read reads encoded chunks: the chunk querier hides too.
	ctx := tenantauth.With(t.Context(), "test", "t")
	cq, err := d.q.queryable.ChunkQuerier(d.now.Add(-time.Hour).UnixMilli(), d.now.UnixMilli())
	if err != nil {
		t.Fatal(err)
	}
	defer cq.Close()
	check("remote read", chunkSamples(t, cq.Select(ctx, true, nil, labels.MustNewMatcher(labels.MatchRegexp, "__name__", "m|secret"))),
		map[string]int{"0": 120, "2": 60, "3": 120, "4": 120})

	// Another tenant's identical series are untouched.
	u := tenantauth.With(t.Context(), "test", "u")
	req := &remotewrite.Request{Series: []remotewrite.Series{{Labels: []labels.Label{{Name: "__name__", Value: "m"}, {Name: "s", Value: "1"}},
		Samples: []remotewrite.Sample{{Timestamp: d.now.UnixMilli(), Value: 1}}}}}
	if _, err := d.ing.Push(u, "u", req); err != nil {
		t.Fatal(err)
	}
	q, _ := d.q.queryable.Querier(d.now.Add(-time.Hour).UnixMilli(), d.now.UnixMilli())
	defer q.Close()
	if n := len(seriesOf(t, q.Select(u, true, nil, labels.MustNewMatcher(labels.MatchEqual, "s", "1")))); n != 1 {
		t.Errorf("tenant u has %d series s=1, want 1", n)
	}
}

func with(v url.Values, kv ...string) url.Values {
	out := url.Values{}
	for k, vs := range v {
		out[k] = slices.Clone(vs)
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out.Add(kv[i], kv[i+1])
	}
	return out
}

func chunkSamples(t *testing.T, cs storage.ChunkSeriesSet) map[string]int {
	t.Helper()
	out := map[string]int{}
	ss := storage.NewSeriesSetFromChunkSeriesSet(cs)
	for ss.Next() {
		n := 0
		it := ss.At().Iterator(nil)
		for it.Next() != chunkenc.ValNone {
			n++
		}
		out[ss.At().Labels().Get("s")] = n
	}
	if err := ss.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func seriesOf(t *testing.T, ss storage.SeriesSet) []string {
	t.Helper()
	var out []string
	for ss.Next() {
		out = append(out, ss.At().Labels().String())
	}
	if err := ss.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestHidingIterator checks seeking across and into deleted ranges,
// against the samples left when each deleted one is dropped.
func TestHidingIterator(t *testing.T) {
	var samples []int64
	for ts := int64(0); ts < 100; ts++ {
		samples = append(samples, ts)
	}
	ivs := []deletion.Interval{{Mint: 10, Maxt: 19}, {Mint: 20, Maxt: 29}, {Mint: 50, Maxt: 50}, {Mint: 90, Maxt: math.MaxInt64}}
	var want []int64
	for _, ts := range samples {
		if !deletion.InIntervals(ivs, ts) {
			want = append(want, ts)
		}
	}
	newIt := func() chunkenc.Iterator {
		c := chunkenc.NewXORChunk()
		app, _ := c.Appender()
		for _, ts := range samples {
			app.Append(0, ts, float64(ts))
		}
		return &hidingIterator{Iterator: c.Iterator(nil), ivs: ivs}
	}
	var got []int64
	for it := newIt(); it.Next() != chunkenc.ValNone; {
		got = append(got, it.AtT())
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("Next: %v, want %v", got, want)
	}
	for _, seek := range []int64{0, 9, 10, 15, 29, 30, 50, 51, 89, 90, 200} {
		it := newIt()
		vt := it.Seek(seek)
		k := slices.IndexFunc(want, func(ts int64) bool { return ts >= seek })
		switch {
		case k < 0 && vt != chunkenc.ValNone:
			t.Errorf("Seek(%d) = %d, want none", seek, it.AtT())
		case k >= 0 && (vt == chunkenc.ValNone || it.AtT() != want[k]):
			t.Errorf("Seek(%d) = %v %d, want %d", seek, vt, it.AtT(), want[k])
		}
	}
}
