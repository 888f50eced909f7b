package distributor

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"time"

	"github.com/golang/snappy"
)

// firstBuffer is the most a request body gets before its bytes arrive: it
// holds the usual remote-write request (2,000 samples make about 50 KiB).
const firstBuffer = 256 << 10

// body is a request body read and decompressed. data aliases buf, which is
// counted against -distributor.max-inflight-bytes until it is put back.
type body struct {
	buf  *[]byte
	data []byte // decompressed
	wire int    // compressed bytes received
}

// readBody reads the compressed body within -distributor.body-read-timeout
// and decompresses it. The compressed body's buffer is given back at once;
// on success the caller puts back body.buf.
func (d *Distributor) readBody(w http.ResponseWriter, r *http.Request) (body, error) {
	cbuf, err := d.readCompressed(w, r)
	if err != nil {
		return body{}, err
	}
	defer d.bufs.put(cbuf)
	b := body{wire: len(*cbuf)}
	b.buf, b.data, err = d.decompress(*cbuf)
	return b, err
}

// readCompressed reads the body into a buffer that grows with what actually
// arrives, from at most firstBuffer: a sender that announces a large body
// and trickles it holds only what it sent, not what its Content-Length
// claims.
func (d *Distributor) readCompressed(w http.ResponseWriter, r *http.Request) (*[]byte, error) {
	limit := d.cfg.MaxRequestSize
	if r.ContentLength > int64(limit) {
		return nil, &httpError{http.StatusRequestEntityTooLarge, fmt.Sprintf("request body of %d bytes is larger than the limit of %d bytes (-%s)", r.ContentLength, limit, FlagMaxRequestSize)}
	}
	// A body must arrive in time: a sender trickling it would hold the
	// request, its buffer and its connection for the server's whole read
	// timeout. Recorders in tests support no deadline; nothing to bound there.
	rc := http.NewResponseController(w)
	deadline := rc.SetReadDeadline(time.Now().Add(d.cfg.BodyReadTimeout)) == nil
	size := firstBuffer
	if r.ContentLength >= 0 {
		size = min(int(r.ContentLength), firstBuffer)
	}
	buf, err := d.bufs.get(size)
	if err != nil {
		return nil, err
	}
	if err := d.fill(r.Body, &buf); err != nil {
		d.bufs.put(buf)
		return nil, err
	}
	if deadline {
		_ = rc.SetReadDeadline(time.Time{}) // the server's own timeouts apply again
	}
	return buf, nil
}

// fill reads body to its end into *buf, growing it up to
// -distributor.max-request-size.
func (d *Distributor) fill(body io.Reader, buf **[]byte) error {
	limit := d.cfg.MaxRequestSize
	for {
		b := **buf
		if len(b) < cap(b) {
			n, err := body.Read(b[len(b):cap(b)])
			**buf = b[:len(b)+n]
			switch {
			case len(b)+n > limit:
				return d.tooLarge()
			case errors.Is(err, io.EOF):
				return nil
			case err != nil:
				return readError(err, d.cfg.BodyReadTimeout)
			}
			continue
		}
		// Full: one more byte says whether the body goes on.
		var one [1]byte
		n, err := body.Read(one[:])
		switch {
		case n == 0 && errors.Is(err, io.EOF):
			return nil
		case n == 0 && err != nil:
			return readError(err, d.cfg.BodyReadTimeout)
		case n == 0:
			continue
		case len(b) >= limit:
			return d.tooLarge()
		}
		nb, gerr := d.bufs.grow(*buf, min(2*cap(b), limit))
		*buf = nb
		if gerr != nil {
			return gerr
		}
		*nb = append(*nb, one[0])
		if errors.Is(err, io.EOF) {
			return nil
		}
	}
}

func (d *Distributor) tooLarge() error {
	return &httpError{http.StatusRequestEntityTooLarge, fmt.Sprintf("request body is larger than the limit of %d bytes (-%s)", d.cfg.MaxRequestSize, FlagMaxRequestSize)}
}

func readError(err error, timeout time.Duration) error {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return &httpError{http.StatusRequestTimeout, fmt.Sprintf("the request body did not arrive within %s (-%s)", timeout, FlagBodyReadTimeout)}
	}
	return &httpError{http.StatusBadRequest, fmt.Sprintf("reading request body: %v", err)}
}

// maxSnappyRatio bounds what a snappy block can decode to, from the format:
// a literal of n bytes costs at least n+1; a copy costs 2 bytes for at most
// 11 bytes of output (1-byte offset), 3 bytes for at most 64 (2-byte offset)
// or 5 bytes for at most 64 (4-byte offset). No element gives more than 64
// bytes per 3, so n bytes of elements decode to at most 64n/3 bytes.
const maxSnappyOut, maxSnappyIn = 64, 3

// maxSnappyDecodedLen returns the most that a snappy block of n bytes, with
// a length header of header bytes, can decode to.
func maxSnappyDecodedLen(n, header int) int {
	return (n - header) * maxSnappyOut / maxSnappyIn
}

// decompress decodes a snappy block into a buffer of d.bufs. The length the
// block's header claims is checked against what the block could decode to
// and against the limits before anything is allocated for it.
func (d *Distributor) decompress(in []byte) (*[]byte, []byte, error) {
	n, header := binary.Uvarint(in)
	if header <= 0 || n > math.MaxUint32 {
		return nil, nil, &httpError{http.StatusBadRequest, "body is not valid snappy block format: its length header is malformed"}
	}
	if most := maxSnappyDecodedLen(len(in), header); n > uint64(most) {
		return nil, nil, &httpError{http.StatusBadRequest, fmt.Sprintf(
			"body is not valid snappy block format: its header claims %d bytes, but %d bytes of snappy decode to at most %d", n, len(in), most)}
	}
	if limit := d.cfg.MaxDecompressedRequestSize; n > uint64(limit) {
		return nil, nil, &httpError{http.StatusRequestEntityTooLarge, fmt.Sprintf("request body decompresses to %d bytes, more than the limit of %d bytes (-%s)", n, limit, FlagMaxDecompressedRequestSize)}
	}
	buf, err := d.bufs.get(int(n))
	if err != nil {
		return nil, nil, err
	}
	out, err := snappy.Decode((*buf)[:cap(*buf)], in)
	if err != nil {
		d.bufs.put(buf)
		return nil, nil, &httpError{http.StatusBadRequest, fmt.Sprintf("body is not valid snappy block format: %v", err)}
	}
	return buf, out, nil
}
