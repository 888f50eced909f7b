package audit

import (
	"bytes"
	"testing"
	"time"
)

// FuzzParseLine checks that the line parser Verify uses never panics and
// accepts only lines that encode back to the same bytes, with a hash over
// exactly what it parsed.
func FuzzParseLine(f *testing.F) {
	e := Entry{Time: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC), Seq: 42, Actor: "tok-1", Tenant: "team-a",
		Action: ActionQuery, Target: `sum(rate(x[5m])) > 0 & "q"`, Outcome: OutcomeSuccess, Prev: ZeroHash}
	for _, details := range []string{"", `{"a":1,"b":{"c":[1,"x",null,true]},"n":1.5e300}`, `{"\u003c":"\u2028"}`} {
		c := appendCanonical(nil, &e, []byte(details))
		l := appendLine(nil, c, entryHash(e.Prev, c))
		f.Add(l[:len(l)-1])
	}
	e.Sealed = &Sealed{KeyID: "20260102-0a1b2c3d", Data: bytes.Repeat([]byte{0xa5}, 48)}
	c := appendCanonical(nil, &e, nil)
	l := appendLine(nil, c, entryHash(e.Prev, c))
	f.Add(l[:len(l)-1])
	f.Add([]byte(`{"time":"2026-01-02T03:04:05.000000006Z","seq":1}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		p, err := parseLine(line)
		if err != nil {
			return
		}
		details, err := canonicalDetails(p.entry.Details)
		if err != nil {
			t.Fatalf("parsed details do not encode: %v", err)
		}
		c := appendCanonical(nil, &p.entry, details)
		if !bytes.Equal(c, p.canonical) {
			t.Fatalf("accepted %q, but its entry encodes to %q", line, c)
		}
		if stored := appendLine(nil, c, p.entry.Hash); !bytes.Equal(stored[:len(stored)-1], line) {
			t.Fatalf("accepted %q, but it stores as %q", line, stored)
		}
	})
}

// FuzzAppendString checks that every string encodes to a JSON string that
// decodes and encodes again to the same bytes: the canonical encoding is a
// fixed point.
func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "a\"b\\c", "\x00\x1f<>&", "\u2028\u2029", "\xff\xfe", "é🎉"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		e := Entry{Seq: 1, Actor: s, Prev: ZeroHash}
		c := appendCanonical(nil, &e, nil)
		l := appendLine(nil, c, entryHash(e.Prev, c))
		p, err := parseLine(l[:len(l)-1])
		if err != nil {
			t.Fatalf("own line for actor %q refused: %v", s, err)
		}
		if again := appendString(nil, p.entry.Actor); !bytes.Equal(again, appendString(nil, s)) {
			t.Fatalf("actor %q encodes as %s, its decoding %q as %s", s, appendString(nil, s), p.entry.Actor, again)
		}
	})
}
