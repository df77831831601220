package records

import (
	"github.com/mimmigrate/mimmigrate/erldist/term"
	"github.com/mimmigrate/mimmigrate/migrate/schema"
)

// Readers of Mnesia keys, for what a deletion by key removes.

// UserKey reads a {User, Server} key of a virtual host that is exported.
func UserKey(key term.Term, scope *schema.Scope) (user, server string, err error) {
	if user, server, err = US(key); err != nil {
		return "", "", err
	}
	return user, server, scope.Check(server)
}

// userTriple reads a {User, Server, Third} key of a virtual host that is
// exported.
func userTriple(key term.Term, scope *schema.Scope, shape string) (user, server string, third term.Term, err error) {
	k, ok := key.(term.Tuple)
	if !ok || len(k) != 3 {
		return "", "", nil, rejectf("key is not %s: %s", shape, short(key))
	}
	user, server, err = UserKey(term.Tuple{k[0], k[1]}, scope)
	return user, server, k[2], err
}

// RosterKey reads roster's {User, Server, ContactLJID} key.
func RosterKey(key term.Term, scope *schema.Scope) (user, server, jid string, err error) {
	user, server, contact, err := userTriple(key, scope, "{User, Server, JID}")
	if err == nil {
		jid, err = LJIDText(contact)
	}
	return user, server, jid, err
}

// PrivateKey reads private_storage's {User, Server, Namespace} key.
func PrivateKey(key term.Term, scope *schema.Scope) (user, server, ns string, err error) {
	user, server, nsTerm, err := userTriple(key, scope, "{User, Server, Namespace}")
	if err == nil {
		ns, err = Text(nsTerm, "namespace")
	}
	return user, server, ns, err
}

// RoomKey reads muc_room's {Name, Service} key of an exported virtual
// host.
func RoomKey(key term.Term, scope *schema.Scope) (name, service string, err error) {
	if name, service, err = Pair(key, "room"); err != nil {
		return "", "", err
	}
	vhost, err := scope.ServiceHost(service)
	if err != nil {
		return "", "", err
	}
	return name, service, scope.Check(vhost)
}

// ArchiveOwner reads archive_msg's {Owner, Server} key: a user of a
// virtual host, or a room of a service (whose virtual host it returns).
func ArchiveOwner(key term.Term, scope *schema.Scope) (owner, server, vhost string, room bool, err error) {
	if owner, server, err = US(key); err != nil {
		return "", "", "", false, err
	}
	vhost = server
	if !scope.Known[server] {
		if vhost, err = scope.ServiceHost(server); err != nil {
			return "", "", "", false, err
		}
		room = true
	}
	return owner, server, vhost, room, scope.Check(vhost)
}

// PubsubNodeID reads a pubsub_node's {Host, Node} key: the host as the
// schemas store it (a service, or the PEP owner's JID) and the node.
func PubsubNodeID(key term.Term, scope *schema.Scope) (host, node string, err error) {
	n, err := ReadPubsubNodeKey(term.Tuple{term.Atom("pubsub_node"), key, int64(1), term.List{}, term.Binary(""), term.List{}, term.List{}}, scope)
	if err != nil {
		return "", "", err
	}
	return n.Host, n.Node, scope.Check(n.VHost)
}

// nodeKey reads a {X, Nidx} key of pubsub_state or pubsub_item.
func nodeKey(key term.Term, shape string) (term.Term, int64, error) {
	k, ok := key.(term.Tuple)
	if !ok || len(k) != 2 {
		return nil, 0, rejectf("%s: %s", shape, short(key))
	}
	nidx, ok := term.Int(k[1])
	if !ok {
		return nil, 0, rejectf("node id %s", short(k[1]))
	}
	return k[0], nidx, nil
}

// PubsubStateKey reads pubsub_state's {LJID, Nidx} key.
func PubsubStateKey(key term.Term) (LJID, int64, error) {
	jt, nidx, err := nodeKey(key, "stateid is not {JID, Node}")
	if err != nil {
		return LJID{}, 0, err
	}
	j, err := ReadLJID(jt)
	return j, nidx, err
}

// PubsubItemKey reads pubsub_item's {ItemId, Nidx} key.
func PubsubItemKey(key term.Term) (string, int64, error) {
	it, nidx, err := nodeKey(key, "itemid is not {ItemId, Node}")
	if err != nil {
		return "", 0, err
	}
	id, err := Text(it, "item id")
	return id, nidx, err
}
