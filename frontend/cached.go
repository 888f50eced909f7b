package frontend

import (
	"context"
	"net/http"
	"strings"
)

// sealerFor returns the sealer of the request's tenants, or nil when the
// request may not use the cache: no cache, the client's Cache-Control:
// no-store, or a key that cannot be had (the query then runs uncached).
func (f *Frontend) sealerFor(r *http.Request, ids []string) *sealer {
	if f.cache == nil || strings.Contains(strings.ToLower(r.Header.Get("Cache-Control")), "no-store") {
		return nil
	}
	sl, err := f.newSealer(r.Context(), ids)
	if err != nil {
		f.logger.Debug("the results cache is skipped for a query", "tenants", strings.Join(ids, "|"), "err", err)
		return nil
	}
	return sl
}

// cachedPiece answers the piece p of q from the cache where an extent
// holds its start, asks the queriers for the rest, and stores what is now
// known of the interval and older than -query-frontend.max-cache-freshness.
// Answers with warnings or infos are never stored, so that every stored
// point came without any.
func (f *Frontend) cachedPiece(ctx context.Context, r *http.Request, tenant string, q rangeQuery, p piece, sl *sealer) (pieceResult, error) {
	if sl == nil {
		return f.downstreamPiece(ctx, r, tenant, q, p)
	}
	key := sl.cacheKey(q, p, f.cfg.SplitQueriesByInterval.Milliseconds())
	fresh := f.now().Add(-f.cfg.MaxCacheFreshness).UnixMilli()
	var have extent
	found := false
	if v, ok := f.cache.Fetch(ctx, key); ok {
		f.metrics.cacheReadBytes.Add(float64(len(v)))
		e, err := sl.open(key, v)
		if err != nil {
			f.logger.Warn("a cached result does not open; asking the queriers", "err", err)
		} else if e.Start <= p.start && e.End >= p.start {
			have, found = e, true
		}
	}
	if !found {
		f.metrics.cacheMisses.Inc()
		res, err := f.downstreamPiece(ctx, r, tenant, q, p)
		if err == nil && res.status == http.StatusOK {
			f.store(ctx, sl, key, extent{Start: p.start}, res, q.step, min(p.end, fresh))
		}
		return res, err
	}
	f.metrics.cacheHits.Inc()
	cached, err := slicePoints(have.Result, p.start, min(p.end, have.End))
	if err != nil || have.End >= p.end {
		return pieceResult{status: http.StatusOK, data: matrixData{ResultType: "matrix", Result: cached}, cached: true}, err
	}
	rest := piece{have.End + q.step, p.end}
	res, err := f.downstreamPiece(ctx, r, tenant, q, rest)
	if err != nil || res.status != http.StatusOK {
		return res, err
	}
	if rest.start <= fresh {
		f.store(ctx, sl, key, have, res, q.step, min(p.end, fresh))
	}
	res.data.Result = mergeSeries([][]series{cached, res.data.Result})
	res.cached = true
	return res, nil
}

// downstreamPiece asks the queriers for the piece p of q.
func (f *Frontend) downstreamPiece(ctx context.Context, r *http.Request, tenant string, q rangeQuery, p piece) (pieceResult, error) {
	f.metrics.downstreamSeconds.Add(float64(p.end-p.start+q.step) / 1000)
	return f.runPiece(ctx, r, tenant, q.pieceForm(p))
}

// store adds what res holds up to upTo to the extent e and caches it.
func (f *Frontend) store(ctx context.Context, sl *sealer, key string, e extent, res pieceResult, step, upTo int64) {
	if len(res.resp.Warnings)+len(res.resp.Infos) > 0 || upTo < e.Start {
		return
	}
	end := e.Start + (upTo-e.Start)/step*step
	newer, err := slicePoints(res.data.Result, e.Start, end)
	if err != nil {
		return
	}
	e.Result = mergeSeries([][]series{e.Result, newer})
	e.End = end
	v, err := sl.seal(key, e)
	if err != nil {
		return
	}
	f.metrics.cacheWrittenBytes.Add(float64(len(v)))
	f.cache.Store(ctx, key, v)
}
