package xmpp_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mimmigrate/mimmigrate/internal/testenv"
	"github.com/mimmigrate/mimmigrate/internal/xmpptest"
)

// cutoverModules are what the cutover day's clients use.
const cutoverModules = "modules:\n  mod_roster:\n    versioning: true\n  mod_offline: {}\n  mod_last: {}\n  mod_mam: {}\n  mod_carboncopy: {}\n" +
	"  mod_stream_mgmt: {}\n  mod_caps: {}\n  mod_disco: {}\n  mod_pubsub:\n    plugins:\n      - pep\n  mod_private: {}\n  mod_privacy: {}\n" +
	"  mod_blocking: {}\n  mod_vcard: {}\n  mod_vcard_xupdate: {}\n"

// The cutover day, per client kind: a user with a migrated archive, an
// OMEMO device list and bundle, an avatar, bookmarks (XEP-0402 and
// legacy), a vCard and a blocked JID logs in to the legacy ejabberd
// (the test bed's node, on its Mnesia data) before the cutover and to a
// Go node (on the data exported) after it, with the same client doing
// the same requests: every answer is the same — archive ids included.
// slixmpp over TCP (STARTTLS after the cutover), the stanza npm client
// over WebSocket.
func TestCutoverDay(t *testing.T) {
	needBed(t)
	n := bed.StartNode(t, "cd"+testenv.RandomID(5), cutoverModules)
	acc := xmpptest.Account{User: "user1", Password: "pw-user1"}
	owner := acc.JID()
	pep := []string{"eu.siacs.conversations.axolotl.devicelist", "eu.siacs.conversations.axolotl.bundles:" + xmpptest.OMEMODevice,
		"urn:xmpp:avatar:metadata", "urn:xmpp:bookmarks:1", "http://jabber.org/protocol/nick"}
	type request struct{ cmd, end string }
	var slix, stz []request
	slix = append(slix, request{"mam - 10", "^MAMEND "})
	stz = append(stz, request{"mam 50", "^MAMEND "})
	for _, node := range pep {
		slix = append(slix, request{"pepitems " + owner + " " + node, "^ITEMSEND "})
		stz = append(stz, request{"pepitems " + owner + " " + node, "^ITEMSEND "})
	}
	slix = append(slix, request{"bookmarks", "^BOOKMARKSEND "}, request{"blocked", "^BLOCKEDEND "}, request{"vcard " + owner, "^VCARD "})
	stz = append(stz, request{"blocked", "^BLOCKEDEND "}, request{"vcard " + owner, "^VCARD "})
	capture := func(c *xmpptest.Chat, reqs []request) []string {
		t.Helper()
		var out []string
		for _, r := range reqs {
			var answer []string
			for _, l := range c.Run(r.end, 15*time.Second, "%s", r.cmd) {
				// Stream management (which the legacy node did not run)
				// is the transport's, not an answer.
				if !strings.HasPrefix(l, "SM ") && !strings.HasPrefix(l, "ACKED ") {
					answer = append(answer, l)
				}
			}
			out = append(out, strings.Join(answer, "\n"))
		}
		return out
	}
	compare := func(kind string, before, after []string) {
		t.Helper()
		all := strings.Join(before, "\n")
		for _, want := range []string{"MAM ", "ITEM eu.siacs.conversations.axolotl.devicelist current", "ITEM eu.siacs.conversations.axolotl.bundles:" + xmpptest.OMEMODevice + " current",
			"ITEM urn:xmpp:bookmarks:1 room2@conference.localhost", "BLOCKED spam@spam.example", "VCARD Full Name user1"} {
			if !strings.Contains(all, want) {
				t.Errorf("%s before the cutover: no %q: the test tests less than it says\n%s", kind, want, all)
			}
		}
		for i := range before {
			if before[i] != after[i] {
				t.Errorf("%s: before the cutover:\n%s\nafter:\n%s", kind, before[i], after[i])
			}
		}
	}
	legacy := fmt.Sprintf("127.0.0.1:%d", bed.Ejabberd.C2SPort)
	before := capture(xmpptest.StartChat(t, xmpptest.Login{Account: acc, Addr: legacy, CA: bed.CA}), slix)
	after := capture(xmpptest.StartChat(t, xmpptest.Login{Account: acc, Addr: n.StartTLS, CA: bed.CA}), slix)
	compare("slixmpp", before, after)
	before = capture(xmpptest.StartStanza(t, fmt.Sprintf("ws://127.0.0.1:%d/ws", bed.Ejabberd.WSPort), acc, bed.CA), stz)
	after = capture(xmpptest.StartStanza(t, n.WebSocket, acc, bed.CA), stz)
	compare("stanza over WebSocket", before, after)
}
