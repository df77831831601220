// Package cetsnode is mimmigrate's cluster node: in-memory tables
// replicated to every node the way MongooseIM's CETS does it, over Erlang
// distribution between Go nodes, with nodes that find each other through a
// PostgreSQL table.
//
// Every node holds a full copy of every table; reads are local. A write is
// applied locally, sent to every peer of the table's segment, and returns
// when each live peer has acknowledged it or has been declared down. Each
// node sends its writes over one connection per peer, so a sender's order
// is kept. Two segments join by pausing writes on every member (queued, not
// lost), exchanging dumps, merging them with the table's conflict handler
// and resuming under a new join reference; a write carrying another join
// reference is dropped (but acknowledged). A node that goes down is dropped
// from every segment and the records it owned are deleted on every
// survivor. See docs/cluster.md.
//
// Layout: Config and Start (config.go, node.go) make a running Node; its
// Cluster (cluster.go, join.go) holds the replicated tables (table.go,
// the local copy in store.go) and speaks the protocol of messages.go over a
// Transport (transport.go: Erlang distribution); Discovery (discovery.go)
// finds the other nodes in a DiscoveryStore (discovery_postgres.go:
// MongooseIM's discovery_nodes); the node serves its operations to
// rpc:call (rpc.go) and Admin (admin.go) calls them; Sessions and Routes
// (session.go, routes.go) are the tables the XMPP service uses.
package cetsnode
