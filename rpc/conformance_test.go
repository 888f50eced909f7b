package rpc

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/kv/consul"
	"github.com/grafana/dskit/ring"
	"github.com/grafana/dskit/services"

	"github.com/fluxpulse/fluxpulse/distributor"
	"github.com/fluxpulse/fluxpulse/distributor/pushertest"
	"github.com/fluxpulse/fluxpulse/ingester"
	"github.com/fluxpulse/fluxpulse/querier"
)

// TestPusherConformance runs the Pusher suite against the ingester in
// process and against three ingesters behind the gRPC service, written
// with replication factor 3 and read back through the ring.
func TestPusherConformance(t *testing.T) {
	t.Run("in process", func(t *testing.T) {
		pushertest.Run(t, func(t *testing.T) pushertest.Target {
			ing := newIngester(t)
			return pushertest.Target{Pusher: ing, Reader: ing}
		})
	})
	t.Run("replicated over gRPC", func(t *testing.T) {
		pushertest.Run(t, func(t *testing.T) pushertest.Target {
			cred := credential(t, "0123456789abcdef0123")
			var addrs []string
			for range 3 {
				addrs = append(addrs, serve(t, cred))
			}
			r := staticRing(t, addrs)
			clients := map[string]*IngesterClient{}
			for _, a := range addrs {
				clients[a] = dial(t, a, cred)
			}
			p := distributor.NewReplicatingPusher(distributor.ReplicationConfig{RemoteTimeout: 5 * time.Second}, r,
				func(addr string) (distributor.IngesterClient, error) { return clients[addr], nil }, nil, nil)
			in := querier.NewIngesters(querier.RingConfig{}, r, func(addr string) (querier.IngesterReader, error) { return clients[addr], nil })
			return pushertest.Target{Pusher: p, Reader: in, Settle: p.Wait}
		})
	})
}

var _ pushertest.Reader = (*ingester.Ingester)(nil)

// tokenRing is a dskit ring with the tokens of the KV store it reads.
type tokenRing struct {
	*ring.Ring
	tokens []uint32
}

func (r tokenRing) Tokens() []uint32 { return r.tokens }

// staticRing is a real dskit ring over an in-memory KV store holding one
// ACTIVE instance per address.
func staticRing(t testing.TB, addrs []string) tokenRing {
	t.Helper()
	kv, closer := consul.NewInMemoryClient(ring.GetCodec(), log.NewNopLogger(), nil)
	t.Cleanup(func() { _ = closer.Close() })
	desc := ring.NewDesc()
	gen := ring.NewRandomTokenGenerator()
	for k, a := range addrs {
		desc.AddIngester(fmt.Sprint("ing-", k), a, "", gen.GenerateTokens(128, nil), ring.ACTIVE, time.Now(), false, time.Time{}, nil)
	}
	if err := kv.CAS(t.Context(), "ring", func(any) (any, bool, error) { return desc, true, nil }); err != nil {
		t.Fatal(err)
	}
	r, err := ring.NewWithStoreClientAndStrategy(ring.Config{HeartbeatTimeout: time.Hour, ReplicationFactor: len(addrs)}, "ingester", "ring", kv,
		ring.NewDefaultReplicationStrategy(), nil, log.NewNopLogger())
	if err != nil {
		t.Fatal(err)
	}
	if err := services.StartAndAwaitRunning(t.Context(), r); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = services.StopAndAwaitTerminated(context.Background(), r) })
	return tokenRing{Ring: r, tokens: desc.GetTokens()}
}
