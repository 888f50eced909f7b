// Package queryqueue queues the query frontend's sub-queries fairly per
// tenant in front of the queriers (#15).
//
// A Queue has a fixed number of querier worker slots
// (-query-frontend.querier-workers). Each tenant (or federated tenant set)
// has its own FIFO queue of waiting requests. Whenever a slot is free the
// Queue hands it to the head of the next tenant's queue in round-robin
// order, skipping tenants that already hold max_query_parallelism slots or
// every slot but one, so a tenant flooding the frontend with work leaves a
// slot free for another tenant's next request, and every other tenant with
// work is served within one turn of the ring. The default, GOMAXPROCS slots
// (at least 2), fits the querier in the same process: its work is
// CPU-bound, more slots than cores share the cores more thinly between more
// queries, and the slot a flooding tenant leaves free is then a core for
// the others.
//
// Invariants, under the Queue's mutex:
//   - a tenant is in the ring exactly while its queue is non-empty;
//   - free + the slots held by all tenants = the number of workers;
//   - a request is either waiting in its tenant's queue, or granted (it
//     holds a slot until its function returns), or gone (cancelled).
//
// A request whose context ends while it waits leaves the queue at once and
// holds no slot. A tenant with max-outstanding-requests-per-tenant requests
// waiting gets TooManyOutstandingError, which the HTTP layer answers with
// 429.
//
// The function of a request runs on the caller's goroutine, so the Queue
// starts no goroutines and needs no Run.
package queryqueue
