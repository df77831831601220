package xmpp_test

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/mimmigrate/mimmigrate/internal/testenv"
	"github.com/mimmigrate/mimmigrate/internal/xmpptest"
)

// Privacy lists and blocking as ejabberd 23.01's mod_privacy and
// mod_blocking with their SQL backends, on the same exported database:
// the migrated list, lists made, read, activated, made default and
// removed (with their errors), enforced on messages in and out and on
// presence; the block list kept in the default list (a new "Blocked
// contacts" one), blocking and unblocking with both pushes, the
// malformed requests. Every stanza each of three sessions receives is
// the same from ejabberd and from a Go node.
var (
	pushIDRE    = regexp.MustCompile(`id='push[^']*'`)
	listNamesRE = regexp.MustCompile(`(<list name='[^']*'/>)+`)
	listNameRE  = regexp.MustCompile(`<list name='[^']*'/>`)
)

func TestPrivacyAndBlockingAsEjabberd(t *testing.T) {
	needBed(t)
	// Bulk users (no shared roster groups); no other test uses user31's,
	// user29's or user30's lists. user31 gets a list from ejabberd's own
	// code first, as the migrated ones were made.
	a := xmpptest.Account{User: "user31", Password: "pw-user1"}
	b := xmpptest.Account{User: "user29", Password: "pw-user1"}
	c := xmpptest.Account{User: "user30", Password: "pw-user1"}
	A, B, C := a.JID(), b.JID(), c.JID()
	q := func(id, typ, body string) string {
		return "<iq type='" + typ + "' id='" + id + "'><query xmlns='jabber:iq:privacy'>" + body + "</query></iq>"
	}
	bl := func(id, typ, body string) string {
		return "<iq type='" + typ + "' id='" + id + "'>" + body + "</iq>"
	}
	steps := []step{
		{0, "<presence/>"},
		{1, "<presence/>"},
		{2, "<presence/>"},
		{0, q("g1", "get", "")},
		{0, q("g2", "get", "<list name='blocked'/>")},
		{0, q("g3", "get", "<list name='nosuch'/>")},
		{0, q("g4", "get", "<list name='a'/><list name='b'/>")},
		{0, q("g5", "get", "<active name='blocked'/>")},
		{1, "<iq type='get' id='g6' to='" + A + "'><query xmlns='jabber:iq:privacy'/></iq>"},
		{0, q("s1", "set", "<list name='friends'><item type='jid' value='"+C+"' action='deny' order='1'><message/></item>"+
			"<item type='subscription' value='both' action='allow' order='5'/><item type='group' value='G' action='deny' order='3'><presence-out/><presence-in/></item>"+
			"<item action='allow' order='10'><iq/><message/></item></list>")},
		{0, q("g7", "get", "<list name='friends'/>")},
		{0, q("a1", "set", "<active name='nosuch'/>")},
		{0, q("a2", "set", "<active name='friends'/>")},
		{2, "<message to='" + A + "/a' type='chat' id='m1'><body>from c, denied by the active list</body></message>"},
		{1, "<message to='" + A + "/a' type='chat' id='m2'><body>from b</body></message>"},
		{0, "<message to='" + C + "/c' type='chat' id='m3'><body>to c</body></message>"},
		{0, q("r1", "set", "<list name='friends'/>")},
		{0, q("a3", "set", "<active/>")},
		{0, q("d1", "set", "<default name='friends'/>")},
		{0, q("r2", "set", "<list name='friends'/>")},
		{0, q("d2", "set", "<default/>")},
		{0, q("r3", "set", "<list name='friends'/>")},
		{0, q("r4", "set", "<list name='friends'/>")},
		{0, q("x1", "set", "<default name='x'/><active name='y'/>")},
		{0, q("x2", "set", "<list name='bad'><item order='1'/></list>")},
		{0, q("x3", "set", "<list name='bad'><item action='maybe' order='1'/></list>")},
		{0, q("x4", "set", "<list name='bad'><item type='jid' value='@@' action='deny' order='1'/></list>")},
		{0, q("x5", "set", "<list name='bad'><item type='group' value='' action='deny' order='1'/></list>")},
		{0, q("x6", "set", "<list name='bad'><item type='colour' value='red' action='deny' order='1'/></list>")},
		{0, q("x7", "set", "<list name='bad'><item type='subscription' value='some' action='deny' order='1'/></list>")},
		{0, bl("b1", "get", "<blocklist xmlns='urn:xmpp:blocking'/>")},
		{0, bl("b2", "set", "<block xmlns='urn:xmpp:blocking'><item jid='"+C+"'/></block>")},
		{0, bl("b3", "get", "<blocklist xmlns='urn:xmpp:blocking'/>")},
		{2, "<message to='" + A + "/a' type='chat' id='m4'><body>from c, blocked</body></message>"},
		{2, "<message to='" + A + "' type='headline' id='m5'><body>a headline from c, blocked</body></message>"},
		{0, "<message to='" + C + "/c' type='chat' id='m6'><body>to c, blocked</body></message>"},
		{2, "<presence to='" + A + "/a'><status>from c</status></presence>"},
		{2, "<iq to='" + A + "/a' type='get' id='v1'><query xmlns='jabber:iq:version'/></iq>"},
		{0, q("g8", "get", "")},
		{0, bl("b4", "set", "<block xmlns='urn:xmpp:blocking'><item jid='"+B+"'/><item jid='"+C+"'/></block>")},
		{0, bl("b5", "get", "<blocklist xmlns='urn:xmpp:blocking'/>")},
		{0, bl("b6", "set", "<unblock xmlns='urn:xmpp:blocking'><item jid='"+C+"'/></unblock>")},
		{2, "<message to='" + A + "/a' type='chat' id='m7'><body>from c, unblocked</body></message>"},
		{1, "<message to='" + A + "/a' type='chat' id='m8'><body>from b, blocked</body></message>"},
		{0, bl("b7", "set", "<unblock xmlns='urn:xmpp:blocking'/>")},
		{0, bl("b8", "get", "<blocklist xmlns='urn:xmpp:blocking'/>")},
		{0, bl("b9", "set", "<block xmlns='urn:xmpp:blocking'/>")},
		{0, bl("b10", "set", "<block xmlns='urn:xmpp:blocking'><item/></block>")},
		{0, bl("b11", "set", "<block xmlns='urn:xmpp:blocking'><item jid='@@'/></block>")},
		{1, "<iq type='get' id='b12' to='" + A + "'><blocklist xmlns='urn:xmpp:blocking'/></iq>"},
	}
	db := testenv.DB(t, bed.DBURL).Pool
	ctx := context.Background()
	users := []string{a.User, b.User, c.User}
	var savedDefault, savedLists, savedData string
	saved := func() {
		if err := db.QueryRow(ctx, `SELECT coalesce(json_agg(t), '[]')::text FROM privacy_default_list t WHERE username = ANY($1)`, users).Scan(&savedDefault); err != nil {
			t.Fatal(err)
		}
		if err := db.QueryRow(ctx, `SELECT coalesce(json_agg(t), '[]')::text FROM privacy_list t WHERE username = ANY($1)`, users).Scan(&savedLists); err != nil {
			t.Fatal(err)
		}
		if err := db.QueryRow(ctx, `SELECT coalesce(json_agg(d), '[]')::text FROM privacy_list_data d JOIN privacy_list l ON l.id = d.id WHERE l.username = ANY($1)`, users).Scan(&savedData); err != nil {
			t.Fatal(err)
		}
	}
	reset := func() {
		for _, q := range []string{
			`DELETE FROM privacy_default_list WHERE username = ANY($1)`,
			`DELETE FROM privacy_list WHERE username = ANY($1)`,
			`DELETE FROM spool WHERE username = ANY($1)`,
		} {
			if _, err := db.Exec(ctx, q, users); err != nil {
				t.Fatal(err)
			}
		}
		for tbl, js := range map[string]string{"privacy_list": savedLists, "privacy_default_list": savedDefault} {
			if _, err := db.Exec(ctx, `INSERT INTO `+tbl+` SELECT * FROM json_populate_recordset(NULL::`+tbl+`, $1::json)`, js); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := db.Exec(ctx, `INSERT INTO privacy_list_data SELECT * FROM json_populate_recordset(NULL::privacy_list_data, $1::json)`, savedData); err != nil {
			t.Fatal(err)
		}
	}
	e := bed.StartSQLEjabberd(t)
	if out, err := e.Eval(`mod_admin_extra:privacy_set(<<"user31">>, <<"localhost">>, <<"<query xmlns='jabber:iq:privacy'><list name='blocked'><item type='jid' value='spam@spam.example' action='deny' order='1'/><item action='allow' order='2'/></list></query>">>)`); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	saved()
	reset()
	dialEj := dialEjabberd(t, e)
	sessions := []xmpptest.Account{a, b, c}
	warmUp(t, dialEj, sessions...)
	// Not sorted: list items have <message/> and <iq/> children, which
	// the sorter would take for stanzas.
	// The names of a user's lists come in the order the database reads
	// them (ejabberd's query has no order): sorted here.
	norm := func(s string) string {
		s = pushIDRE.ReplaceAllString(s, "id='push*'")
		return listNamesRE.ReplaceAllStringFunc(s, func(names string) string {
			ls := listNameRE.FindAllString(names, -1)
			sort.Strings(ls)
			return strings.Join(ls, "")
		})
	}
	ej := runConversationWith(t, dialEj, sessions, steps, norm)
	reset()
	n := bed.StartNode(t, "pv"+testenv.RandomID(5), withRoster+"  mod_privacy: {}\n  mod_blocking: {}\n")
	dialGo := dialNode(t, n)
	warmUp(t, dialGo, sessions...)
	ours := runConversationWith(t, dialGo, sessions, steps, norm)
	sameAsEjabberd(t, ej, ours)
	all := covers(t, ej, "Your active privacy list has denied", "<block xmlns='urn:xmpp:blocking'>", "Blocked contacts", "from b</body>")
	if t.Failed() {
		t.Logf("ejabberd's conversation:\n%s", all)
		return
	}
	// ejabberd (its caches emptied) reads the lists the Go node wrote as
	// the Go node does.
	ours2 := []step{
		{0, bl("k1", "set", "<block xmlns='urn:xmpp:blocking'><item jid='"+C+"'/><item jid='spam.example'/></block>")},
		{0, q("k2", "set", "<list name='work'><item type='group' value='Work' action='allow' order='2'/><item action='deny' order='7'><presence-out/></item></list>")},
	}
	runConversationWith(t, again(dialGo), sessions, ours2, norm)
	if out, err := e.Eval(`[catch ets_cache:clear(C) || C <- [privacy_cache, privacy_list_cache]], ok`); err != nil {
		t.Fatalf("emptying ejabberd's caches: %v %s", err, out)
	}
	readBack := []step{
		{0, q("k3", "get", "")},
		{0, q("k4", "get", "<list name='work'/>")},
		{0, q("k5", "get", "<list name='Blocked contacts'/>")},
		{0, bl("k6", "get", "<blocklist xmlns='urn:xmpp:blocking'/>")},
	}
	ejBack := runConversationWith(t, again(dialEj), sessions, readBack, norm)
	ourBack := runConversationWith(t, again(dialGo), sessions, readBack, norm)
	sameAsEjabberd(t, ejBack, ourBack)
}

// again dials another resource than a conversation's (whose sessions
// are still there).
func again(dial dialer) dialer {
	return func(acc xmpptest.Account, res string) *xmpptest.Raw { return dial(acc, res+"2") }
}

// Real clients (slixmpp's blocking plugin) on two Go nodes: a user
// blocks a contact on one node, and the contact's messages are refused
// on the other (the lists as cached there are forgotten at once); the
// block list is read back; unblocking lets messages through again. A
// privacy list of 2 500 items is stored and read, and the server
// answers pings meanwhile.
func TestBlockingWithRealClients(t *testing.T) {
	needBed(t)
	cluster := "br" + testenv.RandomID(5)
	cfg := withRoster + "  mod_privacy: {}\n  mod_blocking: {}\n"
	n1 := bed.StartNode(t, cluster, cfg)
	n2 := bed.StartNode(t, cluster, cfg)
	xmpptest.WaitClustered(t, 2, n1, n2)
	// No other test uses user41's, user54's or user55's lists.
	a := xmpptest.Account{User: "user41", Password: "pw-user1"}
	b := xmpptest.Account{User: "user54", Password: "pw-user1"}
	alice := xmpptest.StartChat(t, xmpptest.Login{Account: a, Addr: n1.StartTLS, CA: bed.CA})
	alice.Do("presence 0")
	bob := xmpptest.StartChat(t, xmpptest.Login{Account: b, Addr: n2.DirectTLS, DirectTLS: true, CA: bed.CA})
	bob.Do("msg %s chat before", alice.JID)
	alice.Expect("^MSG "+q(bob.JID)+" chat before$", 10*time.Second)
	alice.Do("block %s", b.JID())
	alice.Expect("^BLOCK ok$", 10*time.Second)
	bob.Do("msg %s chat while blocked", alice.JID)
	bob.Expect("^MSGERR "+q(alice.JID)+" service-unavailable", 10*time.Second)
	alice.Quiet("^MSG "+q(bob.JID), time.Second)
	alice.Do("blocked")
	alice.Expect("^BLOCKED "+q(b.JID())+"$", 10*time.Second)
	alice.Expect("^BLOCKEDEND 1$", 10*time.Second)
	alice.Do("unblock %s", b.JID())
	alice.Expect("^BLOCK ok$", 10*time.Second)
	bob.Do("msg %s chat after", alice.JID)
	alice.Expect("^MSG "+q(bob.JID)+" chat after$", 10*time.Second)

	// A list of 2 500 items (what max_stanza_size, 256 KiB here, lets
	// through; a bigger one ends the stream with policy-violation, as
	// ejabberd's): stored, read back whole, and the server stays
	// responsive.
	r, _, err := xmpptest.Session(n1.StartTLS, bed.CA, xmpptest.Account{User: "user55", Password: "pw-user1"}, "big")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var sb strings.Builder
	sb.WriteString("<iq type='set' id='big'><query xmlns='jabber:iq:privacy'><list name='huge'>")
	for i := 0; i < 2500; i++ {
		fmt.Fprintf(&sb, "<item type='jid' value='spam%d@spam.example' action='deny' order='%d'/>", i, i+1)
	}
	sb.WriteString("</list></query></iq>")
	start := time.Now()
	r.Send(sb.String())
	if _, err := r.Expect("id='big'", 60*time.Second); err != nil {
		t.Fatalf("storing a list of 2 500 items: %v", err)
	}
	r.Send("<iq type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq><iq type='get' id='read'><query xmlns='jabber:iq:privacy'><list name='huge'/></query></iq>")
	out, err := r.Expect("spam2499@spam.example", 60*time.Second)
	if err != nil {
		t.Fatalf("reading it back: %v", err)
	}
	if got := strings.Count(out, "<item "); got != 2500 {
		t.Errorf("read back %d items, want 2500", got)
	}
	t.Logf("2 500 items stored and read in %v", time.Since(start))
}
