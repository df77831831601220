package migrate

import (
	"bytes"

	"github.com/mimmigrate/mimmigrate/erldist/term"
)

// MongooseIM's pubsub RDBMS backend (mod_pubsub_db_rdbms) keeps:
//
//	pubsub_nodes             nidx, p_key (service host or the PEP owner's JID),
//	                         name, type, owners (JSON array of JIDs), options
//	                         (JSON object of the option proplist, as jiffy
//	                         writes {Opts})
//	pubsub_node_collections  name, parent_name
//	pubsub_affiliations      nidx, luser, lserver, aff (0 none, 1 owner,
//	                         2 publisher, 3 publish_only, 4 member, 5 outcast)
//	pubsub_subscriptions     nidx, luser, lserver, lresource, type (0 none,
//	                         1 pending, 3 subscribed), sub_id, options JSON
//	pubsub_items             nidx, itemid, creator (luser, lserver), created_at
//	                         µs, modifier (luser, lserver, lresource),
//	                         modified_at µs, publisher JID, payload: the item's
//	                         children wrapped in <item>…</item>
//
// ejabberd's node ids are kept as nidx (the sequence is advanced after the
// load), so states and items refer to their nodes without a lookup.

// mimPubsubOptions are the node options MongooseIM knows (node_flat's
// defaults and what its configuration form sets). It reads the keys back
// with binary_to_existing_atom, so an option it has no atom for (ejabberd's
// itemreply, for one) would fail the node's every read: those are left out.
var mimPubsubOptions = map[string]bool{
	"deliver_payloads": true, "notify_config": true, "notify_delete": true, "notify_retract": true,
	"purge_offline": true, "persist_items": true, "max_items": true, "subscribe": true,
	"access_model": true, "roster_groups_allowed": true, "publish_model": true, "notification_type": true,
	"max_payload_size": true, "send_last_published_item": true, "deliver_notifications": true,
	"presence_based_delivery": true, "title": true, "type": true, "body_xslt": true, "collection": true,
	"node_type": true,
}

var mimPubsubAff = map[term.Atom]int16{"owner": 1, "publisher": 2, "publish_only": 3, "member": 4, "outcast": 5}
var mimPubsubSub = map[term.Atom]int16{"none": 0, "pending": 1, "subscribed": 3}

func (m *Mapper) mimPubsubNode(rec term.Tuple) ([]Row, string, error) {
	nidx, key, vhost, node, err := m.pubsubNodeKey(rec)
	if err != nil {
		return nil, "", err
	}
	if !m.wanted(vhost) {
		return nil, vhost, nil
	}
	plugin, err := text(rec[4], "plugin")
	if err != nil {
		return nil, "", err
	}
	owners, ok := term.Elems(rec[5])
	if !ok {
		return nil, "", reject("node owners are not a list: %s", short(rec[5]))
	}
	js := []byte{'['}
	for i, o := range owners {
		j, err := ljidText(o)
		if err != nil {
			return nil, "", err
		}
		if i > 0 {
			js = append(js, ',')
		}
		js = jiffyString(js, j)
	}
	js = append(js, ']')
	opts, ok := term.Elems(rec[6])
	if !ok {
		return nil, "", reject("node options are not a list: %s", short(rec[6]))
	}
	var o bytes.Buffer
	o.WriteByte('{')
	n := 0
	for _, op := range opts {
		kv, ok := op.(term.Tuple)
		if !ok || len(kv) != 2 {
			return nil, "", reject("node option is not {Atom, Value}: %s", short(op))
		}
		k, ok := kv[0].(term.Atom)
		if !ok {
			return nil, "", reject("node option is not {Atom, Value}: %s", short(op))
		}
		if !mimPubsubOptions[string(k)] {
			continue
		}
		v, err := jiffyValue(nil, kv[1], 0)
		if err != nil {
			return nil, "", reject("node option %s: %v", k, err)
		}
		if n > 0 {
			o.WriteByte(',')
		}
		n++
		o.Write(jiffyString(nil, string(k)))
		o.WriteByte(':')
		o.Write(v)
	}
	o.WriteByte('}')
	rows := []Row{{Table: "pubsub_nodes", Values: []any{nidx, key, node, plugin, string(js), o.String()}}}
	if ps, ok := term.Elems(rec[3]); ok {
		for _, p := range ps {
			parent, err := text(p, "parent")
			if err != nil {
				return nil, "", err
			}
			rows = append(rows, Row{Table: "pubsub_node_collections", Values: []any{node, parent}})
		}
	}
	return rows, "", nil
}

func (m *Mapper) mimPubsubState(rec term.Tuple) ([]Row, string, error) {
	st, skip, err := m.readPubsubState(rec)
	if err != nil || skip != "" {
		return nil, skip, err
	}
	j, err := ljidParts(st.jid)
	if err != nil {
		return nil, "", err
	}
	var rows []Row
	if code, ok := mimPubsubAff[st.aff]; ok {
		if j[2] != "" {
			// MongooseIM keys affiliations by the bare JID; ejabberd sets
			// them there too, so a full JID's is not expected.
			return nil, "", reject("affiliation %s of a full JID (MongooseIM keeps them per bare JID)", st.aff)
		}
		rows = append(rows, Row{Table: "pubsub_affiliations", Values: []any{st.nidx, j[0], j[1], code}})
	} else if st.aff != "none" && st.aff != "" {
		return nil, "", reject("pubsub affiliation %s", st.aff)
	}
	for _, sub := range st.subs {
		sa, _ := sub[0].(term.Atom)
		code, ok := mimPubsubSub[sa]
		if !ok {
			return nil, "", reject("subscription state %s (MongooseIM 6 keeps none, pending and subscribed)", short(sub[0]))
		}
		id, err := text(sub[1], "subscription id")
		if err != nil {
			return nil, "", err
		}
		rows = append(rows, Row{Table: "pubsub_subscriptions", Values: []any{st.nidx, j[0], j[1], j[2], code, id, "{}"}})
	}
	return rows, "", nil
}

func (m *Mapper) mimPubsubItem(rec term.Tuple) ([]Row, string, error) {
	it, skip, err := m.readPubsubItem(rec)
	if err != nil || skip != "" {
		return nil, skip, err
	}
	created, err1 := anyUsec(it.created)
	modified, err2 := anyUsec(it.modified)
	creator, err3 := ljidParts(it.creator)
	modifier, err4 := ljidParts(it.modifier)
	publisher, err5 := ljidText(it.modifier)
	if err := firstErr(err1, err2, err3, err4, err5); err != nil {
		return nil, "", err
	}
	xml := append(append([]byte("<item>"), it.payload...), "</item>"...)
	return []Row{{Table: "pubsub_items", Values: []any{it.nidx, it.itemID, creator[0], creator[1], created,
		modifier[0], modifier[1], modifier[2], modified, publisher, string(xml)}}}, "", nil
}
