package queryguard

import (
	"fmt"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"

	"github.com/fluxpulse/fluxpulse/limits"
)

// maxReadDecoded bounds the decompressed remote-read request when the
// tenant's size limit is 0 (unlimited): the compressed body Prometheus's
// handler reads is at most 32 MiB, but a snappy header may claim up to
// 4 GiB, which the decoder would allocate before looking further.
const maxReadDecoded = 32 << 20

// readOverhead is what a remote-read request holds besides its matchers
// (time ranges, hints, framing), allowed on top of the size limit.
const readOverhead = 64 << 10

// MaxReadBody returns the largest snappy-compressed remote-read body that
// can decompress to what CheckRead accepts for lim: the body to read, at
// most, before calling it.
func MaxReadBody(lim limits.Limits) int64 {
	return int64(snappy.MaxEncodedLen(maxReadSize(lim)))
}

func maxReadSize(lim limits.Limits) int {
	if lim.MaxQueryExpressionSizeBytes <= 0 {
		return maxReadDecoded
	}
	return min(2*lim.MaxQueryExpressionSizeBytes+readOverhead, maxReadDecoded)
}

// CheckRead checks a remote-read request body (snappy-compressed protobuf
// ReadRequest) of tenant before Prometheus's handler decodes it: the
// decompressed size, read from the snappy header without decompressing,
// then the matchers of all its queries together, which count against the
// size limit as their text would (name, operator and quoted value: the
// length of name and value plus 4 bytes), so that their number is bounded
// too. Matchers have no nesting.
// A body that does not decode is refused too, as the handler would.
func CheckRead(tenant string, lim limits.Limits, body []byte) error {
	n, err := snappy.DecodedLen(body)
	if err != nil {
		return fmt.Errorf("remote-read request: snappy: %w", err)
	}
	if max := maxReadSize(lim); n > max {
		why := "the most FluxPulse decompresses"
		if max < maxReadDecoded {
			why = fmt.Sprintf("twice the limit of %d bytes of tenant %s plus 64 KiB (%s)", lim.MaxQueryExpressionSizeBytes, tenant, limits.Source(limits.FlagMaxQueryExprSize))
		}
		return &Error{kind: ErrTooLarge, msg: fmt.Sprintf("the remote-read request decompresses to %d bytes, more than %d bytes, %s", n, max, why)}
	}
	raw, err := snappy.Decode(nil, body)
	if err != nil {
		return fmt.Errorf("remote-read request: snappy: %w", err)
	}
	var req prompb.ReadRequest
	if err := req.Unmarshal(raw); err != nil {
		return fmt.Errorf("remote-read request: %w", err)
	}
	size := 0
	for _, q := range req.Queries {
		for _, m := range q.Matchers {
			size += len(m.Name) + len(m.Value) + 4
		}
	}
	if max := lim.MaxQueryExpressionSizeBytes; max > 0 && size > max {
		return &Error{kind: ErrTooLarge, msg: fmt.Sprintf("the matchers of the remote-read request are %d bytes, more than the limit of %d bytes of tenant %s (%s)",
			size, max, tenant, limits.Source(limits.FlagMaxQueryExprSize))}
	}
	return nil
}
