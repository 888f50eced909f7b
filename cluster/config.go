package cluster

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/grafana/dskit/kv/memberlist"
)

// Config is the memberlist and ingester-ring configuration of a process.
type Config struct {
	Memberlist memberlist.KVConfig
	Ring       RingConfig
}

// RingConfig configures the ingester ring: how distributors and queriers
// use it, and how an ingester registers in it. Flags are named as Mimir
// names them.
type RingConfig struct {
	RoleRingConfig
	UnregisterOnShutdown bool
}

// Flag names quoted in errors.
const (
	FlagReplicationFactor = "ingester.ring.replication-factor"
	FlagInstanceAddr      = "ingester.ring.instance-addr"
	FlagZone              = "ingester.ring.instance-availability-zone"
	FlagJoin              = "memberlist.join"
)

// RegisterFlags registers dskit's -memberlist.* flags and the
// -ingester.ring.* flags.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	c.Memberlist.RegisterFlagsWithPrefix(fs, "")
	r := &c.Ring
	host, _ := os.Hostname()
	fs.IntVar(&r.ReplicationFactor, FlagReplicationFactor, 3, "Number of ingesters each series is written to; a write succeeds once a quorum (RF/2+1) has it.")
	fs.BoolVar(&r.ZoneAwareness, "ingester.ring.zone-awareness-enabled", false, "Place the replicas of each series in different availability zones.")
	fs.StringVar(&r.Zone, FlagZone, "", "Availability zone of this ingester, with zone awareness.")
	fs.StringVar(&r.InstanceID, "ingester.ring.instance-id", host, "This ingester's ID in the ring; it keeps the ID (and its tokens) across restarts.")
	fs.StringVar(&r.InstanceAddr, FlagInstanceAddr, "", "Address (host:port) other processes dial for this ingester's gRPC service (default: the host of -server.grpc-listen-address if it names one, else the hostname, with its port).")
	fs.DurationVar(&r.HeartbeatPeriod, "ingester.ring.heartbeat-period", 15*time.Second, "How often an ingester updates its heartbeat in the ring.")
	fs.DurationVar(&r.HeartbeatTimeout, "ingester.ring.heartbeat-timeout", time.Minute, "An ingester whose heartbeat is older than this is unhealthy: no writes or reads go to it. After ten times this it is forgotten.")
	fs.BoolVar(&r.UnregisterOnShutdown, "ingester.ring.unregister-on-shutdown", false, "Remove this ingester from the ring when it shuts down. By default it stays, LEAVING, with its tokens, so a restart on the same data directory replays its WAL and takes back its series.")
	fs.IntVar(&r.NumTokens, "ingester.ring.num-tokens", 128, "Tokens an ingester owns in the ring.")
	fs.StringVar(&r.TokensFile, "ingester.ring.tokens-file-path", "", "File where an ingester keeps its tokens across restarts (default <data.dir>/ingester-ring-tokens).")
}

// Validate checks the ring configuration.
func (c RingConfig) Validate() error {
	if c.ReplicationFactor < 1 {
		return fmt.Errorf("-%s must be at least 1, got %d", FlagReplicationFactor, c.ReplicationFactor)
	}
	if c.HeartbeatPeriod <= 0 || c.HeartbeatTimeout <= c.HeartbeatPeriod {
		return fmt.Errorf("-ingester.ring.heartbeat-timeout (%s) must be longer than -ingester.ring.heartbeat-period (%s)", c.HeartbeatTimeout, c.HeartbeatPeriod)
	}
	if c.NumTokens < 1 {
		return errors.New("-ingester.ring.num-tokens must be at least 1")
	}
	return nil
}

// ValidateIngester checks what an ingester needs to register.
func (c RingConfig) ValidateIngester() error {
	if c.InstanceID == "" {
		return errors.New("-ingester.ring.instance-id is empty and the hostname is unknown: set it")
	}
	if c.ZoneAwareness && c.Zone == "" {
		return fmt.Errorf("zone awareness is enabled: set -%s", FlagZone)
	}
	return nil
}

// InstanceAddrFor returns the address an ingester advertises: the flag's
// if set, else as AdvertiseAddr tells.
func (c RingConfig) InstanceAddrFor(grpcListen string) (string, error) {
	return AdvertiseAddr(c.InstanceAddr, FlagInstanceAddr, grpcListen)
}

// AdvertiseAddr returns the address an instance of a ring advertises: addr
// (the value of the flag named flagName) if set, else the gRPC listener's
// host and port, or the hostname with the port when the listener names no
// host.
func AdvertiseAddr(addr, flagName, grpcListen string) (string, error) {
	if addr != "" {
		return addr, nil
	}
	host, port, err := net.SplitHostPort(grpcListen)
	if err != nil {
		return "", fmt.Errorf("-server.grpc-listen-address %q: %w", grpcListen, err)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		if host, err = os.Hostname(); err != nil {
			return "", fmt.Errorf("cannot tell what other processes dial: set -%s (%w)", flagName, err)
		}
	}
	return net.JoinHostPort(host, port), nil
}
