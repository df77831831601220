package ejabberd

import (
	"strconv"
	"time"

	"github.com/mimmigrate/mimmigrate/erldist/term"
	"github.com/mimmigrate/mimmigrate/migrate/codec"
	"github.com/mimmigrate/mimmigrate/migrate/records"
	"github.com/mimmigrate/mimmigrate/migrate/schema"
)

var (
	rejectf = schema.Rejectf
	short   = term.Short
)

// passwd: a plain password as is; SCRAM as StoredKey, ServerKey, Salt and
// the iteration count, the StoredKey prefixed "sha256:" or "sha512:" when
// the hash is not SHA-1, as ejabberd 20.12 – 25.02 store it.
func (m *mapper) passwd(rec term.Tuple) ([]schema.Op, error) {
	p, err := records.ReadPasswd(rec, m.scope)
	if err != nil {
		return nil, err
	}
	switch {
	case p.ScramMap != nil:
		return nil, records.NotPassword(rec[2])
	case p.Scram == nil:
		return []schema.Op{m.row("users", p.User, p.Server, p.Plain, "", "", int32(0))}, nil
	}
	prefix := ""
	if p.Scram.Hash != "sha" {
		prefix = p.Scram.Hash + ":"
	}
	return []schema.Op{m.row("users", p.User, p.Server, prefix+p.Scram.StoredKey, p.Scram.ServerKey, p.Scram.Salt, p.Scram.Iterations)}, nil
}

// lastActivity: seconds as decimal text.
func (m *mapper) lastActivity(rec term.Tuple) ([]schema.Op, error) {
	l, err := records.ReadLastActivity(rec, m.scope)
	if err != nil {
		return nil, err
	}
	return []schema.Op{m.row("last", l.User, l.Server, strconv.FormatInt(l.Seconds, 10), l.Status)}, nil
}

// roster: a rosterusers row with the constants ejabberd writes (server
// 'N', subscribe empty, type 'item') and a rostergroups row per group.
func (m *mapper) roster(rec term.Tuple) ([]schema.Op, error) {
	r, err := records.ReadRoster(rec, m.scope)
	if err != nil {
		return nil, err
	}
	ops := []schema.Op{m.row("rosterusers", r.User, r.Server, r.JID, r.Nick, r.Subscription, r.Ask, r.AskMessage, "N", "", "item")}
	for _, g := range r.Groups {
		ops = append(ops, m.row("rostergroups", r.User, r.Server, r.JID, g))
	}
	return ops, nil
}

func (m *mapper) rosterVersion(rec term.Tuple) ([]schema.Op, error) {
	user, host, v, err := records.ReadUserText(rec, m.scope, "version")
	if err != nil {
		return nil, err
	}
	return []schema.Op{m.row("roster_version", user, host, v)}, nil
}

func (m *mapper) vcard(rec term.Tuple) ([]schema.Op, error) {
	user, host, x, err := records.ReadUserXML(rec, m.scope, "vcard")
	if err != nil {
		return nil, err
	}
	return []schema.Op{m.row("vcard", user, host, x)}, nil
}

func (m *mapper) vcardSearch(rec term.Tuple) ([]schema.Op, error) {
	v, err := records.ReadVCardSearch(rec, m.scope)
	if err != nil {
		return nil, err
	}
	return []schema.Op{m.rowH("vcard_search", v.Values()...)}, nil
}

// offline: the stanza as ejabberd's SQL backend stores it (spool.xml),
// created_at the message time.
func (m *mapper) offline(rec term.Tuple) ([]schema.Op, error) {
	if len(rec) != 7 {
		return nil, rejectf("%s record of %d fields, want 6", short(rec[0]), len(rec)-1)
	}
	o, err := records.ReadOffline(rec, m.scope)
	if err != nil {
		return nil, err
	}
	x, err := codec.AppendOfflineStanza(nil, o.Packet, o.From, o.To, o.Server, o.Usec)
	if err != nil {
		return nil, rejectf("%v", err)
	}
	return []schema.Op{m.row("spool", o.User, o.Server, string(x), sqlTime(o.Usec))}, nil
}

// sqlTime is a timestamp column value: UTC wall clock.
func sqlTime(usec int64) time.Time { return time.UnixMicro(usec).UTC() }

func (m *mapper) private(rec term.Tuple) ([]schema.Op, error) {
	p, err := records.ReadPrivate(rec, m.scope)
	if err != nil {
		return nil, err
	}
	return []schema.Op{m.row("private_storage", p.User, p.Server, p.Namespace, p.XML)}, nil
}

// privacy: the default list, one privacy_list row per list with an id
// the export assigns, one privacy_list_data row per item. Verify compares
// lists by owner and name (Canon), not by id.
func (m *mapper) privacy(rec term.Tuple) ([]schema.Op, error) {
	p, err := records.ReadPrivacy(rec, m.scope)
	if err != nil {
		return nil, err
	}
	return p.Ops(m.privacyIDs.Take(len(p.Lists)), func(table string, rest ...any) schema.Op {
		return m.row(table, p.User, p.Server, rest...)
	}), nil
}

func (m *mapper) archivePrefs(rec term.Tuple) ([]schema.Op, error) {
	p, err := records.ReadArchivePrefs(rec, m.scope)
	if err != nil {
		return nil, err
	}
	return []schema.Op{m.row("archive_prefs", p.User, p.Server, string(p.Default),
		string(codec.AppendErlangText(nil, p.Always)), string(codec.AppendErlangText(nil, p.Never)))}, nil
}

func (m *mapper) pushSession(rec term.Tuple) ([]schema.Op, error) {
	user, host, err := records.ReadUserRecord(rec, 5, m.scope)
	if err != nil {
		return nil, err
	}
	usec, err := records.TimestampUsec(rec[2])
	if err != nil {
		return nil, err
	}
	service, err := records.LJIDText(rec[3])
	if err != nil {
		return nil, err
	}
	node, err := records.Text(rec[4], "node")
	if err != nil {
		return nil, err
	}
	xml := ""
	switch {
	case term.IsAtom(rec[5], "undefined"):
	case records.IsRecordNamed(rec[5], "xdata"):
		// ejabberd 23.x keeps the form as the xmpp library's record.
		b, err := codec.AppendXData(nil, rec[5])
		if err != nil {
			return nil, rejectf("publish options: %v", err)
		}
		xml = string(b)
	default:
		if xml, err = records.XMLText(rec[5], "publish options"); err != nil {
			return nil, err
		}
	}
	return []schema.Op{m.row("push_session", user, host, usec, service, node, xml)}, nil
}
