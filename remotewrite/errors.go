package remotewrite

import "errors"

// Kinds of push failure. A Pusher (the ingester, in process or over the
// network) wraps one of them in the error it returns so that the layer
// answering the sender can pick the status with errors.Is without knowing
// the Pusher's own errors. An error that wraps none of them is an internal
// fault.
var (
	// ErrUnavailable means the store cannot take the push now (it is
	// shutting down, or holds as many tenants as it may) and nothing was
	// stored. The sender should retry, later or elsewhere: 503.
	ErrUnavailable = errors.New("store unavailable")
	// ErrLimited means a limit refused the whole push for now, for example
	// the tenant's ingestion rate. The sender should retry later: 429.
	ErrLimited = errors.New("limit reached")
	// ErrInvalid means the request can never be stored as sent. The sender
	// must not retry it: 400.
	ErrInvalid = errors.New("invalid request")
)

// NewError returns an error with the message msg that errors.Is matches with
// kind, one of the kinds above, as well as with itself: a Pusher's own
// sentinel errors are made with it.
func NewError(kind error, msg string) error { return &kindError{kind: kind, msg: msg} }

type kindError struct {
	kind error
	msg  string
}

func (e *kindError) Error() string { return e.msg }

func (e *kindError) Is(target error) bool { return target == e.kind }
