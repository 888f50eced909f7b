package rpc

import (
	"fmt"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/prompb"
	"google.golang.org/protobuf/encoding/protowire"
)

// SeriesRequest asks a store-gateway for the series of some of a tenant's
// blocks: those of Blocks that it holds, read for Query (time range,
// matchers, hints).
type SeriesRequest struct {
	Query  prompb.Query
	Blocks []ulid.ULID
}

// Marshal implements selfMarshaler.
func (m *SeriesRequest) Marshal() ([]byte, error) {
	q, err := m.Query.Marshal()
	if err != nil {
		return nil, err
	}
	b := protowire.AppendTag(nil, 1, protowire.BytesType)
	b = protowire.AppendBytes(b, q)
	return appendBlocks(b, 2, m.Blocks), nil
}

// Unmarshal implements selfMarshaler.
func (m *SeriesRequest) Unmarshal(b []byte) error {
	*m = SeriesRequest{}
	return walk(b, func(num protowire.Number, _ protowire.Type, _ uint64, raw []byte) error {
		switch num {
		case 1:
			return m.Query.Unmarshal(raw)
		case 2:
			return appendBlock(&m.Blocks, raw)
		}
		return nil
	})
}

// SeriesResponse is one message of a store-gateway's answer: a batch of
// series with their chunks, sorted by labels over the stream; the last
// message lists the blocks the answer is for (those of the request the
// store-gateway holds).
type SeriesResponse struct {
	Series []*prompb.ChunkedSeries
	Blocks []ulid.ULID
}

// Marshal implements selfMarshaler.
func (m *SeriesResponse) Marshal() ([]byte, error) {
	var b []byte
	for _, cs := range m.Series {
		enc, err := cs.Marshal()
		if err != nil {
			return nil, err
		}
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendBytes(b, enc)
	}
	return appendBlocks(b, 2, m.Blocks), nil
}

// Unmarshal implements selfMarshaler. The series copy what they keep.
func (m *SeriesResponse) Unmarshal(b []byte) error {
	*m = SeriesResponse{}
	return walk(b, func(num protowire.Number, _ protowire.Type, _ uint64, raw []byte) error {
		switch num {
		case 1:
			cs := &prompb.ChunkedSeries{}
			if err := cs.Unmarshal(raw); err != nil {
				return err
			}
			m.Series = append(m.Series, cs)
		case 2:
			return appendBlock(&m.Blocks, raw)
		}
		return nil
	})
}

func appendBlocks(b []byte, num protowire.Number, ids []ulid.ULID) []byte {
	for _, id := range ids {
		b = protowire.AppendTag(b, num, protowire.BytesType)
		b = protowire.AppendBytes(b, id[:])
	}
	return b
}

// appendBlock decodes a block ID (its 16 bytes) onto ids.
func appendBlock(ids *[]ulid.ULID, raw []byte) error {
	var id ulid.ULID
	if len(raw) != len(id) {
		return fmt.Errorf("block ID of %d bytes, want %d", len(raw), len(id))
	}
	copy(id[:], raw)
	*ids = append(*ids, id)
	return nil
}
