package distributor_test

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"

	"github.com/fluxpulse/fluxpulse/distributor"
	"github.com/fluxpulse/fluxpulse/limits"
	"github.com/fluxpulse/fluxpulse/tenantauth"
)

// lyingBody is a 6-byte snappy block whose header claims 63 MiB.
func lyingBody() []byte {
	b := binary.AppendUvarint(nil, 63<<20)
	return append(b, 0x00, 'x') // a one-byte literal
}

// TestLyingSnappyHeader sends bodies whose snappy header claims far more
// than they can decode to (#12: each made the server allocate 63 MiB before
// decoding). They are refused as malformed, without allocating what they
// claim.
func TestLyingSnappyHeader(t *testing.T) {
	d, _, _ := newDistributor(t, nil)
	ctx := tenantauth.With(t.Context(), "t", "t")
	body := lyingBody()
	if len(body) != 6 {
		t.Fatalf("the lying body has %d bytes", len(body))
	}
	push := func() *httptest.ResponseRecorder {
		req := httptest.NewRequestWithContext(ctx, http.MethodPost, "/api/v1/push", bytes.NewReader(body))
		req.Header.Set("Content-Encoding", "snappy")
		w := httptest.NewRecorder()
		d.ServeHTTP(w, req)
		return w
	}
	if w := push(); w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "claims 66060288 bytes") {
		t.Fatalf("%d %q, want 400 saying what the header claims", w.Code, w.Body)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range 20 {
		push()
	}
	runtime.ReadMemStats(&after)
	if n := after.TotalAlloc - before.TotalAlloc; n > 8<<20 {
		t.Fatalf("20 lying bodies allocated %d bytes; what they claim is never allocated", n)
	}
}

// TestSlowBodyIsCutOff trickles a body a byte at a time: the request is
// answered 408 naming the flag once -distributor.body-read-timeout has
// passed (#12: a slow sender held its request for the server's two-minute
// read timeout; here, with no server timeout, for ever).
func TestSlowBodyIsCutOff(t *testing.T) {
	e := newEnv(t, func(_ *limits.Limits, c *distributor.Config) { c.BodyReadTimeout = 300 * time.Millisecond })
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := fmt.Fprintf(conn, "POST /api/v1/push HTTP/1.1\r\nHost: x\r\nX-Scope-OrgID: t\r\nContent-Encoding: snappy\r\nContent-Length: 1000\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for range 1000 {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			if _, err := conn.Write([]byte{0}); err != nil {
				return
			}
		}
	}()
	// Generous: the answer is due after 300ms, whatever the machine's load.
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer while the body trickles in: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(b), "-"+distributor.FlagBodyReadTimeout) {
		t.Fatalf("%d %q, want 408 naming -%s", resp.StatusCode, b, distributor.FlagBodyReadTimeout)
	}
}

// TestBodyAtTheSizeLimit sends a body of exactly -distributor.max-request-size
// bytes and one byte more, with and without a Content-Length: the first is
// stored, the second refused with 413.
func TestBodyAtTheSizeLimit(t *testing.T) {
	body := encodeV1(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{ts("at_the_limit")}})
	for _, tc := range []struct {
		name   string
		limit  int
		length bool
		status int
	}{
		{"at the limit", len(body), true, 204},
		{"at the limit, no length", len(body), false, 204},
		{"over the limit", len(body) - 1, true, 413},
		{"over the limit, no length", len(body) - 1, false, 413},
		{"far below the limit, no length", 1 << 20, false, 204},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, _, _ := newDistributor(t, func(_ *limits.Limits, c *distributor.Config) { c.MaxRequestSize = tc.limit })
			var rd io.Reader = bytes.NewReader(body)
			if !tc.length {
				rd = struct{ io.Reader }{rd} // hides the length: the body is read as chunked
			}
			req := httptest.NewRequestWithContext(tenantauth.With(t.Context(), "t", "t"), http.MethodPost, "/api/v1/push", rd)
			req.Header.Set("Content-Encoding", "snappy")
			w := httptest.NewRecorder()
			d.ServeHTTP(w, req)
			if w.Code != tc.status {
				t.Fatalf("%d %q, want %d", w.Code, w.Body, tc.status)
			}
		})
	}
}
