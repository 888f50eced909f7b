// Package rpc is the gRPC protocol between the roles of a FluxPulse
// cluster: the ingester's service (push, and the reads a querier makes),
// the codec that carries it, and the cluster credential every call
// carries.
//
// The service descriptors are written by hand rather than generated: the
// messages are Prometheus's own prompb types (gogo/protobuf, which marshal
// themselves) and a few small messages encoded here with protowire, so no
// protoc run or generated code is needed, and the push payload is the
// remote-write 1.0 encoding that the distributor builds once per series and
// the ingester decodes with FluxPulse's zero-allocation decoder.
//
// Every call is refused before any handler runs unless it carries the
// cluster's shared secret (-server.grpc-auth-token-file), compared in
// constant time. Calls to the ingester also carry the tenant, set by the
// client only from the context tenantauth made and put back into the
// context by the server; a call that names no tenant is refused.
package rpc
