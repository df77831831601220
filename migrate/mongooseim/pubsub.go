package mongooseim

import (
	"bytes"

	"github.com/mimmigrate/mimmigrate/erldist/term"
	"github.com/mimmigrate/mimmigrate/migrate/codec"
	"github.com/mimmigrate/mimmigrate/migrate/records"
	"github.com/mimmigrate/mimmigrate/migrate/schema"
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

// pubsubOptions are the node options MongooseIM knows (node_flat's
// defaults and what its configuration form sets). It reads the keys back
// with binary_to_existing_atom, so an option it has no atom for (ejabberd's
// itemreply, for one) would fail the node's every read: those are left out.
var pubsubOptions = map[string]bool{
	"deliver_payloads": true, "notify_config": true, "notify_delete": true, "notify_retract": true,
	"purge_offline": true, "persist_items": true, "max_items": true, "subscribe": true,
	"access_model": true, "roster_groups_allowed": true, "publish_model": true, "notification_type": true,
	"max_payload_size": true, "send_last_published_item": true, "deliver_notifications": true,
	"presence_based_delivery": true, "title": true, "type": true, "body_xslt": true, "collection": true,
	"node_type": true,
}

var pubsubAff = map[term.Atom]int16{"owner": 1, "publisher": 2, "publish_only": 3, "member": 4, "outcast": 5}
var pubsubSub = map[term.Atom]int16{"none": 0, "pending": 1, "subscribed": 3}

func (m *mapper) pubsubNode(rec term.Tuple) ([]schema.Op, error) {
	pn, err := records.ReadPubsubNode(rec, m.scope)
	if err != nil {
		return nil, err
	}
	nidx, key, node, plugin := pn.Nidx, pn.Host, pn.Node, pn.Plugin
	owners, ok := term.Elems(pn.Owners)
	if !ok {
		return nil, rejectf("node owners are not a list: %s", short(pn.Owners))
	}
	js := []byte{'['}
	for i, o := range owners {
		j, err := records.LJIDText(o)
		if err != nil {
			return nil, err
		}
		if i > 0 {
			js = append(js, ',')
		}
		js = codec.AppendJiffyString(js, j)
	}
	js = append(js, ']')
	opts := pn.Options
	var o bytes.Buffer
	o.WriteByte('{')
	n := 0
	for _, op := range opts {
		kv, ok := op.(term.Tuple)
		if !ok || len(kv) != 2 {
			return nil, rejectf("node option is not {Atom, Value}: %s", short(op))
		}
		k, ok := kv[0].(term.Atom)
		if !ok {
			return nil, rejectf("node option is not {Atom, Value}: %s", short(op))
		}
		if !pubsubOptions[string(k)] {
			continue
		}
		v, err := codec.AppendJiffy(nil, kv[1])
		if err != nil {
			return nil, rejectf("node option %s: %v", k, err)
		}
		if n > 0 {
			o.WriteByte(',')
		}
		n++
		o.Write(codec.AppendJiffyString(nil, string(k)))
		o.WriteByte(':')
		o.Write(v)
	}
	o.WriteByte('}')
	rows := []schema.Op{schema.Row("pubsub_nodes", nidx, key, node, plugin, string(js), o.String())}
	for _, p := range pn.Parents {
		parent, err := records.Text(p, "parent")
		if err != nil {
			return nil, err
		}
		rows = append(rows, schema.Row("pubsub_node_collections", node, parent))
	}
	return rows, nil
}

func (m *mapper) pubsubState(rec term.Tuple) ([]schema.Op, error) {
	st, err := m.nodes.ReadPubsubState(rec, m.scope)
	if err != nil {
		return nil, err
	}
	j := st.JID
	var rows []schema.Op
	if code, ok := pubsubAff[st.Aff]; ok {
		if j[2] != "" {
			// MongooseIM keys affiliations by the bare JID; ejabberd sets
			// them there too, so a full JID's is not expected.
			return nil, rejectf("affiliation %s of a full JID (MongooseIM keeps them per bare JID)", st.Aff)
		}
		rows = append(rows, schema.Row("pubsub_affiliations", st.Nidx, j[0], j[1], code))
	} else if st.Aff != "none" && st.Aff != "" {
		return nil, rejectf("pubsub affiliation %s", st.Aff)
	}
	for _, sub := range st.Subs {
		sa, _ := sub[0].(term.Atom)
		code, ok := pubsubSub[sa]
		if !ok {
			return nil, rejectf("subscription state %s (MongooseIM 6 keeps none, pending and subscribed)", short(sub[0]))
		}
		id, err := records.Text(sub[1], "subscription id")
		if err != nil {
			return nil, err
		}
		rows = append(rows, schema.Row("pubsub_subscriptions", st.Nidx, j[0], j[1], j[2], code, id, "{}"))
	}
	return rows, nil
}

func (m *mapper) pubsubItem(rec term.Tuple) ([]schema.Op, error) {
	it, err := m.nodes.ReadPubsubItem(rec, m.scope)
	if err != nil {
		return nil, err
	}
	created, err1 := records.AnyUsec(it.Created)
	modified, err2 := records.AnyUsec(it.Modified)
	creator, err3 := records.ReadLJID(it.Creator)
	modifier, err4 := records.ReadLJID(it.Modifier)
	publisher, err5 := records.LJIDText(it.Modifier)
	if err := records.FirstErr(err1, err2, err3, err4, err5); err != nil {
		return nil, err
	}
	xml := append(append([]byte("<item>"), it.Payload...), "</item>"...)
	return []schema.Op{schema.Row("pubsub_items", it.Nidx, it.ItemID, creator[0], creator[1], created,
		modifier[0], modifier[1], modifier[2], modified, publisher, string(xml))}, nil
}
