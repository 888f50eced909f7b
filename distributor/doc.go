// Package distributor receives Prometheus remote write (1.0 and 2.0) for one
// tenant per request, validates it against that tenant's limits and hands
// what passes to a Pusher (the ingester).
//
// Status codes follow the remote-write specifications: 204 when everything
// was stored; 400 when anything was refused (the valid rest is still
// stored, and the body says how much was refused and why, naming series and
// limits); 408 for a body that arrives too slowly; 413 for a body over
// -distributor.max-request-size or -distributor.max-decompressed-request-size;
// 415 for a content type or encoding it does not speak; 429 for a tenant
// over its ingestion rate; 5xx only for faults worth a retry, in which case
// nothing was stored: 503 with Retry-After when the server is busy
// (-distributor.max-inflight-bytes) or the ingester cannot take the push now
// (shutting down, at -ingester.max-tenants), 500 for anything unforeseen.
// statusOf is the one place where errors become statuses; a Pusher's errors
// are told apart by the kinds remotewrite exports (ErrUnavailable,
// ErrLimited, ErrInvalid). 2.0 responses carry the
// X-Prometheus-Remote-Write-{Samples,Histograms,Exemplars}-Written headers,
// counting what was actually stored.
//
// Bodies: the compressed body must arrive within
// -distributor.body-read-timeout (408); the length its snappy header claims
// is checked against what the block can decode to at most and against
// -distributor.max-decompressed-request-size before anything is allocated
// for it (400, 413). The compressed and the decompressed body are reused
// from power-of-two free lists and counted, in use or kept, across all
// requests, against -distributor.max-inflight-bytes (503 with Retry-After
// over it); see bodyBuffers for how memory goes back to the operating
// system after a burst. The decoded request aliases the decompressed body, so the Pusher
// must copy what it keeps.
package distributor
