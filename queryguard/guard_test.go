package queryguard

import (
	"errors"
	"flag"
	"strings"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/fluxpulse/fluxpulse/limits"
)

// nested is the attack of #12: '('*n + '1' + ')'*n.
func nested(n int) string { return strings.Repeat("(", n) + "1" + strings.Repeat(")", n) }

func TestDepth(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
	}{
		{"", 1},
		{"1", 1},
		{"up", 1},
		{`up{job="a"}`, 2},
		{"sum(x)", 2},
		{"a + b * c", 3},
		{"a + b + c + d", 4},
		{"-1", 2},
		{"sum(rate(x[5m]))", 5},
		{`histogram_quantile(0.99, sum by (le) (rate(h_bucket{job="api"}[5m])))`, 6},
		{"max_over_time((rate(m[5m]))[1h:1m])", 7},
		{"a and b or c unless d", 4},
		{"a AND b", 2},
		{"atan2(a, b)", 3}, // a function name here, counted as the operator it also is
		{"a atan2 b", 2},
		{"a == bool b", 2},
		{"a != b", 2},
		{"a >= b <= c", 3},
		{"candor + orchid", 2}, // keywords only as whole words
		{`{a!="x", b=~"y", c!~"z", d="w"}`, 2},
		{nested(2000), 2001},
		// Brackets in strings and comments do not count; quotes in
		// comments and escaped quotes do not end or start strings.
		{`{a="((((("}`, 2},
		{"{a='(((('}", 2},
		{"{a=`((((`}", 2},
		{`{a="\"(((("}`, 2},
		{`{a="\\"} + ((1))`, 4},
		{"1 # ((((( \" \n + (1)", 3},
		{"# \"\n((1))", 3},
		{"1 # `\r((1))", 3},
		// A newline ends a quoted string for the lexer (with an error):
		// the scan goes on counting after it.
		{"{a=\"x\n((((1))))", 6},
		// Unbalanced text counts as if closed at the end; a stray closing
		// bracket is ignored.
		{"((((", 5},
		{")))(1)", 2},
		{"(]", 2},
	} {
		if got := Depth(tc.in); got != tc.want {
			t.Errorf("Depth(%q) = %d, want %d", tc.in, got, tc.want)
		}
	}
}

// defaults returns the limits as the flags set them.
func defaults(t testing.TB) limits.Limits {
	t.Helper()
	var l limits.Limits
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	l.RegisterFlags(fs)
	return l
}

// TestCheck is the regression test of #12 item 1 at the guard: the nested
// expressions of the report are refused before parsing, naming the limit.
func TestCheck(t *testing.T) {
	lim := defaults(t)
	lim.MaxQueryExpressionSizeBytes, lim.MaxQueryExpressionDepth = 100, 10
	for _, tc := range []struct {
		name  string
		texts []string
		kind  error
		msg   string
	}{
		{"ordinary", []string{"sum(rate(x[5m]))"}, nil, ""},
		{"at the depth limit", []string{nested(9)}, nil, ""},
		{"over the depth limit", []string{nested(10)}, ErrTooDeep,
			"the PromQL of query nests more than 10 levels deep, the limit of tenant t (-querier.max-query-expression-depth, or max_query_expression_depth in the runtime file"},
		{"the report's attack", []string{nested(2000)}, ErrTooLarge,
			"the PromQL of query is 4001 bytes, more than the limit of 100 bytes of tenant t (-querier.max-query-expression-size-bytes, or max_query_expression_size_bytes in the runtime file)"},
		{"operator chain", []string{strings.Repeat("1+", 10) + "1"}, ErrTooDeep, "nests more than 10 levels"},
		{"at the size limit", []string{strings.Repeat("a", 100)}, nil, ""},
		{"sizes add up", []string{strings.Repeat("a", 50), strings.Repeat("b", 51)}, ErrTooLarge, "is 101 bytes"},
		{"the deepest text counts", []string{"a", nested(12)}, ErrTooDeep, "nests more than 10"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Check("t", lim, "query", tc.texts...)
			if tc.kind == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, tc.kind) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("got %v, want %v mentioning %q", err, tc.kind, tc.msg)
			}
			if _, ok := errors.AsType[*Error](err); !ok {
				t.Fatalf("%T is not an *Error", err)
			}
		})
	}
	if err := Check("t", limits.Limits{}, "query", nested(100_000)); err != nil {
		t.Fatalf("0 means unlimited: %v", err)
	}
	strict := lim
	strict.MaxQueryExpressionDepth = 2
	byTenant := map[string]limits.Limits{"a": lim, "b": strict}
	err := CheckEach([]string{"a", "b"}, func(id string) limits.Limits { return byTenant[id] }, "match[]", "sum(x) + 1")
	if !errors.Is(err, ErrTooDeep) || !strings.Contains(err.Error(), "of tenant b") {
		t.Fatalf("federated: the strictest tenant decides, got %v", err)
	}
}

func TestCheckRead(t *testing.T) {
	lim := defaults(t)
	lim.MaxQueryExpressionSizeBytes = 1000
	body := func(matchers, valueLen int) []byte {
		q := &prompb.Query{StartTimestampMs: 1, EndTimestampMs: 2}
		for range matchers {
			q.Matchers = append(q.Matchers, &prompb.LabelMatcher{Type: prompb.LabelMatcher_RE, Name: "a", Value: strings.Repeat("x", valueLen)})
		}
		b, err := (&prompb.ReadRequest{Queries: []*prompb.Query{q, q}}).Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return snappy.Encode(nil, b)
	}
	// A snappy header claiming 1 GiB, with nothing behind it.
	bomb := []byte{0x80, 0x80, 0x80, 0x80, 0x04}
	for _, tc := range []struct {
		name string
		body []byte
		kind error
		msg  string
	}{
		{"small", body(2, 10), nil, ""},
		{"matchers over the size limit", body(10, 50), ErrTooLarge,
			"the matchers of the remote-read request are 1100 bytes, more than the limit of 1000 bytes of tenant t (-querier.max-query-expression-size-bytes"},
		{"many empty matchers count too", body(200, 0), ErrTooLarge, "are 2000 bytes"},
		{"decompression bomb", bomb, ErrTooLarge, "decompresses to 1073741824 bytes, more than 67536 bytes, twice the limit of 1000 bytes"},
		{"not snappy", []byte("\xff\xff\xff\xff\xff\xff"), nil, "snappy"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckRead("t", lim, tc.body)
			switch {
			case tc.msg == "" && err != nil:
				t.Fatal(err)
			case tc.msg != "" && (err == nil || !strings.Contains(err.Error(), tc.msg)):
				t.Fatalf("got %v, want an error mentioning %q", err, tc.msg)
			case tc.kind != nil && !errors.Is(err, tc.kind):
				t.Fatalf("got %v, want %v", err, tc.kind)
			}
		})
	}
	if got, want := MaxReadBody(lim), int64(snappy.MaxEncodedLen(2*1000+64<<10)); got != want {
		t.Fatalf("MaxReadBody = %d, want %d", got, want)
	}
	if err := CheckRead("t", limits.Limits{}, bomb); err == nil || !strings.Contains(err.Error(), "the most FluxPulse decompresses") {
		t.Fatalf("unlimited still bounds decompression: %v", err)
	}
}

func TestCheckSubqueries(t *testing.T) {
	lim := defaults(t)
	now := time.Unix(1_700_000_000, 0)
	p := parser.NewParser(parser.Options{})
	for _, tc := range []struct {
		expr string
		span time.Duration
		msg  string
	}{
		{"max_over_time(rate(m[5m])[1d:5m])", 0, ""},
		{"max_over_time(rate(m[5m])[1d:5m])", 7 * 24 * time.Hour, ""}, // 2,304 steps
		{"max_over_time(m[3h:1s])", 0, ""},                            // 10,801
		{"max_over_time(m[4h:1s])", 0, "evaluates 14401 steps (4h0m0s of range and of the range around it, at a step of 1s), more than the limit of 11000 of tenant t (-querier.max-subquery-steps, or max_subquery_steps in the runtime file)"},
		{"count_over_time(vector(1)[1y:1ms])", 0, "evaluates 31536000001 steps"},
		{"max_over_time(m[1h:1s])", 3 * time.Hour, "evaluates 14401 steps"},           // a range query adds its span
		{"max_over_time(max_over_time(m[1h:1m])[2h:1s])", 0, ""},                      // the inner: 3h at 1m
		{"max_over_time(max_over_time(m[2h:1s])[2h:1m])", 0, "evaluates 14401 steps"}, // the inner: 2h + 2h at 1s
		{"max_over_time(m[(2h+2h):(1s*1)])", 0, "evaluates 14401 steps"},              // duration expressions
		{"max_over_time(m[12h:])", 0, ""},                                             // the default step, 1m
		{"max_over_time(m[12d:])", 0, "at a step of 1m0s"},
	} {
		e, err := p.ParseExpr(tc.expr)
		if err != nil {
			t.Fatal(err)
		}
		if e, err = promql.PreprocessExpr(e, now, now.Add(tc.span), time.Minute); err != nil {
			t.Fatal(err)
		}
		err = CheckSubqueries("t", lim, e, tc.span, time.Minute)
		if tc.msg == "" && err != nil || tc.msg != "" && (!errors.Is(err, ErrTooManySteps) || !strings.Contains(err.Error(), tc.msg)) {
			t.Errorf("%s over %s: %v, want %q", tc.expr, tc.span, err, tc.msg)
		}
	}
	e, _ := p.ParseExpr("count_over_time(vector(1)[1y:1ms])")
	if err := CheckSubqueries("t", limits.Limits{}, e, 0, time.Minute); err != nil {
		t.Fatalf("0 means unlimited: %v", err)
	}
}
