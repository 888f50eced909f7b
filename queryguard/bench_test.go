package queryguard

import (
	"fmt"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/promql/parser"
)

// worstShapes build, for a depth limit d and a size limit n, texts the
// guard accepts that are as costly as can be to parse and print: a chain of
// d-2 nodes of each kind around one selector whose regular expression
// fills the rest of the n bytes. Printing (format_query's Prettify) costs
// about n·d² byte copies on such a chain, parsing about n + d².
var worstShapes = map[string]func(d, n int) string{
	"parens":     func(d, n int) string { return fill(strings.Repeat("(", d-2), strings.Repeat(")", d-2), n) },
	"calls":      func(d, n int) string { return fill(strings.Repeat("abs(", d-2), strings.Repeat(")", d-2), n) },
	"left-chain": func(d, n int) string { return fill(strings.Repeat("1+", d-2), "", n) },
	"right-chain": func(d, n int) string {
		return fill("", strings.Repeat("+1", d-2), n)
	},
	"unary": func(d, n int) string { return fill(strings.Repeat("-", d-2), "", n) },
}

// fill puts a selector between before and after, with a regular expression
// as long as it takes for the whole to be n bytes.
func fill(before, after string, n int) string {
	const sel = `m{a=~""}`
	pad := max(n-len(before)-len(after)-len(sel), 0)
	return before + `m{a=~"` + strings.Repeat("x", pad) + `"}` + after
}

// BenchmarkWorstAccepted measures what the parser and format_query's
// printer cost on the worst text the guard accepts, for several pairs of
// limits (the defaults are 64 KiB and 64): the measurement behind the
// defaults of -querier.max-query-expression-size-bytes and
// -querier.max-query-expression-depth (#12). It also checks that each text
// is accepted at exactly those limits.
//
//	go test -run XXX -bench WorstAccepted -benchtime 3x ./queryguard/
func BenchmarkWorstAccepted(b *testing.B) {
	p := parser.NewParser(parser.Options{})
	for _, lim := range []struct{ n, d int }{{16 << 10, 64}, {64 << 10, 64}, {128 << 10, 32}, {128 << 10, 64}, {128 << 10, 128}, {256 << 10, 64}} {
		for _, shape := range []string{"parens", "calls", "left-chain", "right-chain", "unary"} {
			s := worstShapes[shape](lim.d, lim.n)
			if len(s) > lim.n || Depth(s) > lim.d {
				b.Fatalf("%s: %d bytes, depth %d: not accepted at %d bytes, depth %d", shape, len(s), Depth(s), lim.n, lim.d)
			}
			for _, step := range []string{"parse", "parse+print"} {
				b.Run(fmt.Sprintf("size=%dKiB/depth=%d/%s/%s", lim.n>>10, lim.d, shape, step), func(b *testing.B) {
					benchParse(b, p, s, step == "parse+print")
				})
			}
		}
	}
}

// BenchmarkParseNested is the attack of #12 without the guard: the parser
// and the printer on '('*n + '1' + ')'*n.
//
//	go test -run XXX -bench ParseNested -benchtime 1x ./queryguard/
func BenchmarkParseNested(b *testing.B) {
	p := parser.NewParser(parser.Options{})
	for _, n := range []int{100, 200, 400, 800} {
		s := nested(n)
		for _, step := range []string{"parse", "parse+print"} {
			b.Run(fmt.Sprintf("depth=%d/%s", n, step), func(b *testing.B) {
				benchParse(b, p, s, step == "parse+print")
			})
		}
	}
}

// benchParse parses s, and prints it again if print is set, as
// format_query does.
func benchParse(b *testing.B, p parser.Parser, s string, print bool) {
	b.SetBytes(int64(len(s)))
	for b.Loop() {
		e, err := p.ParseExpr(s)
		if err != nil {
			b.Fatal(err)
		}
		if print {
			_ = parser.Prettify(e)
		}
	}
}

// BenchmarkDepth is the guard's own cost: one pass over the bytes.
func BenchmarkDepth(b *testing.B) {
	s := worstShapes["parens"](64, 128<<10)
	b.SetBytes(int64(len(s)))
	for b.Loop() {
		_ = depth(s, 64)
	}
}
