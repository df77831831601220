package records

import (
	"github.com/mimmigrate/mimmigrate/erldist/term"
	"github.com/mimmigrate/mimmigrate/migrate/codec"
	"github.com/mimmigrate/mimmigrate/migrate/schema"
)

// PubsubNode is {pubsub_node, {Host, Node}, Nidx, Parents, Type, Owners,
// Options}; Host is a service, or the PEP owner's {U, S, R}.
type PubsubNode struct {
	Nidx    int64
	Host    string // the service, or the PEP owner's JID
	VHost   string
	Node    string
	Parents []term.Term
	Plugin  string
	Owners  term.Term // the owners' LJIDs, as stored
	Options []term.Term
}

// ReadPubsubNodeKey reads a pubsub_node record's id, host and virtual
// host.
func ReadPubsubNodeKey(rec term.Tuple, scope *schema.Scope) (PubsubNode, error) {
	var n PubsubNode
	k, err := keyedRecord(rec, 6, 2, "nodeid is not {Host, Node}")
	if err != nil {
		return n, err
	}
	if n.Node, err = Text(k[1], "node"); err != nil {
		return n, err
	}
	if lj, ok := k[0].(term.Tuple); ok && len(lj) == 3 { // PEP: the owner's JID
		if n.Host, err = LJIDText(lj); err != nil {
			return n, err
		}
		n.VHost, _ = Text(lj[1], "server")
	} else {
		if n.Host, err = Text(k[0], "pubsub service"); err != nil {
			return n, err
		}
		if n.VHost, err = scope.ServiceHost(n.Host); err != nil {
			return n, err
		}
	}
	var ok bool
	n.Nidx, ok = term.Int(rec[2])
	if !ok || n.Nidx <= 0 || n.Nidx > 1<<31-1 {
		return n, rejectf("node id %s", short(rec[2]))
	}
	return n, nil
}

// ReadPubsubNode reads a whole pubsub_node record of a virtual host that
// is exported.
func ReadPubsubNode(rec term.Tuple, scope *schema.Scope) (PubsubNode, error) {
	n, err := ReadPubsubNodeKey(rec, scope)
	if err != nil {
		return n, err
	}
	if err := scope.Check(n.VHost); err != nil {
		return n, err
	}
	n.Parents, _ = term.Elems(rec[3])
	if n.Plugin, err = Text(rec[4], "plugin"); err != nil {
		return n, err
	}
	n.Owners = rec[5]
	var ok bool
	if n.Options, ok = term.Elems(rec[6]); !ok {
		return n, rejectf("node options are not a list: %s", short(rec[6]))
	}
	return n, nil
}

// PubsubNodes maps each pubsub node id to its virtual host: states and
// items of nodes not in it are rejected (the schemas' foreign keys would
// refuse them). Filled by Note from a pass over pubsub_node.
type PubsubNodes map[int64]string

// Note records a pubsub_node record's id and virtual host.
func (ns PubsubNodes) Note(rec term.Tuple, scope *schema.Scope) {
	if n, err := ReadPubsubNodeKey(rec, scope); err == nil {
		ns[n.Nidx] = n.VHost
	}
}

// node checks that a state's or item's node exists and is exported.
func (ns PubsubNodes) node(t term.Term, scope *schema.Scope) (int64, error) {
	nidx, ok := term.Int(t)
	if !ok {
		return 0, rejectf("node id %s", short(t))
	}
	vhost, known := ns[nidx]
	if !known {
		return 0, rejectf("pubsub node %d does not exist", nidx)
	}
	return nidx, scope.Check(vhost)
}

// keyed reads the {X, Nidx} key of a pubsub_state or pubsub_item record
// (of six fields), its node checked.
func (ns PubsubNodes) keyed(rec term.Tuple, scope *schema.Scope, table, shape string) (term.Term, int64, error) {
	k, err := keyedRecord(rec, 5, 2, shape)
	if err != nil {
		return nil, 0, err
	}
	nidx, err := ns.node(k[1], scope)
	return k[0], nidx, err
}

// PubsubState is {pubsub_state, {LJID, Nidx}, Nidx, Items, Affiliation,
// Subscriptions}.
type PubsubState struct {
	Nidx int64
	JID  LJID // whose state
	Aff  term.Atom
	Subs [][2]term.Term // {State atom, SubId text}
}

// ReadPubsubState reads a pubsub_state record.
func (ns PubsubNodes) ReadPubsubState(rec term.Tuple, scope *schema.Scope) (PubsubState, error) {
	var st PubsubState
	jid, nidx, err := ns.keyed(rec, scope, "pubsub_state", "stateid is not {JID, Node}")
	if err != nil {
		return st, err
	}
	st.Nidx = nidx
	if st.JID, err = ReadLJID(jid); err != nil {
		return st, err
	}
	st.Aff, _ = rec[4].(term.Atom)
	subs, ok := term.Elems(rec[5])
	if !ok {
		return st, rejectf("subscriptions are not a list: %s", short(rec[5]))
	}
	for _, s := range subs {
		t, ok := s.(term.Tuple)
		if !ok || len(t) != 2 {
			return st, rejectf("subscription is not {State, SubId}: %s", short(s))
		}
		st.Subs = append(st.Subs, [2]term.Term{t[0], t[1]})
	}
	return st, nil
}

// PubsubItem is {pubsub_item, {ItemId, Nidx}, Nidx, {Created, Creator},
// {Modified, Modifier}, Payload}.
type PubsubItem struct {
	Nidx              int64
	ItemID            string
	Created, Modified term.Term // {Mega, Sec, Micro}
	Creator, Modifier term.Term // LJIDs
	Payload           []byte    // the children as XML
}

// ReadPubsubItem reads a pubsub_item record.
func (ns PubsubNodes) ReadPubsubItem(rec term.Tuple, scope *schema.Scope) (PubsubItem, error) {
	var it PubsubItem
	id, nidx, err := ns.keyed(rec, scope, "pubsub_item", "itemid is not {ItemId, Node}")
	if err != nil {
		return it, err
	}
	it.Nidx = nidx
	if it.ItemID, err = Text(id, "item id"); err != nil {
		return it, err
	}
	c, ok1 := rec[3].(term.Tuple)
	mo, ok2 := rec[4].(term.Tuple)
	if !ok1 || !ok2 || len(c) != 2 || len(mo) != 2 {
		return it, rejectf("creation/modification are not {Now, JID}")
	}
	it.Created, it.Creator, it.Modified, it.Modifier = c[0], c[1], mo[0], mo[1]
	payload, ok := term.Elems(rec[5])
	if !ok {
		return it, rejectf("payload is not a list: %s", short(rec[5]))
	}
	for _, p := range payload {
		if it.Payload, err = codec.AppendXML(it.Payload, p); err != nil {
			return it, rejectf("payload: %v", err)
		}
	}
	return it, nil
}
