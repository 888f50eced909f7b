package queryguard

import (
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/prometheus/promql/parser"

	"github.com/fluxpulse/fluxpulse/limits"
)

// ErrTooManySteps is wrapped by a refusal of a subquery that would evaluate
// more steps than the tenant's max_subquery_steps.
var ErrTooManySteps = errors.New("subquery evaluates too many steps")

// CheckSubqueries checks, before evaluation, how many steps each subquery
// of expr evaluates when expr is evaluated over span (0 for an instant
// query): its range plus the span it is evaluated over (the query's, or
// the enclosing subquery's), divided by its step (defaultStep when it has
// none). Prometheus's engine allocates two arrays of that many elements for
// every subquery before it evaluates one step, and looks at the context
// only between steps: count_over_time(vector(1)[1y:1ms]), 40 bytes, asks
// for 500 GB and ends the process. Bounding the steps bounds that, and
// bounds what a range function over a nested subquery computes between two
// looks at the context (steps × points in the window).
//
// expr must come from promql.PreprocessExpr, which works out ranges and
// steps written as duration expressions.
func CheckSubqueries(tenant string, lim limits.Limits, expr parser.Expr, span, defaultStep time.Duration) error {
	max := lim.MaxSubquerySteps
	if max <= 0 {
		return nil
	}
	var err error
	parser.Inspect(expr, func(n parser.Node, path []parser.Node) error {
		sq, ok := n.(*parser.SubqueryExpr)
		if !ok || err != nil {
			return nil
		}
		total := span + sq.Range
		for _, p := range path {
			if outer, ok := p.(*parser.SubqueryExpr); ok {
				total += outer.Range
			}
		}
		step := sq.Step
		if step <= 0 {
			step = defaultStep
		}
		if step <= 0 {
			return nil
		}
		if steps := int64(total/step) + 1; steps > int64(max) {
			err = &Error{kind: ErrTooManySteps, msg: fmt.Sprintf("the subquery %s evaluates %d steps (%s of range and of the range around it, at a step of %s), "+
				"more than the limit of %d of tenant %s (%s)", sq, steps, total, step, max, tenant, limits.Source(limits.FlagMaxSubquerySteps))}
		}
		return nil
	})
	return err
}
