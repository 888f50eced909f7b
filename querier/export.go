package querier

import (
	"bufio"
	"encoding/json"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
)

// exportLine is one series of an export: the format of VictoriaMetrics'
// /api/v1/export, which tools such as vmctl read, plus native histograms.
type exportLine struct {
	Metric     map[string]string `json:"metric"`
	Values     []float64         `json:"values,omitempty"`
	Timestamps []int64           `json:"timestamps,omitempty"`
	Histograms []exportHistogram `json:"histograms,omitempty"`
}

type exportHistogram struct {
	Timestamp int64       `json:"timestamp"`
	Count     float64     `json:"count"`
	Sum       float64     `json:"sum"`
	Buckets   [][4]string `json:"buckets,omitempty"` // boundary rule, lower, upper, count, as the Prometheus API writes them
}

// export writes every sample of the series matching match[] in [start, end]
// as JSON lines, one series per line: a customer's copy of their data in a
// machine-readable form. Without start and end it exports everything.
func (q *Querier) export(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		WriteError(w, r, http.StatusBadRequest, "error parsing form values: "+err.Error())
		return
	}
	sels := r.Form["match[]"]
	if len(sels) == 0 {
		WriteError(w, r, http.StatusBadRequest, "no match[] parameter provided: name the series to export, e.g. match[]={__name__=~\".+\"}")
		return
	}
	mint, maxt := int64(math.MinInt64), int64(math.MaxInt64)
	for name, dst := range map[string]*int64{"start": &mint, "end": &maxt} {
		if v := r.FormValue(name); v != "" {
			t, err := parseTime(v)
			if err != nil {
				WriteError(w, r, http.StatusBadRequest, "invalid parameter "+strconv.Quote(name)+": "+err.Error())
				return
			}
			*dst = t
		}
	}
	sets := make([]storage.SeriesSet, 0, len(sels))
	qr, err := q.queryable.Querier(mint, maxt)
	if err != nil {
		WriteError(w, r, http.StatusInternalServerError, err.Error())
		return
	}
	defer qr.Close()
	for _, s := range sels {
		ms, err := parser.NewParser(parser.Options{}).ParseMetricSelector(s)
		if err != nil {
			WriteError(w, r, http.StatusBadRequest, "invalid parameter \"match[]\": "+err.Error())
			return
		}
		sets = append(sets, qr.Select(r.Context(), true, &storage.SelectHints{Start: mint, End: maxt}, ms...))
	}
	ss := storage.NewMergeSeriesSet(sets, 0, storage.ChainedSeriesMerge)
	w.Header().Set("Content-Type", "application/jsonl")
	bw := bufio.NewWriterSize(w, 64<<10)
	enc := json.NewEncoder(bw)
	var it chunkenc.Iterator
	for ss.Next() {
		s := ss.At()
		line := exportLine{Metric: s.Labels().Map()}
		it = s.Iterator(it)
		for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
			switch vt {
			case chunkenc.ValFloat:
				t, v := it.At()
				line.Timestamps = append(line.Timestamps, t)
				line.Values = append(line.Values, v)
			case chunkenc.ValHistogram, chunkenc.ValFloatHistogram:
				t, fh := it.AtFloatHistogram(nil)
				line.Histograms = append(line.Histograms, exportHist(t, fh))
			}
		}
		if err := it.Err(); err != nil {
			WriteError(w, r, http.StatusInternalServerError, err.Error()) // only reaches the client before the first line
			return
		}
		if err := enc.Encode(line); err != nil {
			return
		}
	}
	if err := ss.Err(); err != nil {
		_ = enc.Encode(map[string]string{"error": err.Error()})
	}
	_ = bw.Flush()
}

func exportHist(t int64, fh *histogram.FloatHistogram) exportHistogram {
	h := exportHistogram{Timestamp: t, Count: fh.Count, Sum: fh.Sum}
	f := func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
	for it := fh.AllBucketIterator(); it.Next(); {
		b := it.At()
		if b.Count == 0 {
			continue
		}
		rule := "0" // open left, closed right: the common case
		switch {
		case b.LowerInclusive && b.UpperInclusive:
			rule = "3"
		case b.LowerInclusive:
			rule = "2"
		case !b.UpperInclusive:
			rule = "1"
		}
		h.Buckets = append(h.Buckets, [4]string{rule, f(b.Lower), f(b.Upper), f(b.Count)})
	}
	return h
}

// parseTime reads RFC 3339 or Unix seconds (with fractions), as the
// Prometheus API does, into milliseconds.
func parseTime(s string) (int64, error) {
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		return int64(math.Round(f * 1000)), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return 0, err
	}
	return t.UnixMilli(), nil
}
