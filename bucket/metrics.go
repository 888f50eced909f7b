package bucket

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Operation names, the values of the "operation" label.
const (
	opGet        = "get"
	opGetRange   = "get_range"
	opExists     = "exists"
	opAttributes = "attributes"
	opIter       = "iter"
	opUpload     = "upload"
	opDelete     = "delete"
)

// Instrumented is a Bucket that counts the operations of the Bucket it
// wraps, their failures, durations and the bytes read and written.
type Instrumented struct {
	b        Bucket
	ops      *prometheus.CounterVec
	failures *prometheus.CounterVec
	duration *prometheus.HistogramVec
	read     *prometheus.CounterVec
	written  prometheus.Counter
}

var _ Bucket = (*Instrumented)(nil)

// Instrument wraps b with metrics named fluxpulse_bucket_*, labelled
// backend=backend, registered on reg (nil registers nothing). Missing
// objects are not counted as failures: looking for one is normal.
func Instrument(b Bucket, backend string, reg prometheus.Registerer) (*Instrumented, error) {
	l := prometheus.Labels{"backend": backend}
	ib := &Instrumented{
		b: b,
		ops: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "fluxpulse_bucket_operations_total",
			Help: "Bucket operations started.", ConstLabels: l}, []string{"operation"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "fluxpulse_bucket_operation_failures_total",
			Help: "Bucket operations that failed, not counting missing objects.", ConstLabels: l}, []string{"operation"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "fluxpulse_bucket_operation_duration_seconds",
			Help: "Time until a bucket operation returned; for reads, until the first byte could be read.", ConstLabels: l,
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 8), NativeHistogramBucketFactor: 1.1}, []string{"operation"}),
		read: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "fluxpulse_bucket_read_bytes_total",
			Help: "Bytes read from bucket objects.", ConstLabels: l}, []string{"operation"}),
		written: prometheus.NewCounter(prometheus.CounterOpts{Name: "fluxpulse_bucket_written_bytes_total",
			Help: "Bytes uploaded to the bucket.", ConstLabels: l}),
	}
	for _, op := range []string{opGet, opGetRange, opExists, opAttributes, opIter, opUpload, opDelete} {
		ib.ops.WithLabelValues(op)
		ib.failures.WithLabelValues(op)
	}
	ib.read.WithLabelValues(opGet)
	ib.read.WithLabelValues(opGetRange)
	if reg != nil {
		for _, c := range []prometheus.Collector{ib.ops, ib.failures, ib.duration, ib.read, ib.written} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return ib, nil
}

// Unwrap returns the instrumented bucket.
func (ib *Instrumented) Unwrap() Bucket { return ib.b }

// observe records one finished operation.
func (ib *Instrumented) observe(op string, start time.Time, err error) {
	ib.ops.WithLabelValues(op).Inc()
	ib.duration.WithLabelValues(op).Observe(time.Since(start).Seconds())
	if err != nil && !IsNotFound(err) && !errors.Is(err, context.Canceled) {
		ib.failures.WithLabelValues(op).Inc()
	}
}

// Get counts the call and the bytes read from the returned reader.
func (ib *Instrumented) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	start := time.Now()
	rc, err := ib.b.Get(ctx, name)
	ib.observe(opGet, start, err)
	if err != nil {
		return nil, err
	}
	return ib.countingReader(opGet, rc), nil
}

// GetRange counts the call and the bytes read from the returned reader.
func (ib *Instrumented) GetRange(ctx context.Context, name string, off, length int64) (io.ReadCloser, error) {
	start := time.Now()
	rc, err := ib.b.GetRange(ctx, name, off, length)
	ib.observe(opGetRange, start, err)
	if err != nil {
		return nil, err
	}
	return ib.countingReader(opGetRange, rc), nil
}

func (ib *Instrumented) countingReader(op string, rc io.ReadCloser) io.ReadCloser {
	return &countingReader{rc: rc, bytes: ib.read.WithLabelValues(op), failures: ib.failures.WithLabelValues(op)}
}

// Exists counts the call.
func (ib *Instrumented) Exists(ctx context.Context, name string) (bool, error) {
	start := time.Now()
	ok, err := ib.b.Exists(ctx, name)
	ib.observe(opExists, start, err)
	return ok, err
}

// Attributes counts the call.
func (ib *Instrumented) Attributes(ctx context.Context, name string) (Attributes, error) {
	start := time.Now()
	a, err := ib.b.Attributes(ctx, name)
	ib.observe(opAttributes, start, err)
	return a, err
}

// Iter counts the call; its duration includes the time spent in f.
func (ib *Instrumented) Iter(ctx context.Context, dir string, opts IterOptions, f func(string) error) error {
	start := time.Now()
	err := ib.b.Iter(ctx, dir, opts, f)
	ib.observe(opIter, start, err)
	return err
}

// Upload counts the call and the bytes it read from r.
func (ib *Instrumented) Upload(ctx context.Context, name string, r io.Reader) error {
	start := time.Now()
	cr := &countingReader{rc: io.NopCloser(r), bytes: ib.written}
	err := ib.b.Upload(ctx, name, cr)
	ib.observe(opUpload, start, err)
	return err
}

// Delete counts the call.
func (ib *Instrumented) Delete(ctx context.Context, name string) error {
	start := time.Now()
	err := ib.b.Delete(ctx, name)
	ib.observe(opDelete, start, err)
	return err
}

// Close closes the wrapped bucket.
func (ib *Instrumented) Close() error { return ib.b.Close() }

// countingReader adds what is read to a counter and counts read errors
// other than io.EOF as failures.
type countingReader struct {
	rc       io.ReadCloser
	bytes    prometheus.Counter
	failures prometheus.Counter // nil: not counted
	failed   bool
}

func (r *countingReader) Read(p []byte) (int, error) {
	n, err := r.rc.Read(p)
	r.bytes.Add(float64(n))
	if err != nil && err != io.EOF && r.failures != nil && !r.failed {
		r.failed = true
		r.failures.Inc()
	}
	return n, err
}

func (r *countingReader) Close() error { return r.rc.Close() }
