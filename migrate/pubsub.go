package migrate

import (
	"fmt"
	"strings"

	"github.com/mimmigrate/mimmigrate/erldist/term"
)

// pubsubNodeKey reads a pubsub_node record's id and virtual host.
func (m *Mapper) pubsubNodeKey(rec term.Tuple) (nidx int64, host, vhost, node string, err error) {
	if len(rec) != 7 {
		return 0, "", "", "", reject("pubsub_node record of %d fields", len(rec)-1)
	}
	k, ok := rec[1].(term.Tuple)
	if !ok || len(k) != 2 {
		return 0, "", "", "", reject("nodeid is not {Host, Node}: %s", short(rec[1]))
	}
	if node, err = text(k[1], "node"); err != nil {
		return 0, "", "", "", err
	}
	if lj, ok := k[0].(term.Tuple); ok && len(lj) == 3 { // PEP: the owner's JID
		if host, err = ljidText(lj); err != nil {
			return 0, "", "", "", err
		}
		vhost, _ = text(lj[1], "server")
	} else {
		if host, err = text(k[0], "pubsub service"); err != nil {
			return 0, "", "", "", err
		}
		if vhost, err = m.serviceHost(host); err != nil {
			return 0, "", "", "", err
		}
	}
	nidx, ok = term.Int(rec[2])
	if !ok || nidx <= 0 || nidx > 1<<31-1 {
		return 0, "", "", "", reject("node id %s", short(rec[2]))
	}
	return nidx, host, vhost, node, nil
}

// NotePubsubNode records a pubsub node's id and host (the pre-pass over
// pubsub_node that lets states and items be filtered and checked).
func (m *Mapper) NotePubsubNode(rec term.Term) {
	tu, ok := rec.(term.Tuple)
	if !ok {
		return
	}
	if nidx, _, vhost, _, err := m.pubsubNodeKey(tu); err == nil {
		if m.PubsubNodes == nil {
			m.PubsubNodes = map[int64]string{}
		}
		m.PubsubNodes[nidx] = vhost
	}
}

func (m *Mapper) pubsubNode(rec term.Tuple) ([]Row, string, error) {
	nidx, host, vhost, node, err := m.pubsubNodeKey(rec)
	if err != nil {
		return nil, "", err
	}
	if !m.wanted(vhost) {
		return nil, vhost, nil
	}
	parent := ""
	if ps, ok := term.Elems(rec[3]); ok && len(ps) > 0 {
		if parent, err = text(ps[0], "parent"); err != nil {
			return nil, "", err
		}
	}
	plugin, err := text(rec[4], "plugin")
	if err != nil {
		return nil, "", err
	}
	rows := []Row{{Table: "pubsub_node", Values: []any{host, node, parent, plugin, nidx}}}
	opts, ok := term.Elems(rec[6])
	if !ok {
		return nil, "", reject("node options are not a list: %s", short(rec[6]))
	}
	for _, o := range opts {
		kv, ok := o.(term.Tuple)
		name, isAtom := term.Term(nil), false
		if ok && len(kv) == 2 {
			name = kv[0]
			_, isAtom = name.(term.Atom)
		}
		if !isAtom {
			return nil, "", reject("node option is not {Atom, Value}: %s", short(o))
		}
		rows = append(rows, Row{Table: "pubsub_node_option",
			Values: []any{nidx, string(name.(term.Atom)), string(AppendErlangText(nil, kv[1]))}})
	}
	return rows, "", nil
}

// pubsubNidx checks that a state's or item's node exists and is exported.
func (m *Mapper) pubsubNidx(t term.Term) (int64, string, error) {
	nidx, ok := term.Int(t)
	if !ok {
		return 0, "", reject("node id %s", short(t))
	}
	vhost, known := m.PubsubNodes[nidx]
	if !known {
		return 0, "", reject("pubsub node %d does not exist", nidx)
	}
	return nidx, m.hostOf(vhost), nil
}

var pubsubAffiliation = map[term.Atom]string{"owner": "o", "publisher": "p", "publish_only": "u", "member": "m", "outcast": "c"}
var pubsubSubscription = map[term.Atom]string{"subscribed": "s", "pending": "p", "unconfigured": "u", "none": "n"}

// pubsubStateRec is a pubsub_state record read for either schema.
type pubsubStateRec struct {
	nidx int64
	jid  term.Term // the state's LJID
	aff  term.Atom
	subs [][2]term.Term // {State atom, SubId text}
}

// readPubsubState reads {pubsub_state, {LJID, Nidx}, Nidx, Items, Aff, Subs}.
func (m *Mapper) readPubsubState(rec term.Tuple) (st pubsubStateRec, skip string, err error) {
	if len(rec) != 6 {
		return st, "", reject("pubsub_state record of %d fields", len(rec)-1)
	}
	k, ok := rec[1].(term.Tuple)
	if !ok || len(k) != 2 {
		return st, "", reject("stateid is not {JID, Node}: %s", short(rec[1]))
	}
	if st.nidx, skip, err = m.pubsubNidx(k[1]); err != nil || skip != "" {
		return st, skip, err
	}
	st.jid = k[0]
	st.aff, _ = rec[4].(term.Atom)
	subs, ok := term.Elems(rec[5])
	if !ok {
		return st, "", reject("subscriptions are not a list: %s", short(rec[5]))
	}
	for _, s := range subs {
		t, ok := s.(term.Tuple)
		if !ok || len(t) != 2 {
			return st, "", reject("subscription is not {State, SubId}: %s", short(s))
		}
		st.subs = append(st.subs, [2]term.Term{t[0], t[1]})
	}
	return st, "", nil
}

func (m *Mapper) pubsubState(rec term.Tuple) ([]Row, string, error) {
	st, skip, err := m.readPubsubState(rec)
	if err != nil || skip != "" {
		return nil, skip, err
	}
	jid, err := ljidText(st.jid)
	if err != nil {
		return nil, "", err
	}
	a := pubsubAffiliation[st.aff]
	if a == "" {
		a = "n"
	}
	parts := make([]string, 0, len(st.subs))
	for _, sub := range st.subs {
		sa, _ := sub[0].(term.Atom)
		code := pubsubSubscription[sa]
		if code == "" {
			return nil, "", reject("subscription state %s", short(sub[0]))
		}
		id, err := text(sub[1], "subscription id")
		if err != nil {
			return nil, "", err
		}
		parts = append(parts, code+":"+id)
	}
	return []Row{{Table: "pubsub_state", Values: []any{st.nidx, jid, a, strings.Join(parts, ",")}}}, "", nil
}

// pubsubItemRec is a pubsub_item record read for either schema.
type pubsubItemRec struct {
	nidx              int64
	itemID            string
	created, modified term.Term // {Mega, Sec, Micro}
	creator, modifier term.Term // LJIDs
	payload           []byte    // the children as XML
}

// readPubsubItem reads {pubsub_item, {ItemId, Nidx}, Nidx, {Now, LJID},
// {Now, LJID}, Payload}.
func (m *Mapper) readPubsubItem(rec term.Tuple) (it pubsubItemRec, skip string, err error) {
	if len(rec) != 6 {
		return it, "", reject("pubsub_item record of %d fields", len(rec)-1)
	}
	k, ok := rec[1].(term.Tuple)
	if !ok || len(k) != 2 {
		return it, "", reject("itemid is not {ItemId, Node}: %s", short(rec[1]))
	}
	if it.nidx, skip, err = m.pubsubNidx(k[1]); err != nil || skip != "" {
		return it, skip, err
	}
	if it.itemID, err = text(k[0], "item id"); err != nil {
		return it, "", err
	}
	c, ok1 := rec[3].(term.Tuple)
	mo, ok2 := rec[4].(term.Tuple)
	if !ok1 || !ok2 || len(c) != 2 || len(mo) != 2 {
		return it, "", reject("creation/modification are not {Now, JID}")
	}
	it.created, it.creator, it.modified, it.modifier = c[0], c[1], mo[0], mo[1]
	payload, ok := term.Elems(rec[5])
	if !ok {
		return it, "", reject("payload is not a list: %s", short(rec[5]))
	}
	for _, p := range payload {
		if it.payload, err = AppendXML(it.payload, p); err != nil {
			return it, "", reject("payload: %v", err)
		}
	}
	return it, "", nil
}

func (m *Mapper) pubsubItem(rec term.Tuple) ([]Row, string, error) {
	it, skip, err := m.readPubsubItem(rec)
	if err != nil || skip != "" {
		return nil, skip, err
	}
	created, err1 := pubsubNow(it.created)
	modified, err2 := pubsubNow(it.modified)
	publisher, err3 := ljidText(it.modifier)
	if err := firstErr(err1, err2, err3); err != nil {
		return nil, "", err
	}
	return []Row{{Table: "pubsub_item", Values: []any{it.nidx, it.itemID, publisher, created, modified, string(it.payload)}}}, "", nil
}

// pubsubNow writes {Mega, Sec, Micro} as ejabberd's pubsub SQL keeps it:
// each part zero-padded to six digits, joined by colons.
func pubsubNow(t term.Term) (string, error) {
	tu, ok := t.(term.Tuple)
	if !ok || len(tu) != 3 {
		return "", reject("time is not {Mega, Sec, Micro}: %s", short(t))
	}
	parts := make([]string, 3)
	for i, e := range tu {
		n, ok := term.Int(e)
		if !ok || n < 0 {
			return "", reject("time is not {Mega, Sec, Micro}: %s", short(t))
		}
		parts[i] = fmt.Sprintf("%06d", n)
	}
	return strings.Join(parts, ":"), nil
}
