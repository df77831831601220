package xmpp

import (
	"errors"
	"math"

	"github.com/mimmigrate/mimmigrate/cetsnode/xmpp/jid"
	"github.com/mimmigrate/mimmigrate/cetsnode/xmpp/sasl"
	"github.com/mimmigrate/mimmigrate/cetsnode/xmpp/stanza"
	"github.com/mimmigrate/mimmigrate/migrate/codec"
)

// In-band password change (XEP-0077) as ejabberd 23.01's mod_register
// answers an authenticated user: the new password is stored as
// ejabberd_auth would store it (SCRAM of auth_scram_hash with a new salt
// and 4096 iterations, or in clear with auth_password_format: plain),
// after its checks (a password resourceprep refuses, mod_register's
// password_strength). Registering new accounts and removing accounts are
// not served: the Go nodes serve the migrated accounts.

const nsRegister = "jabber:iq:register"

func (s *Service) registerIQ(el, p *codec.Element, to jid.JID) {
	from, err := jid.Parse(stanza.Attr(el, "from"))
	if err != nil {
		return
	}
	if stanza.Attr(el, "type") == "get" {
		q := &codec.Element{Name: "query", Attrs: [][2]string{{"xmlns", nsRegister}}, Kids: []any{
			&codec.Element{Name: "username", Kids: []any{from.Local}},
			&codec.Element{Name: "registered"},
			&codec.Element{Name: "password"},
			&codec.Element{Name: "instructions", Kids: []any{"Choose a username and password to register with this server"}},
		}}
		s.reply(el, q)
		return
	}
	if p.Child("remove") != nil {
		s.bounce(el, stanza.NewError("forbidden", "Access denied by service policy"))
		return
	}
	user, password := p.Child("username"), p.Child("password")
	if user == nil || password == nil {
		s.bounce(el, stanza.NewError("bad-request", ""))
		return
	}
	if u, err := jid.Nodeprep(user.Text()); err != nil || u != from.Local || from.Domain != to.Domain {
		s.bounce(el, stanza.NewError("forbidden", "Access denied by service policy"))
		return
	}
	pw := password.Text()
	if _, err := jid.Resourceprep(pw); err != nil || pw == "" {
		s.bounce(el, stanza.NewError("not-allowed", "The password contains unacceptable characters"))
		return
	}
	if min := s.opt.Config.PasswordStrength; min > 0 && entropy(pw) < min {
		s.bounce(el, stanza.NewError("not-acceptable", "The password is too weak"))
		return
	}
	cfg := s.opt.Config
	creds, err := sasl.Policy{PasswordFormat: cfg.Auth.PasswordFormat, ScramHash: sasl.Hash(cfg.Auth.ScramHash)}.NewCredentials(pw)
	if err == nil {
		ctx, cancel := dbctx()
		err = s.store.SetPassword(ctx, from.Domain, from.Local, creds)
		cancel()
	}
	if err != nil {
		if !errors.Is(err, sasl.ErrNoUser) {
			s.log.Warn("storing a new password failed", "user", from.Bare().String(), "err", err)
		}
		s.bounce(el, errDatabase())
		return
	}
	s.log.Info("password changed", "user", from.Bare().String(), "ip", s.ipOf(from))
	s.reply(el)
}

// entropy is ejabberd_auth:entropy: the password's length times the bits
// of the character classes it uses.
func entropy(pw string) float64 {
	if pw == "" {
		return 0
	}
	var digit, printable, low, high, other float64
	n := 0
	for _, c := range pw {
		n++
		switch {
		case c >= 'a' && c <= 'z':
			low = 26
		case c >= '0' && c <= '9':
			digit = 9
		case c >= 'A' && c <= 'Z':
			high = 26
		case c >= 33 && c <= 126:
			printable = 33
		default:
			other = 128
		}
	}
	return float64(n) * math.Log2(digit+printable+low+high+other)
}

// ipOf is the address of a session of this node ("" when not here).
func (s *Service) ipOf(full jid.JID) string {
	for _, ss := range s.node.Sessions.Full(full.Domain, full.Local, full.Resource) {
		s.mu.Lock()
		l := s.local[sidKey(ss.SID)]
		s.mu.Unlock()
		if l != nil {
			return l.conn.IP().String()
		}
	}
	return ""
}
