package mnesia

import "strings"

// volatileTables are the tables each product keeps only for the running
// system (sessions, routes, counters, caches rebuilt at start), with what
// they hold. inspect does not ask for a disc copy of these and plans RAM
// copies for them; export skips them as running state.
var volatileTables = map[string]map[string]string{
	"ejabberd": {
		"session": "sessions", "session_counter": "session counters", "c2s_sessions": "sessions",
		"route": "routes", "route_multicast": "routes", "s2s": "s2s connections", "temporarily_blocked": "s2s blocks",
		"muc_online_room": "online rooms", "muc_online_users": "room occupants", "bosh": "BOSH sessions",
		"http_bind": "BOSH sessions", "bytestream": "proxy65 streams", "reg_users_counter": "a counter",
		"mod_register_ip": "registration throttling", "sip_session": "SIP sessions", "mqtt_session": "MQTT sessions",
		"mqtt_sub": "MQTT subscriptions", "pubsub_last_item": "a cache", "ejabberd_commands": "command registry",
		"multicastc": "a cache", "carboncopy": "carbons state of sessions", "captcha": "captchas",
		"iq_response": "pending IQs", "user_caps": "a cache", "mod_http_upload_quota": "a cache",
		"pubsub_index": "pubsub id counters (rebuilt from the ids)", "pubsub_orphan": "pubsub orphans",
		"schema": "Mnesia's schema", "local_config": "old configuration", "config": "old configuration",
		"acl": "old configuration", "access": "old configuration", "irc_custom": "the IRC transport (removed)",
	},
	"mongooseim": {
		"session": "sessions", "sm_session": "sessions", "session_counter": "session counters",
		"route": "routes", "external_component": "component routes", "external_component_global": "component routes",
		"component": "component routes", "s2s": "s2s connections", "muc_online_room": "online rooms",
		"muc_online_users": "room occupants", "bosh_session": "BOSH sessions", "jingle_sip_session": "SIP sessions",
		"mod_register_ip": "registration throttling", "local_config": "configuration",
		"mongoose_cluster_id_ram": "the cluster id cache", "stream_mgmt_session": "stream management sessions",
		"mod_global_distrib_mapping": "global distribution routes", "pubsub_last_item": "a cache",
		"schema": "Mnesia's schema",
	},
	"rabbitmq": {
		"rabbit_listener": "listeners", "rabbit_queue": "queues of the running node", "rabbit_exchange": "exchanges of the running node",
		"rabbit_route": "routes", "rabbit_reverse_route": "routes", "rabbit_semi_durable_route": "routes",
		"rabbit_topic_trie_node": "the topic index", "rabbit_topic_trie_edge": "the topic index",
		"rabbit_topic_trie_binding": "the topic index", "rabbit_exchange_serial": "counters", "gm_group": "mirroring groups",
		"mirrored_sup_childspec": "supervisor state", "rabbit_node_maintenance_states": "maintenance flags",
		"rabbit_exchange_type_consistent_hash_ring_state": "hash ring state",
	},
}

// volatilePrefixes are families of per-node tables (RabbitMQ names its
// connection tracking tables after the node).
var volatilePrefixes = map[string][]string{
	"rabbitmq": {"tracked_connection_", "tracked_channel_"},
}

// Volatile reports whether a product keeps a table only for the running
// system, and what it holds. An empty product means ejabberd or
// MongooseIM (a Mnesia directory does not say which wrote it).
func Volatile(product, table string) (what string, ok bool) {
	if product == "" {
		if what, ok = volatileTables["ejabberd"][table]; ok {
			return what, true
		}
		product = "mongooseim"
	}
	if what, ok = volatileTables[product][table]; ok {
		return what, true
	}
	for _, p := range volatilePrefixes[product] {
		if strings.HasPrefix(table, p) {
			return "connection tracking", true
		}
	}
	return "", false
}

// isVolatile reports whether a table is RAM-only by design: volatile for
// its product, and not kept on disc by the operator.
func isVolatile(product string, t Table) bool {
	if _, ok := Volatile(product, t.Name); !ok || t.Name == "schema" {
		return false
	}
	for _, c := range t.Copies {
		if c.OnDisc() {
			return false // an operator chose to persist it: treat as persistent
		}
	}
	return true
}
