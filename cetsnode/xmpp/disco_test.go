package xmpp_test

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mimmigrate/mimmigrate/internal/testenv"
	"github.com/mimmigrate/mimmigrate/internal/xmpptest"
)

// discoModules are the modules a Go node implements, for both servers of
// the discovery test (mod_vcard without its search service).
const discoModules = "modules:\n  mod_blocking: {}\n  mod_caps: {}\n  mod_carboncopy: {}\n  mod_client_state: {}\n  mod_disco: {}\n  mod_last: {}\n" +
	"  mod_mam: {}\n  mod_offline: {}\n  mod_ping: {}\n  mod_privacy: {}\n  mod_private: {}\n  mod_pubsub:\n    plugins:\n      - pep\n" +
	"  mod_register: {}\n  mod_roster:\n    versioning: true\n  mod_stream_mgmt: {}\n  mod_time: {}\n  mod_vcard:\n    search: false\n  mod_vcard_xupdate: {}\n  mod_version: {}\n"

var (
	tzoRE      = regexp.MustCompile(`<tzo>[^<]*</tzo><utc>[^<]*</utc>`)
	softwareRE = regexp.MustCompile(`<name>[^<]*</name>(<os>[^<]*</os>)<version>[^<]*</version>`)
	serverIDRE = regexp.MustCompile(`<identity name='[^']*' type='im' category='server'/>`)
	// What ejabberd announces and the node does not serve: flexible
	// offline retrieval (XEP-0013), the pubsub service's subscriptions,
	// affiliations, configuration and purge, and the service itself.
	notServedRE = regexp.MustCompile(`<feature var='http://jabber.org/protocol/(offline|pubsub#(auto-subscribe|collections|config-node|config-node-max|member-affiliation|modify-affiliations|outcast-affiliation|presence-subscribe|publish-only-affiliation|publisher-affiliation|purge-nodes|retrieve-affiliations|retrieve-default|retrieve-subscriptions|shim|subscribe))'/>|<item jid='pubsub.localhost'/>`)
)

// Service discovery (mod_disco), software version (mod_version), entity
// time (mod_time) and server caps as ejabberd 23.01 answers them with
// the same modules: the server's identities and features, its items,
// a user's account identity and PEP nodes (to the user, to a contact),
// the errors. Every stanza is the same but for the time and the
// software's name and version.
func TestDiscoveryAsEjabberd(t *testing.T) {
	needBed(t)
	a := xmpptest.Account{User: "user56", Password: "pw-user1"}
	b := xmpptest.Account{User: "user57", Password: "pw-user1"}
	A, B := a.JID(), b.JID()
	info := func(id, to, node string) string {
		if node != "" {
			node = " node='" + node + "'"
		}
		return "<iq type='get' id='" + id + "' to='" + to + "'><query xmlns='http://jabber.org/protocol/disco#info'" + node + "/></iq>"
	}
	items := func(id, to string) string {
		return "<iq type='get' id='" + id + "' to='" + to + "'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>"
	}
	steps := []step{
		{0, info("d1", xmpptest.Host, "")},
		{0, items("d2", xmpptest.Host)},
		{0, info("d3", A, "")},
		{0, items("d4", A)},
		{1, info("d5", A, "")},
		{1, items("d6", A)},
		{1, info("d7", "nobody@"+xmpptest.Host, "")},
		{0, info("d8", xmpptest.Host, "http://jabber.org/protocol/commands")},
		{0, "<iq type='set' id='d9' to='" + xmpptest.Host + "'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>"},
		{0, "<iq type='get' id='v1' to='" + xmpptest.Host + "'><query xmlns='jabber:iq:version'/></iq>"},
		{0, "<iq type='get' id='t1' to='" + xmpptest.Host + "'><time xmlns='urn:xmpp:time'/></iq>"},
		{0, "<iq type='set' id='t2' to='" + xmpptest.Host + "'><time xmlns='urn:xmpp:time'/></iq>"},
		{1, info("d10", B, "")},
	}
	norm := func(s string) string {
		s = tzoRE.ReplaceAllString(s, "<tzo>Z</tzo><utc>T</utc>")
		s = softwareRE.ReplaceAllString(s, "<name>N</name>$1<version>V</version>")
		s = serverIDRE.ReplaceAllString(s, "<identity name='NAME' type='im' category='server'/>")
		return pepNormalise(s)
	}
	ejNorm := func(s string) string {
		return norm(strings.ReplaceAll(notServedRE.ReplaceAllString(s, ""), "'></query>", "'/>"))
	}
	reset := pepReset(t, a.User, b.User)
	reset()
	e := bed.StartSQLEjabberdModules(t, discoModules)
	dialEj := dialEjabberd(t, e)
	users := []xmpptest.Account{a, b}
	ej := runConversationWith(t, dialEj, users, steps, ejNorm)
	n := bed.StartNode(t, "dy"+testenv.RandomID(5), discoModules)
	ours := runConversationWith(t, dialNode(t, n), users, steps, norm)
	sameAsEjabberd(t, ej, ours)
	all := covers(t, ej, "<identity type='registered' category='account'/>", "http://jabber.org/protocol/pubsub#publish-options",
		"<item node='eu.siacs.conversations.axolotl.devicelist' jid='"+A+"'/>", "<feature var='urn:xmpp:mam:2'/>", "Not subscribed", "<os>unix/linux ")
	if t.Failed() {
		t.Logf("ejabberd's conversation:\n%s", all)
	}
}

// The server's caps in the stream features after authentication name a
// version that disco#info answers for, with the server's features.
func TestServerCaps(t *testing.T) {
	needBed(t)
	n := bed.StartNode(t, "sc"+testenv.RandomID(5), discoModules)
	acc := xmpptest.Account{User: "user57", Password: "pw-user1"}
	r, features := authenticated(t, n.StartTLS, acc)
	m := regexp.MustCompile(`<c ver='([^']+)' node='([^']+)' hash='sha-1' xmlns='http://jabber.org/protocol/caps'/>`).FindStringSubmatch(features)
	if m == nil {
		t.Fatalf("no server caps in the features: %s", features)
	}
	r.Send("<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>")
	if _, err := r.Expect("</iq>", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	ask := func(node string) string {
		t.Helper()
		if node != "" {
			node = " node='" + node + "'"
		}
		r.Send("<iq type='get' id='i' to='" + xmpptest.Host + "'><query xmlns='http://jabber.org/protocol/disco#info'" + node + "/></iq>")
		got, err := r.Expect("</iq>", 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	plain, byVer := ask(""), ask(m[2]+"#"+m[1])
	if !strings.Contains(byVer, "node='"+m[2]+"#"+m[1]+"'") || !strings.Contains(byVer, "<feature var='urn:xmpp:mam:2'/>") ||
		strings.Replace(byVer, " node='"+m[2]+"#"+m[1]+"'", "", 1) != plain {
		t.Errorf("disco#info of the caps version:\n%s\nof the server:\n%s", byVer, plain)
	}
	if got := ask(m[2] + "#not-the-version"); !strings.Contains(got, "<item-not-found ") {
		t.Errorf("disco#info of another version: %s", got)
	}
}
