package ejabberd

import (
	"strings"
	"time"

	"github.com/mimmigrate/mimmigrate/erldist/term"
	"github.com/mimmigrate/mimmigrate/migrate/codec"
	"github.com/mimmigrate/mimmigrate/migrate/records"
	"github.com/mimmigrate/mimmigrate/migrate/schema"
)

// mucRoom stores a room as mod_muc_sql does: its options as Erlang text
// without the subscribers, which get their own table, and the hibernation
// time in created_at.
func (m *mapper) mucRoom(rec term.Tuple) ([]schema.Op, error) {
	r, err := records.ReadRoom(rec, m.scope)
	if err != nil {
		return nil, err
	}
	var subs term.Term = term.List{}
	rest := make(term.List, 0, len(r.Options))
	created := time.Date(1970, 1, 2, 0, 0, 0, 0, time.UTC)
	seenSubs := false
	for _, o := range r.Options {
		kv, ok := o.(term.Tuple)
		if ok && len(kv) == 2 && term.IsAtom(kv[0], "subscribers") && !seenSubs {
			subs, seenSubs = kv[1], true
			continue
		}
		if ok && len(kv) == 2 && term.IsAtom(kv[0], "hibernation_time") {
			if us, ok := term.Int(kv[1]); ok {
				created = time.UnixMicro(us).UTC().Truncate(time.Second)
			}
		}
		rest = append(rest, o)
	}
	if !seenSubs {
		rest = term.List(r.Options)
	}
	ops := []schema.Op{m.rowH("muc_room", r.Name, r.Service, r.VHost, string(codec.AppendErlangText(nil, rest)), created)}
	sl, ok := term.Elems(subs)
	if !ok {
		return nil, rejectf("room subscribers are not a list: %s", short(subs))
	}
	for _, s := range sl {
		st, ok := s.(term.Tuple)
		if !ok || len(st) != 3 {
			return nil, rejectf("room subscriber is not {JID, Nick, Nodes}: %s", short(s))
		}
		jid, err := records.JIDText(st[0])
		if err != nil {
			return nil, err
		}
		nick, err := records.Text(st[1], "subscriber nick")
		if err != nil {
			return nil, err
		}
		ops = append(ops, schema.Row("muc_room_subscribers", r.Name, r.Service, jid, nick, string(codec.AppendErlangText(nil, st[2]))))
	}
	return ops, nil
}

func (m *mapper) mucRegistered(rec term.Tuple) ([]schema.Op, error) {
	r, err := records.ReadMucRegistered(rec, m.scope)
	if err != nil {
		return nil, err
	}
	return []schema.Op{m.rowH("muc_registered", r.JID(), r.Service, r.VHost, r.Nick)}, nil
}

// archive: a user's archive under the user's name, a room's under the
// room's JID; the body as txt.
func (m *mapper) archive(rec term.Tuple) ([]schema.Op, error) {
	a, err := records.ReadArchive(rec, m.scope)
	if err != nil {
		return nil, err
	}
	if a.Peer[1] == "" {
		return nil, rejectf("peer: JID without a server: %s", short(rec[4]))
	}
	username := a.Owner
	if a.Kind == "groupchat" {
		username = a.Owner + "@" + a.Server
	}
	peer := a.Peer.String()
	barePeer := peer
	if i := strings.IndexByte(peer, '/'); i >= 0 {
		barePeer = peer[:i]
	}
	return []schema.Op{m.row("archive", username, a.VHost, a.Usec, peer, barePeer,
		string(codec.AppendElement(nil, a.Packet)), a.Body(), a.Kind, a.Nick)}, nil
}
