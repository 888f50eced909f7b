package distributor

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/fluxpulse/fluxpulse/ingester"
	"github.com/fluxpulse/fluxpulse/remotewrite"
)

// TestStatusOf checks the one mapping from push errors to HTTP statuses
// (#12: typed ingester errors answered 500).
func TestStatusOf(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want int
	}{
		{"too many tenants", fmt.Errorf("%w: the limit is 3 (-ingester.max-tenants)", ingester.ErrTooManyTenants), http.StatusServiceUnavailable},
		{"ingester closed", ingester.ErrClosed, http.StatusServiceUnavailable},
		{"wrapped twice", fmt.Errorf("push: %w", fmt.Errorf("tenant: %w", ingester.ErrClosed)), http.StatusServiceUnavailable},
		{"rate limited", fmt.Errorf("%w: over 10 samples/s", ErrRateLimited), http.StatusTooManyRequests},
		{"invalid", remotewrite.NewError(remotewrite.ErrInvalid, "bad"), http.StatusBadRequest},
		{"sender gone", fmt.Errorf("wait for TSDB: %w", context.Canceled), statusClientClosedRequest},
		{"deadline", fmt.Errorf("wait for TSDB: %w", context.DeadlineExceeded), http.StatusServiceUnavailable},
		{"own refusal", &httpError{http.StatusRequestEntityTooLarge, "too big"}, http.StatusRequestEntityTooLarge},
		{"own refusal wrapped", fmt.Errorf("x: %w", &httpError{http.StatusUnsupportedMediaType, "json"}), http.StatusUnsupportedMediaType},
		{"anything else", errors.New("disk on fire"), http.StatusInternalServerError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := statusOf(tc.err); got != tc.want {
				t.Fatalf("statusOf(%v) = %d, want %d", tc.err, got, tc.want)
			}
		})
	}
	// The sentinels stay themselves for errors.Is.
	if !errors.Is(fmt.Errorf("x: %w", ingester.ErrTooManyTenants), ingester.ErrTooManyTenants) || errors.Is(ingester.ErrClosed, ingester.ErrTooManyTenants) {
		t.Fatal("ingester sentinels do not match themselves only")
	}
}
