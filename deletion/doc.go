// Package deletion holds a tenant's requests to delete series (#14): what
// a request is, how the API's parameters become one (every refusal a 400
// that names the field), where requests are kept (encrypted, under
// <tenant>/deletion-requests/ in the bucket, so that they survive restarts
// and every process of a cluster reads the same ones), and a cache of each
// tenant's requests for the read path.
//
// A request deletes the samples of the series matching any of its
// selectors with timestamps in [Start, End]. Its states:
//
//	pending ──cancel before CancellableUntil──► cancelled
//	   │
//	   └──CancellableUntil passed: the compactor tombstones the ingesters'
//	      heads (HeadsAppliedAt), then rewrites every block of the bucket
//	      holding deleted samples; once a scan finds none left──► processed
//
// Invariants: from the moment a request is stored, every read of the
// tenant hides what it matches, for as long as the request exists and is
// not cancelled (processed ones included: a block an ingester ships late
// must not show what was deleted). A request is processed only when no
// object in the bucket holds a sample it deletes. CancellableUntil is
// fixed when the request is made (-purger.delete-request-cancel-period
// later), so that every process agrees on it whatever its own flags say.
//
// The package is a leaf: the querier (hiding), the ingester (tombstones),
// the compactor (rewriting blocks) and the server (the HTTP API) use it;
// it uses none of them.
package deletion
