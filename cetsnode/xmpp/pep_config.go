package xmpp

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/mimmigrate/mimmigrate/cetsnode/xmpp/jid"
	"github.com/mimmigrate/mimmigrate/cetsnode/xmpp/stanza"
	"github.com/mimmigrate/mimmigrate/erldist/term"
	"github.com/mimmigrate/mimmigrate/migrate/codec"
)

// A PEP node's configuration form (XEP-0060 §8.2), as mod_pubsub's
// get_configure and set_configure with xmpp 1.6's pubsub_node_config:
// the owner reads the node's options as a form and submits new ones
// (Conversations does so when a publish-options precondition fails).

// nodeField is how pubsub_node_config writes an option.
type nodeField struct {
	typ, label string
	options    [][2]string // label, value
}

var nodeFields = map[string]nodeField{
	"deliver_payloads":        {"boolean", "Deliver payloads with event notifications", nil},
	"deliver_notifications":   {"boolean", "Deliver event notifications", nil},
	"notify_config":           {"boolean", "Notify subscribers when the node configuration changes", nil},
	"notify_delete":           {"boolean", "Notify subscribers when the node is deleted", nil},
	"notify_retract":          {"boolean", "Notify subscribers when items are removed from the node", nil},
	"persist_items":           {"boolean", "Persist items to storage", nil},
	"presence_based_delivery": {"boolean", "Only deliver notifications to available users", nil},
	"purge_offline":           {"boolean", "Purge all items when the relevant publisher goes offline", nil},
	"subscribe":               {"boolean", "Whether to allow subscriptions", nil},
	"max_items":               {"text-single", "Max # of items to persist, or `max` for no specific limit other than a server imposed maximum", nil},
	"max_payload_size":        {"text-single", "Max payload size in bytes", nil},
	"title":                   {"text-single", "A friendly name for the node", nil},
	"roster_groups_allowed":   {"list-multi", "Roster groups allowed to subscribe", nil},
	"access_model": {"list-single", "Specify the access model", [][2]string{
		{"Subscription requests must be approved and only subscribers may retrieve items", "authorize"},
		{"Anyone may subscribe and retrieve items", "open"},
		{"Anyone with a presence subscription of both or from may subscribe and retrieve items", "presence"},
		{"Anyone in the specified roster group(s) may subscribe and retrieve items", "roster"},
		{"Only those on a whitelist may subscribe and retrieve items", "whitelist"}}},
	"itemreply": {"list-single", "Whether owners or publisher should receive replies to items", [][2]string{
		{"Statically specify a replyto of the node owner(s)", "owner"}, {"Dynamically specify a replyto of the item publisher", "publisher"}, {"", "none"}}},
	"notification_type": {"list-single", "Specify the event message type", [][2]string{
		{"Messages of type normal", "normal"}, {"Messages of type headline", "headline"}}},
	"publish_model": {"list-single", "Specify the publisher model", [][2]string{
		{"Only publishers may publish", "publishers"}, {"Subscribers may publish", "subscribers"}, {"Anyone may publish", "open"}}},
	"send_last_published_item": {"list-single", "When to send the last published item", [][2]string{
		{"Never", "never"}, {"When a new subscription is processed", "on_sub"},
		{"When a new subscription is processed and whenever a subscriber comes online", "on_sub_and_presence"}}},
}

// pepFormOrder is the order of node_pep_sql's options, which the form
// follows (options stored beyond them come after, by name).
var pepFormOrder = []string{"deliver_payloads", "notify_config", "notify_delete", "notify_retract", "purge_offline", "persist_items",
	"max_items", "subscribe", "access_model", "roster_groups_allowed", "publish_model", "notification_type", "max_payload_size",
	"send_last_published_item", "deliver_notifications", "presence_based_delivery", "itemreply"}

// formValues are an option's values in the form (from its Erlang term).
func formValues(typ, val string) []string {
	switch {
	case typ == "boolean" && val == "true":
		return []string{"1"}
	case typ == "boolean" && val == "false":
		return []string{"0"}
	case typ == "list-multi" || strings.HasPrefix(val, "<<"):
		// ejabberd scans the stored text byte by byte (binary_to_list):
		// the UTF-8 bytes of a binary literal stay its bytes.
		chars := make([]rune, len(val))
		for i := 0; i < len(val); i++ {
			chars[i] = rune(val[i])
		}
		t, err := term.ParseText(string(chars))
		if err != nil {
			return nil
		}
		var out []string
		switch x := t.(type) {
		case term.List:
			for _, e := range x {
				if s, ok := term.Text(e); ok {
					out = append(out, s)
				}
			}
		default:
			if s, ok := term.Text(x); ok && s != "" {
				out = append(out, s)
			}
		}
		return out
	}
	return []string{val}
}

// configForm is the node's configuration form.
func configForm(n pepNode) *codec.Element {
	x := &codec.Element{Name: "x", Attrs: [][2]string{{"type", "form"}, {"xmlns", nsXData}}, Kids: []any{
		&codec.Element{Name: "field", Attrs: [][2]string{{"var", "FORM_TYPE"}, {"type", "hidden"}}, Kids: []any{
			&codec.Element{Name: "value", Kids: []any{nsNodeConfig}}}}}}
	names := append([]string(nil), pepFormOrder...)
	var extra []string
	for k := range n.Options {
		if _, ok := nodeFields[k]; ok && !slices.Contains(names, k) {
			extra = append(extra, k)
		}
	}
	sort.Strings(extra)
	for _, name := range append(names, extra...) {
		f := nodeFields[name]
		el := &codec.Element{Name: "field", Attrs: [][2]string{{"var", "pubsub#" + name}, {"type", f.typ}, {"label", f.label}}}
		for _, v := range formValues(f.typ, n.opt(name)) {
			el.Kids = append(el.Kids, &codec.Element{Name: "value", Kids: []any{v}})
		}
		for _, o := range f.options {
			oe := &codec.Element{Name: "option", Kids: []any{&codec.Element{Name: "value", Kids: []any{o[1]}}}}
			if o[0] != "" {
				oe.Attrs = [][2]string{{"label", o[0]}}
			}
			el.Kids = append(el.Kids, oe)
		}
		x.Kids = append(x.Kids, el)
	}
	return x
}

// pepConfigure answers the owner's configure get and set.
func (s *Service) pepConfigure(el, conf *codec.Element, to, from jid.JID) (*codec.Element, *stanza.Error) {
	node := stanza.Attr(conf, "node")
	get := stanza.Attr(el, "type") == "get"
	x := child(conf, "x", nsXData)
	var opts [][2]string
	if !get {
		switch {
		case x == nil:
			return nil, stanza.NewError("bad-request", "No data form found")
		case stanza.Attr(x, "type") == "cancel":
			return &codec.Element{Name: "pubsub", Attrs: [][2]string{{"xmlns", nsPubsubOwner}}}, nil
		case stanza.Attr(x, "type") != "submit":
			return nil, stanza.NewError("bad-request", "Incorrect data form")
		}
		var e *stanza.Error
		if opts, e = formOptions(x, nsNodeConfig, nodeConfig); e != nil {
			return nil, e
		}
		if node == "" {
			return nil, pepErr("bad-request", "nodeid-required")
		}
	}
	n, e := s.pepNode(to.Bare(), node)
	if e != nil {
		return nil, e
	}
	ctx, cancel := dbctx()
	defer cancel()
	aff, _, err := s.store.Affiliation(ctx, n.Nidx, from.Bare().String())
	if err != nil {
		return nil, errDatabase()
	}
	if aff != "o" {
		return nil, stanza.NewError("forbidden", "Owner privileges required")
	}
	if get {
		return &codec.Element{Name: "pubsub", Attrs: [][2]string{{"xmlns", nsPubsubOwner}}, Kids: []any{
			&codec.Element{Name: "configure", Attrs: [][2]string{{"node", node}}, Kids: []any{configForm(n)}}}}, nil
	}
	// merge_config: the form over the node's options (the plugin's
	// defaults among them), written whole, sorted.
	old := make([][2]string, 0, len(n.Options))
	for k, v := range n.Options {
		old = append(old, [2]string{k, v})
	}
	merged := mergeOptions(append(opts, old...))
	if err := s.store.SetPubSubOptions(ctx, n.Nidx, merged); err != nil {
		s.log.Warn("configuring a PEP node failed", "owner", to.Bare().String(), "err", err)
		return nil, errDatabase()
	}
	return nil, nil
}

// erlList is a list of binaries as misc:term_to_expr writes it.
func erlList(vals []string) string {
	l := make(term.List, len(vals))
	for i, v := range vals {
		l[i] = term.Binary(v)
	}
	return string(codec.AppendErlangText(nil, l))
}

// formOptions decodes publish-options or a node configuration form into
// option values, with the codec's errors (resource-constraint).
func formOptions(x *codec.Element, formType string, allowed map[string]func(string) (string, bool)) ([][2]string, *stanza.Error) {
	if x == nil {
		return nil, nil
	}
	var out [][2]string
	for _, f := range parseXForm(x).fields {
		if f.v == "FORM_TYPE" {
			if len(f.values) == 1 && f.values[0] != formType {
				return nil, stanza.NewError("resource-constraint", fmt.Sprintf("FORM_TYPE doesn't match '%s'", f.values[0]))
			}
			continue
		}
		name, ok := strings.CutPrefix(f.v, "pubsub#")
		dec := allowed[name]
		if !ok || dec == nil {
			return nil, stanza.NewError("resource-constraint", fmt.Sprintf("Unknown field '%s' of type '%s'", f.v, formType))
		}
		if name == "roster_groups_allowed" {
			out = append(out, [2]string{name, erlList(f.values)})
			continue
		}
		if len(f.values) > 1 {
			return nil, stanza.NewError("resource-constraint", fmt.Sprintf("Too many values for field '%s' of type '%s'", f.v, formType))
		}
		v := ""
		if len(f.values) == 1 {
			v = f.values[0]
		}
		val, ok := dec(v)
		if !ok {
			return nil, stanza.NewError("resource-constraint", fmt.Sprintf("Bad value of field '%s' of type '%s'", f.v, formType))
		}
		out = append(out, [2]string{name, val})
	}
	return out, nil
}

func decBool(v string) (string, bool) {
	switch v {
	case "true", "1":
		return "true", true
	case "false", "0":
		return "false", true
	}
	return "", false
}

func decEnum(vals ...string) func(string) (string, bool) {
	return func(v string) (string, bool) { return v, slices.Contains(vals, v) }
}

func decLimit(v string) (string, bool) {
	if v == "max" {
		return v, true
	}
	n, err := strconv.ParseUint(v, 10, 31)
	return strconv.FormatUint(n, 10), err == nil
}

var accessModels = decEnum("authorize", "open", "presence", "roster", "whitelist")

// publishOptions are the fields xmpp 1.6's pubsub_publish_options knows.
var publishOptions = map[string]func(string) (string, bool){"persist_items": decBool, "access_model": accessModels}

// nodeConfig are the node configuration fields served.
var nodeConfig = map[string]func(string) (string, bool){
	"persist_items": decBool, "access_model": accessModels, "deliver_payloads": decBool,
	// check_opt_range: at most max_items_node.
	"max_items": func(v string) (string, bool) {
		out, ok := decLimit(v)
		if n, err := strconv.Atoi(out); ok && err == nil && n > maxItemsNode {
			return "", false
		}
		return out, ok
	},
	"deliver_notifications": decBool, "notify_retract": decBool, "notify_delete": decBool, "notify_config": decBool,
	"presence_based_delivery": decBool, "publish_model": decEnum("open", "publishers", "subscribers"),
	"send_last_published_item": decEnum("never", "on_sub", "on_sub_and_presence"), "itemreply": decEnum("owner", "publisher", "none"),
	"notification_type": decEnum("normal", "headline"), "purge_offline": decBool, "subscribe": decBool,
	"max_payload_size": func(v string) (string, bool) {
		n, err := strconv.ParseUint(v, 10, 31)
		return v, err == nil && n <= maxPayloadSize
	},
	"title":                 func(v string) (string, bool) { return string(codec.AppendErlangText(nil, term.Binary(v))), true },
	"description":           func(v string) (string, bool) { return string(codec.AppendErlangText(nil, term.Binary(v))), true },
	"item_expire":           decLimit,
	"roster_groups_allowed": func(string) (string, bool) { return "", true }, // all its values: formOptions
}

// mergeOptions is mod_pubsub's merge_config: the given options over the
// defaults, by name, sorted.
func mergeOptions(given [][2]string) [][2]string {
	out := append([][2]string(nil), given...)
	for _, d := range pepDefaults {
		if !slices.ContainsFunc(out, func(o [2]string) bool { return o[0] == d[0] }) {
			out = append(out, d)
		}
	}
	slices.SortStableFunc(out, func(a, b [2]string) int { return strings.Compare(a[0], b[0]) })
	return slices.CompactFunc(out, func(a, b [2]string) bool { return a[0] == b[0] })
}
