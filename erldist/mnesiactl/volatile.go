package mnesiactl

import "strings"

// Tables the applications keep in RAM by design: their contents are rebuilt
// at start (sessions, routes, counters, caches). A missing disc copy of these
// is no problem, and the copy plan suggests RAM copies for them.
var volatileTables = map[string]map[string]bool{
	"ejabberd": setOf([]string{
		"session", "session_counter", "route", "route_multicast", "s2s", "temporarily_blocked",
		"muc_online_room", "muc_online_users", "bosh", "bytestream", "reg_users_counter",
		"mod_register_ip", "sip_session", "mqtt_session", "mqtt_sub", "pubsub_last_item",
		"ejabberd_commands", "multicastc", "carboncopy", "c2s_sessions",
	}),
	"mongooseim": setOf([]string{
		"session", "session_counter", "route", "external_component", "external_component_global", "s2s",
		"muc_online_room", "muc_online_users", "bosh_session", "jingle_sip_session",
		"mod_register_ip", "local_config", "mongoose_cluster_id_ram", "stream_mgmt_session",
		"mod_global_distrib_mapping", "component", "pubsub_last_item", "sm_session",
	}),
	"rabbitmq": setOf([]string{
		"rabbit_listener", "rabbit_queue", "rabbit_exchange", "rabbit_route", "rabbit_reverse_route",
		"rabbit_semi_durable_route", "rabbit_topic_trie_node", "rabbit_topic_trie_edge",
		"rabbit_topic_trie_binding", "rabbit_exchange_serial", "gm_group", "mirrored_sup_childspec",
		"rabbit_node_maintenance_states", "rabbit_exchange_type_consistent_hash_ring_state",
	}),
}

// volatilePrefixes are families of per-node tables (RabbitMQ names its
// connection tracking tables after the node).
var volatilePrefixes = map[string][]string{
	"rabbitmq": {"tracked_connection_", "tracked_channel_"},
}

// isVolatile reports whether a table is RAM-only by design.
func isVolatile(product string, t Table) bool {
	known := volatileTables[product][t.Name]
	for _, p := range volatilePrefixes[product] {
		known = known || strings.HasPrefix(t.Name, p)
	}
	if !known {
		return false
	}
	for _, c := range t.Copies {
		if c.OnDisc() {
			return false // an operator chose to persist it: treat as persistent
		}
	}
	return true
}
