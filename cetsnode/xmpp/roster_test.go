package xmpp_test

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mimmigrate/mimmigrate/internal/testenv"
	"github.com/mimmigrate/mimmigrate/internal/xmpptest"
)

var bulkPair atomic.Int64

const withRoster = "modules:\n  mod_fail2ban: {}\n  mod_roster:\n    versioning: true\n  mod_last: {}\n  mod_offline: {}\n  mod_register: {}\n"

// conversation is a scripted exchange between two users, each step a
// stanza one of them sends, and what both then receive.
type step struct {
	who  int // 0 or 1
	send string
}

// runConversation plays steps on two sessions and returns, per step,
// what each session received, stanza by stanza (normalised and sorted:
// delivery order between different kinds of stanzas is not specified).
func runConversation(t *testing.T, dial dialer, users [2]xmpptest.Account, steps []step) []string {
	t.Helper()
	return runConversationWith(t, dial, users[:], steps, normalise)
}

// runConversationWith is runConversation with its own normalisation of
// what a session received in one step.
// The sessions are users[i] with the resources a, b, c, … in order.
func runConversationWith(t *testing.T, dial dialer, users []xmpptest.Account, steps []step, norm func(string) string) []string {
	t.Helper()
	rs := make([]*xmpptest.Raw, len(users))
	for i, u := range users {
		rs[i] = dial(u, string(rune('a'+i)))
	}
	var out []string
	for i, s := range steps {
		if s.send == "close" {
			rs[s.who].Send("</stream:stream>")
		} else if err := rs[s.who].Send(s.send); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		got := make([]string, len(rs))
		var wg sync.WaitGroup
		for who, r := range rs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				got[who] = r.Settle(settleIdle, 3*time.Second)
			}()
		}
		wg.Wait()
		for who := range rs {
			out = append(out, fmt.Sprintf("step %d, user %d: %s", i, who, norm(got[who])))
		}
	}
	return out
}

// settleIdle is how long a conversation step waits for one more stanza.
var settleIdle = 400 * time.Millisecond

var (
	stanzaRE = regexp.MustCompile(`<(iq|message|presence)[ >/]`)
	normREs  = []struct{ re, to string }{
		{`id='push[^']*'`, "id='push*'"},
		{`ver='[^']*'`, "ver='V'"},
		{`stamp='[^']*'`, "stamp='S'"},
		{`seconds='\d+'`, "seconds='N'"},
		{`</stream:stream>`, ""},
		// ejabberd's Mnesia backend stores offline messages without a
		// delay and adds "Offline storage" when it delivers them; its SQL
		// backend (and the export) stores "Offline Storage", which is
		// delivered as stored.
		{`>Offline Storage</delay>`, ">Offline storage</delay>"},
	}
)

var itemsRE = regexp.MustCompile(`(<query[^>]*jabber:iq:roster'>)((?:<item .*?(?:/>|</item>))+)(</query>)`)
var itemRE = regexp.MustCompile(`<item .*?(?:/>|</item>)`)

func normalise(s string) string {
	for _, n := range normREs {
		s = regexp.MustCompile(n.re).ReplaceAllString(s, n.to)
	}
	return sortStanzas(s)
}

// sortStanzas sorts the stanzas of s (and a roster's items).
func sortStanzas(s string) string {
	// A roster's items come in the database's order.
	s = itemsRE.ReplaceAllStringFunc(s, func(q string) string {
		m := itemsRE.FindStringSubmatch(q)
		items := itemRE.FindAllString(m[2], -1)
		sort.Strings(items)
		return m[1] + strings.Join(items, "") + m[3]
	})
	idx := stanzaRE.FindAllStringIndex(s, -1)
	var parts []string
	for i, ix := range idx {
		end := len(s)
		if i+1 < len(idx) {
			end = idx[i+1][0]
		}
		parts = append(parts, s[ix[0]:end])
	}
	sort.Strings(parts)
	return strings.Join(parts, " | ")
}

// The roster and subscription conversation of RFC 6121 — roster get with
// and without a version, add with name and group, the subscription
// handshake both ways with pushes and automatic presence, a message,
// unavailable presence, last activity, removal with its unsubscriptions —
// played against ejabberd 23.01 (the bed's node, on its Mnesia data) and
// against a Go node on the same data exported: every stanza each user
// receives is the same, but for push ids, roster versions and stamps.
func TestRosterAsEjabberd(t *testing.T) {
	needBed(t)
	n := bed.StartNode(t, "rs"+testenv.RandomID(5), withRoster)
	// Bulk users: no shared roster groups, no archiving preferences (the
	// populator gives them to users 1, 11, 21, …), user1's SCRAM
	// credentials; user2k and user3k are not each other's contacts. Each
	// run takes a pair no earlier run in this bed changed.
	k := bulkPair.Add(1)
	if k > 8 {
		t.Fatal("every pair of bulk users of this test bed has been used: run these tests at most 8 times per test process")
	}
	users := [2]xmpptest.Account{{User: fmt.Sprintf("user%d", 21+k), Password: "pw-user1"}, {User: fmt.Sprintf("user%d", 31+k), Password: "pw-user1"}}
	A, B := users[0].JID(), users[1].JID()
	steps := []step{
		{0, "<presence><priority>1</priority></presence>"},
		{1, "<presence/>"},
		{0, "<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>"},
		{0, "<iq type='get' id='r2'><query xmlns='jabber:iq:roster' ver=''/></iq>"},
		{0, "<iq type='set' id='r3'><query xmlns='jabber:iq:roster'><item jid='" + B + "' name='Bee'><group>G</group></item></query></iq>"},
		{0, "<presence to='" + B + "' type='subscribe'><status>let me in</status></presence>"},
		{1, "<presence to='" + A + "' type='subscribed'/>"},
		{1, "<presence to='" + A + "' type='subscribe'/>"},
		{0, "<presence to='" + B + "' type='subscribed'/>"},
		{1, "<iq type='get' id='r4'><query xmlns='jabber:iq:roster'/></iq>"},
		{0, "<message to='" + B + "' type='chat' id='m1'><body>hello</body></message>"},
		{0, "<message to='" + B + "/b' type='normal' id='m2'><body>to the resource</body><x xmlns='urn:example'/></message>"},
		{0, "<message to='" + B + "/nosuch' type='chat' id='m3'><body>to a resource that is not there</body></message>"},
		{0, "<message to='nosuchuser@localhost' type='chat' id='m4'><body>to nobody</body></message>"},
		{0, "<iq to='" + B + "/nosuch' type='get' id='i1'><query xmlns='jabber:iq:version'/></iq>"},
		{1, "<presence to='" + A + "/a'><status>directed</status></presence>"},
		{1, "<iq type='get' id='l1' to='" + A + "'><query xmlns='jabber:iq:last'/></iq>"},
		{0, "<presence type='unavailable'><status>bye</status></presence>"},
		{0, "<iq type='set' id='r5'><query xmlns='jabber:iq:roster'><item jid='" + B + "' subscription='remove'/></query></iq>"},
		{0, "<iq type='set' id='r6'><query xmlns='jabber:iq:roster'><item jid='" + B + "' ask='subscribe'/></query></iq>"},
		{0, "<iq type='set' id='r7'><query xmlns='jabber:iq:roster'><item jid='" + B + "'><group>x</group><group>x</group></item></query></iq>"},
		{0, "<iq type='get' id='r8' to='" + B + "'><query xmlns='jabber:iq:roster'/></iq>"},
		{1, "<iq type='get' id='l2' to='" + A + "'><query xmlns='jabber:iq:last'/></iq>"},
		{0, "<presence/>"},
		{0, "close"},
		{1, "<iq type='get' id='l3' to='" + A + "'><query xmlns='jabber:iq:last'/></iq>"},
	}
	ej := runConversation(t, dialEjabberd(t, bed.Ejabberd), users, steps)
	ours := runConversation(t, dialNode(t, n), users, steps)
	// The last activity stored when the available session closed its
	// stream: ejabberd's words for why it ended.
	ejLast, err := bed.Ejabberd.Eval(fmt.Sprintf(`{ok, _, S} = mod_last:get_last_info(<<"%s">>, <<"localhost">>), S`, users[0].User))
	if err != nil {
		t.Fatalf("%v %s", err, ejLast)
	}
	var ourLast string
	if err := testenv.DB(t, bed.DBURL).Pool.QueryRow(context.Background(), `SELECT state FROM last WHERE username = $1`, users[0].User).Scan(&ourLast); err != nil {
		t.Fatal(err)
	}
	if ejLast != ourLast || ejLast == "" {
		t.Errorf("last activity status: ejabberd %q, ours %q", ejLast, ourLast)
	}
	sameAsEjabberd(t, ej, ours)
	if t.Failed() {
		t.Logf("ejabberd's conversation:\n%s", strings.Join(ej, "\n"))
	}
}

// The rollback path: ejabberd 23.01 started on the database a Go node
// wrote to reads the rosters (names, groups, subscriptions, a pending
// request with its message on both sides), the last activity, the
// offline message and the changed password it wrote.
func TestEjabberdReadsRosterAndLast(t *testing.T) {
	needBed(t)
	n := bed.StartNode(t, "rb"+testenv.RandomID(5), withRoster)
	k := bulkPair.Add(1)
	if k > 8 {
		t.Fatal("every pair of bulk users of this test bed has been used: run these tests at most 8 times per test process")
	}
	C, D, F := fmt.Sprintf("user%d", 21+k), fmt.Sprintf("user%d", 31+k), fmt.Sprintf("user%d", 41+k)
	sess := func(u string) *xmpptest.Raw {
		t.Helper()
		r, _, err := xmpptest.Session(n.StartTLS, bed.CA, xmpptest.Account{User: u, Password: "pw-user1"}, "r")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(r.Close)
		return r
	}
	c, d := sess(C), sess(D)
	j := func(u string) string { return u + "@" + xmpptest.Host }
	for _, x := range []struct {
		r    *xmpptest.Raw
		send string
	}{
		{c, "<presence/>"},
		{d, "<presence/>"},
		{c, "<iq type='set' id='s1'><query xmlns='jabber:iq:roster'><item jid='" + j(D) + "' name='Dee'><group>G2</group><group>G1</group></item></query></iq>"},
		{c, "<presence to='" + j(D) + "' type='subscribe'/>"},
		{d, "<presence to='" + j(C) + "' type='subscribed'/>"},
		{d, "<presence to='" + j(C) + "' type='subscribe'/>"},
		{c, "<presence to='" + j(D) + "' type='subscribed'/>"},
		{c, "<presence to='" + j(F) + "' type='subscribe'><status>please</status></presence>"},
		{c, "<message to='" + j(F) + "' type='chat' id='off1'><body>while you were out</body></message>"},
		{c, "<presence type='unavailable'><status>gone fishing</status></presence>"},
		{c, "<iq type='set' id='pw'><query xmlns='jabber:iq:register'><username>" + C + "</username><password>changed-✓</password></query></iq>"},
	} {
		x.r.Send(x.send)
		c.Settle(300*time.Millisecond, 3*time.Second)
		d.Settle(300*time.Millisecond, 3*time.Second)
	}
	e := bed.StartSQLEjabberd(t)
	expr := fmt.Sprintf(`H = <<"localhost">>,
		R = fun(U) -> [<<(jid:encode(J))/binary, " ", N/binary, " ", (atom_to_binary(S))/binary, " ", (atom_to_binary(A))/binary, " ", M/binary, " ", (iolist_to_binary(lists:join(",", lists:sort(G))))/binary, ";">>
			|| {roster, _, _, J, N, S, A, G, M, _} <- lists:sort(mod_roster:get_roster(U, H))] end,
		{ok, _, Status} = mod_last:get_last_info(<<"%s">>, H),
		Off = [fxml:element_to_binary(xmpp:encode(El)) || El <- mod_offline:get_offline_els(<<"%s">>, H)],
		Pw = ejabberd_auth:check_password(<<"%s">>, <<>>, H, <<"changed-✓"/utf8>>),
		iolist_to_binary([R(<<"%s">>), "|", R(<<"%s">>), "|", Status, "|", Off, "|", atom_to_binary(Pw)])`, C, F, C, C, F)
	out, err := e.Eval(expr)
	if err != nil {
		t.Fatalf("%v %s", err, out)
	}
	for _, want := range []string{
		j(D) + " Dee both none  G1,G2;",
		j(F) + "  none out  ;",
		"|" + j(C) + "  none in please ;",
		"|gone fishing|",
		"<body>while you were out</body>",
		"from='" + j(C) + "/r'",
		"|true",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("ejabberd on the database reads %q, not %q", out, want)
		}
	}
}

// Real clients (slixmpp) on two Go nodes: the roster exported from
// ejabberd is fetched, contacts see each other's presence across nodes
// (broadcast and probes), a new subscription handshake leaves both
// rosters with "both", and going offline is seen.
func TestRosterWithRealClients(t *testing.T) {
	needBed(t)
	cluster := "rr" + testenv.RandomID(5)
	n1 := bed.StartNode(t, cluster, withRoster)
	n2 := bed.StartNode(t, cluster, withRoster)
	xmpptest.WaitClustered(t, 2, n1, n2)
	users := bed.Kind("scram-sha-1") // user1's contacts are user2 … user6
	a, b := users[0], users[1]
	alice := xmpptest.StartChat(t, xmpptest.Login{Account: a, Addr: n1.StartTLS, CA: bed.CA})
	alice.Do("roster")
	for i := 2; i <= 6; i++ {
		alice.Expect(fmt.Sprintf("^ROSTER user%d@%s both -$", i, xmpptest.Host), 10*time.Second)
	}
	alice.Expect("^ROSTEREND 5$", 5*time.Second)
	// The exported rosters are one-way (user1 has user2, not the other
	// way round): bob sees alice, alice does not see bob.
	bob := xmpptest.StartChat(t, xmpptest.Login{Account: b, Addr: n2.DirectTLS, DirectTLS: true, CA: bed.CA})
	bob.Do("presence 0")
	bob.Expect("^PRES "+q(bob.JID)+" available", 10*time.Second)
	alice.Do("presence 0")
	bob.Expect("^PRES "+q(alice.JID)+" available", 10*time.Second) // alice's broadcast, from node 1
	alice.Quiet("^PRES "+q(bob.JID), time.Second)

	// A new contact: the handshake both ways (user1 and user15 are not
	// contacts).
	c := users[14]
	carol := xmpptest.StartChat(t, xmpptest.Login{Account: c, Addr: n2.StartTLS, CA: bed.CA})
	carol.Do("presence 0")
	alice.Do("subscribe %s", c.JID())
	carol.Expect("^PRES "+q(a.JID())+" subscribe", 10*time.Second)
	carol.Do("subscribed %s", a.JID())
	alice.Expect("^PRES "+q(carol.JID)+" available", 10*time.Second)
	carol.Do("subscribe %s", a.JID())
	alice.Expect("^PRES "+q(c.JID())+" subscribe", 10*time.Second)
	alice.Do("subscribed %s", c.JID())
	carol.Expect("^PRES "+q(alice.JID)+" available", 10*time.Second)
	for _, x := range []*xmpptest.Chat{alice, carol} {
		x.Do("roster")
		other := c.JID()
		if x == carol {
			other = a.JID()
		}
		x.Expect("^ROSTER "+q(other)+" both -$", 10*time.Second)
	}

	alice.Do("quit")
	bob.Expect("^PRES "+q(alice.JID)+" unavailable", 10*time.Second)
	carol.Expect("^PRES "+q(alice.JID)+" unavailable", 10*time.Second)
}
