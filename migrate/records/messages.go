package records

import (
	"github.com/mimmigrate/mimmigrate/erldist/term"
	"github.com/mimmigrate/mimmigrate/migrate/codec"
	"github.com/mimmigrate/mimmigrate/migrate/schema"
)

// Offline is an offline message: ejabberd's {offline_msg, {U, S},
// Timestamp, Expire, From, To, Packet}, or MongooseIM's with a µs
// timestamp and permanent_fields.
type Offline struct {
	User, Server string
	Usec         int64
	Expire       *int64 // nil: never
	From, To     string
	Packet       term.Term
	Permanent    term.Term // MongooseIM's permanent_fields; nil when none
}

// ReadOffline reads an offline_msg record.
func ReadOffline(rec term.Tuple, scope *schema.Scope) (Offline, error) {
	var o Offline
	var err error
	if o.User, o.Server, err = readUserAt(rec, 1, scope, 6, 7); err != nil {
		return o, err
	}
	if o.Usec, err = AnyUsec(rec[2]); err != nil {
		return o, err
	}
	if !term.IsAtom(rec[3], "never") && !term.IsAtom(rec[3], "undefined") {
		e, err := AnyUsec(rec[3])
		if err != nil {
			return o, rejectf("expire: %v", err)
		}
		o.Expire = &e
	}
	if o.From, err = JIDText(rec[4]); err != nil {
		return o, rejectf("from: %v", err)
	}
	if o.To, err = JIDText(rec[5]); err != nil {
		return o, rejectf("to: %v", err)
	}
	o.Packet = rec[6]
	if len(rec) == 8 {
		if l, ok := term.Elems(rec[7]); !ok || len(l) > 0 {
			o.Permanent = rec[7]
		}
	}
	return o, nil
}

// OfflineLess orders offline_msg records as ejabberd delivers a spool:
// by user, then by message time, keeping the stream's order otherwise.
func OfflineLess(a, b term.Term) bool {
	ka, kb := spoolKey(a), spoolKey(b)
	if ka != kb {
		return ka < kb
	}
	return offlineTime(a) < offlineTime(b)
}

func offlineTime(rec term.Term) int64 {
	if tu, ok := rec.(term.Tuple); ok && (len(tu) == 7 || len(tu) == 8) {
		usec, _ := AnyUsec(tu[2])
		return usec
	}
	return 0
}

func spoolKey(rec term.Term) string {
	if tu, ok := rec.(term.Tuple); ok && (len(tu) == 7 || len(tu) == 8) {
		if u, s, err := US(tu[1]); err == nil {
			return s + "\x00" + u
		}
	}
	return ""
}

// Archive is a MAM message: {archive_msg, {Owner, Server}, Id, Timestamp,
// Peer, BarePeer, Packet, Nick, Type[, OriginId]}.
type Archive struct {
	Owner, Server string // the archive's owner: a user, or a room
	VHost         string // the virtual host it belongs to
	Kind          string // chat or groupchat
	Usec          int64
	Peer          LJID
	Packet        *codec.Element
	Nick          string
	OriginID      string // the record's own, ejabberd 22.10+; "" when none
}

// ReadArchive reads an archive_msg record.
func ReadArchive(rec term.Tuple, scope *schema.Scope) (Archive, error) {
	var a Archive
	if len(rec) != 9 && len(rec) != 10 {
		return a, rejectf("archive_msg record of %d fields, want 8", len(rec)-1)
	}
	var err error
	if a.Owner, a.Server, err = US(rec[1]); err != nil {
		return a, err
	}
	kind, _ := rec[8].(term.Atom)
	a.Kind, a.VHost = string(kind), a.Server
	switch kind {
	case "chat":
	case "groupchat":
		if a.VHost, err = scope.ServiceHost(a.Server); err != nil {
			return a, err
		}
	default:
		return a, rejectf("archive type %s", short(rec[8]))
	}
	if err := scope.Check(a.VHost); err != nil {
		return a, err
	}
	if a.Usec, err = TimestampUsec(rec[3]); err != nil {
		return a, err
	}
	if a.Peer, err = ReadLJID(rec[4]); err != nil {
		return a, rejectf("peer: %v", err)
	}
	if a.Packet, err = codec.ParseElement(rec[6]); err != nil {
		return a, rejectf("packet: %v", err)
	}
	if a.Nick, err = Text(rec[7], "nick"); err != nil {
		return a, err
	}
	if len(rec) == 10 {
		a.OriginID, _ = term.Text(rec[9])
	}
	return a, nil
}

// Body is the text of the message's first <body/>.
func (a Archive) Body() string {
	if b := a.Packet.Child("body"); b != nil {
		return b.Text()
	}
	return ""
}

// ArchivePrefs is {archive_prefs, {U, S}, Default, Always, Never} (or
// MongooseIM's mam_prefs of the same shape).
type ArchivePrefs struct {
	User, Server  string
	Default       term.Atom
	Always, Never term.Term
}

// ReadArchivePrefs reads archive preferences.
func ReadArchivePrefs(rec term.Tuple, scope *schema.Scope) (ArchivePrefs, error) {
	var p ArchivePrefs
	var err error
	if p.User, p.Server, err = ReadUserRecord(rec, 4, scope); err != nil {
		return p, err
	}
	def, ok := rec[2].(term.Atom)
	if !ok {
		return p, rejectf("archive default %s", short(rec[2]))
	}
	p.Default, p.Always, p.Never = def, rec[3], rec[4]
	return p, nil
}
