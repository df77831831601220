package mongooseim

import (
	"strings"

	"github.com/mimmigrate/mimmigrate/erldist/term"
	"github.com/mimmigrate/mimmigrate/migrate/records"
	"github.com/mimmigrate/mimmigrate/migrate/schema"
)

// What removes the rows of the records with a Mnesia key, table by table.

// delUS deletes a table's rows of one user: userCol = User, serverCol =
// Server.
func delUS(table, userCol, serverCol string) func(*mapper, term.Term) ([]schema.Op, error) {
	return func(m *mapper, key term.Term) ([]schema.Op, error) {
		user, server, err := records.UserKey(key, m.scope)
		if err != nil {
			return nil, err
		}
		return []schema.Op{schema.Del(table, schema.Eq(serverCol, server), schema.Eq(userCol, user))}, nil
	}
}

// owner is the condition on a table's (server, username).
func owner(user, server string) []schema.Cond {
	return []schema.Cond{schema.Eq("server", server), schema.Eq("username", user)}
}

// mamOwner selects an archive's id in mam_server_user.
func mamOwner(user, server string) schema.Select {
	return schema.Select{Table: "mam_server_user", Column: "id",
		Where: []schema.Cond{schema.Eq("server", server), schema.Eq("user_name", user)}}
}

// delRoster: the key is {User, Server, ContactLJID}.
func (m *mapper) delRoster(key term.Term) ([]schema.Op, error) {
	user, server, jid, err := records.RosterKey(key, m.scope)
	if err != nil {
		return nil, err
	}
	where := append(owner(user, server), schema.Eq("jid", jid))
	return []schema.Op{schema.Del("rostergroups", where...), schema.Del("rosterusers", where...)}, nil
}

// delPrivate: the key is {User, Server, Namespace}.
func (m *mapper) delPrivate(key term.Term) ([]schema.Op, error) {
	user, server, ns, err := records.PrivateKey(key, m.scope)
	if err != nil {
		return nil, err
	}
	return []schema.Op{schema.Del("private_storage", append(owner(user, server), schema.Eq("namespace", ns))...)}, nil
}

// delPrivacy: the lists (their items go with them) and the default.
func (m *mapper) delPrivacy(key term.Term) ([]schema.Op, error) {
	user, server, err := records.UserKey(key, m.scope)
	if err != nil {
		return nil, err
	}
	return []schema.Op{
		schema.Del("privacy_list_data", schema.In("id", schema.Select{Table: "privacy_list", Column: "id", Where: owner(user, server)})),
		schema.Del("privacy_list", owner(user, server)...),
		schema.Del("privacy_default_list", owner(user, server)...),
	}, nil
}

// delRoom: the key is {Name, Service}; affiliations first (they refer to
// the room).
func (m *mapper) delRoom(key term.Term) ([]schema.Op, error) {
	name, service, err := records.RoomKey(key, m.scope)
	if err != nil {
		return nil, err
	}
	room := []schema.Cond{schema.Eq("muc_host", service), schema.Eq("room_name", name)}
	return []schema.Op{
		schema.Del("muc_room_aff", schema.In("room_id", schema.Select{Table: "muc_rooms", Column: "id", Where: room})),
		schema.Del("muc_rooms", room...),
	}, nil
}

// delMucRegistered: the key is {{User, Server}, Service}.
func (m *mapper) delMucRegistered(key term.Term) ([]schema.Op, error) {
	r, err := records.ReadMucRegistered(term.Tuple{term.Atom("muc_registered"), key, term.Binary("")}, m.scope)
	if err != nil {
		return nil, err
	}
	return []schema.Op{schema.Del("muc_registered", schema.Eq("muc_host", r.Service),
		schema.Eq("luser", strings.ToLower(r.User)), schema.Eq("lserver", strings.ToLower(r.Server)))}, nil
}

// delArchive: the key is the archive owner's {User, Server} (a room's
// {Name, Service}); the owner's id stays in mam_server_user (other tables
// refer to it).
func (m *mapper) delArchive(key term.Term) ([]schema.Op, error) {
	owner, server, _, _, err := records.ArchiveOwner(key, m.scope)
	if err != nil {
		return nil, err
	}
	return []schema.Op{
		schema.Del("mam_message", schema.In("user_id", mamOwner(owner, server))),
		schema.Del("mam_muc_message", schema.In("room_id", mamOwner(owner, server))),
	}, nil
}

// delPrefs: the key is {User, Server}.
func (m *mapper) delPrefs(key term.Term) ([]schema.Op, error) {
	user, server, err := records.UserKey(key, m.scope)
	if err != nil {
		return nil, err
	}
	return []schema.Op{schema.Del("mam_config", schema.In("user_id", mamOwner(user, server)))}, nil
}

// delPubsubNode: the key is {Host, Node}; the node's collections,
// affiliations, subscriptions and items go with it (MongooseIM's tables
// have no foreign keys to do it).
func (m *mapper) delPubsubNode(key term.Term) ([]schema.Op, error) {
	host, name, err := records.PubsubNodeID(key, m.scope)
	if err != nil {
		return nil, err
	}
	node := []schema.Cond{schema.Eq("p_key", host), schema.Eq("name", name)}
	nidx := schema.Select{Table: "pubsub_nodes", Column: "nidx", Where: node}
	var ops []schema.Op
	for _, t := range []string{"pubsub_affiliations", "pubsub_subscriptions", "pubsub_items"} {
		ops = append(ops, schema.Del(t, schema.In("nidx", nidx)))
	}
	return append(ops, schema.Del("pubsub_node_collections", schema.Eq("name", name)), schema.Del("pubsub_nodes", node...)), nil
}

// delPubsubState: the key is {LJID, Nidx}.
func (m *mapper) delPubsubState(key term.Term) ([]schema.Op, error) {
	j, nidx, err := records.PubsubStateKey(key)
	if err != nil {
		return nil, err
	}
	ops := []schema.Op{schema.Del("pubsub_subscriptions", schema.Eq("nidx", nidx), schema.Eq("luser", j[0]),
		schema.Eq("lserver", j[1]), schema.Eq("lresource", j[2]))}
	if j[2] == "" {
		ops = append(ops, schema.Del("pubsub_affiliations", schema.Eq("nidx", nidx), schema.Eq("luser", j[0]), schema.Eq("lserver", j[1])))
	}
	return ops, nil
}

// delPubsubItem: the key is {ItemId, Nidx}.
func (m *mapper) delPubsubItem(key term.Term) ([]schema.Op, error) {
	id, nidx, err := records.PubsubItemKey(key)
	if err != nil {
		return nil, err
	}
	return []schema.Op{schema.Del("pubsub_items", schema.Eq("nidx", nidx), schema.Eq("itemid", id))}, nil
}
