package mongooseim

import (
	"bytes"
	"strconv"
	"strings"

	"github.com/mimmigrate/mimmigrate/erldist/term"
	"github.com/mimmigrate/mimmigrate/migrate/codec"
	"github.com/mimmigrate/mimmigrate/migrate/records"
	"github.com/mimmigrate/mimmigrate/migrate/schema"
)

// mucRegistered: the service, then the user's lowercased parts.
func (m *mapper) mucRegistered(rec term.Tuple) ([]schema.Op, error) {
	r, err := records.ReadMucRegistered(rec, m.scope)
	if err != nil {
		return nil, err
	}
	return []schema.Op{schema.Row("muc_registered", r.Service, strings.ToLower(r.User), strings.ToLower(r.Server), r.Nick)}, nil
}

// mucAffCode is muc_room_aff.aff.
var mucAffCode = map[term.Atom]int16{"owner": 1, "member": 2, "admin": 3, "outcast": 4, "none": 5}

// roomOptions are the room options MongooseIM stores (make_opts), with
// ejabberd's name for each when it differs.
var roomOptions = []string{"title", "description", "allow_change_subj", "allow_query_users", "allow_private_messages",
	"allow_visitor_status", "allow_visitor_nickchange", "public", "public_list", "persistent", "moderated",
	"members_by_default", "members_only", "allow_user_invites", "allow_multiple_sessions", "password_protected",
	"password", "anonymous", "max_users", "maygetmemberlist", "subject", "subject_author"}

// mimRoom maps a room to muc_rooms (its options as MongooseIM's
// mod_muc_rdbms writes them: the option list as a JSON object, in
// MongooseIM's option set) and muc_room_aff (one row per affiliation).
func (m *mapper) room(rec term.Tuple) ([]schema.Op, error) {
	r, err := records.ReadRoom(rec, m.scope)
	if err != nil {
		return nil, err
	}
	name, service, opts := r.Name, r.Service, r.Options
	have := map[string]term.Term{}
	for _, o := range opts {
		kv, ok := o.(term.Tuple)
		if !ok || len(kv) != 2 {
			return nil, rejectf("room option is not {Key, Value}: %s", short(o))
		}
		k, ok := kv[0].(term.Atom)
		if !ok {
			return nil, rejectf("room option key %s", short(kv[0]))
		}
		if _, dup := have[string(k)]; !dup {
			have[string(k)] = kv[1]
		}
	}
	// ejabberd 17.x+ replaced allow_private_messages with allowpm.
	if _, ok := have["allow_private_messages"]; !ok {
		if pm, ok := have["allowpm"].(term.Atom); ok {
			have["allow_private_messages"] = term.Atom(strconv.FormatBool(pm != "none"))
		}
	}
	var js bytes.Buffer
	js.WriteByte('{')
	first := true
	for _, k := range roomOptions {
		v, ok := have[k]
		if !ok {
			continue
		}
		var enc []byte
		switch k {
		case "subject":
			s, err := roomSubject(v)
			if err != nil {
				return nil, err
			}
			enc = codec.AppendJiffyString(nil, s)
		case "subject_author":
			s, err := roomSubjectAuthor(v)
			if err != nil {
				return nil, err
			}
			enc = codec.AppendJiffyString(nil, s)
		default:
			if enc, err = codec.AppendJiffy(nil, v); err != nil {
				return nil, rejectf("room option %s: %v", k, err)
			}
		}
		if !first {
			js.WriteByte(',')
		}
		first = false
		js.Write(codec.AppendJiffyString(nil, k))
		js.WriteByte(':')
		js.Write(enc)
	}
	js.WriteByte('}')
	id := m.roomIDs.Take(1)
	rooms := schema.Row("muc_rooms", id, service, name, js.String())
	rooms.Canon = []any{service, name, js.String()}
	ops := []schema.Op{rooms}
	if affs, ok := have["affiliations"]; ok {
		l, ok := term.Elems(affs)
		if !ok {
			return nil, rejectf("room affiliations are not a list: %s", short(affs))
		}
		for _, a := range l {
			kv, ok := a.(term.Tuple)
			if !ok || len(kv) != 2 {
				return nil, rejectf("room affiliation is not {JID, Affiliation}: %s", short(a))
			}
			j, ok := kv[0].(term.Tuple)
			if !ok || len(j) != 3 {
				return nil, rejectf("room affiliation JID %s", short(kv[0]))
			}
			u, err1 := records.Text(j[0], "user")
			s, err2 := records.Text(j[1], "server")
			res, err3 := records.Text(j[2], "resource")
			if err := records.FirstErr(err1, err2, err3); err != nil {
				return nil, err
			}
			aff := kv[1]
			if t, ok := aff.(term.Tuple); ok && len(t) == 2 {
				aff = t[0] // {Affiliation, Reason}
			}
			an, _ := aff.(term.Atom)
			code, ok := mucAffCode[an]
			if !ok {
				return nil, rejectf("room affiliation %s", short(kv[1]))
			}
			row := schema.Row("muc_room_aff", id, u, s, res, code)
			row.Canon = []any{service, name, u, s, res, code}
			ops = append(ops, row)
		}
	}
	return ops, nil
}

// roomSubject reads a subject: text, or ejabberd 21.12+'s [{text, Lang,
// Text}] (the text without a language, else the first).
func roomSubject(v term.Term) (string, error) {
	if s, ok := term.Text(v); ok {
		if _, isAtom := v.(term.Atom); !isAtom {
			return s, nil
		}
	}
	l, ok := term.Elems(v)
	if !ok {
		return "", rejectf("room subject %s", short(v))
	}
	out := ""
	for i, e := range l {
		t, ok := term.IsRecord(e, "text", 3)
		if !ok {
			return "", rejectf("room subject %s", short(v))
		}
		lang, _ := term.Text(t[1])
		s, err := records.Text(t[2], "subject")
		if err != nil {
			return "", err
		}
		if i == 0 || lang == "" {
			out = s
		}
		if lang == "" {
			break
		}
	}
	return out, nil
}

// roomSubjectAuthor reads the subject's author: a nick, or ejabberd
// 22.x+'s {Nick, JID}.
func roomSubjectAuthor(v term.Term) (string, error) {
	if t, ok := v.(term.Tuple); ok && len(t) == 2 {
		v = t[0]
	}
	return records.Text(v, "subject author")
}
