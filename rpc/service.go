package rpc

import (
	"context"
	"strings"

	"github.com/prometheus/prometheus/prompb"
	"google.golang.org/grpc"
)

// The ingester service's full method names.
const (
	ingesterServiceName = "fluxpulse.Ingester"
	methodPush          = "/" + ingesterServiceName + "/Push"
	methodSelect        = "/" + ingesterServiceName + "/Select"
	methodLabels        = "/" + ingesterServiceName + "/Labels"
	methodMetadata      = "/" + ingesterServiceName + "/Metadata"
	methodExemplars     = "/" + ingesterServiceName + "/Exemplars"
	methodDelete        = "/" + ingesterServiceName + "/DeleteTenant"
	methodApplyDeletion = "/" + ingesterServiceName + "/ApplyDeletion"
	selectStreamName    = "Select"
)

// ingesterHandlers is what the hand-written service descriptor dispatches
// to; ingesterService implements it.
type ingesterHandlers interface {
	push(context.Context, *PushRequest) (*PushResponse, error)
	selectSeries(*prompb.Query, grpc.ServerStream) error
	labels(context.Context, *LabelsRequest) (*LabelsResponse, error)
	metadata(context.Context, *MetadataRequest) (*MetadataResponse, error)
	exemplars(context.Context, *ExemplarsRequest) (*ExemplarsResponse, error)
	deleteTenant(context.Context, *Empty) (*Empty, error)
	applyDeletion(context.Context, *DeletionRequest) (*Empty, error)
}

// unary adapts a typed handler of a service whose handlers are H to
// grpc.MethodDesc's handler, running the server's interceptors first.
func unary[H any, Req any, PReq interface {
	*Req
	selfMarshaler
}, Resp any](method string, call func(H, context.Context, PReq) (Resp, error)) grpc.MethodDesc {
	name := method[strings.LastIndexByte(method, '/')+1:]
	return grpc.MethodDesc{MethodName: name, Handler: func(srv any, ctx context.Context, dec func(any) error, icpt grpc.UnaryServerInterceptor) (any, error) {
		in := PReq(new(Req))
		if err := dec(in); err != nil {
			return nil, err
		}
		h := srv.(H)
		if icpt == nil {
			return call(h, ctx, in)
		}
		return icpt(ctx, in, &grpc.UnaryServerInfo{Server: srv, FullMethod: method}, func(ctx context.Context, req any) (any, error) {
			return call(h, ctx, req.(PReq))
		})
	}}
}

var ingesterDesc = grpc.ServiceDesc{
	ServiceName: ingesterServiceName,
	HandlerType: (*ingesterHandlers)(nil),
	Methods: []grpc.MethodDesc{
		unary(methodPush, func(h ingesterHandlers, ctx context.Context, in *PushRequest) (*PushResponse, error) {
			return h.push(ctx, in)
		}),
		unary(methodLabels, func(h ingesterHandlers, ctx context.Context, in *LabelsRequest) (*LabelsResponse, error) {
			return h.labels(ctx, in)
		}),
		unary(methodMetadata, func(h ingesterHandlers, ctx context.Context, in *MetadataRequest) (*MetadataResponse, error) {
			return h.metadata(ctx, in)
		}),
		unary(methodExemplars, func(h ingesterHandlers, ctx context.Context, in *ExemplarsRequest) (*ExemplarsResponse, error) {
			return h.exemplars(ctx, in)
		}),
		unary(methodDelete, func(h ingesterHandlers, ctx context.Context, in *Empty) (*Empty, error) {
			return h.deleteTenant(ctx, in)
		}),
		unary(methodApplyDeletion, func(h ingesterHandlers, ctx context.Context, in *DeletionRequest) (*Empty, error) {
			return h.applyDeletion(ctx, in)
		}),
	},
	Streams: []grpc.StreamDesc{{
		StreamName:    selectStreamName,
		ServerStreams: true,
		Handler: func(srv any, stream grpc.ServerStream) error {
			in := new(prompb.Query)
			if err := stream.RecvMsg(in); err != nil {
				return err
			}
			return srv.(ingesterHandlers).selectSeries(in, stream)
		},
	}},
}
