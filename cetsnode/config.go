package cetsnode

import (
	"log/slog"
	"time"

	"github.com/mimmigrate/mimmigrate/erldist"
)

// Config is everything a cluster node needs.
type Config struct {
	// Name is the node's name (alive@host); Cookie the Erlang cookie.
	Name, Cookie string
	// ListenAddr is where distribution listens (default: the name's
	// host, any free port).
	ListenAddr string
	// EPMDPort is epmd's port; when nothing answers there the node serves
	// epmd itself.
	EPMDPort int
	// ClusterName: nodes with the same name (and protocol version) find
	// each other.
	ClusterName string
	// Store is where nodes find each other (PostgresDiscovery).
	Store DiscoveryStore
	// Address is what the node writes in its discovery row (default: the
	// name's host).
	Address string
	// ExpireTime: rows of other nodes older than this are deleted
	// (MongooseIM's default: an hour).
	ExpireTime time.Duration
	// Discovery checks every CheckInterval during the first InitialPhase,
	// then every RegularInterval; a second after a store error (or
	// CheckInterval when shorter).
	CheckInterval, RegularInterval, InitialPhase time.Duration
	// NetTickTime: a peer silent for this long is down (Erlang's
	// net_ticktime).
	NetTickTime time.Duration
	// CallTimeout bounds a call between nodes.
	CallTimeout time.Duration
	Logger      *slog.Logger
	// Services run on the node once it has started (the XMPP service),
	// each reachable from its counterparts on the other nodes.
	Services []Service
}

// DefaultConfig is MongooseIM's discovery defaults and Erlang's
// net_ticktime.
func DefaultConfig() Config {
	return Config{EPMDPort: erldist.DefaultEPMDPort, ClusterName: "mimmigrate", ExpireTime: time.Hour,
		CheckInterval: 5 * time.Second, RegularInterval: 5 * time.Minute, InitialPhase: 5 * time.Minute,
		NetTickTime: 60 * time.Second, CallTimeout: 30 * time.Second}
}
