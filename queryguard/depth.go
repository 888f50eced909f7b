package queryguard

// Depth returns how deeply the PromQL text s nests, as the guard counts it:
// an upper bound on the depth of the syntax tree Prometheus's parser builds
// from s, found in one pass over the bytes without parsing.
//
//   - Each (, [ or { opens a level one deeper than the expression around it.
//   - Within a level, each operator adds one: binary operators chain
//     (a + b + c is a tree as deep as it is long), and so do unary + and -.
//     The operators are + - * / % ^ == != < > <= >= and the keywords and,
//     or, unless, atan2. Each [ also adds one where it stands, because a
//     range or subquery wraps the expression before it.
//   - Inside { } (label matchers) nothing else counts: = != =~ !~ there are
//     matchers, not operators.
//   - Nothing counts inside string literals ("…" and '…' with backslash
//     escapes, `…` raw) or comments (# to the end of the line).
//
// A level's depth is 1 + its operators + the depth of its deepest inner
// level; Depth is that of the whole text. So 1 is 1, sum(x) is 2, a + b * c
// is 3, and sum(rate(x[5m])) is 5 (the tree is 4 deep: aggregation, call,
// range, selector). Unbalanced text is counted as if it were closed at the
// end: the parser refuses it, but only after reading it.
//
// Where the scan and Prometheus's lexer could disagree (a quote inside a
// range's brackets, an unknown escape, a newline in a quoted string) the
// lexer stops with an error there, so nothing after it is parsed; the scan
// only ever counts more than the parser can see, never less. The fuzz test
// FuzzDepth checks both against the real lexer and parser.
func Depth(s string) int { return depth(s, len(s)+1) }

// depth is Depth, except that it gives up as soon as more than stop levels
// are open (the depth is then more than stop), so that the levels it keeps
// stay few.
func depth(s string, stop int) int {
	var sc scanner
	sc.levels = sc.buf[:1]
	for i := 0; i < len(s); i++ {
		i = sc.step(s, i)
		if len(sc.levels) > stop+1 {
			return len(sc.levels) - 1
		}
	}
	for len(sc.levels) > 1 {
		sc.close()
	}
	return sc.levels[0].depth()
}

// level is one open bracket (or the whole text).
type level struct {
	ops      int  // operators directly in this level
	deepest  int  // depth of the deepest level inside it
	matchers bool // opened by {: operators do not count
}

func (l level) depth() int { return 1 + l.ops + l.deepest }

type scanner struct {
	levels []level
	buf    [16]level
}

func (sc *scanner) top() *level { return &sc.levels[len(sc.levels)-1] }

func (sc *scanner) open(matchers bool) {
	sc.levels = append(sc.levels, level{matchers: matchers})
}

// close ends the innermost level; a closing bracket with none open is
// ignored (the lexer stops there).
func (sc *scanner) close() {
	if len(sc.levels) == 1 {
		return
	}
	d := sc.top().depth()
	sc.levels = sc.levels[:len(sc.levels)-1]
	if t := sc.top(); d > t.deepest {
		t.deepest = d
	}
}

func (sc *scanner) op() {
	if t := sc.top(); !t.matchers {
		t.ops++
	}
}

// step scans the token that starts at s[i] and returns the index of its
// last byte.
func (sc *scanner) step(s string, i int) int {
	switch c := s[i]; c {
	case '(', '{':
		sc.open(c == '{')
	case '[':
		sc.op()
		sc.open(false)
	case ')', ']', '}':
		sc.close()
	case '+', '-', '*', '/', '%', '^':
		sc.op()
	case '=', '!', '<', '>':
		two := i+1 < len(s) && (s[i+1] == '=' || s[i+1] == '~')
		if two {
			i++ // ==, !=, <=, >=, =~, !~: one token
		}
		if c != '=' || two && s[i] == '=' {
			sc.op() // = and =~ are matchers, == is an operator
		}
	case '"', '\'':
		return quoted(s, i)
	case '`':
		return raw(s, i)
	case '#':
		return comment(s, i)
	default:
		if isWord(c) {
			return sc.word(s, i)
		}
	}
	return i
}

// word scans a name, keyword or number and counts the keyword operators.
func (sc *scanner) word(s string, i int) int {
	j := i
	for j+1 < len(s) && isWord(s[j+1]) {
		j++
	}
	switch w := s[i : j+1]; len(w) {
	case 2, 3, 5, 6:
		if eqFold(w, "or") || eqFold(w, "and") || eqFold(w, "unless") || eqFold(w, "atan2") {
			sc.op()
		}
	}
	return j
}

// quoted returns the index of the quote that ends the string starting at
// s[i], of the newline that ends it for the lexer (with an error), or of
// the last byte.
func quoted(s string, i int) int {
	q := s[i]
	for j := i + 1; j < len(s); j++ {
		switch s[j] {
		case '\\':
			j++
		case q, '\n':
			return j
		}
	}
	return len(s) - 1
}

// raw returns the index of the backtick that ends the raw string starting
// at s[i], or of the last byte.
func raw(s string, i int) int {
	for j := i + 1; j < len(s); j++ {
		if s[j] == '`' {
			return j
		}
	}
	return len(s) - 1
}

// comment returns the index of the last byte of the comment starting at
// s[i]: the lexer ends a comment before \r or \n.
func comment(s string, i int) int {
	for j := i + 1; j < len(s); j++ {
		if s[j] == '\n' || s[j] == '\r' {
			return j - 1
		}
	}
	return len(s) - 1
}

// isWord reports whether c can be part of a name or keyword as the lexer
// reads them: a keyword the lexer finds is a whole word here too (with
// unquoted UTF-8 names enabled the scan may find one more, which only
// counts more).
func isWord(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == ':'
}

// eqFold compares ASCII case-insensitively: PromQL keywords are.
func eqFold(w, kw string) bool {
	if len(w) != len(kw) {
		return false
	}
	for k := range len(w) {
		if w[k]|0x20 != kw[k] {
			return false
		}
	}
	return true
}
