package distributor_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"

	"github.com/fluxpulse/fluxpulse/distributor"
	"github.com/fluxpulse/fluxpulse/limits"
	"github.com/fluxpulse/fluxpulse/loadgen"
	"github.com/fluxpulse/fluxpulse/tenantauth"
)

// FuzzPush sends arbitrary protobuf bodies, as 1.0 and 2.0, through the whole
// push path into a real ingester: nothing may panic, and every answer is 204
// or a 4xx, never a 5xx. Seeds are in testdata/fuzz.
func FuzzPush(f *testing.F) {
	series := loadgen.DefaultHost.Series("fuzz:9100")[:20]
	for k, enc := range []func([]labels.Labels, int, int, int64) []byte{loadgen.EncodeV1, loadgen.EncodeV2} {
		raw, err := snappy.Decode(nil, enc(series, 0, 1, 1000))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw, k == 1)
	}
	f.Add(mustMarshal(f, &prompb.WriteRequest{Metadata: []prompb.MetricMetadata{{MetricFamilyName: "x", Help: "h"}}}), false)

	d, _, _ := newDistributor(f, func(l *limits.Limits, _ *distributor.Config) { l.IngestionRate = 0 })
	ctx := tenantauth.With(f.Context(), "fuzz", "fuzz")

	f.Fuzz(func(t *testing.T, raw []byte, v2 bool) {
		req := httptest.NewRequestWithContext(ctx, http.MethodPost, "/api/v1/push", bytes.NewReader(snappy.Encode(nil, raw)))
		req.Header.Set("Content-Type", ctV1)
		if v2 {
			req.Header.Set("Content-Type", ctV2)
		}
		w := httptest.NewRecorder()
		d.ServeHTTP(w, req)
		if w.Code != http.StatusNoContent && (w.Code < 400 || w.Code >= 500) {
			t.Fatalf("status %d for %x: %s", w.Code, raw, w.Body)
		}
	})
}

func mustMarshal(f *testing.F, req *prompb.WriteRequest) []byte {
	b, err := req.Marshal()
	if err != nil {
		f.Fatal(err)
	}
	return b
}
