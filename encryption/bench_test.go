package encryption_test

import (
	"bytes"
	"io"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fluxpulse/fluxpulse/bucket"
	"github.com/fluxpulse/fluxpulse/bucket/buckettest"
)

// benchBuckets returns a raw filesystem bucket (instrumented on reg) and an
// encrypting bucket over it.
func benchBuckets(b *testing.B, reg prometheus.Registerer) map[string]bucket.Bucket {
	raw, err := bucket.Instrument(newFilesystem(b), "filesystem", reg)
	if err != nil {
		b.Fatal(err)
	}
	return map[string]bucket.Bucket{"raw": raw, "encrypted": newEnv(b, raw).enc}
}

func BenchmarkUpload(b *testing.B) {
	content := buckettest.Random(1, 16<<20)
	for _, kind := range []string{"raw", "encrypted"} {
		b.Run(kind, func(b *testing.B) {
			bkt := benchBuckets(b, nil)[kind]
			b.SetBytes(int64(len(content)))
			for b.Loop() {
				if err := bkt.Upload(b.Context(), "tenant-1/obj", bytes.NewReader(content)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkGet(b *testing.B) {
	content := buckettest.Random(1, 16<<20)
	for _, kind := range []string{"raw", "encrypted"} {
		b.Run(kind, func(b *testing.B) {
			bkt := benchBuckets(b, nil)[kind]
			buckettest.Upload(b, bkt, "tenant-1/obj", content)
			b.SetBytes(int64(len(content)))
			for b.Loop() {
				rc, err := bkt.Get(b.Context(), "tenant-1/obj")
				if err != nil {
					b.Fatal(err)
				}
				if _, err := io.Copy(io.Discard, rc); err != nil {
					b.Fatal(err)
				}
				rc.Close()
			}
		})
	}
}

// BenchmarkGetRange reads 4 KiB at spread offsets of a 64 MiB object and
// reports the bytes fetched from the bucket per read.
func BenchmarkGetRange(b *testing.B) {
	const size, length = 64 << 20, 4096
	content := buckettest.Random(2, size)
	for _, kind := range []string{"raw", "encrypted"} {
		b.Run(kind, func(b *testing.B) {
			reg := prometheus.NewRegistry()
			bkt := benchBuckets(b, reg)[kind]
			buckettest.Upload(b, bkt, "tenant-1/obj", content)
			buf := make([]byte, length)
			before, i := readBytes(b, reg), int64(0)
			b.SetBytes(length)
			for b.Loop() {
				off := (i * 7_654_321) % (size - length)
				i++
				rc, err := bkt.GetRange(b.Context(), "tenant-1/obj", off, length)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(rc, buf); err != nil {
					b.Fatal(err)
				}
				rc.Close()
			}
			b.ReportMetric(float64(readBytes(b, reg)-before)/float64(i), "fetched-B/op")
		})
	}
}
