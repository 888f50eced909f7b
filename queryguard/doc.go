// Package queryguard bounds the PromQL and label-matcher text that reaches
// Prometheus's parser (#12).
//
// The parser and the functions that print a parsed expression again cost
// more than linear time in how deeply the text nests: format_query on
// 2,000 nested parentheses (12 KB) took 5 s, on 10,000 more than 300 s and
// gigabytes, and none of it watches a context. So every endpoint that parses
// PromQL or label matchers (query, query_range, query_exemplars,
// format_query, parse_query, series, labels, label values, export, remote
// read, the rules API, deletion requests) first calls Check with the
// tenant's limits: the size of the text in bytes
// (-querier.max-query-expression-size-bytes) and its nesting depth
// (-querier.max-query-expression-depth), counted by Depth in one pass over
// the bytes. Text over either is refused before it is parsed, with an
// *Error that handlers answer with 400 and that names the limit, its value,
// the flag and the runtime key.
//
// CheckRead does the same for the matchers of a remote-read request, after
// checking the size its snappy header claims. CheckSubqueries bounds, after
// parsing and before evaluation, the steps each subquery evaluates
// (-querier.max-subquery-steps): the engine allocates per-step arrays for a
// subquery before it evaluates anything. A deletion API calls
// Check(tenant, lim, "match[]", selectors...) before parsing its selectors.
//
// With both text limits in force, the worst text accepted parses in about a
// millisecond and prints in well under a second (BenchmarkWorstAccepted),
// which is why no parse needs a context. Evaluation has one: the API passes
// the request's context to the engine.
package queryguard
