package rpc

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/util/annotations"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health/grpc_health_v1"

	"github.com/fluxpulse/fluxpulse/deletion"
	"github.com/fluxpulse/fluxpulse/remotewrite"
)

// MaxMessageBytes bounds every message between roles; a push batch is at
// most one remote-write request once decompressed.
const MaxMessageBytes = 128 << 20

// IngesterClient calls one ingester. It is safe for concurrent use and
// satisfies dskit's client pool (health checks and Close).
type IngesterClient struct {
	grpc_health_v1.HealthClient
	addr string
	conn *grpc.ClientConn
}

// DialIngester connects to the ingester at addr (connections are made
// lazily). tlsCfg nil means plain TCP.
func DialIngester(addr string, cred Credential, tlsCfg *tls.Config) (*IngesterClient, error) {
	conn, err := dialRole(addr, cred, tlsCfg)
	if err != nil {
		return nil, fmt.Errorf("dial ingester %s: %w", addr, err)
	}
	return &IngesterClient{HealthClient: grpc_health_v1.NewHealthClient(conn), addr: addr, conn: conn}, nil
}

// dialRole makes the connection of a client of another role.
func dialRole(addr string, cred Credential, tlsCfg *tls.Config) (*grpc.ClientConn, error) {
	tc := insecure.NewCredentials()
	if tlsCfg != nil {
		tc = credentials.NewTLS(tlsCfg)
	}
	opts := append(cred.DialOptions(), grpc.WithTransportCredentials(tc),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxMessageBytes), grpc.MaxCallSendMsgSize(MaxMessageBytes)),
		grpc.WithInitialWindowSize(windowBytes), grpc.WithInitialConnWindowSize(4*windowBytes),
		grpc.WithReadBufferSize(bufferBytes), grpc.WithWriteBufferSize(bufferBytes),
		// An ingester that restarts on the same address must be reached
		// again within a second, not after grpc-go's default backoff of
		// up to two minutes: meanwhile it would count as a failed replica.
		grpc.WithConnectParams(grpc.ConnectParams{MinConnectTimeout: time.Second,
			Backoff: backoff.Config{BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second}}))
	return grpc.NewClient(addr, opts...)
}

// Addr is the ingester's address.
func (c *IngesterClient) Addr() string { return c.addr }

// Close closes the connection.
func (c *IngesterClient) Close() error { return c.conn.Close() }

// Push sends a batch built by remotewrite.Encoder (a WriteRequest body) for
// the tenant of ctx. Errors are *Error.
func (c *IngesterClient) Push(ctx context.Context, body []byte) (remotewrite.Result, error) {
	var resp PushResponse
	if err := c.conn.Invoke(ctx, methodPush, &PushRequest{Body: body}, &resp); err != nil {
		return remotewrite.Result{}, wrapErr(c.addr, err)
	}
	return resp.Result, nil
}

// LabelNames returns the label names of the series matching ms in
// [mint, maxt], sorted.
func (c *IngesterClient) LabelNames(ctx context.Context, mint, maxt int64, limit int, ms ...*labels.Matcher) ([]string, error) {
	return c.labels(ctx, &LabelsRequest{Start: mint, End: maxt, Matchers: ToMatchers(ms), Limit: int64(limit)})
}

// LabelValues returns the values of label name of the series matching ms
// in [mint, maxt], sorted.
func (c *IngesterClient) LabelValues(ctx context.Context, name string, mint, maxt int64, limit int, ms ...*labels.Matcher) ([]string, error) {
	if name == "" {
		return nil, errors.New("label values of an empty label name")
	}
	return c.labels(ctx, &LabelsRequest{Start: mint, End: maxt, Name: name, Matchers: ToMatchers(ms), Limit: int64(limit)})
}

func (c *IngesterClient) labels(ctx context.Context, req *LabelsRequest) ([]string, error) {
	var resp LabelsResponse
	if err := c.conn.Invoke(ctx, methodLabels, req, &resp); err != nil {
		return nil, wrapErr(c.addr, err)
	}
	return resp.Values, nil
}

// Metadata adds the tenant's metric metadata to into: one family when
// metric is set, else all, bounded as the Prometheus metadata API bounds
// them (negative: no bound).
func (c *IngesterClient) Metadata(ctx context.Context, metric string, limit, limitPerMetric int, into map[string][]metadata.Metadata) error {
	var resp MetadataResponse
	req := &MetadataRequest{Metric: metric, Limit: int64(limit), LimitPerMetric: int64(limitPerMetric)}
	if err := c.conn.Invoke(ctx, methodMetadata, req, &resp); err != nil {
		return wrapErr(c.addr, err)
	}
	for _, m := range resp.Metadata {
		md := metadata.Metadata{Type: model.MetricType(strings.ToLower(m.Type.String())), Help: m.Help, Unit: m.Unit}
		if !slices.Contains(into[m.MetricFamilyName], md) {
			into[m.MetricFamilyName] = append(into[m.MetricFamilyName], md)
		}
	}
	return nil
}

// Exemplars returns the exemplars in [mint, maxt] of the series matching
// any of the matcher sets.
func (c *IngesterClient) Exemplars(ctx context.Context, mint, maxt int64, sets ...[]*labels.Matcher) ([]exemplar.QueryResult, error) {
	req := &ExemplarsRequest{Start: mint, End: maxt}
	for _, ms := range sets {
		req.MatcherSets = append(req.MatcherSets, ToMatchers(ms))
	}
	var resp ExemplarsResponse
	if err := c.conn.Invoke(ctx, methodExemplars, req, &resp); err != nil {
		return nil, wrapErr(c.addr, err)
	}
	var b labels.ScratchBuilder
	out := make([]exemplar.QueryResult, 0, len(resp.Series))
	for _, ts := range resp.Series {
		r := exemplar.QueryResult{SeriesLabels: labelsFromProto(ts.Labels, &b)}
		for _, e := range ts.Exemplars {
			r.Exemplars = append(r.Exemplars, exemplar.Exemplar{Labels: labelsFromProto(e.Labels, &b), Value: e.Value, Ts: e.Timestamp, HasTs: true})
		}
		out = append(out, r)
	}
	return out, nil
}

// DeleteTenant drops the data the ingester holds of the tenant of ctx.
func (c *IngesterClient) DeleteTenant(ctx context.Context) error {
	return wrapErr(c.addr, c.conn.Invoke(ctx, methodDelete, &Empty{}, &Empty{}))
}

// ApplyDeletion tells the ingester to carry out a due deletion request
// of the tenant of ctx (#14).
func (c *IngesterClient) ApplyDeletion(ctx context.Context, req deletion.Request) error {
	in := &DeletionRequest{ID: req.ID, Selectors: req.Selectors, Start: req.Start, End: req.End}
	return wrapErr(c.addr, c.conn.Invoke(ctx, methodApplyDeletion, in, &Empty{}))
}

// Select streams the chunks of the series matching ms in [mint, maxt],
// sorted by labels. The set reads the stream as it is iterated; an error
// of the call or of the stream is the set's Err.
func (c *IngesterClient) Select(ctx context.Context, mint, maxt int64, hints *storage.SelectHints, ms ...*labels.Matcher) storage.ChunkSeriesSet {
	desc := &ingesterDesc.Streams[0]
	stream, err := c.conn.NewStream(ctx, desc, methodSelect)
	if err == nil {
		err = stream.SendMsg(toQuery(mint, maxt, hints, ms))
	}
	if err == nil {
		err = stream.CloseSend()
	}
	if err != nil {
		return storage.ErrChunkSeriesSet(wrapErr(c.addr, err))
	}
	return &streamedSet{addr: c.addr, stream: stream}
}

// streamedSet is a ChunkSeriesSet read from a Select stream.
type streamedSet struct {
	addr   string
	stream grpc.ClientStream
	batch  prompb.ChunkedReadResponse
	next   int
	cur    storage.ChunkSeries
	err    error
	b      labels.ScratchBuilder
}

func (s *streamedSet) Next() bool {
	for s.next >= len(s.batch.ChunkedSeries) {
		s.batch = prompb.ChunkedReadResponse{}
		s.next = 0
		if err := s.stream.RecvMsg(&s.batch); err != nil {
			if !errors.Is(err, io.EOF) {
				s.err = wrapErr(s.addr, err)
			}
			return false
		}
	}
	cs := s.batch.ChunkedSeries[s.next]
	s.next++
	s.cur, s.err = chunkSeriesFromProto(s.addr, cs, &s.b)
	return s.err == nil
}

// chunkSeriesFromProto is a series received from addr.
func chunkSeriesFromProto(addr string, cs *prompb.ChunkedSeries, b *labels.ScratchBuilder) (storage.ChunkSeries, error) {
	metas := make([]chunks.Meta, 0, len(cs.Chunks))
	for _, ch := range cs.Chunks {
		enc, ok := fromChunkEncoding(ch.Type)
		if !ok {
			return nil, fmt.Errorf("%s: chunk of unknown encoding %d", addr, ch.Type)
		}
		chk, err := chunkenc.FromData(enc, ch.Data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", addr, err)
		}
		metas = append(metas, chunks.Meta{MinTime: ch.MinTimeMs, MaxTime: ch.MaxTimeMs, Chunk: chk})
	}
	return &storage.ChunkSeriesEntry{
		Lset:            labelsFromProto(cs.Labels, b),
		ChunkIteratorFn: func(chunks.Iterator) chunks.Iterator { return storage.NewListChunkSeriesIterator(metas...) },
	}, nil
}

func (s *streamedSet) At() storage.ChunkSeries { return s.cur }

func (s *streamedSet) Err() error { return s.err }

func (s *streamedSet) Warnings() annotations.Annotations { return nil }

func fromChunkEncoding(e prompb.Chunk_Encoding) (chunkenc.Encoding, bool) {
	switch e {
	case prompb.Chunk_XOR:
		return chunkenc.EncXOR, true
	case prompb.Chunk_HISTOGRAM:
		return chunkenc.EncHistogram, true
	case prompb.Chunk_FLOAT_HISTOGRAM:
		return chunkenc.EncFloatHistogram, true
	}
	return 0, false
}
