package xmpp

import (
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
)

// HTTPHandler serves /healthz (200 only while the node serves c2s: a load
// balancer switches on it; 503 from the moment it stops) and /metrics
// (Prometheus text format).
func (s *Service) HTTPHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if !s.Ready() {
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, "not serving\n")
			return
		}
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		io.WriteString(w, s.Metrics())
	})
	return mux
}

// Metrics is the Prometheus text exposition of the service's counters.
func (s *Service) Metrics() string {
	var b strings.Builder
	metric := func(name, typ, help string, samples ...string) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
		for _, smp := range samples {
			fmt.Fprintf(&b, "%s%s\n", name, smp)
		}
	}
	val := func(v int64) string { return fmt.Sprintf(" %d", v) }
	ready := int64(0)
	if s.Ready() {
		ready = 1
	}
	metric("mimmigrate_xmpp_ready", "gauge", "1 while the node serves c2s.", val(ready))
	metric("mimmigrate_xmpp_sessions", "gauge", "Sessions bound on this node.", val(int64(s.SessionsHere())))
	metric("mimmigrate_xmpp_cluster_sessions", "gauge", "Sessions in the cluster's session table.", val(int64(s.node.Sessions.Count())))
	conns := int64(0)
	if s.c2s != nil {
		conns = int64(len(s.c2s.Conns()))
	}
	metric("mimmigrate_xmpp_connections", "gauge", "Client connections open on this node (bound or not).", val(conns))
	st := s.Stats()
	mechs := st.Mechanisms()
	names := make([]string, 0, len(mechs))
	for m := range mechs {
		names = append(names, m)
	}
	sort.Strings(names)
	var logins []string
	for _, m := range names {
		v := mechs[m]
		logins = append(logins, fmt.Sprintf("{mechanism=%q,result=\"ok\"} %d", m, v[0]), fmt.Sprintf("{mechanism=%q,result=\"failed\"} %d", m, v[1]))
	}
	metric("mimmigrate_xmpp_logins_total", "counter", "SASL logins by mechanism and result.", logins...)
	metric("mimmigrate_xmpp_auth_throttled_total", "counter", "Connections refused or ended by mod_fail2ban.", val(st.Throttled.Load()))
	metric("mimmigrate_xmpp_stanzas_in_total", "counter", "Top-level elements received from clients.", val(st.StanzasIn.Load()))
	metric("mimmigrate_xmpp_stanzas_out_total", "counter", "Stanzas written to clients.", val(st.StanzasOut.Load()))
	metric("mimmigrate_xmpp_routed_total", "counter", "Stanzas routed.", val(s.stats.routed.Load()))
	metric("mimmigrate_xmpp_routed_remote_total", "counter", "Stanzas handed to another node's sessions.", val(s.stats.remote.Load()))
	metric("mimmigrate_xmpp_routing_errors_total", "counter", "Stanzas answered with an error by the server.", val(s.stats.routingErrors.Load()))
	metric("mimmigrate_xmpp_offline_stored_total", "counter", "Messages stored for users without an available session.", val(s.stats.offlineStored.Load()))
	metric("mimmigrate_xmpp_offline_delivered_total", "counter", "Stored messages delivered.", val(s.stats.offlineDelivered.Load()))
	metric("mimmigrate_xmpp_archived_total", "counter", "Messages stored in users' archives (MAM).", val(s.stats.archived.Load()))
	metric("mimmigrate_xmpp_node_down_presence_total", "counter", "Unavailable presence sent for the users of nodes that died.", val(s.stats.peerDownPresence.Load()))
	return b.String()
}
