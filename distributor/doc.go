// Package distributor receives Prometheus remote write (1.0 and 2.0) for one
// tenant per request, validates it against that tenant's limits and hands
// what passes to a Pusher (the ingester).
//
// Status codes follow the remote-write specifications: 204 when everything
// was stored; 400 when anything was refused (the valid rest is still
// stored, and the body says how much was refused and why, naming series and
// limits); 413 for a body over -distributor.max-request-size or
// -distributor.max-decompressed-request-size; 415 for a content type or
// encoding it does not speak; 5xx only for faults worth a retry, in which
// case nothing was stored. 2.0 responses carry the
// X-Prometheus-Remote-Write-{Samples,Histograms,Exemplars}-Written headers,
// counting what was actually stored.
//
// Buffers: the compressed and the decompressed body come from a pool and go
// back to it when the request ends; the decoded request aliases the
// decompressed body, so the Pusher must copy what it keeps.
package distributor
