package rpc

import (
	"fmt"

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

// codec encodes selfMarshalers with their own methods and everything else
// (the gRPC health service's messages) with google.golang.org/protobuf. It
// is forced on both sides, so that gogo types never reach the standard
// codec, which cannot encode them.
type codec struct{}

func (codec) Marshal(v any) ([]byte, error) {
	switch m := v.(type) {
	case selfMarshaler:
		return m.Marshal()
	case proto.Message:
		return proto.Marshal(m)
	}
	return nil, fmt.Errorf("rpc: cannot encode %T", v)
}

// Unmarshal decodes data into v. data belongs to gRPC and is reused after
// Unmarshal returns: messages that keep bytes copy them.
func (codec) Unmarshal(data []byte, v any) error {
	switch m := v.(type) {
	case selfMarshaler:
		return m.Unmarshal(data)
	case proto.Message:
		return proto.Unmarshal(data, m)
	}
	return fmt.Errorf("rpc: cannot decode into %T", v)
}

func (codec) Name() string { return codecName }
