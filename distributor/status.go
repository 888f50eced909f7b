package distributor

import (
	"context"
	"errors"
	"net/http"

	"github.com/fluxpulse/fluxpulse/remotewrite"
)

// httpError is a refusal with the status it maps to.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

// statusClientClosedRequest is what the answer to a request whose sender
// went away is counted as (nginx's convention); nobody reads it.
const statusClientClosedRequest = 499

// statusOf is the one place where an error of a push becomes the HTTP status
// answered to the sender. The distributor's own refusals carry their status;
// the Pusher's errors are told apart by the kinds of remotewrite
// (ErrUnavailable, ErrLimited, ErrInvalid), which its errors wrap whether it
// runs in process or remotely. 4xx tells the sender not to retry except for
// 429; 5xx asks it to retry.
func statusOf(err error) int {
	if he, ok := errors.AsType[*httpError](err); ok {
		return he.status
	}
	switch {
	case errors.Is(err, remotewrite.ErrUnavailable):
		return http.StatusServiceUnavailable
	case errors.Is(err, remotewrite.ErrLimited):
		return http.StatusTooManyRequests
	case errors.Is(err, remotewrite.ErrInvalid):
		return http.StatusBadRequest
	case errors.Is(err, context.Canceled):
		return statusClientClosedRequest
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}
