package bucket_test

import (
	"testing"

	"github.com/fluxpulse/fluxpulse/bucket"
	"github.com/fluxpulse/fluxpulse/bucket/buckettest"
)

func TestFilesystemAcceptance(t *testing.T) {
	buckettest.Run(t, func(t *testing.T) bucket.Bucket {
		b, err := bucket.NewFilesystem(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return b
	}, buckettest.Options{})
}

func TestS3Acceptance(t *testing.T) {
	for _, tls := range []bool{false, true} {
		name := map[bool]string{false: "HTTP", true: "TLS"}[tls]
		t.Run(name, func(t *testing.T) {
			srv := buckettest.StartS3(t, tls)
			buckettest.Run(t, func(t *testing.T) bucket.Bucket { return srv.NewBucket(t) }, buckettest.Options{})
		})
	}
}
