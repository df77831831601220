// Package records reads ejabberd's (and MongooseIM's) Mnesia records into
// Go values, once for every target schema: each reader checks a record's
// shape and fields and returns a *schema.Reject saying what is wrong, or a
// *schema.Skip for a record of a virtual host that is not exported. The
// schema packages only format what the readers return.
package records

import (
	"strings"

	"github.com/mimmigrate/mimmigrate/erldist/term"
	"github.com/mimmigrate/mimmigrate/migrate/codec"
	"github.com/mimmigrate/mimmigrate/migrate/schema"
)

var (
	rejectf = schema.Rejectf
	short   = term.Short
)

// Text reads a string field in any shape ejabberd stored one (binary,
// 2.x byte list); an atom is not a string.
func Text(t term.Term, what string) (string, error) {
	if s, ok := term.Text(t); ok {
		if _, isAtom := t.(term.Atom); !isAtom {
			return s, nil
		}
	}
	return "", rejectf("%s is not a string: %s", what, short(t))
}

// US reads a {User, Server} key.
func US(t term.Term) (user, server string, err error) {
	tu, ok := t.(term.Tuple)
	if !ok || len(tu) != 2 {
		return "", "", rejectf("key is not {User, Server}: %s", short(t))
	}
	if user, err = Text(tu[0], "user"); err != nil {
		return "", "", err
	}
	server, err = Text(tu[1], "server")
	return user, server, err
}

// Pair reads a {A, B} key of two strings.
func Pair(t term.Term, what string) (string, string, error) {
	tu, ok := t.(term.Tuple)
	if !ok || len(tu) != 2 {
		return "", "", rejectf("%s key is not a pair: %s", what, short(t))
	}
	a, err1 := Text(tu[0], what)
	b, err2 := Text(tu[1], what+" host")
	return a, b, FirstErr(err1, err2)
}

// HostPair reads a {A, Host} key of a virtual host that is exported.
func HostPair(t term.Term, what string, scope *schema.Scope) (string, string, error) {
	a, host, err := Pair(t, what)
	if err != nil {
		return "", "", err
	}
	return a, host, scope.Check(host)
}

// LJID is a {User, Server, Resource} JID, its parts as stored (user and
// server lowercased by the server that stored them).
type LJID [3]string

// ReadLJID reads a {User, Server, Resource} JID.
func ReadLJID(t term.Term) (LJID, error) {
	tu, ok := t.(term.Tuple)
	if !ok || len(tu) != 3 {
		return LJID{}, rejectf("JID is not {User, Server, Resource}: %s", short(t))
	}
	u, err1 := Text(tu[0], "JID user")
	s, err2 := Text(tu[1], "JID server")
	r, err3 := Text(tu[2], "JID resource")
	return LJID{u, s, r}, FirstErr(err1, err2, err3)
}

// String writes the JID as jid:encode does: user@server/resource, parts
// that are empty left out.
func (j LJID) String() string {
	out := j[1]
	if j[0] != "" {
		out = j[0] + "@" + out
	}
	if j[2] != "" {
		out += "/" + j[2]
	}
	return out
}

// Bare is the JID without its resource.
func (j LJID) Bare() LJID { return LJID{j[0], j[1], ""} }

// LJIDText reads a {User, Server, Resource} JID and writes it as
// jid:encode does; a JID without a server is rejected.
func LJIDText(t term.Term) (string, error) {
	j, err := ReadLJID(t)
	if err != nil {
		return "", err
	}
	if j[1] == "" {
		return "", rejectf("JID without a server: %s", short(t))
	}
	return j.String(), nil
}

// JIDText writes a #jid{} record (of ejabberd 13+ or 2.x) or a {U, S, R}
// tuple as jid:encode does.
func JIDText(t term.Term) (string, error) {
	if tu, ok := t.(term.Tuple); ok && len(tu) >= 4 && term.IsAtom(tu[0], "jid") {
		// 13+: #jid{user, server, resource, luser, lserver, lresource};
		// 2.x the same fields.
		return LJIDText(term.Tuple{tu[1], tu[2], tu[3]})
	}
	return LJIDText(t)
}

// SplitJID splits a JID into its lowercased user and server and its
// resource (resources keep their case, as resourceprep does).
func SplitJID(j string) LJID {
	var out LJID
	if i := strings.IndexByte(j, '/'); i >= 0 {
		out[2], j = j[i+1:], j[:i]
	}
	if i := strings.IndexByte(j, '@'); i >= 0 {
		out[0], j = strings.ToLower(j[:i]), j[i+1:]
	}
	out[1] = strings.ToLower(j)
	return out
}

// TimestampUsec reads an erlang:timestamp() {Mega, Sec, Micro} as
// microseconds.
func TimestampUsec(t term.Term) (int64, error) {
	tu, ok := t.(term.Tuple)
	if !ok || len(tu) != 3 {
		return 0, rejectf("timestamp is not {Mega, Sec, Micro}: %s", short(t))
	}
	mega, ok1 := term.Int(tu[0])
	sec, ok2 := term.Int(tu[1])
	micro, ok3 := term.Int(tu[2])
	if !ok1 || !ok2 || !ok3 || mega < 0 || sec < 0 || micro < 0 || mega > 1<<20 {
		return 0, rejectf("timestamp is not {Mega, Sec, Micro}: %s", short(t))
	}
	return (mega*1_000_000+sec)*1_000_000 + micro, nil
}

// AnyUsec reads a time as {Mega, Sec, Micro} or as integer microseconds
// (MongooseIM's records).
func AnyUsec(t term.Term) (int64, error) {
	if n, ok := term.Int(t); ok && n >= 0 {
		return n, nil
	}
	return TimestampUsec(t)
}

// XMLText writes a stored XML element as fxml does.
func XMLText(t term.Term, what string) (string, error) {
	b, err := codec.AppendXML(nil, t)
	if err != nil {
		return "", rejectf("%s: %v", what, err)
	}
	return string(b), nil
}

// IsRecordNamed reports whether t is a tuple tagged name.
func IsRecordNamed(t term.Term, name string) bool {
	tu, ok := t.(term.Tuple)
	return ok && len(tu) > 0 && term.IsAtom(tu[0], term.Atom(name))
}

// FirstErr is the first error that is not nil.
func FirstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}
