package usage

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

var goldenRows = []Row{
	{Hour: h10, Tenant: "team-a", Usage: Usage{SamplesReceived: 120000, HistogramsReceived: 40, ExemplarsReceived: 3,
		BytesReceived: 987654, SamplesRejected: 12, Queries: 30, SamplesQueried: 4500000, SeriesQueried: 900,
		ActiveSeries: 2000, StoredBytes: 123456789}},
	{Hour: h10, Tenant: "team(b)'s", Usage: Usage{Queries: 1}},
	{Hour: h10.Add(time.Hour).In(time.FixedZone("CET", 3600)), Tenant: "team-a", Partial: true, Usage: Usage{SamplesReceived: 7}},
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s differs (go test -update rewrites it)\n got:\n%s\nwant:\n%s", name, got, want)
	}
}

func TestWriteGolden(t *testing.T) {
	for _, tc := range []struct {
		file  string
		write func(*bytes.Buffer, []Row) error
		rows  []Row
	}{
		{"report.json", func(b *bytes.Buffer, r []Row) error { return WriteJSON(b, r) }, goldenRows},
		{"report.csv", func(b *bytes.Buffer, r []Row) error { return WriteCSV(b, r) }, goldenRows},
		{"empty.json", func(b *bytes.Buffer, r []Row) error { return WriteJSON(b, r) }, nil},
		{"empty.csv", func(b *bytes.Buffer, r []Row) error { return WriteCSV(b, r) }, nil},
	} {
		t.Run(tc.file, func(t *testing.T) {
			var b bytes.Buffer
			if err := tc.write(&b, tc.rows); err != nil {
				t.Fatal(err)
			}
			golden(t, tc.file, b.Bytes())
		})
	}
}

// TestColumnsMatchRows checks that Columns is the order of the JSON members
// of a row and the CSV header.
func TestColumnsMatchRows(t *testing.T) {
	b, err := json.Marshal(goldenRows[0])
	if err != nil {
		t.Fatal(err)
	}
	d := json.NewDecoder(bytes.NewReader(b))
	var keys []string
	for i := 0; ; i++ {
		tok, err := d.Token()
		if err != nil {
			break
		}
		if _, isDelim := tok.(json.Delim); !isDelim && i%2 == 1 { // '{' key value key value … '}'
			keys = append(keys, tok.(string))
		}
	}
	var buf bytes.Buffer
	if err := WriteCSV(&buf, nil); err != nil {
		t.Fatal(err)
	}
	header, err := csv.NewReader(&buf).Read()
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.Join(Columns, ","); strings.Join(keys, ",") != want || strings.Join(header, ",") != want {
		t.Fatalf("JSON members %v, CSV header %v, Columns %v", keys, header, Columns)
	}
}

func TestParseTime(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Time
		err  bool
	}{
		{in: "2025-03-04T10:00:00Z", want: h10},
		{in: "2025-03-04T11:00:00+01:00", want: h10},
		{in: "2025-03-04T10:00:00.5Z", want: h10.Add(500 * time.Millisecond)},
		{in: "1741082400", want: h10},
		{in: "1741082400.25", want: h10.Add(250 * time.Millisecond)},
		{in: "2025-03-04", err: true},
		{in: "yesterday", err: true},
		{in: "NaN", err: true},
		{in: "1e300", err: true},
		{in: "", err: true},
	} {
		got, err := ParseTime(tc.in)
		if (err != nil) != tc.err || !tc.err && !got.Equal(tc.want) {
			t.Errorf("ParseTime(%q) = %v, %v; want %v (error: %v)", tc.in, got, err, tc.want, tc.err)
		}
	}
}
