package xmpp_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mimmigrate/mimmigrate/cetsnode/xmpp/stanza"
	"github.com/mimmigrate/mimmigrate/cetsnode/xmpp/storage"
	"github.com/mimmigrate/mimmigrate/internal/xmppload"
	"github.com/mimmigrate/mimmigrate/internal/xmpptest"
	"github.com/mimmigrate/mimmigrate/migrate/codec"
	"github.com/xdg-go/scram"
)

// readyModules are what a client doing Conversations' login sequence
// uses, on both servers.
const readyModules = "modules:\n  mod_roster:\n    versioning: true\n  mod_offline: {}\n  mod_last: {}\n  mod_ping: {}\n  mod_mam: {}\n" +
	"  mod_carboncopy: {}\n  mod_stream_mgmt: {}\n  mod_caps: {}\n  mod_disco: {}\n  mod_pubsub:\n    plugins:\n      - pep\n"

// Login to "ready" as Conversations does it, against ejabberd 23.01 on
// the same database in the same run: connect, STARTTLS, SCRAM-SHA-1,
// bind, stream management, carbons, the roster by version, the last page
// of the archive (MAM catch-up), then available presence with caps
// whose features ask for the OMEMO device list — ready when the user's
// own device list has come (PEP +notify). Each user has 20 contacts, 100
// archived messages and a device list; MIMMIGRATE_BENCH_LOGINS logins
// per server (200), the servers taking turns.
//
//	go test -run XXX -bench LoginToReadyVersusEjabberd -benchtime 1x -timeout 30m ./cetsnode/xmpp/
func BenchmarkLoginToReadyVersusEjabberd(b *testing.B) {
	if bed == nil {
		b.Skip(bedWhy)
	}
	logins := envInt("MIMMIGRATE_BENCH_LOGINS", 200)
	const users = 50
	bb := startBenchBed(b, users, readyModules)
	ctx := context.Background()
	db := bb.db.Pool
	exec := func(q string, args ...any) {
		b.Helper()
		if _, err := db.Exec(ctx, q, args...); err != nil {
			b.Fatalf("%s: %v", q, err)
		}
	}
	exec(`INSERT INTO rosterusers (username, jid, nick, subscription, ask, askmessage, server, subscribe, type)
		SELECT 'b' || u, 'b' || ((u + k) % $1 + 1) || '@localhost', 'Contact ' || k, 'B', 'N', '', 'N', '', 'item'
		FROM generate_series(1, $1) AS u, generate_series(1, 20) AS k`, users)
	exec(`INSERT INTO roster_version (username, version) SELECT 'b' || u, 'v' || u FROM generate_series(1, $1) AS u`, users)
	base := time.Now().Add(-7 * 24 * time.Hour).UnixMicro()
	exec(`INSERT INTO archive (username, timestamp, peer, bare_peer, xml, txt, kind, nick)
		SELECT 'b' || u, $1::bigint + i::bigint * 60000000 + u, 'b' || (u % $2 + 1) || '@localhost/x', 'b' || (u % $2 + 1) || '@localhost',
			'<message xml:lang=''en'' to=''b' || u || '@localhost'' from=''b' || (u % $2 + 1) || '@localhost/x'' type=''chat'' xmlns=''jabber:client''><body>message ' || i || '</body></message>',
			'message ' || i, 'chat', ''
		FROM generate_series(1, $2) AS u, generate_series(1, 100) AS i`, base, users)
	now := storage.EncodeNow(time.Now())
	for u := 1; u <= users; u++ {
		owner := "b" + strconv.Itoa(u) + "@localhost"
		var nidx int64
		if err := db.QueryRow(ctx, `INSERT INTO pubsub_node (host, node, parent, plugin) VALUES ($1, 'eu.siacs.conversations.axolotl.devicelist', '', 'pep') RETURNING nodeid`, owner).Scan(&nidx); err != nil {
			b.Fatal(err)
		}
		exec(`INSERT INTO pubsub_node_option (nodeid, name, val) VALUES ($1, 'access_model', 'open')`, nidx)
		exec(`INSERT INTO pubsub_state (nodeid, jid, affiliation, subscriptions) VALUES ($1, $2, 'o', '')`, nidx, owner)
		exec(`INSERT INTO pubsub_item (nodeid, itemid, publisher, creation, modification, payload) VALUES ($1, 'current', $2, $3, $3, $4)`,
			nidx, owner+"/phone", now, "<list xmlns='eu.siacs.conversations.axolotl'><device id='"+strconv.Itoa(1000+u)+"'/></list>")
	}
	for _, f := range []string{"http://jabber.org/protocol/caps", "eu.siacs.conversations.axolotl.devicelist+notify", "urn:xmpp:mam:2", "urn:xmpp:carbons:2"} {
		exec(`INSERT INTO caps_features (node, subnode, feature) VALUES ('https://conversations.im', 'bench=', $1)`, f)
	}
	exec(`VACUUM ANALYZE`)

	ready := func(addr string, user int) (time.Duration, error) {
		name := "b" + strconv.Itoa(user)
		cl, _ := scram.SHA1.NewClient(name, benchPassword, "")
		start := time.Now()
		c, err := xmppload.Login(xmppload.Options{Addr: addr, Host: xmpptest.Host, TLS: bb.tlsConf, Mechanism: "SCRAM-SHA-1",
			User: name, Password: benchPassword, Resource: "phone", SCRAM: cl, Timeout: 30 * time.Second, SM: true, Carbons: true})
		if err != nil {
			return 0, err
		}
		defer c.Close()
		wait := func(what string, done func(*codec.Element) bool) error {
			for {
				el, err := c.Next(30 * time.Second)
				if err != nil {
					return fmt.Errorf("%s: %w", what, err)
				}
				if done(el) {
					return nil
				}
			}
		}
		c.Send("<iq type='get' id='r'><query xmlns='jabber:iq:roster' ver='old'/></iq>")
		if err := wait("roster", func(el *codec.Element) bool { return el.Name == "iq" && stanza.Attr(el, "id") == "r" }); err != nil {
			return 0, err
		}
		c.Send("<iq type='set' id='m'><query xmlns='urn:xmpp:mam:2' queryid='m'><set xmlns='http://jabber.org/protocol/rsm'><max>50</max><before/></set></query></iq>")
		results := 0
		if err := wait("mam", func(el *codec.Element) bool {
			if el.Name == "message" {
				results++
			}
			return el.Name == "iq" && stanza.Attr(el, "id") == "m"
		}); err != nil {
			return 0, err
		}
		if results != 50 {
			return 0, fmt.Errorf("%s: the MAM page had %d messages", name, results)
		}
		c.Send("<presence><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='https://conversations.im' ver='bench='/></presence>")
		if err := wait("own device list", func(el *codec.Element) bool {
			return el.Name == "message" && strings.Contains(string(codec.AppendElement(nil, el)), "device id='"+strconv.Itoa(1000+user)+"'")
		}); err != nil {
			return 0, err
		}
		return time.Since(start), nil
	}
	lat := make([][]time.Duration, len(bb.servers))
	for k := 0; k < 20; k++ { // warm-up
		for _, srv := range bb.servers {
			if _, err := ready(srv.addr, k%users+1); err != nil {
				b.Fatalf("%s: %v", srv.name, err)
			}
		}
	}
	for k := 0; k < logins; k++ {
		for si, srv := range bb.servers {
			d, err := ready(srv.addr, k%users+1)
			if err != nil {
				b.Fatalf("%s: %v", srv.name, err)
			}
			lat[si] = append(lat[si], d)
		}
	}
	reportLatency(b, fmt.Sprintf("login to ready (TLS, SCRAM-SHA-1, bind, SM, carbons, roster, MAM page of 50, presence with caps, own OMEMO device list), %d logins each", logins), lat)
}
