package querier

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
)

// exportLineSamples is the most samples one line holds: a longer series
// is written as several lines with the same metric, so that memory stays
// bounded however long the series is.
const exportLineSamples = 10_000

// exportStatusTrailer is the HTTP trailer that says how an export ended:
// "complete", or "error: <message>" after a failure mid-stream, which the
// body's last line also reports.
const exportStatusTrailer = "X-FluxPulse-Export-Status"

// export writes every sample of the series matching match[] in [start, end]
// as JSON lines (the format of VictoriaMetrics' /api/v1/export, which tools
// such as vmctl read, plus native histograms): a customer's copy of their
// data in a machine-readable form. Without start and end it exports
// everything. NaN and ±Inf are written as the strings "NaN", "+Inf" and
// "-Inf", as the Prometheus API writes them; staleness markers are left
// out: they mark where a series ended, not a value (#12 item 3).
//
// An error before the first 64 KiB have gone out is an ordinary error
// response; after that the status is sent already, so the body ends with
// an error line {"status":"error",...} and the trailer says "error: …".
func (q *Querier) export(w http.ResponseWriter, r *http.Request) {
	sels, mint, maxt, err := exportParams(r)
	if err != nil {
		WriteError(w, r, http.StatusBadRequest, err.Error())
		return
	}
	qr, err := q.queryable.Querier(mint, maxt)
	if err != nil {
		WriteError(w, r, http.StatusInternalServerError, err.Error())
		return
	}
	defer qr.Close()
	sets := make([]storage.SeriesSet, 0, len(sels))
	for _, s := range sels {
		ms, err := parser.NewParser(parser.Options{}).ParseMetricSelector(s)
		if err != nil {
			WriteError(w, r, http.StatusBadRequest, "invalid parameter \"match[]\": "+err.Error())
			return
		}
		sets = append(sets, qr.Select(r.Context(), true, &storage.SelectHints{Start: mint, End: maxt}, ms...))
	}
	w.Header().Set("Content-Type", "application/jsonl")
	w.Header().Set("Trailer", exportStatusTrailer)
	out := &sentWriter{w: w}
	bw := bufio.NewWriterSize(out, 64<<10)
	err = writeExport(bw, storage.NewMergeSeriesSet(sets, 0, storage.ChainedSeriesMerge))
	if err != nil && !out.sent {
		bw.Reset(out) // nothing reached the client: answer with a status
		exportError(w, r, err)
		return
	}
	if err != nil {
		_, _ = bw.Write(appendErrorLine(nil, err))
	}
	if ferr := bw.Flush(); ferr != nil {
		return // the client has gone
	}
	status := "complete"
	if err != nil {
		status = "error: " + strings.Join(strings.Fields(err.Error()), " ")
	}
	w.Header().Set(exportStatusTrailer, status)
}

// exportParams reads match[], start and end.
func exportParams(r *http.Request) (sels []string, mint, maxt int64, err error) {
	sels = r.Form["match[]"]
	if len(sels) == 0 {
		return nil, 0, 0, errors.New("no match[] parameter provided: name the series to export, e.g. match[]={__name__=~\".+\"}")
	}
	mint, maxt = int64(math.MinInt64), int64(math.MaxInt64)
	for name, dst := range map[string]*int64{"start": &mint, "end": &maxt} {
		if v := r.FormValue(name); v != "" {
			t, err := parseTime(v)
			if err != nil {
				return nil, 0, 0, errors.New("invalid parameter " + strconv.Quote(name) + ": " + err.Error())
			}
			*dst = t
		}
	}
	return sels, mint, maxt, nil
}

// exportError answers an export that failed before anything was sent.
func exportError(w http.ResponseWriter, r *http.Request, err error) {
	w.Header().Del("Trailer")
	w.Header().Del("Content-Type")
	if _, ok := errors.AsType[*limitError](err); ok {
		writeJSON(w, http.StatusUnprocessableEntity, response{Status: "error", ErrorType: "cost_limit", Error: err.Error()})
		return
	}
	WriteError(w, r, http.StatusInternalServerError, err.Error())
}

// sentWriter records whether anything was written to the client.
type sentWriter struct {
	w    io.Writer
	sent bool
}

func (s *sentWriter) Write(b []byte) (int, error) {
	s.sent = true
	return s.w.Write(b)
}

// writeExport writes the lines of every series of ss, and returns the
// error that stopped it: the series set's, an iterator's, or the writer's.
func writeExport(w io.Writer, ss storage.SeriesSet) error {
	var (
		it   chunkenc.Iterator
		line exportLine
		buf  []byte
	)
	flush := func() error {
		if line.samples() == 0 {
			return nil
		}
		var err error
		if buf, err = line.appendJSON(buf[:0]); err != nil {
			return err
		}
		line.reset()
		_, err = w.Write(buf)
		return err
	}
	for ss.Next() {
		s := ss.At()
		line.metric = s.Labels().Map()
		it = s.Iterator(it)
		for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
			line.add(it, vt)
			if line.samples() >= exportLineSamples {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		if err := it.Err(); err != nil {
			return err
		}
		if err := flush(); err != nil {
			return err
		}
	}
	return ss.Err()
}

// exportLine is one line of an export: samples of one series.
type exportLine struct {
	metric     map[string]string
	values     []float64
	timestamps []int64
	histograms []exportHistogram
}

type exportHistogram struct {
	Timestamp int64       `json:"timestamp"`
	Count     jsonFloat   `json:"count"`
	Sum       jsonFloat   `json:"sum"`
	Buckets   [][4]string `json:"buckets,omitempty"` // boundary rule, lower, upper, count, as the Prometheus API writes them
}

func (l *exportLine) samples() int { return len(l.values) + len(l.histograms) }

func (l *exportLine) reset() {
	l.values, l.timestamps, l.histograms = l.values[:0], l.timestamps[:0], l.histograms[:0]
}

// add appends the iterator's sample, unless it is a staleness marker.
func (l *exportLine) add(it chunkenc.Iterator, vt chunkenc.ValueType) {
	switch vt {
	case chunkenc.ValFloat:
		t, v := it.At()
		if value.IsStaleNaN(v) {
			return
		}
		l.timestamps = append(l.timestamps, t)
		l.values = append(l.values, v)
	case chunkenc.ValHistogram, chunkenc.ValFloatHistogram:
		t, fh := it.AtFloatHistogram(nil)
		if value.IsStaleNaN(fh.Sum) {
			return
		}
		l.histograms = append(l.histograms, exportHist(t, fh))
	}
}

// appendJSON appends the line, with its newline.
func (l *exportLine) appendJSON(b []byte) ([]byte, error) {
	m, err := json.Marshal(l.metric)
	if err != nil {
		return b, err
	}
	b = append(append(b, `{"metric":`...), m...)
	if len(l.values) > 0 {
		b = append(b, `,"values":[`...)
		for k, v := range l.values {
			if k > 0 {
				b = append(b, ',')
			}
			b = appendFloat(b, v)
		}
		b = append(b, `],"timestamps":[`...)
		for k, t := range l.timestamps {
			if k > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendInt(b, t, 10)
		}
		b = append(b, ']')
	}
	if len(l.histograms) > 0 {
		h, err := json.Marshal(l.histograms)
		if err != nil {
			return b, err
		}
		b = append(append(b, `,"histograms":`...), h...)
	}
	return append(b, "}\n"...), nil
}

// appendErrorLine appends the line that ends an export that failed.
func appendErrorLine(b []byte, err error) []byte {
	typ := "internal"
	if _, ok := errors.AsType[*limitError](err); ok {
		typ = "cost_limit"
	}
	line, _ := json.Marshal(response{Status: "error", ErrorType: typ, Error: err.Error()})
	return append(append(b, line...), '\n')
}

// jsonFloat is a float64 that encodes NaN and ±Inf as the strings "NaN",
// "+Inf" and "-Inf", which JSON has no numbers for.
type jsonFloat float64

// MarshalJSON implements json.Marshaler.
func (f jsonFloat) MarshalJSON() ([]byte, error) { return appendFloat(nil, float64(f)), nil }

// appendFloat appends f as encoding/json writes a float64, or as a string
// for NaN and ±Inf, as the Prometheus API writes them.
func appendFloat(b []byte, f float64) []byte {
	switch {
	case math.IsNaN(f):
		return append(b, `"NaN"`...)
	case math.IsInf(f, 1):
		return append(b, `"+Inf"`...)
	case math.IsInf(f, -1):
		return append(b, `"-Inf"`...)
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if n := len(b); format == 'e' && n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
		b[n-2] = b[n-1] // 1e-07 is written 1e-7
		b = b[:n-1]
	}
	return b
}

func exportHist(t int64, fh *histogram.FloatHistogram) exportHistogram {
	h := exportHistogram{Timestamp: t, Count: jsonFloat(fh.Count), Sum: jsonFloat(fh.Sum)}
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
