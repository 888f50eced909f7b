package encryption

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"

	"github.com/minio/sio"

	"github.com/fluxpulse/fluxpulse/bucket"
	"github.com/fluxpulse/fluxpulse/tenantauth"
)

// Bucket encrypts every object it stores and decrypts every object it
// reads, under keys of the tenant that the first segment of the object's
// name names. Ranged reads fetch and decrypt only the 64 KiB packages that
// cover the range. Sizes and listings are those of the plaintext objects;
// the tenants' key directories (<tenant>/keys/) are hidden and reserved.
type Bucket struct {
	inner bucket.Bucket
	kr    *Keyring
}

var _ bucket.Bucket = (*Bucket)(nil)

// NewBucket returns an encrypting view of inner. kr must keep its keys in
// the same inner bucket.
func NewBucket(inner bucket.Bucket, kr *Keyring) *Bucket {
	return &Bucket{inner: inner, kr: kr}
}

// tenantOf validates name and returns its tenant: names are
// <tenant>/<path>, and <tenant>/keys/… is reserved for data keys.
func tenantOf(name string) (string, error) {
	if err := bucket.ValidateName(name); err != nil {
		return "", err
	}
	tenant, rest, ok := strings.Cut(name, "/")
	if !ok {
		return "", fmt.Errorf("%w: %q must be <tenant>/<path>", bucket.ErrInvalidName, name)
	}
	if err := tenantauth.ValidateID(tenant); err != nil {
		return "", fmt.Errorf("%w: %q: %w", bucket.ErrInvalidName, name, err)
	}
	if rest == keysDir || strings.HasPrefix(rest, keysDir+"/") {
		return "", fmt.Errorf("%w: %q: %s/%s/ is reserved for the tenant's data keys", bucket.ErrInvalidName, name, tenant, keysDir)
	}
	return tenant, nil
}

func darConfig(key []byte, seq uint32) sio.Config {
	return sio.Config{Key: key, MinVersion: sio.Version20, MaxVersion: sio.Version20,
		CipherSuites: []byte{sio.AES_256_GCM}, SequenceNumber: seq}
}

// Upload encrypts r with the tenant's newest data key while streaming it to
// the inner bucket.
func (b *Bucket) Upload(ctx context.Context, name string, r io.Reader) error {
	tenant, err := tenantOf(name)
	if err != nil {
		return err
	}
	id, dataKey, err := b.kr.currentKey(ctx, tenant)
	if err != nil {
		return fmt.Errorf("upload %q: %w", name, err)
	}
	h := header{keyID: id}
	_, _ = rand.Read(h.salt[:])
	keys, err := deriveObjectKeys(dataKey, h.salt, name)
	if err != nil {
		return err
	}
	// DARE encodes an empty stream as nothing at all, which a truncation
	// could fake; an empty plaintext is marked in the authenticated header.
	first := make([]byte, 1)
	n, err := io.ReadFull(r, first)
	if err != nil && err != io.EOF {
		return fmt.Errorf("upload %q: read source: %w", name, err)
	}
	h.empty = n == 0
	h.mac = h.computeMAC(keys.mac)
	var body io.Reader = bytes.NewReader(nil)
	if !h.empty {
		body, err = sio.EncryptReader(io.MultiReader(bytes.NewReader(first), r), darConfig(keys.enc, 0))
		if err != nil {
			return fmt.Errorf("upload %q: %w", name, err)
		}
	}
	return b.inner.Upload(ctx, name, io.MultiReader(bytes.NewReader(h.marshal()), body))
}

// Get decrypts the whole object as it streams.
func (b *Bucket) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	return b.GetRange(ctx, name, 0, -1)
}

// GetRange fetches the header and the DARE packages covering the plaintext
// range [off, off+length) (with one ranged GET when the range starts in the
// first package, two otherwise) and decrypts only those.
func (b *Bucket) GetRange(ctx context.Context, name string, off, length int64) (io.ReadCloser, error) {
	tenant, err := tenantOf(name)
	if err != nil {
		return nil, err
	}
	if off < 0 {
		return nil, fmt.Errorf("range offset %d is negative", off)
	}
	if length > math.MaxInt64-off {
		length = -1 // to the end, without overflowing below
	}
	if length == 0 {
		if _, err := b.inner.Attributes(ctx, name); err != nil {
			return nil, err
		}
		return io.NopCloser(bytes.NewReader(nil)), nil
	}
	first := off / packageSize
	if first >= 1<<32 {
		return io.NopCloser(bytes.NewReader(nil)), nil // past DARE's largest stream
	}
	span := int64(-1) // ciphertext bytes from the first package on
	if length > 0 {
		last := min((off+length-1)/packageSize, 1<<32-1)
		span = (last - first + 1) * encPackSize
	}
	var hdrBytes []byte
	var body io.ReadCloser
	if first == 0 {
		body, err = b.inner.GetRange(ctx, name, 0, addSpan(HeaderSize, span))
		if err == nil {
			hdrBytes, err = readHeader(body)
		}
	} else {
		hdrBytes, err = b.readHeaderOnly(ctx, name)
		if err == nil {
			body, err = b.packagesFrom(ctx, name, first, span)
		}
	}
	if err != nil {
		if body != nil {
			body.Close()
		}
		return nil, fmt.Errorf("get %q: %w", name, err)
	}
	if body == nil {
		return io.NopCloser(bytes.NewReader(nil)), nil // the range starts past the end
	}
	r, err := b.openBody(ctx, tenant, name, hdrBytes, body, uint32(first))
	if err != nil {
		body.Close()
		return nil, fmt.Errorf("get %q: %w", name, err)
	}
	r.skip = off - first*packageSize
	r.left = length
	return r, nil
}

// packagesFrom fetches span bytes of DARE packages from package first on.
// It returns a nil reader if there is no such package, as when a range
// starts past the end of the object.
func (b *Bucket) packagesFrom(ctx context.Context, name string, first, span int64) (io.ReadCloser, error) {
	rc, err := b.inner.GetRange(ctx, name, HeaderSize+first*encPackSize, span)
	if err != nil {
		return nil, err
	}
	peek := make([]byte, 1)
	if n, err := io.ReadFull(rc, peek); n == 0 {
		rc.Close()
		if err == io.EOF {
			err = nil
		}
		return nil, err
	}
	return readCloser{io.MultiReader(bytes.NewReader(peek), rc), rc}, nil
}

type readCloser struct {
	io.Reader
	io.Closer
}

func addSpan(a, span int64) int64 {
	if span < 0 {
		return -1
	}
	return a + span
}

// readHeader reads the header from the start of an object.
func readHeader(r io.Reader) ([]byte, error) {
	hdr := make([]byte, HeaderSize)
	n, err := io.ReadFull(r, hdr)
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return nil, fmt.Errorf("%w: object is %d bytes long, shorter than the %d-byte header", ErrDecrypt, n, HeaderSize)
	}
	return hdr, err
}

func (b *Bucket) readHeaderOnly(ctx context.Context, name string) ([]byte, error) {
	rc, err := b.inner.GetRange(ctx, name, 0, HeaderSize)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return readHeader(rc)
}

// openBody authenticates the header and returns a reader decrypting body,
// which starts at DARE package seq.
func (b *Bucket) openBody(ctx context.Context, tenant, name string, hdrBytes []byte, body io.ReadCloser, seq uint32) (*plainReader, error) {
	h, err := parseHeader(hdrBytes)
	if err != nil {
		return nil, err
	}
	dataKey, err := b.kr.dataKey(ctx, tenant, h.keyID)
	if err != nil {
		return nil, err
	}
	keys, err := deriveObjectKeys(dataKey, h.salt, name)
	if err != nil {
		return nil, err
	}
	if want := h.computeMAC(keys.mac); !hmac.Equal(want[:], h.mac[:]) {
		return nil, fmt.Errorf("%w: header authentication failed: the object was modified, or copied from another name or tenant", ErrDecrypt)
	}
	r := &plainReader{name: name, body: body}
	if h.empty {
		r.r = emptyBody{body}
		return r, nil
	}
	r.r, err = sio.DecryptReader(body, darConfig(keys.enc, seq))
	if err != nil {
		return nil, err
	}
	return r, nil
}

var errDataAfterEmpty = errors.New("data follows the header of an empty object")

// emptyBody checks that nothing follows the header of an empty object.
type emptyBody struct{ r io.Reader }

func (e emptyBody) Read([]byte) (int, error) {
	if n, _ := e.r.Read(make([]byte, 1)); n > 0 {
		return 0, errDataAfterEmpty
	}
	return 0, io.EOF
}

// plainReader skips to the start of the range, stops at its end and turns
// DARE failures into ErrDecrypt.
type plainReader struct {
	name string
	r    io.Reader
	body io.Closer
	skip int64 // plaintext bytes still to discard
	left int64 // plaintext bytes still to return; negative: to the end
}

func (p *plainReader) Read(buf []byte) (int, error) {
	if p.skip > 0 {
		n, err := io.CopyN(io.Discard, p.r, p.skip)
		p.skip -= n
		if err != nil {
			return 0, p.wrap(err)
		}
	}
	if p.left == 0 {
		return 0, io.EOF
	}
	if p.left > 0 && int64(len(buf)) > p.left {
		buf = buf[:p.left]
	}
	n, err := p.r.Read(buf)
	if p.left > 0 {
		p.left -= int64(n)
	}
	return n, p.wrap(err)
}

func (p *plainReader) wrap(err error) error {
	var serr sio.Error
	switch {
	case err == nil || err == io.EOF:
		return err
	case errors.As(err, &serr):
		return fmt.Errorf("%w: object %q: %v: the object is corrupt, truncated or was modified", ErrDecrypt, p.name, serr)
	case errors.Is(err, errDataAfterEmpty):
		return fmt.Errorf("%w: object %q: %v", ErrDecrypt, p.name, err)
	}
	return fmt.Errorf("read %q: %w", p.name, err)
}

// Close closes the inner reader.
func (p *plainReader) Close() error { return p.body.Close() }

// Exists reports whether the object exists, without decrypting it.
func (b *Bucket) Exists(ctx context.Context, name string) (bool, error) {
	if _, err := tenantOf(name); err != nil {
		return false, err
	}
	return b.inner.Exists(ctx, name)
}

// Attributes returns the plaintext size, computed from the stored size
// without reading or authenticating the object.
func (b *Bucket) Attributes(ctx context.Context, name string) (bucket.Attributes, error) {
	if _, err := tenantOf(name); err != nil {
		return bucket.Attributes{}, err
	}
	a, err := b.inner.Attributes(ctx, name)
	if err != nil {
		return a, err
	}
	size, err := PlaintextSize(a.Size)
	if err != nil {
		return bucket.Attributes{}, fmt.Errorf("attributes of %q: %w", name, err)
	}
	a.Size = size
	return a, nil
}

// PlaintextSize returns the plaintext size of a stored object of the given
// size.
func PlaintextSize(stored int64) (int64, error) {
	if stored < HeaderSize {
		return 0, fmt.Errorf("%w: object is %d bytes long, shorter than the %d-byte header", ErrDecrypt, stored, HeaderSize)
	}
	size, err := sio.DecryptedSize(uint64(stored - HeaderSize))
	if err != nil {
		return 0, fmt.Errorf("%w: stored size %d: %v", ErrDecrypt, stored, err)
	}
	return int64(size), nil
}

// Iter lists the inner bucket, leaving out the tenants' key directories.
func (b *Bucket) Iter(ctx context.Context, dir string, opts bucket.IterOptions, f func(string) error) error {
	return b.inner.Iter(ctx, dir, opts, func(name string) error {
		if _, rest, ok := strings.Cut(name, "/"); ok && (rest == keysDir+"/" || strings.HasPrefix(rest, keysDir+"/")) {
			return nil
		}
		return f(name)
	})
}

// Delete deletes the object.
func (b *Bucket) Delete(ctx context.Context, name string) error {
	if _, err := tenantOf(name); err != nil {
		return err
	}
	return b.inner.Delete(ctx, name)
}

// Close closes the inner bucket.
func (b *Bucket) Close() error { return b.inner.Close() }
