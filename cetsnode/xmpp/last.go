package xmpp

import (
	"strconv"
	"time"

	"github.com/mimmigrate/mimmigrate/cetsnode/xmpp/jid"
	"github.com/mimmigrate/mimmigrate/cetsnode/xmpp/stanza"
	"github.com/mimmigrate/mimmigrate/migrate/codec"
)

// Last activity (XEP-0012) as ejabberd 23.01's mod_last: the time and
// status of a user's last unavailable presence, stored in the last table
// when a session goes unavailable (or ends while available), answered
// for a user to the user and to contacts subscribed to the user; the
// server answers with its uptime.

const nsLast = "jabber:iq:last"

func (s *Service) lastOn() bool { return s.opt.Config.Modules["mod_last"] }

// storeLast records that a user went unavailable with a status.
func (s *Service) storeLast(user jid.JID, status string) {
	if !s.lastOn() {
		return
	}
	ctx, cancel := dbctx()
	defer cancel()
	if err := s.store.SetLast(ctx, user.Domain, user.Local, time.Now().Unix(), status); err != nil {
		s.log.Warn("storing last activity failed", "user", user.Bare().String(), "err", err)
	}
}

func lastElement(seconds int64, status string) *codec.Element {
	q := &codec.Element{Name: "query", Attrs: [][2]string{{"seconds", strconv.FormatInt(seconds, 10)}, {"xmlns", nsLast}}}
	if status != "" {
		q.Kids = []any{status}
	}
	return q
}

// serverLast answers with the node's uptime.
func (s *Service) serverLast(el, p *codec.Element, to jid.JID) {
	if stanza.Attr(el, "type") == "set" {
		s.bounce(el, stanza.NewError("not-allowed", "Value 'set' of 'type' attribute is not allowed"))
		return
	}
	s.reply(el, lastElement(int64(time.Since(s.started).Seconds()), ""))
}

// userLast answers for a user: 0 seconds while the user has a session,
// else the time since the stored last activity and its status.
func (s *Service) userLast(el, p *codec.Element, to jid.JID) {
	if stanza.Attr(el, "type") == "set" {
		s.bounce(el, stanza.NewError("not-allowed", "Value 'set' of 'type' attribute is not allowed"))
		return
	}
	from, err := jid.Parse(stanza.Attr(el, "from"))
	if err != nil {
		return
	}
	if sub := s.subscription(to, from); !isFrom(sub) && from.Bare() != to.Bare() {
		s.bounce(el, stanza.NewError("subscription-required", "Not subscribed"))
		return
	}
	if len(s.node.Sessions.Bare(to.Domain, to.Local)) > 0 {
		s.reply(el, lastElement(0, ""))
		return
	}
	ctx, cancel := dbctx()
	defer cancel()
	ts, status, ok, err := s.store.Last(ctx, to.Domain, to.Local)
	switch {
	case err != nil:
		s.log.Warn("reading last activity failed", "user", to.String(), "err", err)
		s.bounce(el, errDatabase())
	case !ok:
		s.bounce(el, stanza.NewError("service-unavailable", "No info about last activity found"))
	default:
		s.reply(el, lastElement(time.Now().Unix()-ts, status))
	}
}
