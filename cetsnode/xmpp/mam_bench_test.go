package xmpp_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/xdg-go/scram"

	"github.com/mimmigrate/mimmigrate/cetsnode/xmpp/stanza"
	"github.com/mimmigrate/mimmigrate/internal/xmppload"
	"github.com/mimmigrate/mimmigrate/internal/xmpptest"
)

// MAM against ejabberd 23.01 on one database (its SQL schema, both
// servers with mod_mam, the same rows): the latency of a page of 50 from
// a user with MIMMIGRATE_BENCH_ARCHIVE (10 000) archived messages, among
// 19 other users with as many (200 000 rows in all), the
// way clients page — forward after an id, backward before one, the last
// page — with ids spread over the archive. The servers take turns, three
// rounds of MIMMIGRATE_BENCH_MAM_QUERIES (200) queries each, after a
// warm-up; p50 and p99 over all rounds.
//
//	go test -run XXX -bench MAMVersusEjabberd -benchtime 1x -timeout 20m ./cetsnode/xmpp/
func BenchmarkMAMVersusEjabberd(b *testing.B) {
	if bed == nil {
		b.Skip(bedWhy)
	}
	archived := envInt("MIMMIGRATE_BENCH_ARCHIVE", 10000)
	queries := envInt("MIMMIGRATE_BENCH_MAM_QUERIES", 200)
	bb := startBenchBed(b, 2, benchModules+"  mod_mam: {}\n")
	ctx := context.Background()
	base := time.Now().Add(-30 * 24 * time.Hour).UnixMicro()
	if _, err := bb.db.Pool.Exec(ctx, `INSERT INTO archive (username, timestamp, peer, bare_peer, xml, txt, kind, nick)
		SELECT 'b1', $1::bigint + i::bigint * 60000000, 'b2@localhost/x', 'b2@localhost',
			'<message xml:lang=''en'' to=''b1@localhost'' from=''b2@localhost/x'' type=''chat'' id=''m' || i || ''' xmlns=''jabber:client''><body>archived message number ' || i || ', of a usual length for a chat line</body></message>',
			'archived message number ' || i || ', of a usual length for a chat line', 'chat', ''
		FROM generate_series(1, $2) AS i`, base, archived); err != nil {
		b.Fatal(err)
	}
	// Other users' archives beside it, as a real archive table has (the
	// planner then reads b1's rows by the (username, timestamp) index,
	// as it does in production, not the whole table).
	if _, err := bb.db.Pool.Exec(ctx, `INSERT INTO archive (username, timestamp, peer, bare_peer, xml, txt, kind, nick)
		SELECT 'other' || u, $1::bigint + i::bigint * 60000000 + u, 'b1@localhost/x', 'b1@localhost',
			'<message xml:lang=''en'' to=''other' || u || '@localhost'' from=''b1@localhost/x'' type=''chat'' xmlns=''jabber:client''><body>another user''s message</body></message>',
			'another user''s message', 'chat', ''
		FROM generate_series(1, $2) AS i, generate_series(1, 19) AS u`, base, archived); err != nil {
		b.Fatal(err)
	}
	if _, err := bb.db.Pool.Exec(ctx, `VACUUM ANALYZE archive`); err != nil {
		b.Fatal(err)
	}
	ids := make([]int64, archived)
	for i := range ids {
		ids[i] = base + int64(i+1)*60000000
	}
	clients := make([]*xmppload.Client, len(bb.servers))
	for si, srv := range bb.servers {
		cl, _ := scram.SHA1.NewClient("b1", benchPassword, "")
		c, err := xmppload.Login(xmppload.Options{Addr: srv.addr, Host: xmpptest.Host, TLS: bb.tlsConf, Mechanism: "SCRAM-SHA-1",
			User: "b1", Password: benchPassword, Resource: "mam", SCRAM: cl, Timeout: 30 * time.Second})
		if err != nil {
			b.Fatalf("%s: %v", srv.name, err)
		}
		defer c.Close()
		clients[si] = c
	}
	// query sends a query for a page of 50 and reads it to its fin: the
	// kinds take turns, the ids are random.
	rng := rand.New(rand.NewPCG(1, 2))
	seq := 0
	query := func(c *xmppload.Client, kind int) (time.Duration, error) {
		seq++
		id := "q" + strconv.Itoa(seq)
		var set string
		switch kind % 3 {
		case 0:
			set = "<after>" + strconv.FormatInt(ids[rng.IntN(archived-50)], 10) + "</after>"
		case 1:
			set = "<before>" + strconv.FormatInt(ids[50+rng.IntN(archived-50)], 10) + "</before>"
		default:
			set = "<before/>"
		}
		start := time.Now()
		c.Send("<iq type='set' id='" + id + "'><query xmlns='urn:xmpp:mam:2' queryid='" + id + "'><set xmlns='http://jabber.org/protocol/rsm'><max>50</max>" + set + "</set></query></iq>")
		results := 0
		for {
			el, err := c.Next(30 * time.Second)
			if err != nil {
				return 0, err
			}
			if el.Name == "message" {
				results++
				continue
			}
			if el.Name == "iq" && stanza.Attr(el, "id") == id {
				if stanza.Attr(el, "type") != "result" || results != 50 {
					return 0, fmt.Errorf("query %s: %s with %d results", id, stanza.Attr(el, "type"), results)
				}
				return time.Since(start), nil
			}
		}
	}
	lat := make([][]time.Duration, len(clients))
	for si, c := range clients {
		for k := 0; k < 30; k++ { // warm-up
			if _, err := query(c, k); err != nil {
				b.Fatalf("%s: %v", bb.servers[si].name, err)
			}
		}
	}
	for round := 0; round < 3; round++ {
		for si, c := range clients {
			for k := 0; k < queries; k++ {
				d, err := query(c, k)
				if err != nil {
					b.Fatalf("%s: %v", bb.servers[si].name, err)
				}
				lat[si] = append(lat[si], d)
			}
		}
	}
	reportLatency(b, fmt.Sprintf("MAM, a page of 50 of %d archived messages, %d queries each", archived, 3*queries), lat)
}

// reportLatency logs and reports the p50 and p99 of two servers'
// latencies (ejabberd's first) and their ratios.
func reportLatency(b *testing.B, title string, lat [][]time.Duration) {
	p := func(si, q int) time.Duration { return percentile(lat[si], q) }
	e50, e99, g50, g99 := p(0, 50), p(0, 99), p(1, 50), p(1, 99)
	report := fmt.Sprintf(`%s (ejabberd 23.01 | mimmigrate | ratio)
  p50   %8s | %8s | %.2f×
  p99   %8s | %8s | %.2f×`, title,
		e50.Round(10*time.Microsecond), g50.Round(10*time.Microsecond), float64(g50)/float64(e50),
		e99.Round(10*time.Microsecond), g99.Round(10*time.Microsecond), float64(g99)/float64(e99))
	b.Log("\n" + report)
	fmt.Println(report)
	b.ReportMetric(float64(g50)/float64(e50), "p50-ratio")
	b.ReportMetric(float64(g99)/float64(e99), "p99-ratio")
}

// The one-to-one message benchmark of issue 7 with what modern clients
// turn on: every client enables carbons and stream management (and acks
// the server's requests), both servers archive every message for both
// parties (mod_mam default: always) — against ejabberd 23.01 on the same
// database in the same run. Pairs: MIMMIGRATE_BENCH_PAIRS (1000).
//
//	go test -run XXX -bench MessagesFullVersusEjabberd -benchtime 1x -timeout 30m ./cetsnode/xmpp/
func BenchmarkMessagesFullVersusEjabberd(b *testing.B) {
	if bed == nil {
		b.Skip(bedWhy)
	}
	pairs := envInt("MIMMIGRATE_BENCH_PAIRS", 1000)
	bb := startBenchBed(b, 2*pairs, benchModules+"  mod_mam:\n    default: always\n  mod_carboncopy: {}\n  mod_stream_mgmt: {}\n")
	type result struct {
		rate                       float64
		p50, p99, halfP50, halfP99 time.Duration
		lost, archived             int64
	}
	results := make([]result, len(bb.servers))
	for si, srv := range bb.servers {
		bb.db.Pool.Exec(context.Background(), `DELETE FROM archive`)
		clients := make([]*xmppload.Client, 2*pairs)
		sem := make(chan struct{}, 16)
		errs := make(chan error, 2*pairs)
		for i := range clients {
			sem <- struct{}{}
			go func() {
				defer func() { <-sem }()
				user := "b" + strconv.Itoa(i+1)
				cl, _ := scram.SHA1.NewClient(user, benchPassword, "")
				c, err := xmppload.Login(xmppload.Options{Addr: srv.addr, Host: xmpptest.Host, TLS: bb.tlsConf, Mechanism: "SCRAM-SHA-1",
					User: user, Password: benchPassword, Resource: "x", SCRAM: cl, Timeout: 30 * time.Second, SM: true, Carbons: true})
				clients[i] = c
				errs <- err
			}()
		}
		for range clients {
			if err := <-errs; err != nil {
				b.Fatalf("%s: %v", srv.name, err)
			}
		}
		r := &results[si]
		r.rate, r.p50, r.p99, r.halfP50, r.halfP99, r.lost = messages(b, srv.name, clients[:pairs], clients[pairs:])
		for _, c := range clients {
			c.Close()
		}
		time.Sleep(2 * time.Second)
		bb.db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM archive`).Scan(&r.archived)
	}
	e, g := results[0], results[1]
	report := fmt.Sprintf(`XMPP messages with carbons, stream management and archiving, %d pairs (ejabberd 23.01 | mimmigrate | ratio)
  messages/s (saturated)    %8.0f | %8.0f | %.2f×
    p50 / p99               %8s / %s | %s / %s
  at half of each one's rate p50 / p99: %s / %s | %s / %s
  messages not received     %8d | %8d   (of %d)
  archive rows written      %8d | %8d   (two per message)`,
		pairs, e.rate, g.rate, g.rate/e.rate,
		e.p50.Round(time.Millisecond), e.p99.Round(time.Millisecond), g.p50.Round(time.Millisecond), g.p99.Round(time.Millisecond),
		e.halfP50.Round(time.Millisecond), e.halfP99.Round(time.Millisecond), g.halfP50.Round(time.Millisecond), g.halfP99.Round(time.Millisecond),
		e.lost, g.lost, 2*pairs*20, e.archived, g.archived)
	b.Log("\n" + report)
	fmt.Println(report)
	b.ReportMetric(g.rate/e.rate, "msg-rate-ratio")
}
