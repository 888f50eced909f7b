package rpc

import (
	"bytes"
	"testing"

	"google.golang.org/grpc/mem"
)

// TestCodecJoinsPieces decodes messages that gRPC received in one piece
// and in several: the push body is copied once, whole, and other messages
// see their encoding joined.
func TestCodecJoinsPieces(t *testing.T) {
	want := &LabelsRequest{Start: 1, End: 2, Name: "job", Limit: 7}
	enc, err := codec{}.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	flat := enc.Materialize()
	for _, cut := range [][]int{nil, {3}, {1, 5, 9}} {
		var pieces mem.BufferSlice
		at := 0
		for _, c := range append(cut, len(flat)) {
			pieces = append(pieces, mem.SliceBuffer(bytes.Clone(flat[at:c])))
			at = c
		}
		var got LabelsRequest
		if err := (codec{}).Unmarshal(pieces, &got); err != nil {
			t.Fatalf("cut at %v: %v", cut, err)
		}
		if got.Start != want.Start || got.End != want.End || got.Name != want.Name || got.Limit != want.Limit {
			t.Fatalf("cut at %v: got %+v, want %+v", cut, got, want)
		}
		var push PushRequest
		if err := (codec{}).Unmarshal(pieces, &push); err != nil {
			t.Fatalf("cut at %v: push: %v", cut, err)
		}
		if !bytes.Equal(push.Body, flat) {
			t.Fatalf("cut at %v: push body %x, want %x", cut, push.Body, flat)
		}
		putBody(push.Body)
	}
}
