package encryption_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/fluxpulse/fluxpulse/bucket"
	"github.com/fluxpulse/fluxpulse/encryption"
)

// ExampleNewBucket stores an object encrypted under tenant "acme" and reads
// a range of it back.
func ExampleNewBucket() {
	dir, err := os.MkdirTemp("", "fluxpulse-example-")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	raw, err := bucket.NewFilesystem(filepath.Join(dir, "bucket"))
	if err != nil {
		fmt.Println(err)
		return
	}
	kf, err := encryption.LoadOrCreate(filepath.Join(dir, "master-keys.json"))
	if err != nil {
		fmt.Println(err)
		return
	}
	enc := encryption.NewBucket(raw, encryption.NewKeyring(raw, kf, encryption.KeyringOptions{}))
	ctx := context.Background()
	if err := enc.Upload(ctx, "acme/blocks/01/index", strings.NewReader("hello, encrypted world")); err != nil {
		fmt.Println(err)
		return
	}
	rc, err := enc.GetRange(ctx, "acme/blocks/01/index", 7, 9)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	fmt.Println(string(b), err)
	attrs, err := enc.Attributes(ctx, "acme/blocks/01/index")
	fmt.Println(attrs.Size, err)
	stored, err := raw.Attributes(ctx, "acme/blocks/01/index")
	fmt.Println(stored.Size, err)
	// Output:
	// encrypted <nil>
	// 22 <nil>
	// 142 <nil>
}
