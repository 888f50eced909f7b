package distributor

import (
	"bytes"
	"encoding/binary"
	"flag"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang/snappy"

	"github.com/fluxpulse/fluxpulse/limits"
	"github.com/fluxpulse/fluxpulse/tenantauth"
)

// newTestDistributor returns a distributor with the default flags changed
// by mod and no Pusher: the tests here never get past the body.
func newTestDistributor(t testing.TB, mod func(*Config)) *Distributor {
	t.Helper()
	var cfg Config
	var lim limits.Limits
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	lim.RegisterFlags(fs)
	if mod != nil {
		mod(&cfg)
	}
	d, err := New(cfg, nil, limits.NewOverrides(lim), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// serve serves d on loopback for tenant "t".
func serve(t *testing.T, d *Distributor) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d.ServeHTTP(w, r.WithContext(tenantauth.With(r.Context(), "t", "t")))
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// waitFor polls cond until it holds or 30 seconds pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after 30s: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestInflightBytesBudget holds request bodies in flight up to
// -distributor.max-inflight-bytes: one more is refused with 503 and
// Retry-After, naming the flag, and is taken again once they are done (#12:
// the bytes being decompressed at once were not bounded).
func TestInflightBytesBudget(t *testing.T) {
	d := newTestDistributor(t, func(c *Config) {
		c.MaxRequestSize, c.MaxDecompressedRequestSize = 1<<20, 1<<20
		c.MaxInflightBytes = 4 << 20
	})
	url := serve(t, d)
	// Each held request announces 1 MiB and sends a part of it: it holds
	// the first buffer, 256 KiB, until the rest comes. 12 hold 3 MiB.
	const held = 12
	var wg sync.WaitGroup
	writers := make([]*io.PipeWriter, held)
	for k := range writers {
		pr, pw := io.Pipe()
		writers[k] = pw
		req, _ := http.NewRequest(http.MethodPost, url, pr)
		req.ContentLength = 1 << 20
		wg.Go(func() {
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
		})
		go func() { _, _ = pw.Write(make([]byte, firstBuffer)) }()
	}
	waitFor(t, "the held requests take their buffers", func() bool { return d.bufs.inUse() == held*firstBuffer })
	post := func(raw []byte) (int, string, string) {
		resp, err := http.Post(url, "", bytes.NewReader(snappy.Encode(nil, raw)))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Retry-After"), string(b)
	}
	// This one decompresses to 1 MiB: 3 MiB + 1 MiB and its compressed body
	// are over 4 MiB.
	if code, retry, body := post(make([]byte, 1<<20)); code != http.StatusServiceUnavailable || retry == "" || !strings.Contains(body, "-"+FlagMaxInflightBytes) {
		t.Fatalf("over the budget: %d (Retry-After %q) %q, want 503 naming -%s", code, retry, body, FlagMaxInflightBytes)
	}
	// A small one still fits.
	if code, _, body := post(make([]byte, 4<<10)); code != http.StatusBadRequest || !strings.Contains(body, "protobuf") {
		t.Fatalf("small request beside the held ones: %d %q, want it decoded (400: zeros are no protobuf)", code, body)
	}
	for _, pw := range writers {
		go func() {
			_, _ = pw.Write(make([]byte, 1<<20-firstBuffer))
			pw.Close()
		}()
	}
	wg.Wait()
	waitFor(t, "the budget is free again", func() bool { return d.bufs.inUse() == 0 })
}

// TestIdleTrim checks that memory is handed back once a burst that
// allocated buffers is over and the distributor is idle.
func TestIdleTrim(t *testing.T) {
	d := newTestDistributor(t, nil)
	d.bufs.idle = 50 * time.Millisecond
	var bufs []*[]byte
	for range 8 {
		b, err := d.bufs.get(8 << 20)
		if err != nil {
			t.Fatal(err)
		}
		bufs = append(bufs, b)
	}
	d.bufs.put(bufs[0])
	time.Sleep(2 * d.bufs.idle) // the others in flight: nothing may be trimmed
	if n := d.bufs.trimCount(); n != 0 {
		t.Fatalf("%d trims with buffers in flight", n)
	}
	for _, b := range bufs[1:] {
		d.bufs.put(b)
	}
	waitFor(t, "a trim once idle", func() bool { return d.bufs.trimCount() == 1 })
}

// FuzzDecompress feeds arbitrary bodies to the snappy path: it must never
// panic, never hand out more than a body can decode to, decode exactly what
// snappy decodes, and give its buffers back. Seeds are in
// testdata/fuzz/FuzzDecompress.
func FuzzDecompress(f *testing.F) {
	f.Add(snappy.Encode(nil, make([]byte, 100_000))) // as compressible as snappy's encoder makes anything
	f.Add(maxRatioBlock(1000))
	f.Add([]byte{})
	d := newTestDistributor(f, nil)
	f.Fuzz(func(t *testing.T, in []byte) {
		buf, out, err := d.decompress(in)
		if err != nil {
			if buf != nil {
				t.Fatal("a buffer came with an error")
			}
			if d.bufs.inUse() != 0 {
				t.Fatal("a failed decompression kept its buffer")
			}
			return
		}
		_, header := binary.Uvarint(in)
		if len(out) > maxSnappyDecodedLen(len(in), header) {
			t.Fatalf("%d bytes decoded to %d, over the bound of %d", len(in), len(out), maxSnappyDecodedLen(len(in), header))
		}
		want, werr := snappy.Decode(nil, in)
		if werr != nil || !bytes.Equal(out, want) {
			t.Fatalf("decoded %d bytes, snappy says %d (%v)", len(out), len(want), werr)
		}
		d.bufs.put(buf)
		if d.bufs.inUse() != 0 {
			t.Fatal("buffer not given back")
		}
	})
}

// maxRatioBlock is a snappy block that decodes to as much as the format
// allows: one literal byte, then k copies of 64 bytes at offset 1.
func maxRatioBlock(k int) []byte {
	b := binary.AppendUvarint(nil, uint64(1+64*k))
	b = append(b, 0x00, 'a')
	for range k {
		b = append(b, 63<<2|2, 1, 0) // copy, 2-byte offset: length 64, offset 1
	}
	return b
}

// TestSnappyBoundIsTight checks that the bound accepts what the format can
// really do, and that the encoder's output stays within it.
func TestSnappyBoundIsTight(t *testing.T) {
	for _, k := range []int{1, 2, 3, 1000, 10_000} {
		in := maxRatioBlock(k)
		out, err := snappy.Decode(nil, in)
		if err != nil || len(out) != 1+64*k {
			t.Fatalf("k=%d: %d bytes, %v", k, len(out), err)
		}
		_, header := binary.Uvarint(in)
		if most := maxSnappyDecodedLen(len(in), header); len(out) > most || most-len(out) > 64 {
			t.Fatalf("k=%d: %d bytes decode to %d; the bound says %d", k, len(in), len(out), most)
		}
	}
	zeros := snappy.Encode(nil, make([]byte, 8<<20))
	n, header := binary.Uvarint(zeros)
	if int(n) > maxSnappyDecodedLen(len(zeros), header) {
		t.Fatalf("the encoder's %d bytes of 8 MiB of zeros claim more than the bound", len(zeros))
	}
}

// TestBuffersNeverHoldMoreThanTheBudget takes and returns buffers of random
// sizes: the buffers handed out and those kept for reuse never hold more
// than the budget together, and every refusal is for want of room.
func TestBuffersNeverHoldMoreThanTheBudget(t *testing.T) {
	p := &bodyBuffers{limit: 8 << 20, idle: time.Hour}
	rnd := rand.New(rand.NewPCG(1, 2))
	var out []*[]byte
	for range 10_000 {
		if len(out) > 0 && rnd.IntN(2) == 0 {
			k := rnd.IntN(len(out))
			p.put(out[k])
			out = slices.Delete(out, k, k+1)
		} else {
			n := 1 + rnd.IntN(3<<20)
			before := p.inUse()
			b, err := p.get(n)
			switch {
			case err != nil && before+int64(bufferSize(n)) <= p.limit:
				t.Fatalf("refused %d bytes with %d in use of %d: %v", n, before, p.limit, err)
			case err == nil && cap(*b) < n:
				t.Fatalf("asked for %d bytes, got %d", n, cap(*b))
			case err == nil:
				out = append(out, b)
			}
		}
		p.mu.Lock()
		held := p.inflight + p.kept
		p.mu.Unlock()
		if held > p.limit {
			t.Fatalf("buffers hold %d bytes, over the budget of %d", held, p.limit)
		}
	}
}
