package queryguard

import (
	"testing"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/fluxpulse/fluxpulse/limits"
)

// lexerDepth counts Depth's measure on the tokens of Prometheus's own lexer,
// up to its first error (where the parser stops): the reference the scan
// must never fall below.
func lexerDepth(s string) int {
	var sc scanner
	sc.levels = sc.buf[:1]
	l := parser.Lex(s)
	for {
		var it parser.Item
		l.NextItem(&it)
		switch {
		case it.Typ == parser.EOF || it.Typ == parser.ERROR:
			for len(sc.levels) > 1 {
				sc.close()
			}
			return sc.levels[0].depth()
		case it.Typ == parser.LEFT_PAREN || it.Typ == parser.LEFT_BRACE:
			sc.open(it.Typ == parser.LEFT_BRACE)
		case it.Typ == parser.LEFT_BRACKET:
			sc.op()
			sc.open(false)
		case it.Typ == parser.RIGHT_PAREN || it.Typ == parser.RIGHT_BRACE || it.Typ == parser.RIGHT_BRACKET:
			sc.close()
		case it.Typ.IsOperator() && it.Typ != parser.AT:
			sc.op()
		}
	}
}

// treeDepth is the depth of a parsed expression's syntax tree.
func treeDepth(e parser.Expr) int {
	d := 0
	parser.Inspect(e, func(_ parser.Node, path []parser.Node) error {
		d = max(d, len(path)+1)
		return nil
	})
	return d
}

// FuzzDepth checks the scan against Prometheus's lexer and parser (#12):
// the scan never counts less than the lexer's tokens give, and whatever the
// guard accepts the parser handles without panicking, into a tree no deeper
// than the scan said, which prints back without panicking. Seeds are in
// testdata/fuzz/FuzzDepth.
func FuzzDepth(f *testing.F) {
	for _, s := range []string{
		`sum by (le) (rate(h_bucket{job="api", path=~"/a|/b"}[5m] offset 1h))`,
		"max_over_time((rate(m[5m]))[1h:1m]) > bool 3 and on (a) group_left b",
		`{a="(\"(", b='((', c=` + "`((`" + `} # (((`,
		"-(-(+1)) ^ 2 atan2 x unless y or z",
		"m[5m:] @ start() offset -1m",
		`label_replace(up, "a", "$1", "b", "(.*)")`,
		"1e-5 + 0x1F - Inf",
		"((((",
	} {
		f.Add(s)
	}
	// Every feature on: the guard must bound the whole grammar.
	p := parser.NewParser(parser.Options{EnableExperimentalFunctions: true, EnableBinopFillModifiers: true})
	f.Fuzz(func(t *testing.T, s string) {
		d := Depth(s)
		if ref := lexerDepth(s); d < ref {
			t.Fatalf("Depth(%q) = %d, below the lexer's %d", s, d, ref)
		}
		if d > 64 || len(s) > 4096 {
			return // over what the guard accepts in this test
		}
		e, err := p.ParseExpr(s)
		if err != nil {
			return
		}
		if td := treeDepth(e); td > d {
			t.Fatalf("Depth(%q) = %d, but the parsed tree is %d deep", s, d, td)
		}
		_ = parser.Prettify(e)
	})
}

// FuzzCheckRead sends arbitrary bodies to the remote-read check, which
// decodes snappy and protobuf: it never panics, and what it accepts
// decompresses within the bound it promises. Seeds are in
// testdata/fuzz/FuzzCheckRead.
func FuzzCheckRead(f *testing.F) {
	q := &prompb.Query{StartTimestampMs: 1, EndTimestampMs: 2, Matchers: []*prompb.LabelMatcher{
		{Type: prompb.LabelMatcher_EQ, Name: "__name__", Value: "up"}, {Type: prompb.LabelMatcher_RE, Name: "job", Value: "a|b"}}}
	b, err := (&prompb.ReadRequest{Queries: []*prompb.Query{q}}).Marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(snappy.Encode(nil, b))
	f.Add([]byte{0x80, 0x80, 0x80, 0x80, 0x04})
	lim := limits.Limits{MaxQueryExpressionSizeBytes: 1 << 10}
	f.Fuzz(func(t *testing.T, body []byte) {
		if CheckRead("t", lim, body) != nil {
			return
		}
		if n, err := snappy.DecodedLen(body); err != nil || n > maxReadSize(lim) {
			t.Fatalf("accepted a body that decompresses to %d bytes (%v)", n, err)
		}
	})
}
