package xmpp

import (
	"github.com/mimmigrate/mimmigrate/cetsnode/xmpp/jid"
	"github.com/mimmigrate/mimmigrate/cetsnode/xmpp/stanza"
	"github.com/mimmigrate/mimmigrate/migrate/codec"
)

// An iqHandler answers an IQ get or set addressed to the server (a
// domain) or to a user's bare JID, by the namespace of its one child, as
// ejabberd's gen_iq_handler dispatches to its modules.
type iqHandler func(el, payload *codec.Element, to jid.JID)

// iqHandlers registers the handlers of the configured modules.
func (s *Service) iqHandlers() {
	s.serverIQs, s.userIQs = map[string]iqHandler{}, map[string]iqHandler{}
	if s.opt.Config.Modules["mod_roster"] {
		s.userIQs[nsRoster] = s.rosterIQ
	}
	if s.opt.Config.Modules["mod_last"] {
		s.serverIQs[nsLast] = s.serverLast
		s.userIQs[nsLast] = s.userLast
	}
	if s.opt.Config.Modules["mod_register"] {
		s.serverIQs[nsRegister] = s.registerIQ
		s.userIQs[nsRegister] = s.registerIQ
	}
	if s.mamOn() {
		for _, ns := range []string{nsMAM0, nsMAM1, nsMAM2} {
			s.serverIQs[ns] = s.mamIQ
			s.userIQs[ns] = s.mamIQ
		}
	}
	if s.privacyOn() {
		s.userIQs[nsPrivacy] = s.privacyIQ
	}
	if s.blockingOn() {
		s.userIQs[nsBlocking] = s.blockingIQ
	}
	if s.vcardOn() {
		s.userIQs[nsVCard] = s.vcardIQ
		s.serverIQs[nsVCard] = s.serverVCardIQ
	}
	if s.privateOn() {
		s.userIQs[nsPrivate] = s.privateIQ
	}
	if s.pepOn() {
		s.userIQs[nsPubsub] = s.pubsubIQ
		s.userIQs[nsPubsubOwner] = s.pubsubOwnerIQ
	}
	if s.discoOn() {
		s.serverIQs[nsDiscoInfo] = s.serverDiscoInfo
		s.serverIQs[nsDiscoItems] = s.serverDiscoItems
		s.userIQs[nsDiscoInfo] = s.userDiscoInfo
		s.userIQs[nsDiscoItems] = s.userDiscoItems
	}
	if s.opt.Config.Modules["mod_version"] {
		s.serverIQs[nsVersion] = s.versionIQ
	}
	if s.opt.Config.Modules["mod_time"] {
		s.serverIQs[nsTime] = s.timeIQ
	}
	if s.carbonsOn() {
		s.userIQs[nsCarbons] = s.carbonsIQ
	}
	if s.opt.Config.Modules["mod_ping"] {
		s.serverIQs[nsPing] = s.ping
		s.userIQs[nsPing] = s.ping
	}
}

const nsPing = "urn:xmpp:ping"

func (s *Service) serverIQ(el *codec.Element, to jid.JID) { s.dispatchIQ(s.serverIQs, el, to) }

func (s *Service) userIQ(el *codec.Element, to jid.JID) { s.dispatchIQ(s.userIQs, el, to) }

func (s *Service) dispatchIQ(handlers map[string]iqHandler, el *codec.Element, to jid.JID) {
	var kids []*codec.Element
	for _, k := range el.Kids {
		if c, ok := k.(*codec.Element); ok {
			kids = append(kids, c)
		}
	}
	switch len(kids) {
	case 0:
		s.bounce(el, stanza.NewError("bad-request", "No child elements found"))
	case 1:
		if h := handlers[stanza.NS(kids[0])]; h != nil {
			h(el, kids[0], to)
			return
		}
		s.bounce(el, stanza.NewError("service-unavailable", "No module is handling this query"))
	default:
		s.bounce(el, stanza.NewError("bad-request", "Too many child elements"))
	}
}

// reply routes an IQ's result (payload optional) back to its sender.
func (s *Service) reply(iq *codec.Element, payload ...*codec.Element) {
	s.Route(stanza.Result(iq, stanza.Attr(iq, "xml:lang"), payload...))
}

// ping is XEP-0199 (mod_ping): the server answers for itself and for its
// users' bare JIDs.
func (s *Service) ping(el, p *codec.Element, to jid.JID) {
	if stanza.Attr(el, "type") == "get" && p.Name == "ping" {
		s.reply(el)
		return
	}
	s.bounce(el, stanza.NewError("bad-request", "Ping query is incorrect"))
}

// errDatabase is ejabberd's answer when its database fails.
func errDatabase() *stanza.Error { return stanza.NewError("internal-server-error", "Database failure") }
