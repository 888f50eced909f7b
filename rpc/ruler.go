package rpc

import (
	"context"
	"crypto/tls"
	"fmt"

	"google.golang.org/grpc"
)

// The ruler service: a ruler asks the others of its ring for the rule
// groups they evaluate, to answer the rules API for all of a tenant's
// groups (#17).
const (
	rulerServiceName = "fluxpulse.Ruler"
	methodRuleGroups = "/" + rulerServiceName + "/Groups"
)

// Bytes is a message that is its bytes: a query string, a JSON document.
type Bytes struct{ B []byte }

// Marshal implements selfMarshaler.
func (m *Bytes) Marshal() ([]byte, error) { return m.B, nil }

// Unmarshal implements selfMarshaler; it copies data, which gRPC reuses.
func (m *Bytes) Unmarshal(data []byte) error {
	m.B = append([]byte(nil), data...)
	return nil
}

// RuleGroupsFunc answers a ruler's question: the rule groups this ruler
// evaluates for the tenant of ctx that the rules API's query selects.
type RuleGroupsFunc func(ctx context.Context, query string) ([]byte, error)

// RegisterRuler adds the ruler service to srv.
func RegisterRuler(srv *grpc.Server, groups RuleGroupsFunc) {
	srv.RegisterService(&grpc.ServiceDesc{
		ServiceName: rulerServiceName,
		HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{{MethodName: "Groups", Handler: func(_ any, ctx context.Context, dec func(any) error, icpt grpc.UnaryServerInterceptor) (any, error) {
			in := new(Bytes)
			if err := dec(in); err != nil {
				return nil, err
			}
			call := func(ctx context.Context, req any) (any, error) {
				b, err := groups(ctx, string(req.(*Bytes).B))
				if err != nil {
					return nil, err
				}
				return &Bytes{B: b}, nil
			}
			if icpt == nil {
				return call(ctx, in)
			}
			return icpt(ctx, in, &grpc.UnaryServerInfo{FullMethod: methodRuleGroups}, call)
		}}},
	}, struct{}{})
}

// RulerClient calls one ruler. It is safe for concurrent use.
type RulerClient struct {
	addr string
	conn *grpc.ClientConn
}

// DialRuler connects to the ruler at addr (lazily). tlsCfg nil means
// plain TCP.
func DialRuler(addr string, cred Credential, tlsCfg *tls.Config) (*RulerClient, error) {
	conn, err := dialRole(addr, cred, tlsCfg)
	if err != nil {
		return nil, fmt.Errorf("dial ruler %s: %w", addr, err)
	}
	return &RulerClient{addr: addr, conn: conn}, nil
}

// Groups asks the ruler for the groups it evaluates for the tenant of ctx.
func (c *RulerClient) Groups(ctx context.Context, query string) ([]byte, error) {
	var resp Bytes
	if err := c.conn.Invoke(ctx, methodRuleGroups, &Bytes{B: []byte(query)}, &resp); err != nil {
		return nil, wrapErr(c.addr, err)
	}
	return resp.B, nil
}

// Close closes the connection.
func (c *RulerClient) Close() error { return c.conn.Close() }
