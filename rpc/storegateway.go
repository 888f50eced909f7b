package rpc

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// The store-gateway service's full method names.
const (
	storeGatewayServiceName = "fluxpulse.StoreGateway"
	methodSeries            = "/" + storeGatewayServiceName + "/Series"
	methodGatewayLabels     = "/" + storeGatewayServiceName + "/Labels"
	seriesStreamName        = "Series"
	roleStoreGateway        = "store-gateway"
)

// StoreGateway is what the store-gateway service serves: the blocks this
// process owns. Each method reads the blocks of ids that it holds and
// returns their IDs with the querier.
type StoreGateway interface {
	BlocksQuerier(ctx context.Context, tenant string, ids []ulid.ULID, mint, maxt int64) (storage.Querier, []ulid.ULID, error)
	BlocksChunkQuerier(ctx context.Context, tenant string, ids []ulid.ULID, mint, maxt int64) (storage.ChunkQuerier, []ulid.ULID, error)
}

// RegisterStoreGateway registers the store-gateway service for gw on srv.
// opts.Ready reports whether it is ACTIVE in its ring.
func RegisterStoreGateway(srv *grpc.Server, gw StoreGateway, opts ServiceOptions) {
	srv.RegisterService(&storeGatewayDesc, &storeGatewayService{gw: gw, opts: opts})
}

type storeGatewayHandlers interface {
	series(*SeriesRequest, grpc.ServerStream) error
	labels(context.Context, *LabelsRequest) (*LabelsResponse, error)
}

var storeGatewayDesc = grpc.ServiceDesc{
	ServiceName: storeGatewayServiceName,
	HandlerType: (*storeGatewayHandlers)(nil),
	Methods: []grpc.MethodDesc{
		unary(methodGatewayLabels, func(h storeGatewayHandlers, ctx context.Context, in *LabelsRequest) (*LabelsResponse, error) {
			return h.labels(ctx, in)
		}),
	},
	Streams: []grpc.StreamDesc{{
		StreamName:    seriesStreamName,
		ServerStreams: true,
		Handler: func(srv any, stream grpc.ServerStream) error {
			in := new(SeriesRequest)
			if err := stream.RecvMsg(in); err != nil {
				return err
			}
			return srv.(storeGatewayHandlers).series(in, stream)
		},
	}},
}

type storeGatewayService struct {
	gw   StoreGateway
	opts ServiceOptions
}

func (s *storeGatewayService) check(ctx context.Context) (string, error) {
	return s.opts.check(ctx, "store-gateway is not ready: not ACTIVE in its ring yet")
}

func (s *storeGatewayService) series(in *SeriesRequest, stream grpc.ServerStream) error {
	ctx := stream.Context()
	tenant, err := s.check(ctx)
	if err != nil {
		return err
	}
	hints, ms, err := fromQuery(&in.Query)
	if err != nil {
		return status.Error(codes.InvalidArgument, err.Error())
	}
	cq, held, err := s.gw.BlocksChunkQuerier(ctx, tenant, in.Blocks, in.Query.StartTimestampMs, in.Query.EndTimestampMs)
	if err != nil {
		return statusOf(err)
	}
	defer cq.Close()
	var resp SeriesResponse
	err = streamChunks(cq.Select(ctx, true, hints, ms...), func(batch []*prompb.ChunkedSeries) error {
		resp.Series = batch
		return stream.SendMsg(&resp)
	})
	if err != nil {
		return err
	}
	// The last message says which blocks the answer is for: a stream cut
	// short never claims a block.
	return stream.SendMsg(&SeriesResponse{Blocks: held})
}

func (s *storeGatewayService) labels(ctx context.Context, in *LabelsRequest) (*LabelsResponse, error) {
	tenant, err := s.check(ctx)
	if err != nil {
		return nil, err
	}
	ms, err := FromMatchers(in.Matchers)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	q, held, err := s.gw.BlocksQuerier(ctx, tenant, in.Blocks, in.Start, in.End)
	if err != nil {
		return nil, statusOf(err)
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
		return nil, statusOf(err)
	}
	return &LabelsResponse{Values: vals, Blocks: held}, nil
}

// StoreGatewayClient calls one store-gateway. It is safe for concurrent use
// and satisfies dskit's client pool (health checks and Close).
type StoreGatewayClient struct {
	grpc_health_v1.HealthClient
	addr string
	conn *grpc.ClientConn
}

// DialStoreGateway connects to the store-gateway at addr (lazily). tlsCfg
// nil means plain TCP.
func DialStoreGateway(addr string, cred Credential, tlsCfg *tls.Config) (*StoreGatewayClient, error) {
	conn, err := dialRole(addr, cred, tlsCfg)
	if err != nil {
		return nil, fmt.Errorf("dial store-gateway %s: %w", addr, err)
	}
	return &StoreGatewayClient{HealthClient: grpc_health_v1.NewHealthClient(conn), addr: addr, conn: conn}, nil
}

// Addr is the store-gateway's address.
func (c *StoreGatewayClient) Addr() string { return c.addr }

// Close closes the connection.
func (c *StoreGatewayClient) Close() error { return c.conn.Close() }

// Series reads, for the tenant of ctx, the series matching ms in
// [mint, maxt] of the blocks of ids the store-gateway holds, to the end
// of the stream, and returns them with the IDs of those blocks. Errors
// are *Error.
func (c *StoreGatewayClient) Series(ctx context.Context, ids []ulid.ULID, mint, maxt int64, hints *storage.SelectHints, ms ...*labels.Matcher) ([]storage.ChunkSeries, []ulid.ULID, error) {
	stream, err := c.conn.NewStream(ctx, &storeGatewayDesc.Streams[0], methodSeries)
	if err == nil {
		err = stream.SendMsg(&SeriesRequest{Query: *toQuery(mint, maxt, hints, ms), Blocks: ids})
	}
	if err == nil {
		err = stream.CloseSend()
	}
	if err != nil {
		return nil, nil, wrapErrOf(roleStoreGateway, c.addr, err)
	}
	var (
		out  []storage.ChunkSeries
		held []ulid.ULID
		b    labels.ScratchBuilder
	)
	for {
		var resp SeriesResponse
		if err := stream.RecvMsg(&resp); err != nil {
			if errors.Is(err, io.EOF) {
				return out, held, nil
			}
			return nil, nil, wrapErrOf(roleStoreGateway, c.addr, err)
		}
		for _, cs := range resp.Series {
			s, err := chunkSeriesFromProto(c.addr, cs, &b)
			if err != nil {
				return nil, nil, err
			}
			out = append(out, s)
		}
		held = append(held, resp.Blocks...)
	}
}

// LabelNames returns the label names of the series matching ms in
// [mint, maxt] of the blocks of ids the store-gateway holds, sorted, with
// the IDs of those blocks.
func (c *StoreGatewayClient) LabelNames(ctx context.Context, ids []ulid.ULID, mint, maxt int64, limit int, ms ...*labels.Matcher) ([]string, []ulid.ULID, error) {
	return c.labels(ctx, &LabelsRequest{Start: mint, End: maxt, Matchers: ToMatchers(ms), Limit: int64(limit), Blocks: ids})
}

// LabelValues is LabelNames for the values of label name.
func (c *StoreGatewayClient) LabelValues(ctx context.Context, ids []ulid.ULID, name string, mint, maxt int64, limit int, ms ...*labels.Matcher) ([]string, []ulid.ULID, error) {
	if name == "" {
		return nil, nil, errors.New("label values of an empty label name")
	}
	return c.labels(ctx, &LabelsRequest{Start: mint, End: maxt, Name: name, Matchers: ToMatchers(ms), Limit: int64(limit), Blocks: ids})
}

func (c *StoreGatewayClient) labels(ctx context.Context, req *LabelsRequest) ([]string, []ulid.ULID, error) {
	var resp LabelsResponse
	if err := c.conn.Invoke(ctx, methodGatewayLabels, req, &resp); err != nil {
		return nil, nil, wrapErrOf(roleStoreGateway, c.addr, err)
	}
	return resp.Values, resp.Blocks, nil
}
