package querier

import (
	"bufio"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/fluxpulse/fluxpulse/deletion"
)

// exportLineSamples is the most samples one line holds: a longer series
// is written as several lines with the same metric, so that memory stays
// bounded however long the series is.
const exportLineSamples = 10_000

// Trailers of an export. exportStatusTrailer says how it ended:
// "complete", or "error: <message>" after a failure mid-stream (which the
// jsonl body's last line also reports). The others serve a client that
// exports in pages (limit, after): how many series this answer holds, the
// last of them (URL-query-escaped, as the next page's after), and whether
// more follow.
const (
	exportStatusTrailer = "X-FluxPulse-Export-Status"
	exportSeriesTrailer = "X-FluxPulse-Export-Series"
	exportLastTrailer   = "X-FluxPulse-Export-Last"
	exportMoreTrailer   = "X-FluxPulse-Export-More"
)

// export writes every sample of the series matching match[] in [start,
// end], sorted by series, in the format of format=: jsonl (the default: the
// format of VictoriaMetrics' /api/v1/export, which tools such as vmctl
// read, plus native histograms), openmetrics (what `promtool tsdb
// create-blocks-from openmetrics` reads) or csv (one sample a row, labels
// as columns): a customer's copy of their data in a form other tools take
// in (#14). Without start and end it exports everything. The answer is
// gzip-compressed when the client accepts it, and streamed: memory stays
// bounded whatever the size. limit= stops after that many series and
// after= starts after the series it names, so that a client can export in
// pages and resume.
//
// In jsonl, NaN and ±Inf are written as the strings "NaN", "+Inf" and
// "-Inf", as the Prometheus API writes them; staleness markers are left
// out in every format: they mark where a series ended, not a value (#12
// item 3). OpenMetrics and CSV have no form for native histograms: those
// samples are left out and counted in the X-FluxPulse-Export-Skipped
// trailer.
//
// An error before the first 64 KiB have gone out is an ordinary error
// response; after that the status is sent already: the trailer says
// "error: …", a jsonl body ends with an error line and an OpenMetrics one
// lacks its closing "# EOF".
func (q *Querier) export(w http.ResponseWriter, r *http.Request) {
	p, err := exportParams(r)
	if err != nil {
		WriteError(w, r, http.StatusBadRequest, err.Error())
		return
	}
	qr, err := q.queryable.Querier(p.mint, p.maxt)
	if err != nil {
		WriteError(w, r, http.StatusInternalServerError, err.Error())
		return
	}
	defer qr.Close()
	sets := make([]storage.SeriesSet, 0, len(p.selectors))
	for _, ms := range p.selectors {
		sets = append(sets, qr.Select(r.Context(), true, &storage.SelectHints{Start: p.mint, End: p.maxt}, ms...))
	}
	enc, err := q.exportEncoder(r, qr, p)
	if err != nil {
		exportError(w, r, err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", enc.contentType())
	h.Set("Trailer", strings.Join([]string{exportStatusTrailer, exportSeriesTrailer, exportLastTrailer, exportMoreTrailer, exportSkippedTrailer}, ", "))
	h.Add("Vary", "Accept-Encoding")
	out := &sentWriter{w: w}
	var dst io.Writer = out
	var zw *gzip.Writer
	if acceptsGzip(r) {
		h.Set("Content-Encoding", "gzip")
		zw, _ = gzip.NewWriterLevel(out, gzip.BestSpeed)
		dst = zw
	}
	bw := bufio.NewWriterSize(dst, 64<<10)
	res, err := writeExport(bw, storage.NewMergeSeriesSet(sets, 0, storage.ChainedSeriesMerge), enc, p)
	if err != nil && !out.sent {
		h.Del("Content-Encoding")
		exportError(w, r, err) // nothing reached the client: answer with a status
		return
	}
	if err != nil {
		enc.failure(bw, err)
	}
	ferr := bw.Flush()
	if zw != nil {
		ferr = errors.Join(ferr, zw.Close())
	}
	if ferr != nil {
		return // the client has gone
	}
	status := "complete"
	if err != nil {
		status = "error: " + strings.Join(strings.Fields(err.Error()), " ")
	}
	h.Set(exportStatusTrailer, status)
	h.Set(exportSeriesTrailer, strconv.Itoa(res.series))
	h.Set(exportLastTrailer, url.QueryEscape(res.last))
	h.Set(exportMoreTrailer, strconv.FormatBool(res.more))
	h.Set(exportSkippedTrailer, strconv.Itoa(res.skipped))
}

// exportRequest is an export's parameters, checked.
type exportRequest struct {
	selectors  [][]*labels.Matcher
	mint, maxt int64
	format     string
	columns    []string      // csv: the label columns; nil: every label name
	after      labels.Labels // start after this series; empty: at the first
	limit      int           // series; 0: all
}

// exportParams reads match[], start, end, format, columns, after and
// limit.
func exportParams(r *http.Request) (exportRequest, error) {
	p := exportRequest{mint: math.MinInt64, maxt: math.MaxInt64, format: r.FormValue("format")}
	sels := r.Form["match[]"]
	if len(sels) == 0 {
		return p, errors.New("no match[] parameter provided: name the series to export, e.g. match[]={__name__=~\".+\"}")
	}
	pp := parser.NewParser(parser.Options{})
	for _, s := range sels {
		ms, err := pp.ParseMetricSelector(s)
		if err != nil {
			return p, errors.New("invalid parameter \"match[]\": " + err.Error())
		}
		p.selectors = append(p.selectors, ms)
	}
	for name, dst := range map[string]*int64{"start": &p.mint, "end": &p.maxt} {
		if v := r.FormValue(name); v != "" {
			t, err := parseTime(v)
			if err != nil {
				return p, errors.New("invalid parameter " + strconv.Quote(name) + ": " + err.Error())
			}
			*dst = t
		}
	}
	switch p.format {
	case "":
		p.format = formatJSONL
	case formatJSONL, formatOpenMetrics, formatCSV:
	default:
		return p, fmt.Errorf("invalid parameter \"format\": %q; formats are %s (the default), %s and %s", p.format, formatJSONL, formatOpenMetrics, formatCSV)
	}
	if c := r.FormValue("columns"); c != "" {
		if p.format != formatCSV {
			return p, errors.New("invalid parameter \"columns\": it applies to format=csv only")
		}
		p.columns = strings.Split(c, ",")
	}
	if a := r.FormValue("after"); a != "" {
		ls, err := pp.ParseMetric(a)
		if err != nil {
			return p, errors.New("invalid parameter \"after\": a series as {name=\"value\", …}: " + err.Error())
		}
		p.after = ls
	}
	if l := r.FormValue("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 0 {
			return p, fmt.Errorf("invalid parameter \"limit\": %q is not a number of series", l)
		}
		p.limit = n
	}
	return p, nil
}

// acceptsGzip reports whether the client accepts a gzip-encoded answer.
func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		coding, q, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(coding), "gzip") && strings.TrimSpace(q) != "q=0" {
			return true
		}
	}
	return false
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

// exportResult is what an export wrote.
type exportResult struct {
	series  int
	last    string // labels of the last series written
	more    bool   // the limit stopped it before the last series
	skipped int    // samples the format cannot hold
}

// writeExport writes the series of ss after p.after, up to p.limit, with
// enc, and returns what it wrote and the error that stopped it: the series
// set's, an iterator's, or the writer's.
func writeExport(w io.Writer, ss storage.SeriesSet, enc exportEncoder, p exportRequest) (res exportResult, err error) {
	if err = enc.begin(w, p.after.IsEmpty()); err != nil {
		return res, err
	}
	var (
		it   chunkenc.Iterator
		last labels.Labels
	)
	defer func() {
		if res.series > 0 {
			res.last = last.String()
		}
	}()
	for ss.Next() {
		s := ss.At()
		if !p.after.IsEmpty() && labels.Compare(s.Labels(), p.after) <= 0 {
			continue
		}
		if p.limit > 0 && res.series == p.limit {
			res.more = true
			return res, nil
		}
		if it, err = enc.series(w, s, it, &res.skipped); err != nil {
			return res, err
		}
		res.series++
		last = s.Labels()
	}
	if err = ss.Err(); err != nil {
		return res, err
	}
	return res, enc.end(w)
}

// jsonlEncoder writes the JSON lines of an export.
type jsonlEncoder struct {
	line exportLine
	buf  []byte
}

func (*jsonlEncoder) contentType() string            { return "application/jsonl" }
func (*jsonlEncoder) begin(io.Writer, bool) error    { return nil }
func (*jsonlEncoder) end(io.Writer) error            { return nil }
func (*jsonlEncoder) failure(w io.Writer, err error) { _, _ = w.Write(appendErrorLine(nil, err)) }

func (e *jsonlEncoder) series(w io.Writer, s storage.Series, it chunkenc.Iterator, _ *int) (chunkenc.Iterator, error) {
	flush := func() error {
		if e.line.samples() == 0 {
			return nil
		}
		var err error
		if e.buf, err = e.line.appendJSON(e.buf[:0]); err != nil {
			return err
		}
		e.line.reset()
		_, err = w.Write(e.buf)
		return err
	}
	e.line.metric = s.Labels()
	it = s.Iterator(it)
	for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
		e.line.add(it, vt)
		if e.line.samples() >= exportLineSamples {
			if err := flush(); err != nil {
				return it, err
			}
		}
	}
	if err := it.Err(); err != nil {
		return it, err
	}
	return it, flush()
}

// exportLine is one line of an export: samples of one series.
type exportLine struct {
	metric     labels.Labels
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
	b = append(b, `{"metric":{`...)
	k := 0
	l.metric.Range(func(lb labels.Label) {
		if k > 0 {
			b = append(b, ',')
		}
		k++
		b = append(appendJSONString(b, lb.Name), ':')
		b = appendJSONString(b, lb.Value)
	})
	b = append(b, '}')
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

// appendJSONString appends s as encoding/json encodes a string, HTML
// escapes included, without allocating: a label set is written per series.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 || r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			if r == utf8.RuneError {
				b = append(b, `\ufffd`...)
			} else {
				b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xF])
			}
			start = i + size
		}
		i += size
	}
	return append(append(b, s[start:]...), '"')
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
func parseTime(s string) (int64, error) { return deletion.ParseTime(s) }
