package queryguard

import (
	"errors"
	"fmt"

	"github.com/fluxpulse/fluxpulse/limits"
)

// ErrTooLarge is wrapped by a refusal of PromQL longer than the tenant's
// max_query_expression_size_bytes.
var ErrTooLarge = errors.New("PromQL expression too large")

// ErrTooDeep is wrapped by a refusal of PromQL nested deeper than the
// tenant's max_query_expression_depth.
var ErrTooDeep = errors.New("PromQL expression nested too deeply")

// Error is a refusal. Its message names the limit, its value, and the flag
// and runtime key that change it; it unwraps to ErrTooLarge or ErrTooDeep.
// Handlers answer it with 400 bad_data: the same request fails again.
type Error struct {
	msg  string
	kind error
}

func (e *Error) Error() string { return e.msg }

// Unwrap returns ErrTooLarge or ErrTooDeep.
func (e *Error) Unwrap() error { return e.kind }

// Check checks the PromQL texts of one request of tenant against the
// tenant's limits, before any of them reaches the parser. what names the
// texts in the message ("query", "match[]", `the expr of rule "x"`). The
// size is that of all texts together, so that many match[] selectors count
// like one long one; the depth is that of the deepest text. The cost is one
// pass over the bytes, none if both limits are 0 (unlimited).
func Check(tenant string, lim limits.Limits, what string, texts ...string) error {
	if max := lim.MaxQueryExpressionSizeBytes; max > 0 {
		n := 0
		for _, s := range texts {
			n += len(s)
		}
		if n > max {
			return &Error{kind: ErrTooLarge, msg: fmt.Sprintf("the PromQL of %s is %d bytes, more than the limit of %d bytes of tenant %s (%s)",
				what, n, max, tenant, limits.Source(limits.FlagMaxQueryExprSize))}
		}
	}
	if max := lim.MaxQueryExpressionDepth; max > 0 {
		for _, s := range texts {
			if d := depth(s, max); d > max {
				return &Error{kind: ErrTooDeep, msg: fmt.Sprintf("the PromQL of %s nests more than %d levels deep, the limit of tenant %s (%s; "+
					"each (, [ or { and each operator adds a level)", what, max, tenant, limits.Source(limits.FlagMaxQueryExprDepth))}
			}
		}
	}
	return nil
}

// CheckEach is Check for the texts of a request made for several tenants
// (a federated read): every tenant's limits apply, so the strictest decides.
func CheckEach(tenants []string, lim func(tenant string) limits.Limits, what string, texts ...string) error {
	for _, id := range tenants {
		if err := Check(id, lim(id), what, texts...); err != nil {
			return err
		}
	}
	return nil
}
