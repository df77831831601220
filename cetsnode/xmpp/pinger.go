package xmpp

import (
	"crypto/rand"
	"encoding/hex"
	"sync"
	"time"

	"github.com/mimmigrate/mimmigrate/cetsnode/xmpp/stanza"
	"github.com/mimmigrate/mimmigrate/migrate/codec"
)

// Server pings (XEP-0199) as ejabberd 23.01's mod_ping with send_pings:
// each session is pinged after ping_interval without a stanza from its
// client, and again every interval; a client that answers with
// service-unavailable is not pinged any more; with timeout_action kill,
// a connection that does not answer within ping_ack_timeout is closed as
// lost — a session with stream management then waits to be resumed.

// pinger is a session's ping timer and the ping it waits for.
type pinger struct {
	mu      sync.Mutex
	timer   *time.Timer
	waiting string // the id of the ping waiting for an answer
	ack     *time.Timer
	stopped bool
}

func (s *Service) pingsOn() bool { return s.opt.Config.Modules["mod_ping"] && s.opt.Config.Ping.Send }

// startPing (re)arms a session's ping timer: at bind and at every
// stanza from its client.
func (s *Service) startPing(l *local) {
	if !s.pingsOn() {
		return
	}
	p := &l.ping
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return
	}
	if p.timer != nil {
		p.timer.Reset(s.opt.Config.Ping.Interval)
		return
	}
	p.timer = time.AfterFunc(s.opt.Config.Ping.Interval, func() { s.sendPing(l) })
}

// stopPing ends a session's pings (when it ends).
func (s *Service) stopPing(l *local) {
	p := &l.ping
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stopped = true
	if p.timer != nil {
		p.timer.Stop()
	}
	if p.ack != nil {
		p.ack.Stop()
	}
	if p.waiting != "" {
		s.pings.Delete(p.waiting)
	}
}

func (s *Service) sendPing(l *local) {
	s.mu.Lock()
	here := s.local[sidKey(l.sess.SID)] == l
	s.mu.Unlock()
	if !here {
		return
	}
	cfg := s.opt.Config.Ping
	b := make([]byte, 8)
	rand.Read(b)
	id := "ping-" + hex.EncodeToString(b)
	p := &l.ping
	p.mu.Lock()
	if p.stopped {
		p.mu.Unlock()
		return
	}
	if p.waiting != "" {
		s.pings.Delete(p.waiting)
	}
	if p.ack != nil {
		p.ack.Stop()
	}
	p.waiting = id
	s.pings.Store(id, l)
	p.ack = time.AfterFunc(cfg.AckTimeout, func() { s.pingTimeout(l, id) })
	p.timer.Reset(cfg.Interval)
	p.mu.Unlock()
	l.mu.Lock()
	to := fullJID(l.sess).String()
	l.mu.Unlock()
	s.Route(&codec.Element{Name: "iq", Attrs: [][2]string{{"to", to}, {"from", l.sess.Server}, {"type", "get"}, {"id", id}},
		Kids: []any{&codec.Element{Name: "ping", Attrs: [][2]string{{"xmlns", nsPing}}}}})
}

// pingAnswer takes a client's answer to a server ping (an IQ result or
// error to the domain): true when it was one.
func (s *Service) pingAnswer(el *codec.Element) bool {
	id := stanza.Attr(el, "id")
	v, ok := s.pings.LoadAndDelete(id)
	if !ok {
		return false
	}
	l := v.(*local)
	p := &l.ping
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.waiting == id {
		p.waiting = ""
		if p.ack != nil {
			p.ack.Stop()
		}
	}
	if stanza.Attr(el, "type") == "error" {
		if e := el.Child("error"); e != nil && stanza.Attr(e, "type") == "cancel" && child(e, "service-unavailable", stanza.NSStanzas) != nil {
			p.stopped = true
			if p.timer != nil {
				p.timer.Stop()
			}
		}
	}
	return true
}

func (s *Service) pingTimeout(l *local, id string) {
	p := &l.ping
	p.mu.Lock()
	if p.waiting != id {
		p.mu.Unlock()
		return
	}
	p.waiting = ""
	p.mu.Unlock()
	s.pings.Delete(id)
	if s.opt.Config.Ping.TimeoutAction != "kill" {
		return
	}
	l.mu.Lock()
	c := l.conn
	l.mu.Unlock()
	s.log.Info("no answer to a ping: closing the connection", "jid", fullJID(l.sess).String())
	c.Drop()
}
