package remotewrite

import (
	"testing"

	"github.com/gogo/protobuf/proto"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
)

// The fuzz targets check that no input panics the decoders and that they
// agree with the generated gogo/protobuf decoders of the Prometheus module:
// whatever gogo accepts, the hand-written decoder accepts with the same
// content. Seeds are in testdata/fuzz.

func FuzzDecodeV1(f *testing.F) {
	for _, n := range []int{0, 1, 7} {
		b, err := proto.Marshal(testV1Request(n))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r := GetRequest()
		defer Release(r)
		err := DecodeV1(r, body)
		var want prompb.WriteRequest
		if proto.Unmarshal(body, &want) != nil {
			return
		}
		if err != nil {
			t.Fatalf("gogo decodes %x, DecodeV1 fails: %v", body, err)
		}
		if diff := compareV1(r, &want); diff != "" {
			t.Fatalf("decoding %x: %s", body, diff)
		}
	})
}

func FuzzDecodeV2(f *testing.F) {
	for _, n := range []int{0, 1, 6} {
		b, err := proto.Marshal(testV2Request(n))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r := GetRequest()
		defer Release(r)
		err := DecodeV2(r, body)
		var want writev2.Request
		if proto.Unmarshal(body, &want) != nil {
			return
		}
		if err != nil {
			t.Fatalf("gogo decodes %x, DecodeV2 fails: %v", body, err)
		}
		if diff := compareV2(r, &want); diff != "" {
			t.Fatalf("decoding %x: %s", body, diff)
		}
	})
}
