package ejabberd

import (
	"fmt"
	"strings"

	"github.com/mimmigrate/mimmigrate/erldist/term"
	"github.com/mimmigrate/mimmigrate/migrate/codec"
	"github.com/mimmigrate/mimmigrate/migrate/records"
	"github.com/mimmigrate/mimmigrate/migrate/schema"
)

// pubsubNode: the node with its first parent, and one pubsub_node_option
// row per option (the value as Erlang text).
func (m *mapper) pubsubNode(rec term.Tuple) ([]schema.Op, error) {
	n, err := records.ReadPubsubNode(rec, m.scope)
	if err != nil {
		return nil, err
	}
	parent := ""
	if len(n.Parents) > 0 {
		if parent, err = records.Text(n.Parents[0], "parent"); err != nil {
			return nil, err
		}
	}
	ops := []schema.Op{schema.Row("pubsub_node", n.Host, n.Node, parent, n.Plugin, n.Nidx)}
	for _, o := range n.Options {
		kv, ok := o.(term.Tuple)
		if !ok || len(kv) != 2 {
			return nil, rejectf("node option is not {Atom, Value}: %s", short(o))
		}
		name, ok := kv[0].(term.Atom)
		if !ok {
			return nil, rejectf("node option is not {Atom, Value}: %s", short(o))
		}
		ops = append(ops, schema.Row("pubsub_node_option", n.Nidx, string(name), string(codec.AppendErlangText(nil, kv[1]))))
	}
	return ops, nil
}

var (
	pubsubAffiliation  = map[term.Atom]string{"owner": "o", "publisher": "p", "publish_only": "u", "member": "m", "outcast": "c"}
	pubsubSubscription = map[term.Atom]string{"subscribed": "s", "pending": "p", "unconfigured": "u", "none": "n"}
)

// pubsubState: the affiliation as a letter, the subscriptions as
// "state:subid" joined by commas.
func (m *mapper) pubsubState(rec term.Tuple) ([]schema.Op, error) {
	st, err := m.nodes.ReadPubsubState(rec, m.scope)
	if err != nil {
		return nil, err
	}
	if st.JID[1] == "" {
		return nil, rejectf("JID without a server: %s", st.JID)
	}
	jid := st.JID.String()
	a := pubsubAffiliation[st.Aff]
	if a == "" {
		a = "n"
	}
	parts := make([]string, 0, len(st.Subs))
	for _, sub := range st.Subs {
		sa, _ := sub[0].(term.Atom)
		code := pubsubSubscription[sa]
		if code == "" {
			return nil, rejectf("subscription state %s", short(sub[0]))
		}
		id, err := records.Text(sub[1], "subscription id")
		if err != nil {
			return nil, err
		}
		parts = append(parts, code+":"+id)
	}
	return []schema.Op{schema.Row("pubsub_state", st.Nidx, jid, a, strings.Join(parts, ","))}, nil
}

func (m *mapper) pubsubItem(rec term.Tuple) ([]schema.Op, error) {
	it, err := m.nodes.ReadPubsubItem(rec, m.scope)
	if err != nil {
		return nil, err
	}
	created, err1 := pubsubNow(it.Created)
	modified, err2 := pubsubNow(it.Modified)
	publisher, err3 := records.LJIDText(it.Modifier)
	if err := records.FirstErr(err1, err2, err3); err != nil {
		return nil, err
	}
	return []schema.Op{schema.Row("pubsub_item", it.Nidx, it.ItemID, publisher, created, modified, string(it.Payload))}, nil
}

// pubsubNow writes {Mega, Sec, Micro} as ejabberd's pubsub SQL keeps it:
// each part zero-padded to six digits, joined by colons.
func pubsubNow(t term.Term) (string, error) {
	tu, ok := t.(term.Tuple)
	if !ok || len(tu) != 3 {
		return "", rejectf("time is not {Mega, Sec, Micro}: %s", short(t))
	}
	parts := make([]string, 3)
	for i, e := range tu {
		n, ok := term.Int(e)
		if !ok || n < 0 {
			return "", rejectf("time is not {Mega, Sec, Micro}: %s", short(t))
		}
		parts[i] = fmt.Sprintf("%06d", n)
	}
	return strings.Join(parts, ":"), nil
}
