package ejabberd

import (
	"errors"
	"fmt"
	"testing"

	"github.com/mimmigrate/mimmigrate/erldist/term"
	"github.com/mimmigrate/mimmigrate/migrate/schema"
)

func b(s string) term.Binary { return term.Binary(s) }
func a(s string) term.Atom   { return term.Atom(s) }

// mapRec maps one record with a fresh mapping of every host.
func mapRec(sc Schema, rec term.Tuple) ([]schema.Op, error) {
	m := sc.NewMapping(schema.NewScope(nil, nil, nil)).Mapper(string(rec[0].(term.Atom)))
	return m.Map(rec)
}

func TestPasswdShapes(t *testing.T) {
	single, multi := Single, Multihost
	key := term.Tuple{b("alice"), b("example.org")}
	cases := []struct {
		name string
		pw   term.Term
		want string
	}{
		{"plain", b("secret"), "[alice secret   0]"},
		{"plain 2.x byte list", term.Charlist("s3cret"), "[alice s3cret   0]"},
		{"scram 5-tuple", term.Tuple{a("scram"), b("SK="), b("SrvK="), b("salt=="), int64(4096)}, "[alice SK= SrvK= salt== 4096]"},
		{"scram sha", term.Tuple{a("scram"), b("SK="), b("SrvK="), b("salt=="), a("sha"), int64(4096)}, "[alice SK= SrvK= salt== 4096]"},
		{"scram sha256", term.Tuple{a("scram"), b("SK="), b("SrvK="), b("salt=="), a("sha256"), int64(4096)}, "[alice sha256:SK= SrvK= salt== 4096]"},
		{"scram sha512", term.Tuple{a("scram"), b("SK="), b("SrvK="), b("salt=="), a("sha512"), int64(10000)}, "[alice sha512:SK= SrvK= salt== 10000]"},
		{"scram 2.x lists", term.Tuple{a("scram"), term.Charlist("SK="), term.Charlist("SrvK="), term.Charlist("salt=="), int64(4096)}, "[alice SK= SrvK= salt== 4096]"},
	}
	for _, c := range cases {
		rows, err := mapRec(single, term.Tuple{a("passwd"), key, c.pw})
		if err != nil || len(rows) != 1 || rows[0].Table != "users" || fmt.Sprint(rows[0].Values) != c.want {
			t.Errorf("%s: %v %v, want %s", c.name, rows, err, c.want)
		}
		rows, err = mapRec(multi, term.Tuple{a("passwd"), key, c.pw})
		if err != nil || rows[0].Values[1] != "example.org" || len(rows[0].Values) != len(multi.Columns("users")) {
			t.Errorf("%s multihost: %v %v", c.name, rows, err)
		}
	}
	for _, bad := range []term.Term{
		term.Tuple{a("passwd"), key},
		term.Tuple{a("passwd"), b("alice"), b("x")},
		term.Tuple{a("passwd"), key, a("undefined")},
		term.Tuple{a("passwd"), key, term.Tuple{a("scram"), b("SK="), b("SrvK="), b("salt=="), a("md5"), int64(4096)}},
		term.Tuple{a("passwd"), key, term.Tuple{a("scram"), b("SK="), b("SrvK="), b("salt=="), int64(0)}},
	} {
		_, err := mapRec(single, bad.(term.Tuple))
		var re *schema.Reject
		if !errors.As(err, &re) || re.Reason == "" {
			t.Errorf("%s: %v, want a reject", term.Format(bad), err)
		}
	}
}

func TestRosterAndLast(t *testing.T) {
	tg := Single
	item := term.Tuple{a("roster"),
		term.Tuple{b("alice"), b("example.org"), term.Tuple{b("bob"), b("example.net"), b("")}},
		term.Tuple{b("alice"), b("example.org")},
		term.Tuple{b("bob"), b("example.net"), b("")},
		b("Bob"), a("both"), a("none"), term.List{b("Friends"), b("Work")}, b(""), term.List{}}
	rows, err := mapRec(tg, item)
	if err != nil || len(rows) != 3 {
		t.Fatalf("roster: %v %v", rows, err)
	}
	if got := fmt.Sprint(rows[0].Values); got != "[alice bob@example.net Bob B N  N  item]" {
		t.Errorf("rosterusers row %s", got)
	}
	if got := fmt.Sprint(rows[1].Values, rows[2].Values); got != "[alice bob@example.net Friends] [alice bob@example.net Work]" {
		t.Errorf("rostergroups rows %s", got)
	}
	item[3] = term.Tuple{b(""), b("conference.example.org"), b("res")}
	item[5], item[6] = a("to"), a("subscribe")
	rows, err = mapRec(Multihost, item)
	if err != nil || fmt.Sprint(rows[0].Values[:6]) != "[alice example.org conference.example.org/res Bob T S]" {
		t.Errorf("server-only JID, multihost: %v %v", rows, err)
	}
	item[5] = a("remove")
	if _, err := mapRec(tg, item); err == nil {
		t.Error("an item being removed was mapped")
	}
	rows, err = mapRec(tg, term.Tuple{a("last_activity"), term.Tuple{b("alice"), b("example.org")}, int64(1700000000), b("Gone")})
	if err != nil || fmt.Sprint(rows[0].Values) != "[alice 1700000000 Gone]" {
		t.Errorf("last: %v %v", rows, err)
	}
	for _, tbl := range []string{"users", "last", "rosterusers", "rostergroups"} {
		if len(tg.Columns(tbl)) == 0 || len(Multihost.Columns(tbl)) != len(tg.Columns(tbl))+1 {
			t.Errorf("columns of %s", tbl)
		}
	}
}
