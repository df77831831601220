package mongooseim

import (
	"strconv"

	"github.com/mimmigrate/mimmigrate/erldist/term"
	"github.com/mimmigrate/mimmigrate/migrate/codec"
	"github.com/mimmigrate/mimmigrate/migrate/records"
	"github.com/mimmigrate/mimmigrate/migrate/schema"
)

var (
	rejectf = schema.Rejectf
	short   = term.Short
)

// scramTag names a hash in MongooseIM's serialized SCRAM.
var scramTag = map[string]string{"sha": "===SHA1===", "sha224": "==SHA224==", "sha256": "==SHA256==", "sha384": "==SHA384==", "sha512": "==SHA512=="}

// passwd: a plain password as is (pass_details NULL); SCRAM as
// mongoose_scram:serialize writes it, password empty and pass_details
// "==MULTI_SCRAM==,IC,<tag>Salt|StoredKey|ServerKey,...". MongooseIM's
// own Mnesia keeps SCRAM as a map of hashes, handled too.
func (m *mapper) passwd(rec term.Tuple) ([]schema.Op, error) {
	p, err := records.ReadPasswd(rec, m.scope)
	if err != nil {
		return nil, err
	}
	switch {
	case p.ScramMap != nil:
		details, err := scramMap(p.ScramMap)
		if err != nil {
			return nil, err
		}
		return []schema.Op{schema.Row("users", p.User, p.Server, "", details)}, nil
	case p.Scram == nil:
		return []schema.Op{schema.Row("users", p.User, p.Server, p.Plain, nil)}, nil
	}
	s := p.Scram
	details := "==MULTI_SCRAM==," + strconv.Itoa(int(s.Iterations)) + "," + scramTag[s.Hash] + s.Salt + "|" + s.StoredKey + "|" + s.ServerKey
	return []schema.Op{schema.Row("users", p.User, p.Server, "", details)}, nil
}

// scramMap serializes MongooseIM's Mnesia SCRAM map
// #{iteration_count => IC, sha => #{salt, stored_key, server_key}, ...}.
func scramMap(mp term.Map) (string, error) {
	ic := int64(-1)
	hashes := map[string][3]string{}
	for _, p := range mp {
		k, _ := p.Key.(term.Atom)
		if k == "iteration_count" {
			ic, _ = term.Int(p.Value)
			continue
		}
		if scramTag[string(k)] == "" {
			return "", rejectf("SCRAM map key %s", short(p.Key))
		}
		inner, ok := p.Value.(term.Map)
		if !ok {
			return "", rejectf("SCRAM %s is not a map", k)
		}
		var f [3]string
		for _, q := range inner {
			qk, _ := q.Key.(term.Atom)
			s, err := records.Text(q.Value, string(qk))
			if err != nil {
				return "", err
			}
			switch qk {
			case "salt":
				f[0] = s
			case "stored_key":
				f[1] = s
			case "server_key":
				f[2] = s
			}
		}
		hashes[string(k)] = f
	}
	if ic <= 0 || len(hashes) == 0 {
		return "", rejectf("SCRAM map without an iteration count or hashes")
	}
	out := "==MULTI_SCRAM==," + strconv.FormatInt(ic, 10)
	for _, h := range []string{"sha", "sha224", "sha256", "sha384", "sha512"} {
		if f, ok := hashes[h]; ok {
			out += "," + scramTag[h] + f[0] + "|" + f[1] + "|" + f[2]
		}
	}
	return out, nil
}

// lastActivity: seconds in an integer column.
func (m *mapper) lastActivity(rec term.Tuple) ([]schema.Op, error) {
	l, err := records.ReadLastActivity(rec, m.scope)
	if err != nil {
		return nil, err
	}
	if l.Seconds < -1<<31 || l.Seconds > 1<<31-1 {
		return nil, rejectf("last activity time %d does not fit MongooseIM's integer column", l.Seconds)
	}
	return []schema.Op{schema.Row("last", l.Server, l.User, int32(l.Seconds), l.Status)}, nil
}

// roster: MongooseIM keys groups by (server, user, jid, group) and skips
// empty group names.
func (m *mapper) roster(rec term.Tuple) ([]schema.Op, error) {
	r, err := records.ReadRoster(rec, m.scope)
	if err != nil {
		return nil, err
	}
	ops := []schema.Op{schema.Row("rosterusers", r.Server, r.User, r.JID, r.Nick, r.Subscription, r.Ask, r.AskMessage)}
	seen := map[string]bool{}
	for _, g := range r.Groups {
		if g == "" || seen[g] {
			continue
		}
		seen[g] = true
		ops = append(ops, schema.Row("rostergroups", r.Server, r.User, r.JID, g))
	}
	return ops, nil
}

func (m *mapper) rosterVersion(rec term.Tuple) ([]schema.Op, error) {
	user, server, v, err := records.ReadUserText(rec, m.scope, "version")
	if err != nil {
		return nil, err
	}
	return []schema.Op{schema.Row("roster_version", server, user, v)}, nil
}

func (m *mapper) vcard(rec term.Tuple) ([]schema.Op, error) {
	user, server, x, err := records.ReadUserXML(rec, m.scope, "vcard")
	if err != nil {
		return nil, err
	}
	return []schema.Op{schema.Row("vcard", user, server, x)}, nil
}

func (m *mapper) vcardSearch(rec term.Tuple) ([]schema.Op, error) {
	v, err := records.ReadVCardSearch(rec, m.scope)
	if err != nil {
		return nil, err
	}
	return []schema.Op{schema.Row("vcard_search", v.Values()...)}, nil
}

func (m *mapper) private(rec term.Tuple) ([]schema.Op, error) {
	p, err := records.ReadPrivate(rec, m.scope)
	if err != nil {
		return nil, err
	}
	return []schema.Op{schema.Row("private_storage", p.Server, p.User, p.Namespace, p.XML)}, nil
}

// privacy: as ejabberd's, server first; two items of one order in a list
// are refused (MongooseIM's key is (list, order)).
func (m *mapper) privacy(rec term.Tuple) ([]schema.Op, error) {
	p, err := records.ReadPrivacy(rec, m.scope)
	if err != nil {
		return nil, err
	}
	for _, l := range p.Lists {
		orders := map[int64]bool{}
		for _, it := range l.Items {
			if orders[it.Order] {
				return nil, rejectf("privacy list has two items of order %d: MongooseIM keys items by (list, order)", it.Order)
			}
			orders[it.Order] = true
		}
	}
	return p.Ops(m.privacyIDs.Take(len(p.Lists)), func(table string, rest ...any) schema.Op {
		return schema.Row(table, append([]any{p.Server, p.User}, rest...)...)
	}), nil
}

// offline: the stanza with its from and to, the time in µs; MongooseIM
// adds the delay when it delivers.
func (m *mapper) offline(rec term.Tuple) ([]schema.Op, error) {
	o, err := records.ReadOffline(rec, m.scope)
	if err != nil {
		return nil, err
	}
	pkt, err := codec.ParseElement(o.Packet)
	if err != nil {
		return nil, rejectf("packet: %v", err)
	}
	pkt.SetAttr("from", o.From)
	pkt.SetAttr("to", o.To)
	var expire, perm any
	if o.Expire != nil {
		expire = *o.Expire
	}
	if o.Permanent != nil {
		b, err := term.Encode(o.Permanent)
		if err != nil {
			return nil, rejectf("permanent fields: %v", err)
		}
		perm = b
	}
	return []schema.Op{schema.Row("offline_message", o.Usec, expire, o.Server, o.User, o.From, string(codec.AppendElement(nil, pkt)), perm)}, nil
}
