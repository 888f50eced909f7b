package rpc

import (
	"bytes"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"os"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/fluxpulse/fluxpulse/tenantauth"
)

// Metadata keys of every call between roles.
const (
	mdAuthorization = "authorization"
	mdTenant        = "x-scope-orgid"
	mdActor         = "x-fluxpulse-actor"
)

// Transport sizes of the connections between roles.
const (
	windowBytes = 4 << 20
	bufferBytes = 256 << 10
)

// minSecretBytes is the shortest cluster secret accepted.
const minSecretBytes = 16

// Credential is the cluster's shared secret: every call between roles
// carries it, and a call without it is refused before any handler runs.
type Credential struct {
	header string // "Bearer <secret>", as sent
}

// LoadCredential reads the secret from path (surrounding white space is
// ignored). It must be at least 16 bytes.
func LoadCredential(path string) (Credential, error) {
	if path == "" {
		return Credential{}, errors.New("roles that run apart authenticate each other with a shared secret: set -server.grpc-auth-token-file to a file holding it (the same file on every process; e.g. `openssl rand -hex 32`)")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return Credential{}, fmt.Errorf("-server.grpc-auth-token-file: %w", err)
	}
	secret := bytes.TrimSpace(b)
	if len(secret) < minSecretBytes {
		return Credential{}, fmt.Errorf("-server.grpc-auth-token-file %s holds %d bytes; the cluster secret must be at least %d", path, len(secret), minSecretBytes)
	}
	if bytes.ContainsAny(secret, "\r\n") {
		return Credential{}, fmt.Errorf("-server.grpc-auth-token-file %s: the secret must be one line", path)
	}
	return Credential{header: "Bearer " + string(secret)}, nil
}

func (c Credential) valid(md metadata.MD) bool {
	got := md.Get(mdAuthorization)
	return len(got) == 1 && c.AuthorizedHTTP(got[0])
}

// AuthorizedHTTP reports whether an Authorization header value carries the
// cluster secret, compared in constant time: for the calls between roles
// made over HTTP (a ruler's alerts to the alertmanager).
func (c Credential) AuthorizedHTTP(authorization string) bool {
	return c.header != "" && subtle.ConstantTimeCompare([]byte(authorization), []byte(c.header)) == 1
}

// tenantRequired reports whether a method acts for a tenant: every method
// of FluxPulse's own services does; the health service does not.
func tenantRequired(fullMethod string) bool {
	return strings.HasPrefix(fullMethod, "/fluxpulse.")
}

// authorize checks the credential and, for a tenant's method, puts the
// tenant the call names into the context, as tenantauth does for HTTP.
func (c Credential) authorize(ctx context.Context, fullMethod string) (context.Context, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	if !c.valid(md) {
		return nil, status.Error(codes.Unauthenticated, "this call does not carry the cluster credential (-server.grpc-auth-token-file)")
	}
	if !tenantRequired(fullMethod) {
		return ctx, nil
	}
	ts := md.Get(mdTenant)
	if len(ts) != 1 {
		return nil, status.Errorf(codes.InvalidArgument, "a call to %s must name exactly one tenant, it names %d", fullMethod, len(ts))
	}
	if err := tenantauth.ValidateID(ts[0]); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "tenant: %v", err)
	}
	actor := ""
	if a := md.Get(mdActor); len(a) == 1 && len(a[0]) <= 256 {
		actor = a[0]
	}
	return tenantauth.With(ctx, actor, ts[0]), nil
}

// ServerOptions are the options of a gRPC server that refuses calls
// without the credential.
func (c Credential) ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ForceServerCodecV2(codec{}),
		// Pushes are hundreds of kilobytes: windows and buffers large
		// enough that one is sent without waiting on flow control.
		grpc.InitialWindowSize(windowBytes), grpc.InitialConnWindowSize(4 * windowBytes),
		grpc.ReadBufferSize(bufferBytes), grpc.WriteBufferSize(bufferBytes),
		grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			ctx, err := c.authorize(ctx, info.FullMethod)
			if err != nil {
				return nil, err
			}
			return h(ctx, req)
		}),
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			ctx, err := c.authorize(ss.Context(), info.FullMethod)
			if err != nil {
				return err
			}
			return h(srv, &ctxStream{ServerStream: ss, ctx: ctx})
		}),
	}
}

type ctxStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *ctxStream) Context() context.Context { return s.ctx }

// outgoing adds the credential and, for a tenant's method, the tenant of
// ctx to a call. A tenant's call without a tenant in ctx is a bug of the
// caller and fails before it is sent.
func (c Credential) outgoing(ctx context.Context, method string) (context.Context, error) {
	pairs := []string{mdAuthorization, c.header}
	if tenantRequired(method) {
		tenant, err := tenantauth.Tenant(ctx)
		if err != nil {
			return nil, fmt.Errorf("BUG: call to %s without a tenant: %w", method, err)
		}
		pairs = append(pairs, mdTenant, tenant)
		if a := tenantauth.Actor(ctx); a != "" {
			pairs = append(pairs, mdActor, a)
		}
	}
	return metadata.AppendToOutgoingContext(ctx, pairs...), nil
}

// DialOptions are the options of a client connection that sends the
// credential and the tenant.
func (c Credential) DialOptions() []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithDefaultCallOptions(grpc.ForceCodecV2(codec{})),
		grpc.WithChainUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, inv grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			ctx, err := c.outgoing(ctx, method)
			if err != nil {
				return err
			}
			return inv(ctx, method, req, reply, cc, opts...)
		}),
		grpc.WithChainStreamInterceptor(func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, st grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
			ctx, err := c.outgoing(ctx, method)
			if err != nil {
				return nil, err
			}
			return st(ctx, desc, cc, method, opts...)
		}),
	}
}
