package rpc

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/fluxpulse/fluxpulse/deletion"
	"github.com/fluxpulse/fluxpulse/remotewrite"
	"github.com/fluxpulse/fluxpulse/tenantauth"
)

// Ingester is what the ingester service serves: the ingester of this
// process.
type Ingester interface {
	Push(ctx context.Context, tenant string, req *remotewrite.Request) (remotewrite.Result, error)
	Querier(ctx context.Context, tenant string, mint, maxt int64) (storage.Querier, error)
	ChunkQuerier(ctx context.Context, tenant string, mint, maxt int64) (storage.ChunkQuerier, error)
	ExemplarQuerier(ctx context.Context, tenant string) (storage.ExemplarQuerier, error)
	Metadata(ctx context.Context, tenant, metric string, limit, limitPerMetric int, into map[string][]metadata.Metadata) error
	DeleteTenant(tenant string) error
	ApplyDeletion(ctx context.Context, tenant string, req deletion.Request) error
}

// ServiceOptions configure the ingester and store-gateway services.
type ServiceOptions struct {
	// Ready reports whether the service may serve: an ingester's WAL is
	// replayed, and the process is ACTIVE in its ring. Calls before are
	// refused as unavailable.
	Ready func() bool
}

// check returns the tenant of a call (the server's interceptor took it from
// the call and validated it) once the service may serve; notReady says
// why a call before that is refused.
func (o ServiceOptions) check(ctx context.Context, notReady string) (string, error) {
	if o.Ready != nil && !o.Ready() {
		return "", status.Error(codes.Unavailable, notReady)
	}
	tenant, err := tenantauth.Tenant(ctx)
	if err != nil {
		return "", status.Error(codes.InvalidArgument, err.Error())
	}
	return tenant, nil
}

// RegisterIngester registers the ingester service for ing on srv.
func RegisterIngester(srv *grpc.Server, ing Ingester, opts ServiceOptions) {
	srv.RegisterService(&ingesterDesc, &ingesterService{ing: ing, opts: opts})
}

type ingesterService struct {
	ing  Ingester
	opts ServiceOptions
}

// maxSelectBatchBytes bounds the chunk bytes of one streamed message.
const maxSelectBatchBytes = 1 << 20

func (s *ingesterService) check(ctx context.Context) (string, error) {
	return s.opts.check(ctx, "ingester is not ready: replaying its write-ahead logs or not ACTIVE in the ring yet")
}

func (s *ingesterService) push(ctx context.Context, in *PushRequest) (*PushResponse, error) {
	defer putBody(in.Body)
	tenant, err := s.check(ctx)
	if err != nil {
		return nil, err
	}
	req := remotewrite.GetRequest()
	defer remotewrite.Release(req)
	if err := remotewrite.DecodeWireLazy(req, in.Body); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "push body is not valid: %v", err)
	}
	req.TrackSeries = true
	res, err := s.ing.Push(ctx, tenant, req)
	if err != nil {
		return nil, s.status(err)
	}
	return &PushResponse{Result: res}, nil
}

// status turns an ingester error into a gRPC status whose code carries
// the error's kind.
func (s *ingesterService) status(err error) error { return statusOf(err) }

// statusOf is the gRPC status of an error of a role.
func statusOf(err error) error {
	return status.Error(codeOf(err), err.Error())
}

func (s *ingesterService) selectSeries(q *prompb.Query, stream grpc.ServerStream) error {
	ctx := stream.Context()
	tenant, err := s.check(ctx)
	if err != nil {
		return err
	}
	hints, ms, err := fromQuery(q)
	if err != nil {
		return status.Error(codes.InvalidArgument, err.Error())
	}
	cq, err := s.ing.ChunkQuerier(ctx, tenant, q.StartTimestampMs, q.EndTimestampMs)
	if err != nil {
		return s.status(err)
	}
	defer cq.Close()
	var resp prompb.ChunkedReadResponse
	return streamChunks(cq.Select(ctx, true, hints, ms...), func(batch []*prompb.ChunkedSeries) error {
		resp.ChunkedSeries = batch
		return stream.SendMsg(&resp)
	})
}

// streamChunks sends the series of set through send in batches of about
// maxSelectBatchBytes of chunk data (the batch is reused after send
// returns). Errors are gRPC statuses.
func streamChunks(set storage.ChunkSeriesSet, send func([]*prompb.ChunkedSeries) error) error {
	var (
		batch []*prompb.ChunkedSeries
		size  int
		ls    []prompb.Label
	)
	for set.Next() {
		series := set.At()
		ls = labelsToProto(series.Labels(), ls)
		cs := &prompb.ChunkedSeries{Labels: slices.Clone(ls)}
		it := series.Iterator(nil)
		for it.Next() {
			meta := it.At()
			enc, ok := chunkEncoding(meta.Chunk.Encoding())
			if !ok {
				return status.Errorf(codes.Internal, "series %s has a chunk of unsupported encoding %s", series.Labels(), meta.Chunk.Encoding())
			}
			data := slices.Clone(meta.Chunk.Bytes())
			cs.Chunks = append(cs.Chunks, prompb.Chunk{MinTimeMs: meta.MinTime, MaxTimeMs: meta.MaxTime, Type: enc, Data: data})
			size += len(data)
		}
		if err := it.Err(); err != nil {
			return statusOf(err)
		}
		if len(cs.Chunks) == 0 {
			// Its samples are deleted (#14): the head lists such a
			// series, and a series without chunks decodes to nil in
			// Prometheus's chunk-to-sample conversion.
			continue
		}
		batch = append(batch, cs)
		if size >= maxSelectBatchBytes {
			if err := send(batch); err != nil {
				return err
			}
			batch, size = batch[:0], 0
		}
	}
	if err := set.Err(); err != nil {
		return statusOf(err)
	}
	if len(batch) > 0 {
		return send(batch)
	}
	return nil
}

func chunkEncoding(e chunkenc.Encoding) (prompb.Chunk_Encoding, bool) {
	switch e {
	case chunkenc.EncXOR:
		return prompb.Chunk_XOR, true
	case chunkenc.EncHistogram:
		return prompb.Chunk_HISTOGRAM, true
	case chunkenc.EncFloatHistogram:
		return prompb.Chunk_FLOAT_HISTOGRAM, true
	}
	return 0, false
}

func (s *ingesterService) labels(ctx context.Context, in *LabelsRequest) (*LabelsResponse, error) {
	tenant, err := s.check(ctx)
	if err != nil {
		return nil, err
	}
	ms, err := FromMatchers(in.Matchers)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	q, err := s.ing.Querier(ctx, tenant, in.Start, in.End)
	if err != nil {
		return nil, s.status(err)
	}
	defer q.Close()
	hints := &storage.LabelHints{Limit: int(in.Limit)}
	var vals []string
	if in.Name == "" {
		vals, _, err = q.LabelNames(ctx, hints, ms...)
	} else {
		vals, _, err = q.LabelValues(ctx, in.Name, hints, ms...)
	}
	if err != nil {
		return nil, s.status(err)
	}
	return &LabelsResponse{Values: vals}, nil
}

func (s *ingesterService) metadata(ctx context.Context, in *MetadataRequest) (*MetadataResponse, error) {
	tenant, err := s.check(ctx)
	if err != nil {
		return nil, err
	}
	into := map[string][]metadata.Metadata{}
	if err := s.ing.Metadata(ctx, tenant, in.Metric, int(in.Limit), int(in.LimitPerMetric), into); err != nil {
		return nil, s.status(err)
	}
	out := &MetadataResponse{}
	for family, mds := range into {
		for _, md := range mds {
			out.Metadata = append(out.Metadata, prompb.MetricMetadata{Type: prompb.FromMetadataType(md.Type),
				MetricFamilyName: family, Help: md.Help, Unit: md.Unit})
		}
	}
	return out, nil
}

func (s *ingesterService) exemplars(ctx context.Context, in *ExemplarsRequest) (*ExemplarsResponse, error) {
	tenant, err := s.check(ctx)
	if err != nil {
		return nil, err
	}
	sets := make([][]*labels.Matcher, 0, len(in.MatcherSets))
	for _, set := range in.MatcherSets {
		ms, err := FromMatchers(set)
		if err != nil {
			return nil, status.Error(codes.InvalidArgument, err.Error())
		}
		sets = append(sets, ms)
	}
	eq, err := s.ing.ExemplarQuerier(ctx, tenant)
	if err != nil {
		return nil, s.status(err)
	}
	out := &ExemplarsResponse{}
	if eq == nil {
		return out, nil
	}
	res, err := eq.Select(in.Start, in.End, sets...)
	if err != nil {
		return nil, s.status(err)
	}
	for _, r := range res {
		ts := prompb.TimeSeries{Labels: labelsToProto(r.SeriesLabels, nil)}
		for _, e := range r.Exemplars {
			ts.Exemplars = append(ts.Exemplars, prompb.Exemplar{Labels: labelsToProto(e.Labels, nil), Value: e.Value, Timestamp: e.Ts})
		}
		out.Series = append(out.Series, ts)
	}
	return out, nil
}

// deleteTenant drops the tenant's data on this ingester (its TSDB, WAL
// included), as the admin API's tenant deletion does in one process.
func (s *ingesterService) deleteTenant(ctx context.Context, _ *Empty) (*Empty, error) {
	tenant, err := s.check(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.ing.DeleteTenant(tenant); err != nil {
		return nil, s.status(err)
	}
	return &Empty{}, nil
}

// applyDeletion tombstones what a due deletion request deletes in this
// ingester's data of the tenant (#14).
func (s *ingesterService) applyDeletion(ctx context.Context, in *DeletionRequest) (*Empty, error) {
	tenant, err := s.check(ctx)
	if err != nil {
		return nil, err
	}
	req := deletion.Request{ID: in.ID, Tenant: tenant, Selectors: in.Selectors, Start: in.Start, End: in.End, State: deletion.StatePending}
	if err := deletion.ValidateID(in.ID); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if err := req.Parse(); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if err := s.ing.ApplyDeletion(ctx, tenant, req); err != nil {
		return nil, s.status(err)
	}
	return &Empty{}, nil
}

// codeOf is the gRPC code that carries an ingester error's kind to the
// caller, which turns it back into the same kind (see wrapErr), so that
// the distributor answers a remote ingester's refusal exactly as an
// in-process one's.
func codeOf(err error) codes.Code {
	switch {
	case errors.Is(err, remotewrite.ErrUnavailable):
		return codes.Unavailable
	case errors.Is(err, remotewrite.ErrLimited):
		return codes.ResourceExhausted
	case errors.Is(err, remotewrite.ErrInvalid):
		return codes.InvalidArgument
	case errors.Is(err, context.Canceled):
		return codes.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		return codes.DeadlineExceeded
	}
	return codes.Internal
}

// kindOf is codeOf's inverse: the remotewrite kind a call's code stands
// for, or nil for an internal fault.
func kindOf(c codes.Code) error {
	switch c {
	case codes.Unavailable, codes.Canceled, codes.DeadlineExceeded, codes.Aborted:
		return remotewrite.ErrUnavailable
	case codes.ResourceExhausted:
		return remotewrite.ErrLimited
	case codes.InvalidArgument, codes.FailedPrecondition, codes.OutOfRange:
		return remotewrite.ErrInvalid
	}
	return nil
}

// Error is the error of a call to another role, naming it. It matches the
// remotewrite kind (ErrUnavailable, ErrLimited, ErrInvalid) the other side
// meant, so that a 4xx from an ingester stays a 4xx and a fault that a
// retry may cure stays a 503.
type Error struct {
	Role    string // empty: ingester
	Addr    string
	Code    codes.Code
	Message string
}

func (e *Error) Error() string {
	role := e.Role
	if role == "" {
		role = "ingester"
	}
	return fmt.Sprintf("%s %s: %s", role, e.Addr, e.Message)
}

// Is matches the error's remotewrite kind.
func (e *Error) Is(target error) bool {
	k := kindOf(e.Code)
	return k != nil && target == k
}

// wrapErr turns a call's error into an *Error naming addr.
func wrapErr(addr string, err error) error { return wrapErrOf("", addr, err) }

// wrapErrOf is wrapErr for a call to a role other than the ingester.
func wrapErrOf(role, addr string, err error) error {
	if err == nil {
		return nil
	}
	switch {
	case errors.Is(err, context.Canceled):
		return &Error{Role: role, Addr: addr, Code: codes.Canceled, Message: err.Error()}
	case errors.Is(err, context.DeadlineExceeded):
		return &Error{Role: role, Addr: addr, Code: codes.DeadlineExceeded, Message: err.Error()}
	}
	st, ok := status.FromError(err)
	if !ok {
		return &Error{Role: role, Addr: addr, Code: codes.Unavailable, Message: err.Error()}
	}
	return &Error{Role: role, Addr: addr, Code: st.Code(), Message: st.Message()}
}
