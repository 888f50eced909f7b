// Package frontend is the query frontend (#15): an http.Handler in front of
// the Prometheus query API of one or more queriers.
//
// A range query (/api/v1/query_range) is aligned to its step
// (-query-frontend.align-queries-with-step), split at multiples of
// -query-frontend.split-queries-by-interval (day boundaries by default) into
// pieces whose evaluation timestamps are exactly the unsplit query's, run
// piece by piece through a Scheduler (at most
// -query-frontend.max-query-parallelism at once), served from and stored in
// a results cache where the data is old enough, and merged into the answer
// Prometheus gives for the whole range. Everything else (instant queries,
// labels, series, remote read, …) passes through unchanged.
//
// Why splitting is exact: PromQL evaluates a range query at each step
// timestamp independently of the others, and Prometheus aligns a subquery's
// inner steps to absolute multiples of its step, so a piece evaluates the
// same points the whole range would. The exceptions are passed through
// unsplit, and the rule is deliberately conservative (splittable):
//   - an @ modifier anywhere (start() and end() depend on the range; a
//     fixed timestamp is safe in theory, but not worth the risk);
//   - the limit parameter (it keeps the first N series of the whole
//     range, which no piece knows) and the cost parameter;
//   - parameters Prometheus would refuse (bad times or step, end before
//     start, more than 11,000 points), so that its own error answers;
//   - a query that does not parse, for the same reason.
//
// Merging: the pieces' matrices are joined series by series (points keep
// their order: pieces are disjoint and in time order), sorted by labels as
// Prometheus sorts a matrix; warnings and infos are the union of the
// pieces', capped at 10 each as Prometheus caps them. A piece that fails
// fails the query with that piece's answer (status and body as the querier
// gave them), the earliest failing piece's if several fail.
//
// Invariants: the frontend never changes a query's text; a piece it sends
// is an ordinary query_range request the querier would accept from a
// client; with alignment off, the answer is byte-for-byte (up to the order
// of warnings) what the querier gives for the unsplit query.
package frontend
