package rpc

import (
	"fmt"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
)

// codecName is the content subtype of FluxPulse's gRPC messages.
const codecName = "proto"

// selfMarshaler is a message that encodes itself: the gogo/protobuf types
// of Prometheus and this package's own messages.
type selfMarshaler interface {
	Marshal() ([]byte, error)
	Unmarshal([]byte) error
}

// bufferUnmarshaler is a message that takes its encoding as gRPC received
// it, in pieces, and copies what it keeps itself: a push body is copied
// once, into a pooled buffer, instead of once into a fresh one and again.
type bufferUnmarshaler interface {
	unmarshalBuffers(mem.BufferSlice) error
}

// codec encodes selfMarshalers with their own methods and everything else
// (the gRPC health service's messages) with google.golang.org/protobuf. It
// is forced on both sides, so that gogo types never reach the standard
// codec, which cannot encode them. It is a gRPC CodecV2, so that a push
// received in several pieces is joined once, into a pooled buffer.
type codec struct{}

func (codec) Marshal(v any) (mem.BufferSlice, error) {
	var b []byte
	var err error
	switch m := v.(type) {
	case selfMarshaler:
		b, err = m.Marshal()
	case proto.Message:
		b, err = proto.Marshal(m)
	default:
		return nil, fmt.Errorf("rpc: cannot encode %T", v)
	}
	if err != nil {
		return nil, err
	}
	return mem.BufferSlice{mem.SliceBuffer(b)}, nil
}

// Unmarshal decodes data into v. data belongs to gRPC and is reused after
// Unmarshal returns, so every message but a bufferUnmarshaler gets a copy
// of its own: decoded messages may alias their encoding (the chunks of a
// select do).
func (codec) Unmarshal(data mem.BufferSlice, v any) error {
	if m, ok := v.(bufferUnmarshaler); ok {
		return m.unmarshalBuffers(data)
	}
	b := data.Materialize()
	switch m := v.(type) {
	case selfMarshaler:
		return m.Unmarshal(b)
	case proto.Message:
		return proto.Unmarshal(b, m)
	}
	return fmt.Errorf("rpc: cannot decode into %T", v)
}

func (codec) Name() string { return codecName }
