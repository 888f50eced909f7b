package audit

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestAppendStringMatchesEncodingJSON(t *testing.T) {
	for _, s := range []string{
		"", "plain", `quote " and \ backslash`, "tab\tnewline\nreturn\r", "\b\f\x00\x01\x1f\x7f",
		"<html> & stuff", "line\u2028sep\u2029para", "émoji 🎉 ünïcode", "tenant-1:cli:root",
	} {
		want, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendString(nil, s); string(got) != string(want) {
			t.Errorf("appendString(%q) = %s, encoding/json gives %s", s, got, want)
		}
	}
}

func TestAppendStringInvalidUTF8RoundTrips(t *testing.T) {
	enc := appendString(nil, "a\xffb\xc3")
	var dec string
	if err := json.Unmarshal(enc, &dec); err != nil {
		t.Fatal(err)
	}
	if again := appendString(nil, dec); string(again) != string(enc) {
		t.Fatalf("encoding %q again gives %s, first encoding was %s", dec, again, enc)
	}
	if dec != "a\uFFFDb\uFFFD" {
		t.Fatalf("decoded %q", dec)
	}
}

// TestCanonicalLine pins the stored format: a change here breaks every
// existing log, so it needs a new format version, not a new golden line.
func TestCanonicalLine(t *testing.T) {
	type inner struct {
		Z int    `json:"z"`
		A string `json:"a"`
	}
	e := Entry{
		Time: time.Date(2026, 3, 4, 5, 6, 7, 80, time.FixedZone("x", 3600)), Seq: 1,
		Actor: "tok-1", Tenant: "team-a", Action: ActionQuery, Target: `up{job="x"} > 0 & <1>`,
		Outcome: OutcomeSuccess, Details: map[string]any{"series": 3, "b": inner{Z: 1, A: "é"}, "a": 1.5},
		Prev: ZeroHash,
	}
	details, err := canonicalDetails(e.Details)
	if err != nil {
		t.Fatal(err)
	}
	canonical := appendCanonical(nil, &e, details)
	const want = `{"time":"2026-03-04T04:06:07.000000080Z","seq":1,"actor":"tok-1","tenant":"team-a","action":"query",` +
		`"target":"up{job=\"x\"} \u003e 0 \u0026 \u003c1\u003e","outcome":"success",` +
		`"details":{"a":1.5,"b":{"a":"é","z":1},"series":3},"prev":"` + ZeroHash + `"}`
	if string(canonical) != want {
		t.Fatalf("canonical encoding\n got %s\nwant %s", canonical, want)
	}
	hash := entryHash(e.Prev, canonical)
	if sum := sha256.Sum256([]byte(ZeroHash + want)); hash != hex.EncodeToString(sum[:]) {
		t.Fatalf("hash %s is not SHA-256(prev ‖ canonical)", hash)
	}
	line := appendLine(nil, canonical, hash)
	p, err := parseLine(line[:len(line)-1])
	if err != nil {
		t.Fatalf("parse own line: %v", err)
	}
	if string(p.canonical) != string(canonical) || p.entry.Hash != hash || p.entry.Seq != 1 {
		t.Fatalf("round trip: canonical %s hash %s seq %d", p.canonical, p.entry.Hash, p.entry.Seq)
	}
	if got := p.entry.Details["series"]; got != json.Number("3") {
		t.Fatalf("details series = %#v, want json.Number 3", got)
	}
}

// TestCanonicalSealedLine pins the stored format of a sealed entry (#12):
// target and details give way to a member sealed after outcome.
func TestCanonicalSealedLine(t *testing.T) {
	e := Entry{Time: time.Date(2026, 3, 4, 5, 6, 7, 80, time.UTC), Seq: 2, Actor: "tok-1", Tenant: "team-a",
		Action: ActionQuery, Target: "ignored", Outcome: OutcomeSuccess,
		Sealed: &Sealed{KeyID: "20260304-0a1b2c3d", Data: make([]byte, sealOverhead)}, Prev: ZeroHash}
	canonical := appendCanonical(nil, &e, []byte(`{"ignored":1}`))
	const want = `{"time":"2026-03-04T05:06:07.000000080Z","seq":2,"actor":"tok-1","tenant":"team-a","action":"query",` +
		`"outcome":"success","sealed":{"key":"20260304-0a1b2c3d","data":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="},"prev":"` + ZeroHash + `"}`
	if string(canonical) != want {
		t.Fatalf("canonical encoding\n got %s\nwant %s", canonical, want)
	}
	line := appendLine(nil, canonical, entryHash(e.Prev, canonical))
	p, err := parseLine(line[:len(line)-1])
	if err != nil {
		t.Fatalf("parse own line: %v", err)
	}
	if p.entry.Sealed == nil || p.entry.Sealed.KeyID != e.Sealed.KeyID || len(p.entry.Sealed.Data) != sealOverhead || p.entry.Target != "" {
		t.Fatalf("round trip: %+v", p.entry)
	}
}

func TestParseLineRejects(t *testing.T) {
	good := func() string {
		e := Entry{Time: time.Unix(0, 0), Seq: 7, Actor: "a", Prev: ZeroHash}
		c := appendCanonical(nil, &e, []byte(`{"k":1}`))
		l := appendLine(nil, c, entryHash(e.Prev, c))
		return string(l[:len(l)-1])
	}()
	if _, err := parseLine([]byte(good)); err != nil {
		t.Fatalf("good line refused: %v", err)
	}
	sealed := func() string {
		e := Entry{Time: time.Unix(0, 0), Seq: 7, Actor: "a", Sealed: &Sealed{KeyID: "k", Data: make([]byte, sealOverhead)}, Prev: ZeroHash}
		c := appendCanonical(nil, &e, nil)
		l := appendLine(nil, c, entryHash(e.Prev, c))
		return string(l[:len(l)-1])
	}()
	if _, err := parseLine([]byte(sealed)); err != nil {
		t.Fatalf("good sealed line refused: %v", err)
	}
	const data = `"data":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="`
	for _, tc := range []struct{ name, line string }{
		{"empty", ""},
		{"not json", "hello"},
		{"space after colon", strings.Replace(good, `"seq":7`, `"seq": 7`, 1)},
		{"members reordered", strings.Replace(good, `"actor":"a","tenant":""`, `"tenant":"","actor":"a"`, 1)},
		{"unknown member", strings.Replace(good, `"seq":7,`, `"seq":7,"x":1,`, 1)},
		{"duplicate member", strings.Replace(good, `"seq":7,`, `"seq":7,"seq":7,`, 1)},
		{"seq zero", strings.Replace(good, `"seq":7`, `"seq":0`, 1)},
		{"seq leading zero", strings.Replace(good, `"seq":7`, `"seq":07`, 1)},
		{"time without nanoseconds", strings.Replace(good, `.000000000Z`, `Z`, 1)},
		{"time zone offset", strings.Replace(good, `.000000000Z`, `.000000000+00:00`, 1)},
		{"uppercase hash", strings.Replace(good, `"prev":"0000`, `"prev":"000A`, 1)},
		{"short prev", strings.Replace(good, `"prev":"0000`, `"prev":"000`, 1)},
		{"empty details", strings.Replace(good, `{"k":1}`, `{}`, 1)},
		{"null details", strings.Replace(good, `{"k":1}`, `null`, 1)},
		{"details unsorted", strings.Replace(good, `{"k":1}`, `{"k":1,"a":2}`, 1)},
		{"details array", strings.Replace(good, `{"k":1}`, `[1]`, 1)},
		{"escaped differently", strings.Replace(good, `"actor":"a"`, `"actor":"\u0061"`, 1)},
		{"sealed and a target", strings.Replace(sealed, `"outcome"`, `"target":"","outcome"`, 1)},
		{"sealed and details", strings.Replace(sealed, `,"prev"`, `,"details":{"k":1},"prev"`, 1)},
		{"sealed null", strings.Replace(sealed, `{"key":"k",`+data+`}`, `null`, 1)},
		{"sealed without key", strings.Replace(sealed, `"key":"k"`, `"key":""`, 1)},
		{"sealed data short", strings.Replace(sealed, data, `"data":"AAAA"`, 1)},
		{"sealed data unpadded", strings.Replace(sealed, data, strings.TrimSuffix(data, `="`)+`"`, 1)},
		{"sealed data with a newline", strings.Replace(sealed, data, `"data":"AAAA\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="`, 1)},
		{"sealed unknown member", strings.Replace(sealed, `{"key":"k",`, `{"key":"k","x":1,`, 1)},
		{"trailing data", good + " "},
		{"two objects", good + good},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := parseLine([]byte(tc.line)); err == nil {
				t.Fatalf("accepted %s", tc.line)
			}
		})
	}
}
