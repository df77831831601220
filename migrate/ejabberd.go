package migrate

import (
	"fmt"
	"strconv"

	"github.com/mimmigrate/mimmigrate/erldist/term"
)

// Row is one row of a target table, its values in the order of the
// table's columns as the target lists them.
type Row struct {
	Table  string
	Values []any
}

// Target says how rows are shaped: ejabberd's pg.sql has no server_host
// column (one virtual host per database), pg.new.sql has one in every
// per-host table.
type Target struct {
	Multihost bool
}

// Columns lists a target table's columns in the order Row values come.
func (tg Target) Columns(table string) []string {
	var cols []string
	switch table {
	case "users":
		cols = []string{"username", "password", "serverkey", "salt", "iterationcount"}
	case "last":
		cols = []string{"username", "seconds", "state"}
	case "rosterusers":
		cols = []string{"username", "jid", "nick", "subscription", "ask", "askmessage", "server", "subscribe", "type"}
	case "rostergroups":
		cols = []string{"username", "jid", "grp"}
	default:
		return nil
	}
	if tg.Multihost {
		cols = append(cols[:1:1], append([]string{"server_host"}, cols[1:]...)...)
	}
	return cols
}

// row builds a row for a per-host table: the user first, then server_host
// when the target has it.
func (tg Target) row(table, user, host string, rest ...any) Row {
	vals := make([]any, 0, len(rest)+2)
	vals = append(vals, user)
	if tg.Multihost {
		vals = append(vals, host)
	}
	return Row{Table: table, Values: append(vals, rest...)}
}

// RejectError: a record that cannot be mapped; it goes to the rejects file.
type RejectError struct{ Reason string }

func (e *RejectError) Error() string { return e.Reason }

func reject(format string, args ...any) error {
	return &RejectError{Reason: fmt.Sprintf(format, args...)}
}

// text reads a string field in any shape ejabberd stored one (binary,
// 2.x byte list).
func text(t term.Term, what string) (string, error) {
	if s, ok := term.Text(t); ok {
		if _, isAtom := t.(term.Atom); !isAtom {
			return s, nil
		}
	}
	return "", reject("%s is not a string: %s", what, short(t))
}

// us reads a {User, Server} key.
func us(t term.Term) (user, server string, err error) {
	tu, ok := t.(term.Tuple)
	if !ok || len(tu) != 2 {
		return "", "", reject("key is not {User, Server}: %s", short(t))
	}
	if user, err = text(tu[0], "user"); err != nil {
		return "", "", err
	}
	server, err = text(tu[1], "server")
	return user, server, err
}

// Passwd maps a passwd record to a users row: a plain password as is; a
// SCRAM record (the 5-tuple of ejabberd 2.1.7 – 20.11, or the 6-tuple with
// the hash of 20.12 and later) to StoredKey, ServerKey, Salt and the
// iteration count, the StoredKey prefixed "sha256:" or "sha512:" when the
// hash is not SHA-1, as ejabberd 20.12 – 25.02 store it.
func (tg Target) Passwd(rec term.Tuple) ([]Row, error) {
	if len(rec) != 3 {
		return nil, reject("passwd record of %d fields", len(rec)-1)
	}
	user, host, err := us(rec[1])
	if err != nil {
		return nil, err
	}
	if pw, err := text(rec[2], "password"); err == nil {
		return []Row{tg.row("users", user, host, pw, "", "", int32(0))}, nil
	}
	sc, ok := rec[2].(term.Tuple)
	if !ok || len(sc) < 5 || len(sc) > 6 || !term.IsAtom(sc[0], "scram") {
		return nil, reject("password is neither text nor a scram record: %s", short(rec[2]))
	}
	stored, err1 := text(sc[1], "StoredKey")
	server, err2 := text(sc[2], "ServerKey")
	salt, err3 := text(sc[3], "Salt")
	if err := firstErr(err1, err2, err3); err != nil {
		return nil, err
	}
	icTerm, prefix := sc[4], ""
	if len(sc) == 6 {
		hash, _ := sc[4].(term.Atom)
		switch hash {
		case "sha":
		case "sha256", "sha512":
			prefix = string(hash) + ":"
		default:
			return nil, reject("scram hash %s is not sha, sha256 or sha512", short(sc[4]))
		}
		icTerm = sc[5]
	}
	ic, ok := term.Int(icTerm)
	if !ok || ic <= 0 || ic > 1<<31-1 {
		return nil, reject("scram iteration count %s", short(icTerm))
	}
	return []Row{tg.row("users", user, host, prefix+stored, server, salt, int32(ic))}, nil
}

// LastActivity maps last_activity to last: seconds as decimal text.
func (tg Target) LastActivity(rec term.Tuple) ([]Row, error) {
	if len(rec) != 4 {
		return nil, reject("last_activity record of %d fields", len(rec)-1)
	}
	user, host, err := us(rec[1])
	if err != nil {
		return nil, err
	}
	secs, ok := term.Int(rec[2])
	if !ok {
		return nil, reject("timestamp is not an integer: %s", short(rec[2]))
	}
	status, err := text(rec[3], "status")
	if err != nil {
		return nil, err
	}
	return []Row{tg.row("last", user, host, strconv.FormatInt(secs, 10), status)}, nil
}

var subscriptionCode = map[term.Atom]string{"both": "B", "to": "T", "from": "F", "none": "N"}
var askCode = map[term.Atom]string{"subscribe": "S", "unsubscribe": "U", "both": "B", "out": "O", "in": "I", "none": "N"}

// Roster maps a roster item to a rosterusers row and one rostergroups row
// per group, with the codes and constants ejabberd writes (server 'N',
// subscribe empty, type 'item'). An item being removed (subscription remove)
// is not a roster item: it is rejected.
func (tg Target) Roster(rec term.Tuple) ([]Row, error) {
	if len(rec) != 10 {
		return nil, reject("roster record of %d fields", len(rec)-1)
	}
	user, host, err := us(rec[2])
	if err != nil {
		return nil, err
	}
	jid, err := ljidText(rec[3])
	if err != nil {
		return nil, err
	}
	nick, err := text(rec[4], "name")
	if err != nil {
		return nil, err
	}
	sub, ok := rec[5].(term.Atom)
	subC := subscriptionCode[sub]
	if !ok || subC == "" {
		return nil, reject("subscription %s", short(rec[5]))
	}
	ask, ok := rec[6].(term.Atom)
	askC := askCode[ask]
	if !ok || askC == "" {
		return nil, reject("ask %s", short(rec[6]))
	}
	askMsg, err := text(rec[8], "askmessage")
	if err != nil {
		return nil, err
	}
	rows := []Row{tg.row("rosterusers", user, host, jid, nick, subC, askC, askMsg, "N", "", "item")}
	groups, ok := term.Elems(rec[7])
	if !ok {
		return nil, reject("groups are not a list: %s", short(rec[7]))
	}
	for _, g := range groups {
		name, err := text(g, "group")
		if err != nil {
			return nil, err
		}
		rows = append(rows, tg.row("rostergroups", user, host, jid, name))
	}
	return rows, nil
}

// ljidText writes a {User, Server, Resource} JID as ejabberd's
// jid:encode does: user@server/resource, parts that are empty left out.
// The parts are already lowercased (stored that way).
func ljidText(t term.Term) (string, error) {
	tu, ok := t.(term.Tuple)
	if !ok || len(tu) != 3 {
		return "", reject("JID is not {User, Server, Resource}: %s", short(t))
	}
	u, err1 := text(tu[0], "JID user")
	s, err2 := text(tu[1], "JID server")
	r, err3 := text(tu[2], "JID resource")
	if err := firstErr(err1, err2, err3); err != nil {
		return "", err
	}
	if s == "" {
		return "", reject("JID without a server: %s", short(t))
	}
	out := s
	if u != "" {
		out = u + "@" + s
	}
	if r != "" {
		out += "/" + r
	}
	return out, nil
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}
