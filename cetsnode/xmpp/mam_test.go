package xmpp_test

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mimmigrate/mimmigrate/internal/testenv"
	"github.com/mimmigrate/mimmigrate/internal/xmpptest"
)

const withMAM = withRoster + "  mod_mam: {}\n"

// mamQuery is a query IQ in urn:xmpp:mam:2 with a form and an RSM set.
func mamQuery(id, queryID, fields, rsm string) string {
	q := "<iq type='set' id='" + id + "'><query xmlns='urn:xmpp:mam:2'"
	if queryID != "" {
		q += " queryid='" + queryID + "'"
	}
	q += ">"
	if fields != "" {
		q += "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>urn:xmpp:mam:2</value></field>" + fields + "</x>"
	}
	if rsm != "" {
		q += "<set xmlns='http://jabber.org/protocol/rsm'>" + rsm + "</set>"
	}
	return q + "</query></iq>"
}

func field(v, value string) string {
	return "<field var='" + v + "'><value>" + value + "</value></field>"
}

// archiveIDs are a user's archive ids in the database, oldest first.
func archiveIDs(t *testing.T, user string) []string {
	t.Helper()
	rows, err := testenv.DB(t, bed.DBURL).Pool.Query(context.Background(), `SELECT timestamp::text FROM archive WHERE username = $1 ORDER BY timestamp`, user)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		rows.Scan(&id)
		ids = append(ids, id)
	}
	return ids
}

// warmUp logs each user in once (the server's first database queries),
// so that no answer in a conversation is late for its step.
func warmUp(t *testing.T, dial dialer, users ...xmpptest.Account) {
	t.Helper()
	for _, u := range users {
		r := dial(u, "warm")
		r.Send("<presence/>")
		if _, err := r.Expect("<presence", 10*time.Second); err != nil {
			t.Fatalf("warming up: %v", err)
		}
		r.Send("</stream:stream>")
		r.Close()
	}
	// The end of those sessions reaches their contacts before the
	// conversation starts.
	time.Sleep(700 * time.Millisecond)
}

// mamNormaliser replaces the archive ids and stamps of messages archived
// since start (they differ from run to run) by their order of appearance;
// the migrated ones stay as they are. Result messages keep their order.
func mamNormaliser(start time.Time) func(string) string {
	seen := map[string]string{}
	idRE := regexp.MustCompile(`\b1[0-9]{15}\b`)
	stampRE := regexp.MustCompile(`stamp='([^']*)'`)
	from := start.UnixMicro()
	return func(s string) string {
		s = idRE.ReplaceAllStringFunc(s, func(id string) string {
			n, _ := strconv.ParseInt(id, 10, 64)
			if n < from {
				return id
			}
			if _, ok := seen[id]; !ok {
				seen[id] = fmt.Sprintf("NEW%d", len(seen)+1)
			}
			return seen[id]
		})
		s = stampRE.ReplaceAllStringFunc(s, func(m string) string {
			ts, err := time.Parse(time.RFC3339Nano, stampRE.FindStringSubmatch(m)[1])
			if err == nil && !ts.Before(start) {
				return "stamp='NEW'"
			}
			return m
		})
		// Only presence and errors may come in any order with results.
		return strings.ReplaceAll(s, "</stream:stream>", "")
	}
}

// The message archive as ejabberd 23.01 serves it with its SQL backend,
// on the same exported database: the query form, preferences, the
// migrated history with every kind of page (after and before ids, the
// last page, flip-page, time bounds, with a bare or full JID), malformed
// and absurd queries, and new messages archived per the preferences —
// the sender's copy, the recipient's marked with its stanza id, an
// offline one — then the same queries answered by ejabberd over what the
// Go node wrote. Every stanza each user receives is the same, the
// migrated ids and stamps included.
func TestMAMAsEjabberd(t *testing.T) {
	needBed(t)
	// user21 has a history with user22 and preferences (roster); user25
	// a history with user26 and none. No other test writes their
	// archives.
	users := [2]xmpptest.Account{{User: "user21", Password: "pw-user1"}, {User: "user25", Password: "pw-user1"}}
	A, B := users[0].JID(), users[1].JID()
	ids := archiveIDs(t, "user21")
	if len(ids) != 4 {
		t.Fatalf("user21's migrated archive holds %d messages, want 4", len(ids))
	}
	stamp := func(id string) string {
		n, _ := strconv.ParseInt(id, 10, 64)
		return time.UnixMicro(n).UTC().Format("2006-01-02T15:04:05.000000Z")
	}
	steps := []step{
		{0, "<presence/>"},
		{1, "<presence/>"},
		{0, "<iq type='get' id='form'><query xmlns='urn:xmpp:mam:2'/></iq>"},
		{0, "<iq type='get' id='p1'><prefs xmlns='urn:xmpp:mam:2'/></iq>"},
		{1, "<iq type='get' id='p2'><prefs xmlns='urn:xmpp:mam:1'/></iq>"},
		{0, mamQuery("all", "q1", "", "")},
		{0, mamQuery("page1", "q2", "", "<max>2</max>")},
		{0, mamQuery("page2", "", "", "<max>2</max><after>"+ids[1]+"</after>")},
		{0, mamQuery("last", "q3", "", "<max>1</max><before/>")},
		{0, mamQuery("before", "q4", "", "<max>2</max><before>"+ids[3]+"</before>")},
		{0, mamQuery("flip", "q5", "", "<max>3</max><before/>")},
		{0, strings.Replace(mamQuery("flip2", "q6", "", "<max>2</max>"), "</query>", "<flip-page/></query>", 1)},
		{0, mamQuery("withbare", "", field("with", "user22@localhost"), "")},
		{0, mamQuery("withfull", "", field("with", "user22@localhost/phone"), "<max>1</max>")},
		{0, mamQuery("withnone", "", field("with", "nobody@localhost"), "")},
		{0, mamQuery("range", "", field("start", stamp(ids[1]))+field("end", stamp(ids[2])), "")},
		{0, mamQuery("zero", "", "", "<max>0</max>")},
		{0, mamQuery("huge", "", "", "<max>100000</max>")},
		{0, mamQuery("notanid", "", "", "<after>abc</after>")},
		{0, mamQuery("badmax", "", "", "<max>many</max>")},
		{0, mamQuery("emptyafter", "", "", "<after/>")},
		{0, mamQuery("index", "", "", "<index>1</index>")},
		{0, mamQuery("unknown", "", field("colour", "red"), "")},
		{0, mamQuery("badstart", "", field("start", "yesterday"), "")},
		{0, mamQuery("badwith", "", field("with", "@@"), "")},
		{0, mamQuery("text", "", field("withtext", "archived"), "")},
		{0, "<iq type='set' id='v1'><query xmlns='urn:xmpp:mam:1' queryid='old'><set xmlns='http://jabber.org/protocol/rsm'><max>1</max></set></query></iq>"},
		{0, "<iq type='set' id='v0'><query xmlns='urn:xmpp:mam:0' queryid='older'><set xmlns='http://jabber.org/protocol/rsm'><max>1</max></set></query></iq>"},
		{0, "<iq type='set' id='p3'><prefs xmlns='urn:xmpp:mam:2' default='always'><always><jid>" + B + "</jid><jid>" + B + "/x</jid></always><never><jid>user26@localhost</jid></never></prefs></iq>"},
		{0, "<iq type='set' id='p4'><prefs xmlns='urn:xmpp:mam:2'/></iq>"},
		{0, "<iq type='set' id='p5'><prefs xmlns='urn:xmpp:mam:2' default='sometimes'/></iq>"},
		{0, "<iq type='get' id='p6'><prefs xmlns='urn:xmpp:mam:2'/></iq>"},
		// B archives nothing yet (mod_mam's default is never): only A's copy.
		{0, "<message to='" + B + "' type='chat' id='n1'><body>new one</body></message>"},
		{1, "<iq type='set' id='p7'><prefs xmlns='urn:xmpp:mam:2' default='always'/></iq>"},
		{0, "<message to='" + B + "' type='chat' id='n2'><body>new two</body><stanza-id xmlns='urn:xmpp:sid:0' by='" + B + "' id='forged'/></message>"},
		{1, "<message to='" + A + "/a' type='chat' id='n3'><body>an answer</body><thread>t1</thread></message>"},
		{0, "<message to='" + B + "' type='chat' id='n4'><body>not kept</body><no-store xmlns='urn:xmpp:hints'/></message>"},
		{0, "<message to='" + B + "' type='headline' id='n5'><body>news</body></message>"},
		{0, "<message to='" + B + "' type='chat' id='n6'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>"},
		{0, "<message to='" + B + "' type='chat' id='n7'><x xmlns='urn:example'/><store xmlns='urn:xmpp:hints'/></message>"},
		{0, mamQuery("news", "q7", "", "<after>"+ids[3]+"</after>")},
		{1, mamQuery("bnews", "q8", field("with", A), "")},
		{1, "close"},
		{0, "<message to='" + B + "' type='chat' id='n8'><body>while you were away</body></message>"},
		{0, mamQuery("final", "q9", "", "<max>250</max>")},
	}
	db := testenv.DB(t, bed.DBURL).Pool
	ctx := context.Background()
	// Their offline messages (the populator's) are not this test's.
	if _, err := db.Exec(ctx, `DELETE FROM spool WHERE username IN ($1, $2)`, users[0].User, users[1].User); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var prefs []string
	rows, err := db.Query(ctx, `SELECT username || '|' || def || '|' || always || '|' || never FROM archive_prefs WHERE username IN ($1, $2)`, users[0].User, users[1].User)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var p string
		rows.Scan(&p)
		prefs = append(prefs, p)
	}
	rows.Close()
	// The run's writes are undone before the next (the archive's new
	// rows, the preferences, the offline message).
	reset := func() {
		for _, q := range []string{
			`DELETE FROM archive WHERE username IN ($1, $2) AND timestamp >= $3`,
			`DELETE FROM spool WHERE username IN ($1, $2) AND created_at >= to_timestamp($3::bigint / 1000000.0)`,
			`DELETE FROM archive_prefs WHERE username IN ($1, $2) AND $3::bigint > 0`,
		} {
			if _, err := db.Exec(ctx, q, users[0].User, users[1].User, start.UnixMicro()); err != nil {
				t.Fatal(err)
			}
		}
		for _, p := range prefs {
			f := strings.SplitN(p, "|", 4)
			if _, err := db.Exec(ctx, `INSERT INTO archive_prefs (username, def, always, never) VALUES ($1, $2, $3, $4)`, f[0], f[1], f[2], f[3]); err != nil {
				t.Fatal(err)
			}
		}
	}
	e := bed.StartSQLEjabberd(t)
	dialEj := dialEjabberd(t, e)
	warmUp(t, dialEj, users[:]...)
	ej := runConversationWith(t, dialEj, users[:], steps, mamNormaliser(start))
	reset()
	n := bed.StartNode(t, "mam"+testenv.RandomID(5), withMAM)
	dialGo := dialNode(t, n)
	warmUp(t, dialGo, users[:]...)
	ours := runConversationWith(t, dialGo, users[:], steps, mamNormaliser(start))
	sameAsEjabberd(t, ej, ours)
	if t.Failed() {
		t.Logf("ejabberd's conversation:\n%s", strings.Join(ej, "\n"))
		return
	}
	// ejabberd reads what the Go node wrote: the same queries over both
	// users' archives (new ids included) get the same answers.
	readBack := []step{
		{0, mamQuery("ra", "r1", "", "<max>250</max>")},
		{1, mamQuery("rb", "r2", "", "<max>250</max>")},
		{0, "<iq type='get' id='rp'><prefs xmlns='urn:xmpp:mam:2'/></iq>"},
	}
	same := func(s string) string { return s }
	ejBack := runConversationWith(t, dialEj, users[:], readBack, same)
	ourBack := runConversationWith(t, dialGo, users[:], readBack, same)
	for i := range ejBack {
		if ejBack[i] != ourBack[i] {
			t.Errorf("ejabberd reads: %s\nours:          %s", ejBack[i], ourBack[i])
		}
	}
	// Step 1 is user25's query: its output is the second user's.
	if b := ourBack[3]; !strings.HasPrefix(b, "step 1, user 1: ") || !strings.Contains(b, "while you were away") || !strings.Contains(b, "an answer") || strings.Contains(b, "new one") {
		t.Errorf("user25's archive is not what its preferences kept: %s", b)
	}
}

// Real clients (slixmpp's MAM plugin, paging with RSM) on two Go nodes:
// the migrated history comes page by page with the ids it had; a message
// after the cutover is delivered with its stanza id, and a client asking
// for everything after the last id it saw before the cutover gets
// exactly that message; a message to two resources of one user (on two
// nodes) reaches both with the same id and is archived once.
func TestMAMWithRealClients(t *testing.T) {
	needBed(t)
	cluster := "mr" + testenv.RandomID(5)
	cfg := withRoster + "  mod_mam:\n    default: always\n"
	n1 := bed.StartNode(t, cluster, cfg)
	n2 := bed.StartNode(t, cluster, cfg)
	xmpptest.WaitClustered(t, 2, n1, n2)
	// user13 and user17 have migrated histories; no other test archives
	// for them.
	a := xmpptest.Account{User: "user13", Password: "pw-user13"}
	b := xmpptest.Account{User: "user17", Password: "pw-user17"}
	ids := archiveIDs(t, a.User)
	if len(ids) != 4 {
		t.Fatalf("user13's migrated archive holds %d messages, want 4", len(ids))
	}
	alice := xmpptest.StartChat(t, xmpptest.Login{Account: a, Addr: n1.StartTLS, CA: bed.CA})
	alice.Do("mam - 2")
	for i, id := range ids {
		m := alice.Expect(`^MAM (\S+) (\S+) (.*)$`, 10*time.Second)
		if m[1] != id || m[2] != "user14@localhost/phone" || m[3] != fmt.Sprintf("archived %d <&> user13", 4-i) {
			t.Fatalf("migrated message %d: %q, want id %s from user14@localhost/phone", i, m[0], id)
		}
	}
	alice.Expect("^MAMEND 4$", 10*time.Second)

	alice.Do("presence 1")
	alice.Expect("^PRES "+q(alice.JID)+" available", 10*time.Second)
	bob := xmpptest.StartChat(t, xmpptest.Login{Account: b, Addr: n2.DirectTLS, DirectTLS: true, CA: bed.CA})
	bob.Do("msg %s chat hello after the cutover", a.JID())
	alice.Expect("^MSG "+q(b.JID())+`/\S+ chat hello after the cutover$`, 10*time.Second)
	sid := alice.Expect(`^SID (\S+) (\d+)$`, 10*time.Second)
	if sid[1] != a.JID() {
		t.Fatalf("stanza id by %s, want %s", sid[1], a.JID())
	}
	alice.Do("mam %s 10", ids[3])
	m := alice.Expect(`^MAM (\S+) (\S+) (.*)$`, 10*time.Second)
	if m[1] != sid[2] || m[3] != "hello after the cutover" {
		t.Fatalf("after the last migrated id: %q, want id %s", m[0], sid[2])
	}
	alice.Expect("^MAMEND 1$", 10*time.Second)
	// Bob's archive has his migrated history and what he sent.
	bob.Do("mam - 50")
	for range 4 {
		bob.Expect(`^MAM \d+ user18@localhost/phone archived`, 10*time.Second)
	}
	bob.Expect(`^MAM \d+ `+q(b.JID())+`/\S+ hello after the cutover$`, 10*time.Second)
	bob.Expect("^MAMEND 5$", 10*time.Second)

	// A second resource of alice's, on the other node, of the same
	// priority: both get the message with one id; it is archived once.
	alice2 := xmpptest.StartChat(t, xmpptest.Login{Account: a, Addr: n2.StartTLS, CA: bed.CA})
	alice2.Do("presence 1")
	alice2.Expect("^PRES "+q(alice2.JID)+" available", 10*time.Second)
	bob.Do("msg %s chat to both of you", a.JID())
	var got []string
	for _, c := range []*xmpptest.Chat{alice, alice2} {
		c.Expect(`^MSG \S+ chat to both of you$`, 10*time.Second)
		got = append(got, c.Expect(`^SID (\S+) (\d+)$`, 10*time.Second)[2])
	}
	if got[0] != got[1] {
		t.Errorf("the two resources got stanza ids %s and %s, want one", got[0], got[1])
	}
	var rows int
	if err := testenv.DB(t, bed.DBURL).Pool.QueryRow(context.Background(),
		`SELECT count(*) FROM archive WHERE username = $1 AND txt = 'to both of you'`, a.User).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != 1 {
		t.Errorf("the message to two resources is archived %d times, want once", rows)
	}
	alice2.Do("mam %s 10", sid[2])
	m = alice2.Expect(`^MAM (\S+) \S+ to both of you$`, 10*time.Second)
	if m[1] != got[0] {
		t.Errorf("the archive has it under %s, the resources were told %s", m[1], got[0])
	}
	alice2.Expect("^MAMEND 1$", 10*time.Second)
}
