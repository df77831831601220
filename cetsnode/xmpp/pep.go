package xmpp

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mimmigrate/mimmigrate/cetsnode/xmpp/jid"
	"github.com/mimmigrate/mimmigrate/cetsnode/xmpp/stanza"
	"github.com/mimmigrate/mimmigrate/cetsnode/xmpp/storage"
	"github.com/mimmigrate/mimmigrate/erldist/term"
	"github.com/mimmigrate/mimmigrate/migrate/codec"
)

// PEP (XEP-0163) as ejabberd 23.01's mod_pubsub serves it with its pep
// plugin and SQL backend: each user's nodes in pubsub_node (host = the
// bare JID), their options as Erlang terms in pubsub_node_option, the
// owner in pubsub_state and the items in pubsub_item, written as
// nodetree_tree_sql and node_flat_sql write them. Notifications go to
// the owner's bare JID and, through the publishing session, to the
// resources whose caps (mod_caps) ask for NODE+notify; the last items
// go to a session when its caps are first seen and to a contact that
// probes the owner.

const (
	nsPubsub       = "http://jabber.org/protocol/pubsub"
	nsPubsubOwner  = "http://jabber.org/protocol/pubsub#owner"
	nsPubsubErrors = "http://jabber.org/protocol/pubsub#errors"
	nsPublishOpts  = "http://jabber.org/protocol/pubsub#publish-options"
	nsNodeConfig   = "http://jabber.org/protocol/pubsub#node_config"
	nsAddress      = "http://jabber.org/protocol/address"
	nsBookmarks    = "storage:bookmarks"
	// maxPayloadSize and maxItemsNode are mod_pubsub's defaults
	// (?MAX_PAYLOAD_SIZE, max_items_node).
	maxPayloadSize = 250000
	maxItemsNode   = 1000
)

func (s *Service) pepOn() bool { return s.opt.Config.Modules["mod_pubsub"] && s.opt.Config.PubSub.PEP }

// pepDefaults are node_pep_sql's options, by name (values as Erlang
// term text, as pubsub_node_option keeps them).
var pepDefaults = [][2]string{
	{"access_model", "presence"}, {"deliver_notifications", "true"}, {"deliver_payloads", "true"}, {"itemreply", "none"},
	{"max_items", "1"}, {"max_payload_size", strconv.Itoa(maxPayloadSize)}, {"notification_type", "headline"},
	{"notify_config", "false"}, {"notify_delete", "false"}, {"notify_retract", "false"}, {"persist_items", "true"},
	{"presence_based_delivery", "true"}, {"publish_model", "publishers"}, {"purge_offline", "false"},
	{"roster_groups_allowed", "[]"}, {"rsm", "true"}, {"send_last_published_item", "on_sub_and_presence"},
	{"sql", "true"}, {"subscribe", "true"},
}

// pepNode is a node with its options read.
type pepNode struct {
	*storage.PubSubNode
}

func (n pepNode) opt(name string) string {
	if v, ok := n.Options[name]; ok {
		return v
	}
	for _, d := range pepDefaults {
		if d[0] == name {
			return d[1]
		}
	}
	return ""
}

// maxItems is mod_pubsub's max_items of a node: 0 keeps nothing.
func (n pepNode) maxItems() int {
	if n.opt("persist_items") != "true" {
		if n.opt("send_last_published_item") == "never" {
			return 0
		}
		return 1
	}
	if v, err := strconv.Atoi(n.opt("max_items")); err == nil {
		return max(v, 0)
	}
	return maxItemsNode
}

// pepErr is a stanza error with a pubsub condition.
func pepErr(condition, app string) *stanza.Error {
	e := stanza.NewError(condition, "")
	if app != "" {
		e.App = &codec.Element{Name: app, Attrs: [][2]string{{"xmlns", nsPubsubErrors}}}
	}
	return e
}

// pubsubIQ answers the pubsub requests to a user's bare JID.
func (s *Service) pubsubIQ(el, p *codec.Element, to jid.JID) {
	from, err := jid.Parse(stanza.Attr(el, "from"))
	if err != nil {
		return
	}
	owner := to.Bare()
	echo := canonicalPubsub(p)
	fail := func(e *stanza.Error) {
		lang := stanza.Attr(el, "xml:lang")
		if e.Text != "" && lang == "" {
			lang = s.opt.Config.Language
		}
		reply := stanza.ErrorReply(el, e, lang)
		reply.Kids = append([]any{echo}, reply.Kids[len(reply.Kids)-1])
		s.Route(reply)
	}
	var kids []*codec.Element
	for _, k := range p.Kids {
		if c, ok := k.(*codec.Element); ok {
			kids = append(kids, c)
		}
	}
	get := stanza.Attr(el, "type") == "get"
	find := func(name string) *codec.Element {
		for _, c := range kids {
			if c.Name == name {
				return c
			}
		}
		return nil
	}
	var res *codec.Element
	var perr *stanza.Error
	switch {
	case p.Name != "pubsub":
		perr = stanza.NewError("feature-not-implemented", "")
	case !get && find("create") != nil:
		res, perr = s.pepCreate(owner, from, find("create"), find("configure"))
	case !get && find("publish") != nil:
		res, perr = s.pepPublish(owner, from, find("publish"), find("publish-options"))
	case !get && find("retract") != nil:
		perr = s.pepRetract(owner, from, find("retract"))
	case get && find("items") != nil:
		res, perr = s.pepItems(owner, from, find("items"))
	case !get:
		perr = stanza.NewError("bad-request", "")
	default:
		perr = stanza.NewError("feature-not-implemented", "")
	}
	if perr != nil {
		fail(perr)
		return
	}
	if res != nil {
		s.reply(el, res)
	} else {
		s.reply(el)
	}
}

// pubsubOwnerIQ answers the owner's requests (node deletion).
func (s *Service) pubsubOwnerIQ(el, p *codec.Element, to jid.JID) {
	from, err := jid.Parse(stanza.Attr(el, "from"))
	if err != nil {
		return
	}
	fail := func(e *stanza.Error) {
		reply := stanza.ErrorReply(el, e, stanza.Attr(el, "xml:lang"))
		reply.Kids = append([]any{canonicalPubsub(p)}, reply.Kids[len(reply.Kids)-1])
		s.Route(reply)
	}
	if conf := p.Child("configure"); p.Name == "pubsub" && conf != nil {
		res, e := s.pepConfigure(el, conf, to, from)
		switch {
		case e != nil:
			fail(e)
		case res != nil:
			s.reply(el, res)
		default:
			s.reply(el)
		}
		return
	}
	del := p.Child("delete")
	if p.Name != "pubsub" || del == nil || stanza.Attr(el, "type") != "set" {
		s.bounce(el, stanza.NewError("feature-not-implemented", ""))
		return
	}
	node := stanza.Attr(del, "node")
	if node == "" {
		fail(stanza.NewError("not-allowed", "No node specified"))
		return
	}
	n, e := s.pepNode(to.Bare(), node)
	if e != nil {
		fail(e)
		return
	}
	ctx, cancel := dbctx()
	defer cancel()
	aff, _, err := s.store.Affiliation(ctx, n.Nidx, from.Bare().String())
	if err != nil {
		fail(errDatabase())
		return
	}
	if aff != "o" {
		fail(stanza.NewError("forbidden", "Owner privileges required"))
		return
	}
	if err := s.store.DeletePubSubNode(ctx, n.Nidx); err != nil {
		fail(errDatabase())
		return
	}
	s.reply(el)
}

// pepNode reads a node: item-not-found "Node not found" when it is not
// there.
func (s *Service) pepNode(owner jid.JID, node string) (pepNode, *stanza.Error) {
	ctx, cancel := dbctx()
	defer cancel()
	n, err := s.store.PubSubNode(ctx, owner.String(), node)
	if err != nil {
		return pepNode{}, errDatabase()
	}
	if n == nil {
		return pepNode{}, stanza.NewError("item-not-found", "Node not found")
	}
	return pepNode{n}, nil
}

func (s *Service) pepCreate(owner, from jid.JID, create, configure *codec.Element) (*codec.Element, *stanza.Error) {
	node := stanza.Attr(create, "node")
	if node == "" {
		return nil, pepErr("not-acceptable", "nodeid-required")
	}
	var x *codec.Element
	if configure != nil {
		x = child(configure, "x", nsXData)
	}
	opts, e := formOptions(x, nsNodeConfig, nodeConfig)
	if e != nil {
		return nil, e
	}
	if e := s.pepCreateNode(owner, from, node, opts); e != nil {
		return nil, e
	}
	return &codec.Element{Name: "pubsub", Attrs: [][2]string{{"xmlns", nsPubsub}}, Kids: []any{
		&codec.Element{Name: "create", Attrs: [][2]string{{"node", node}}}}}, nil
}

func (s *Service) pepCreateNode(owner, from jid.JID, node string, opts [][2]string) *stanza.Error {
	if from.Bare() != owner {
		return stanza.NewError("forbidden", "You're not allowed to create nodes")
	}
	ctx, cancel := dbctx()
	defer cancel()
	_, err := s.store.CreatePubSubNode(ctx, owner.String(), node, "pep", mergeOptions(opts), owner.String())
	switch {
	case err == storage.ErrNodeExists:
		return stanza.NewError("conflict", "Node already exists")
	case err != nil:
		s.log.Warn("creating a PEP node failed", "owner", owner.String(), "err", err)
		return errDatabase()
	}
	return nil
}

// payloadSize is mod_pubsub's measure of a payload: the size of its
// external term format, less two.
func payloadSize(payload []*codec.Element) int {
	list := make(term.List, len(payload))
	for i, p := range payload {
		list[i] = codec.ElementTerm(p)
	}
	b, err := term.Encode(list)
	if err != nil {
		return 0
	}
	return len(b) - 2
}

func (s *Service) pepPublish(owner, from jid.JID, pub, pubOpts *codec.Element) (*codec.Element, *stanza.Error) {
	node := stanza.Attr(pub, "node")
	var items []*codec.Element
	for _, k := range pub.Kids {
		if c, ok := k.(*codec.Element); ok && c.Name == "item" {
			items = append(items, c)
		}
	}
	if len(items) > 1 {
		return nil, pepErr("bad-request", "invalid-payload")
	}
	id := ""
	var payload []*codec.Element
	if len(items) == 1 {
		id = stanza.Attr(items[0], "id")
		for _, k := range items[0].Kids {
			if c, ok := k.(*codec.Element); ok {
				payload = append(payload, c)
			}
		}
	}
	var x *codec.Element
	if pubOpts != nil {
		x = child(pubOpts, "x", nsXData)
	}
	opts, e := formOptions(x, nsPublishOpts, publishOptions)
	if e != nil {
		return nil, e
	}
	if id == "" {
		now := time.Now().UnixMicro()
		id = fmt.Sprintf("%X%X%X", now/1e12, now/1e6%1e6, now%1e6)
	}
	if e := s.publishItem(owner, from, node, id, payload, opts, true); e != nil {
		return nil, e
	}
	return &codec.Element{Name: "pubsub", Attrs: [][2]string{{"xmlns", nsPubsub}}, Kids: []any{
		&codec.Element{Name: "publish", Attrs: [][2]string{{"node", node}}, Kids: []any{
			&codec.Element{Name: "item", Attrs: [][2]string{{"id", id}}}}}}}, nil
}

// publishItem is mod_pubsub's publish_item on a PEP node (created with
// the options when it is not there); toPrivate keeps legacy bookmarks
// in step (mod_private's pubsub_publish_item hook).
func (s *Service) publishItem(owner, from jid.JID, node, id string, payload []*codec.Element, opts [][2]string, toPrivate bool) *stanza.Error {
	ctx, cancel := dbctx()
	defer cancel()
	sn, err := s.store.PubSubNode(ctx, owner.String(), node)
	if err != nil {
		return errDatabase()
	}
	if sn == nil {
		if e := s.pepCreateNode(owner, from, node, opts); e != nil {
			return stanza.NewError("item-not-found", "")
		}
		if sn, err = s.store.PubSubNode(ctx, owner.String(), node); err != nil || sn == nil {
			return errDatabase()
		}
	}
	n := pepNode{sn}
	for _, o := range opts {
		if n.opt(o[0]) != o[1] {
			return pepErr("conflict", "precondition-not-met")
		}
	}
	persist := n.opt("deliver_payloads") == "true" || n.opt("persist_items") == "true"
	maxSize, _ := strconv.Atoi(n.opt("max_payload_size"))
	switch {
	case payloadSize(payload) > maxSize:
		return pepErr("not-acceptable", "payload-too-big")
	case persist && len(payload) == 0:
		return pepErr("bad-request", "item-required")
	case persist && len(payload) > 1:
		return pepErr("bad-request", "invalid-payload")
	case !persist && len(payload) > 0:
		return pepErr("bad-request", "item-forbidden")
	}
	aff, _, err := s.store.Affiliation(ctx, n.Nidx, from.Bare().String())
	if err != nil {
		return errDatabase()
	}
	if model := n.opt("publish_model"); model != "open" && !(model == "publishers" && (aff == "o" || aff == "p" || aff == "u")) {
		return stanza.NewError("forbidden", "")
	}
	var xml []byte
	for _, p := range payload {
		xml = codec.AppendElement(xml, p)
	}
	if mi := n.maxItems(); mi > 0 {
		now := storage.EncodeNow(time.Now())
		limit := mi
		if mi == maxItemsNode && n.opt("max_items") == "max" {
			limit = maxItemsNode
		}
		_, ok, err := s.store.PublishPubSubItem(ctx, n.Nidx, storage.PubSubItem{ID: id, Publisher: from.String(),
			Creation: now, Modification: now, Payload: string(xml)}, from.Bare().String(), limit)
		if err != nil {
			s.log.Warn("storing a PEP item failed", "owner", owner.String(), "err", err)
			return errDatabase()
		}
		if !ok {
			return stanza.NewError("forbidden", "")
		}
	}
	if n.opt("deliver_notifications") == "true" {
		items := &codec.Element{Name: "items", Attrs: [][2]string{{"node", node}}}
		it := &codec.Element{Name: "item", Attrs: [][2]string{{"id", id}}}
		if n.opt("itemreply") == "publisher" {
			it.Attrs = append([][2]string{{"publisher", from.String()}}, it.Attrs...)
		}
		if n.opt("deliver_payloads") == "true" {
			for _, p := range payload {
				it.Kids = append(it.Kids, p)
			}
		}
		items.Kids = []any{it}
		s.pepBroadcast(owner, from, n, items)
	}
	if toPrivate && node == nsBookmarks && from.Bare() == owner && len(payload) > 0 && s.privateOn() {
		if err := s.store.SetPrivateData(ctx, owner.Domain, owner.Local, [][2]string{{nsBookmarks, string(codec.AppendElement(nil, payload[0]))}}); err != nil {
			s.log.Warn("storing PEP bookmarks as private data failed", "user", owner.String(), "err", err)
		}
	}
	return nil
}

func (s *Service) pepRetract(owner, from jid.JID, r *codec.Element) *stanza.Error {
	node := stanza.Attr(r, "node")
	var items []*codec.Element
	for _, k := range r.Kids {
		if c, ok := k.(*codec.Element); ok && c.Name == "item" {
			items = append(items, c)
		}
	}
	switch {
	case len(items) > 1:
		return pepErr("bad-request", "invalid-payload")
	case len(items) == 0 || stanza.Attr(items[0], "id") == "":
		return pepErr("bad-request", "item-required")
	case node == "":
		return pepErr("bad-request", "nodeid-required")
	}
	id := stanza.Attr(items[0], "id")
	n, e := s.pepNode(owner, node)
	if e != nil {
		return e
	}
	ctx, cancel := dbctx()
	defer cancel()
	aff, _, err := s.store.Affiliation(ctx, n.Nidx, from.Bare().String())
	if err != nil {
		return errDatabase()
	}
	it, found, err := s.store.PubSubItem(ctx, n.Nidx, id)
	if err != nil {
		return errDatabase()
	}
	mine := found && strings.SplitN(it.Publisher, "/", 2)[0] == from.Bare().String()
	if !(aff == "p" || aff == "o" || (n.opt("publish_model") == "open" && mine)) {
		return stanza.NewError("forbidden", "")
	}
	if !mine && aff != "o" {
		return stanza.NewError("forbidden", "")
	}
	deleted, err := s.store.DeletePubSubItem(ctx, n.Nidx, id)
	if err != nil {
		return errDatabase()
	}
	if !deleted {
		return stanza.NewError("item-not-found", "")
	}
	return nil
}

// canAccess is node_flat's access check for reading items.
func (s *Service) canAccess(owner, from jid.JID, n pepNode) *stanza.Error {
	ctx, cancel := dbctx()
	defer cancel()
	aff, subs, err := s.store.Affiliation(ctx, n.Nidx, from.Bare().String())
	if err != nil {
		return errDatabase()
	}
	if aff == "c" || aff == "u" {
		return stanza.NewError("forbidden", "")
	}
	whitelisted := aff == "o" || aff == "p" || aff == "m" || strings.Contains(","+subs, ",s:")
	switch n.opt("access_model") {
	case "presence":
		if from.Bare() != owner && !isFrom(s.subscription(owner, from)) {
			return pepErr("not-authorized", "presence-subscription-required")
		}
	case "roster":
		if from.Bare() != owner {
			return pepErr("not-authorized", "not-in-roster-group")
		}
	case "whitelist":
		if !whitelisted {
			return pepErr("not-allowed", "closed-node")
		}
	case "authorize":
		if !whitelisted {
			return stanza.NewError("forbidden", "")
		}
	}
	return nil
}

func pepItemElement(it storage.PubSubItem, n pepNode) *codec.Element {
	el := &codec.Element{Name: "item", Attrs: [][2]string{{"id", it.ID}}}
	if n.opt("itemreply") == "publisher" {
		el.Attrs = append([][2]string{{"publisher", it.Publisher}}, el.Attrs...)
	}
	if p, err := parseStored(it.Payload); err == nil && it.Payload != "" {
		el.Kids = []any{p}
	}
	return el
}

func (s *Service) pepItems(owner, from jid.JID, q *codec.Element) (*codec.Element, *stanza.Error) {
	node := stanza.Attr(q, "node")
	n, e := s.pepNode(owner, node)
	if e != nil {
		return nil, e
	}
	if e := s.canAccess(owner, from, n); e != nil {
		return nil, e
	}
	var ids []string
	for _, k := range q.Kids {
		if c, ok := k.(*codec.Element); ok && c.Name == "item" && stanza.Attr(c, "id") != "" {
			ids = append(ids, stanza.Attr(c, "id"))
		}
	}
	ctx, cancel := dbctx()
	defer cancel()
	out := &codec.Element{Name: "pubsub", Attrs: [][2]string{{"xmlns", nsPubsub}}}
	itemsEl := &codec.Element{Name: "items", Attrs: [][2]string{{"node", node}}}
	if len(ids) == 1 {
		it, found, err := s.store.PubSubItem(ctx, n.Nidx, ids[0])
		if err != nil {
			return nil, errDatabase()
		}
		if found {
			itemsEl.Kids = []any{pepItemElement(it, n)}
		}
		out.Kids = []any{itemsEl}
		return out, nil
	}
	limit := 0
	if m := stanza.Attr(q, "max_items"); m != "" {
		v, err := strconv.ParseUint(m, 10, 31)
		if err != nil {
			return nil, stanza.NewError("bad-request", fmt.Sprintf("Bad value of attribute 'max_items' in tag <items/> qualified by namespace '%s'", nsPubsub))
		}
		limit = max(int(v), 1)
	}
	items, count, err := s.store.PubSubItems(ctx, n.Nidx, limit)
	if err != nil {
		return nil, errDatabase()
	}
	for _, it := range items {
		if len(ids) == 0 || slices.Contains(ids, it.ID) {
			itemsEl.Kids = append(itemsEl.Kids, pepItemElement(it, n))
		}
	}
	if limit > 0 {
		set := &codec.Element{Name: "set", Attrs: [][2]string{{"xmlns", nsRSM}}, Kids: []any{
			&codec.Element{Name: "count", Kids: []any{strconv.Itoa(count)}}}}
		if len(items) > 0 {
			first := codec.XMPPStamp(storage.DecodeNow(items[0].Creation).UnixMicro())
			last := codec.XMPPStamp(storage.DecodeNow(items[len(items)-1].Creation).UnixMicro())
			set.Kids = append(set.Kids, &codec.Element{Name: "first", Attrs: [][2]string{{"index", "0"}}, Kids: []any{first}},
				&codec.Element{Name: "last", Kids: []any{last}})
		}
		out.Kids = append(out.Kids, set)
	}
	out.Kids = append(out.Kids, itemsEl)
	return out, nil
}

// canonicalPubsub is a pubsub request as ejabberd's codec writes the
// decoded record back (in an error): attributes in the codec's order,
// forms rewritten.
func canonicalPubsub(el *codec.Element) *codec.Element {
	order := map[string][]string{"items": {"subid", "node", "max_items"}, "item": {"publisher", "node", "id"},
		"retract": {"notify", "node"}, "field": {"var", "type", "label"}}
	var walk func(e *codec.Element, top bool) *codec.Element
	walk = func(e *codec.Element, top bool) *codec.Element {
		if e.Name == "x" && stanza.NS(e) == nsXData {
			return parseXForm(e).element()
		}
		out := &codec.Element{Name: e.Name}
		if names, ok := order[e.Name]; ok && !top {
			for _, n := range names {
				if v, ok := e.Attr(n); ok {
					if n == "notify" {
						if v == "1" || v == "true" {
							out.Attrs = append(out.Attrs, [2]string{n, "true"})
						}
						continue
					}
					out.Attrs = append(out.Attrs, [2]string{n, v})
				}
			}
		} else {
			out.Attrs = e.Attrs
		}
		for _, k := range e.Kids {
			if c, ok := k.(*codec.Element); ok && e.Name != "item" {
				out.Kids = append(out.Kids, walk(c, false))
			} else {
				out.Kids = append(out.Kids, k)
			}
		}
		return out
	}
	return walk(el, true)
}
