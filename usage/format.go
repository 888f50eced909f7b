package usage

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
	"time"
)

// Columns are the report's columns, in order: the CSV header and the JSON
// members of each row.
var Columns = []string{
	"hour", "tenant", "partial",
	"samples_received", "histograms_received", "exemplars_received", "bytes_received",
	"samples_rejected", "queries", "samples_queried", "series_queried",
	"active_series", "stored_bytes",
}

// WriteJSON writes rows as a JSON array with one row object per line,
// members in the order of Columns, hours in RFC 3339.
func WriteJSON(w io.Writer, rows []Row) error {
	bw := bufio.NewWriter(w)
	bw.WriteString("[")
	for i, row := range rows {
		row.Hour = row.Hour.UTC()
		b, err := json.Marshal(row)
		if err != nil {
			return fmt.Errorf("encode usage row: %w", err)
		}
		if i > 0 {
			bw.WriteString(",")
		}
		bw.WriteString("\n")
		bw.Write(b)
	}
	if len(rows) > 0 {
		bw.WriteString("\n")
	}
	bw.WriteString("]\n")
	return bw.Flush()
}

// WriteCSV writes rows as CSV (RFC 4180) with a header row of Columns,
// hours in RFC 3339 and partial as true or false.
func WriteCSV(w io.Writer, rows []Row) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(Columns); err != nil {
		return err
	}
	rec := make([]string, len(Columns))
	for _, row := range rows {
		rec = append(rec[:0], row.Hour.UTC().Format(time.RFC3339), row.Tenant, strconv.FormatBool(row.Partial))
		for k := range numKinds {
			rec = append(rec, strconv.FormatInt(*row.Counter(k), 10))
		}
		rec = append(rec, strconv.FormatInt(row.ActiveSeries, 10), strconv.FormatInt(row.StoredBytes, 10))
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// ParseTime parses a report bound: RFC 3339 (2026-05-01T10:00:00Z) or unix
// seconds, possibly fractional (1777629600).
func ParseTime(s string) (time.Time, error) {
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		if math.IsNaN(f) || math.IsInf(f, 0) || math.Abs(f) > 1<<40 {
			return time.Time{}, fmt.Errorf("time %q: unix seconds out of range", s)
		}
		sec, frac := math.Modf(f)
		return time.Unix(int64(sec), int64(frac*1e9)).UTC(), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("time %q is neither RFC 3339 (2026-05-01T10:00:00Z) nor unix seconds", s)
	}
	return t, nil
}
