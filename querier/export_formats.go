package querier

import (
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
)

// The export formats (#14).
const (
	formatJSONL       = "jsonl"
	formatOpenMetrics = "openmetrics"
	formatCSV         = "csv"
)

// exportSkippedTrailer counts the samples a format had no form for
// (native histograms in OpenMetrics and CSV, series whose labels hold a
// NUL byte in OpenMetrics).
const exportSkippedTrailer = "X-FluxPulse-Export-Skipped"

// exportEncoder writes an export in one format. begin is called once (first
// is false for a page after the first: no CSV header then), series for
// every series in order, end once all were written, failure after an
// error once something was sent.
type exportEncoder interface {
	contentType() string
	begin(w io.Writer, first bool) error
	series(w io.Writer, s storage.Series, it chunkenc.Iterator, skipped *int) (chunkenc.Iterator, error)
	end(w io.Writer) error
	failure(w io.Writer, err error)
}

// exportEncoder returns the encoder of p's format. CSV without columns=
// gets a column for every label name of the exported series.
func (q *Querier) exportEncoder(r *http.Request, qr storage.Querier, p exportRequest) (exportEncoder, error) {
	switch p.format {
	case formatOpenMetrics:
		return &openMetricsEncoder{}, nil
	case formatCSV:
		cols := p.columns
		if cols == nil {
			hints := &storage.LabelHints{}
			for _, ms := range p.selectors {
				names, _, err := qr.LabelNames(r.Context(), hints, ms...)
				if err != nil {
					return nil, err
				}
				cols = append(cols, names...)
			}
			slices.Sort(cols)
			cols = slices.Compact(cols)
		}
		return &csvEncoder{columns: cols}, nil
	}
	return &jsonlEncoder{}, nil
}

// samples calls f with every float sample of s (staleness markers left
// out) and counts the histogram samples it skips.
func floatSamples(s storage.Series, it chunkenc.Iterator, skipped *int, f func(t int64, v float64) error) (chunkenc.Iterator, error) {
	it = s.Iterator(it)
	for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
		if vt != chunkenc.ValFloat {
			*skipped++
			continue
		}
		t, v := it.At()
		if value.IsStaleNaN(v) {
			continue
		}
		if err := f(t, v); err != nil {
			return it, err
		}
	}
	return it, it.Err()
}

// openMetricsEncoder writes the OpenMetrics text format as `promtool tsdb
// create-blocks-from openmetrics` reads it: one line a sample with its
// timestamp in seconds, no metadata (every family "unknown"), "# EOF" at
// the end of a complete export.
type openMetricsEncoder struct {
	prefix []byte // the current series' name and labels, with a space
	buf    []byte
}

func (*openMetricsEncoder) contentType() string {
	return "application/openmetrics-text; version=1.0.0; charset=utf-8"
}
func (*openMetricsEncoder) begin(io.Writer, bool) error { return nil }
func (*openMetricsEncoder) failure(io.Writer, error)    {} // no "# EOF": importers refuse the file
func (*openMetricsEncoder) end(w io.Writer) error {
	_, err := io.WriteString(w, "# EOF\n")
	return err
}

func (e *openMetricsEncoder) series(w io.Writer, s storage.Series, it chunkenc.Iterator, skipped *int) (chunkenc.Iterator, error) {
	if hasNUL(s.Labels()) {
		// OpenMetrics has no escape for a NUL byte (parsers stop at it):
		// the series is left out and its samples counted as skipped.
		return floatSamples(s, it, skipped, func(int64, float64) error {
			*skipped++
			return nil
		})
	}
	e.prefix = appendOMSeries(e.prefix[:0], s.Labels())
	return floatSamples(s, it, skipped, func(t int64, v float64) error {
		b := append(e.buf[:0], e.prefix...)
		b = appendOMFloat(b, v)
		b = append(b, ' ')
		b = append(appendOMTimestamp(b, t), '\n')
		e.buf = b
		_, err := w.Write(b)
		return err
	})
}

func hasNUL(ls labels.Labels) bool {
	found := false
	ls.Range(func(l labels.Label) {
		found = found || strings.IndexByte(l.Name, 0) >= 0 || strings.IndexByte(l.Value, 0) >= 0
	})
	return found
}

// appendOMSeries appends name{labels} and a space. Names outside the
// legacy character set are quoted, as Prometheus 3 writes and reads them.
func appendOMSeries(b []byte, ls labels.Labels) []byte {
	name := ls.Get(model.MetricNameLabel)
	quoted := !model.LegacyValidation.IsValidMetricName(name)
	if !quoted {
		b = append(b, name...)
	}
	b = append(b, '{')
	first := true
	if quoted {
		b = appendOMString(b, name)
		first = false
	}
	ls.Range(func(l labels.Label) {
		if l.Name == model.MetricNameLabel {
			return
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		if model.LegacyValidation.IsValidLabelName(l.Name) {
			b = append(b, l.Name...)
		} else {
			b = appendOMString(b, l.Name)
		}
		b = append(b, '=')
		b = appendOMString(b, l.Value)
	})
	return append(b, '}', ' ')
}

// appendOMString appends s quoted with OpenMetrics' escapes: \\, \" and
// \n.
func appendOMString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			b = append(b, `\\`...)
		case '"':
			b = append(b, `\"`...)
		case '\n':
			b = append(b, `\n`...)
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

// appendOMFloat appends v as OpenMetrics writes numbers.
func appendOMFloat(b []byte, v float64) []byte {
	switch {
	case math.IsNaN(v):
		return append(b, "NaN"...)
	case math.IsInf(v, 1):
		return append(b, "+Inf"...)
	case math.IsInf(v, -1):
		return append(b, "-Inf"...)
	}
	return strconv.AppendFloat(b, v, 'g', -1, 64)
}

// appendOMTimestamp appends the timestamp ms in seconds. Importers turn
// seconds back into milliseconds by truncating seconds×1000, which for
// most timestamps written with three decimals lands just below the
// millisecond; a nudge of a microsecond keeps every one exact.
func appendOMTimestamp(b []byte, ms int64) []byte {
	abs := uint64(ms)
	if ms < 0 {
		b, abs = append(b, '-'), uint64(-ms)
	}
	frac := abs % 1000
	b = strconv.AppendUint(b, abs/1000, 10)
	b = append(b, '.', byte('0'+frac/100), byte('0'+frac/10%10), byte('0'+frac%10))
	// The decimal just written parses to float64(ms)/1000: IEEE division
	// of an exact integer rounds to the nearest double, as parsing does.
	if int64(float64(ms)/1000*1000) == ms {
		return b
	}
	return append(b, "001"...)
}

// csvEncoder writes one sample a row: timestamp (RFC 3339, milliseconds),
// value, then a column for each label name (empty where a series lacks
// the label), quoted as RFC 4180 says. Names of labels not among the
// columns are left out.
type csvEncoder struct {
	columns []string
	suffix  []byte // the label columns of the current series, with the newline
	buf     []byte
}

func (*csvEncoder) contentType() string      { return "text/csv; charset=utf-8" }
func (*csvEncoder) failure(io.Writer, error) {}
func (*csvEncoder) end(io.Writer) error      { return nil }

func (e *csvEncoder) begin(w io.Writer, first bool) error {
	if !first {
		return nil
	}
	b := []byte("timestamp,value")
	for _, c := range e.columns {
		b = appendCSVField(append(b, ','), c)
	}
	_, err := w.Write(append(b, '\n'))
	return err
}

func (e *csvEncoder) series(w io.Writer, s storage.Series, it chunkenc.Iterator, skipped *int) (chunkenc.Iterator, error) {
	ls := s.Labels()
	e.suffix = e.suffix[:0]
	for _, c := range e.columns {
		e.suffix = appendCSVField(append(e.suffix, ','), ls.Get(c))
	}
	e.suffix = append(e.suffix, '\n')
	return floatSamples(s, it, skipped, func(t int64, v float64) error {
		b := time.UnixMilli(t).UTC().AppendFormat(e.buf[:0], "2006-01-02T15:04:05.000Z07:00")
		b = append(appendOMFloat(append(b, ','), v), e.suffix...)
		e.buf = b
		_, err := w.Write(b)
		return err
	})
}

// appendCSVField appends f, quoted when RFC 4180 requires it (and, as
// encoding/csv does, when it starts with a space or is \.).
func appendCSVField(b []byte, f string) []byte {
	if f != `\.` && !strings.ContainsAny(f, ",\"\r\n") && (f == "" || f[0] != ' ' && f[0] != '\t') {
		return append(b, f...)
	}
	b = append(b, '"')
	for i := 0; i < len(f); i++ {
		if f[i] == '"' {
			b = append(b, '"')
		}
		b = append(b, f[i])
	}
	return append(b, '"')
}
