package ejabberd

import (
	"fmt"
	"strings"
	"testing"

	"github.com/mimmigrate/mimmigrate/erldist/term"
)

// TestOldRecordShapes maps records as ejabberd 2.x wrote them — strings as
// byte lists, xmlelement with list attributes, jid records of seven
// fields, {Mega, Sec, Micro} times — for every table that had them.
func TestOldRecordShapes(t *testing.T) {
	cl := func(s string) term.Charlist { return term.Charlist(s) }
	us := term.Tuple{cl("alice"), cl("example.org")}
	jid := func(u, s, r string) term.Tuple {
		return term.Tuple{a("jid"), cl(u), cl(s), cl(r), cl(u), cl(s), cl(r)}
	}
	xel := func(name string, attrs term.List, kids ...term.Term) term.Tuple {
		return term.Tuple{a("xmlelement"), cl(name), attrs, term.List(kids)}
	}
	cdata := func(s string) term.Tuple { return term.Tuple{a("xmlcdata"), cl(s)} }
	attr := func(k, v string) term.Tuple { return term.Tuple{cl(k), cl(v)} }
	vcard := xel("vCard", term.List{attr("xmlns", "vcard-temp")}, xel("FN", term.List{}, cdata("Alice Ä")))
	msg := xel("message", term.List{attr("type", "chat")}, xel("body", term.List{}, cdata("hi <there>")))
	now := term.Tuple{int64(1300), int64(500000), int64(123456)}
	cases := []struct {
		table string
		rec   term.Tuple
		want  []string // substrings of the mapped rows
	}{
		{"passwd", term.Tuple{a("passwd"), us, cl("pw")}, []string{"users [alice pw"}},
		{"roster", term.Tuple{a("roster"), term.Tuple{cl("alice"), cl("example.org"), term.Tuple{cl("bob"), cl("example.org"), cl("")}},
			us, term.Tuple{cl("bob"), cl("example.org"), cl("")}, cl("Bob"), a("both"), a("none"), term.List{cl("Friends")}, cl(""), term.List{}},
			[]string{"rosterusers [alice bob@example.org Bob B N", "rostergroups [alice bob@example.org Friends]"}},
		{"last_activity", term.Tuple{a("last_activity"), us, int64(1300500000), cl("away")}, []string{"last [alice 1300500000 away]"}},
		{"vcard", term.Tuple{a("vcard"), us, vcard}, []string{"<vCard xmlns='vcard-temp'><FN>Alice Ä</FN></vCard>"}},
		{"private_storage", term.Tuple{a("private_storage"), term.Tuple{cl("alice"), cl("example.org"), cl("storage:bookmarks")},
			xel("storage", term.List{attr("xmlns", "storage:bookmarks")})}, []string{"private_storage [alice storage:bookmarks <storage xmlns='storage:bookmarks'/>"}},
		{"offline_msg", term.Tuple{a("offline_msg"), us, now, a("never"), jid("bob", "example.org", "home"), jid("alice", "example.org", ""), msg},
			[]string{"spool [alice <message", "from='bob@example.org/home'", "<body>hi &lt;there&gt;</body>", "stamp='2011-03-19T02:00:00.123456Z'"}},
	}
	for _, c := range cases {
		rows, err := mapRec(Single, c.rec)
		if err != nil {
			t.Errorf("%s: %v", c.table, err)
			continue
		}
		var got []string
		for _, r := range rows {
			got = append(got, fmt.Sprintf("%s %v", r.Table, r.Values))
		}
		all := strings.Join(got, "\n")
		for _, w := range c.want {
			if !strings.Contains(all, w) {
				t.Errorf("%s: rows\n%s\nlack %q", c.table, all, w)
			}
		}
	}
}
