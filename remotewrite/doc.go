// Package remotewrite decodes Prometheus remote-write 1.0 and 2.0 requests
// into one in-memory form that the distributor validates and the ingester
// appends.
//
// Decoding allocates nothing per series in the steady state: a Request keeps
// its backing arrays between uses, and every string in a decoded Request
// (label names and values, metadata help and unit) aliases the decompressed
// request body. Those strings are valid only until the Request is reset or
// returned with Release; whoever keeps one longer must copy it first
// (labels.ScratchBuilder.Labels and strings.Clone both copy).
//
// Native histograms are decoded through the generated gogo/protobuf types of
// the Prometheus module and converted to the tsdb histogram types; they
// allocate, which is fine for their rate.
package remotewrite
