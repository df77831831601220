package ejabberd

import (
	"strings"

	"github.com/mimmigrate/mimmigrate/erldist/term"
	"github.com/mimmigrate/mimmigrate/migrate/records"
	"github.com/mimmigrate/mimmigrate/migrate/schema"
)

// What removes the rows of the records with a Mnesia key: the rows of
// every SQL table the Mnesia table fills, matched on the columns the key
// becomes.

// delUS deletes a table's rows of one user.
func delUS(table string) func(*mapper, term.Term) ([]schema.Op, error) {
	return func(m *mapper, key term.Term) ([]schema.Op, error) {
		user, server, err := records.UserKey(key, m.scope)
		if err != nil {
			return nil, err
		}
		return []schema.Op{schema.Del(table, m.where("username", user, server)...)}, nil
	}
}

// delBy deletes the rows whose column equals the key (a text key).
func delBy(table, column string) func(*mapper, term.Term) ([]schema.Op, error) {
	return func(_ *mapper, key term.Term) ([]schema.Op, error) {
		v, err := records.Text(key, column)
		if err != nil {
			return nil, err
		}
		return []schema.Op{schema.Del(table, schema.Eq(column, v))}, nil
	}
}

// delRoster: the key is {User, Server, ContactLJID}.
func (m *mapper) delRoster(key term.Term) ([]schema.Op, error) {
	user, server, jid, err := records.RosterKey(key, m.scope)
	if err != nil {
		return nil, err
	}
	where := append(m.where("username", user, server), schema.Eq("jid", jid))
	return []schema.Op{schema.Del("rostergroups", where...), schema.Del("rosterusers", where...)}, nil
}

// delVCardSearch: the key is {LUser, LServer}.
func (m *mapper) delVCardSearch(key term.Term) ([]schema.Op, error) {
	luser, server, err := records.UserKey(key, m.scope)
	if err != nil {
		return nil, err
	}
	return []schema.Op{schema.Del("vcard_search", m.where("lusername", luser, server)...)}, nil
}

// delPrivate: the key is {User, Server, Namespace}.
func (m *mapper) delPrivate(key term.Term) ([]schema.Op, error) {
	user, server, ns, err := records.PrivateKey(key, m.scope)
	if err != nil {
		return nil, err
	}
	return []schema.Op{schema.Del("private_storage", append(m.where("username", user, server), schema.Eq("namespace", ns))...)}, nil
}

// delPrivacy: the items of the user's lists, the lists, the default.
func (m *mapper) delPrivacy(key term.Term) ([]schema.Op, error) {
	user, server, err := records.UserKey(key, m.scope)
	if err != nil {
		return nil, err
	}
	owner := m.where("username", user, server)
	return []schema.Op{
		schema.Del("privacy_list_data", schema.In("id", schema.Select{Table: "privacy_list", Column: "id", Where: owner})),
		schema.Del("privacy_list", owner...),
		schema.Del("privacy_default_list", owner...),
	}, nil
}

// delRoom: the key is {Name, Service}.
func (m *mapper) delRoom(key term.Term) ([]schema.Op, error) {
	name, service, err := records.RoomKey(key, m.scope)
	if err != nil {
		return nil, err
	}
	return []schema.Op{
		schema.Del("muc_room_subscribers", schema.Eq("room", name), schema.Eq("host", service)),
		schema.Del("muc_room", schema.Eq("name", name), schema.Eq("host", service)),
	}, nil
}

// delMucRegistered: the key is {{User, Server}, Service}.
func (m *mapper) delMucRegistered(key term.Term) ([]schema.Op, error) {
	r, err := records.ReadMucRegistered(term.Tuple{term.Atom("muc_registered"), key, term.Binary("")}, m.scope)
	if err != nil {
		return nil, err
	}
	return []schema.Op{schema.Del("muc_registered", schema.Eq("jid", r.JID()), schema.Eq("host", r.Service))}, nil
}

// delArchive: the key is a user's {User, VHost}, or a room's {Name,
// Service} (stored under the room's JID).
func (m *mapper) delArchive(key term.Term) ([]schema.Op, error) {
	owner, server, vhost, room, err := records.ArchiveOwner(key, m.scope)
	if err != nil {
		return nil, err
	}
	if room {
		owner += "@" + server
	}
	return []schema.Op{schema.Del("archive", m.where("username", owner, vhost)...)}, nil
}

// delSrGroup: the key is {Group, Host}.
func (m *mapper) delSrGroup(key term.Term) ([]schema.Op, error) {
	group, host, err := records.HostPair(key, "group", m.scope)
	if err != nil {
		return nil, err
	}
	return []schema.Op{schema.Del("sr_group", m.where("name", group, host)...)}, nil
}

// delSrUser: the key is the member's {User, Server}, in any group.
func (m *mapper) delSrUser(key term.Term) ([]schema.Op, error) {
	u, s, err := records.US(key)
	if err != nil {
		return nil, err
	}
	jid := strings.ToLower(s)
	if u != "" {
		jid = strings.ToLower(u) + "@" + jid
	}
	return []schema.Op{schema.Del("sr_user", schema.Eq("jid", jid))}, nil
}

// delMotd: the key is the virtual host; its message is the row with no
// user.
func (m *mapper) delMotd(key term.Term) ([]schema.Op, error) {
	host, err := records.Text(key, "server")
	if err != nil {
		return nil, err
	}
	if err := m.scope.Check(host); err != nil {
		return nil, err
	}
	return []schema.Op{schema.Del("motd", m.where("username", "", host)...)}, nil
}

// delMotdUser: the key is {User, Server}.
func (m *mapper) delMotdUser(key term.Term) ([]schema.Op, error) {
	user, server, err := records.UserKey(key, m.scope)
	if err != nil {
		return nil, err
	}
	if user == "" {
		return nil, rejectf("motd_users key without a user")
	}
	return []schema.Op{schema.Del("motd", m.where("username", user, server)...)}, nil
}

// delMQTT: the key is {Topic, Host}.
func (m *mapper) delMQTT(key term.Term) ([]schema.Op, error) {
	topic, host, err := records.HostPair(key, "topic", m.scope)
	if err != nil {
		return nil, err
	}
	where := []schema.Cond{schema.Eq("topic", topic)}
	if m.s.multihost {
		where = append(where, schema.Eq("server_host", host))
	}
	return []schema.Op{schema.Del("mqtt_pub", where...)}, nil
}

// delPubsubNode: the key is {Host, Node}. The node's options go by name
// (a record written again keeps its row, updated in place, and replaces
// them); the schema's foreign keys take its states and items with the
// row.
func (m *mapper) delPubsubNode(key term.Term) ([]schema.Op, error) {
	host, node, err := records.PubsubNodeID(key, m.scope)
	if err != nil {
		return nil, err
	}
	where := []schema.Cond{schema.Eq("host", host), schema.Eq("node", node)}
	return []schema.Op{
		schema.Del("pubsub_node_option", schema.In("nodeid", schema.Select{Table: "pubsub_node", Column: "nodeid", Where: where})),
		schema.Del("pubsub_node", where...),
	}, nil
}

// delPubsubState: the key is {LJID, Nidx}.
func (m *mapper) delPubsubState(key term.Term) ([]schema.Op, error) {
	j, nidx, err := records.PubsubStateKey(key)
	if err != nil {
		return nil, err
	}
	return []schema.Op{schema.Del("pubsub_state", schema.Eq("nodeid", nidx), schema.Eq("jid", j.String()))}, nil
}

// delPubsubItem: the key is {ItemId, Nidx}.
func (m *mapper) delPubsubItem(key term.Term) ([]schema.Op, error) {
	id, nidx, err := records.PubsubItemKey(key)
	if err != nil {
		return nil, err
	}
	return []schema.Op{schema.Del("pubsub_item", schema.Eq("nodeid", nidx), schema.Eq("itemid", id))}, nil
}

// delCaps: the key is {Node, SubNode}.
func (m *mapper) delCaps(key term.Term) ([]schema.Op, error) {
	node, sub, err := records.Pair(key, "node")
	if err != nil {
		return nil, err
	}
	return []schema.Op{schema.Del("caps_features", schema.Eq("node", node), schema.Eq("subnode", sub))}, nil
}
