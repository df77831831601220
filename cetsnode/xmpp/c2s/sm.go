package c2s

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"strconv"
	"time"

	"github.com/mimmigrate/mimmigrate/cetsnode/xmpp/stanza"
	"github.com/mimmigrate/mimmigrate/cetsnode/xmpp/stream"
	"github.com/mimmigrate/mimmigrate/erldist/term"
	"github.com/mimmigrate/mimmigrate/migrate/codec"
)

// Stream management (XEP-0198) as ejabberd 23.01's mod_stream_mgmt: once
// a bound session enables it, the stanzas each side handled are counted;
// the server keeps what it sent until the client acknowledges it (asking
// with <r/> after a stanza when no request is outstanding), and when the
// connection is lost the session waits, still present, for the client to
// resume it on this node with the id it was given — then what the client
// did not acknowledge is sent again. A session that is not resumed in
// time ends; what it had not acknowledged is re-routed, bounced or
// dropped as ejabberd does (Backend.Unacked).

const (
	NSSM2 = "urn:xmpp:sm:2"
	NSSM3 = "urn:xmpp:sm:3"
)

// SMOptions are mod_stream_mgmt's options; nil Options.SM: the module is
// not loaded.
type SMOptions struct {
	ResumeTimeout    time.Duration // 300 s
	MaxResumeTimeout time.Duration // at least ResumeTimeout
	AckTimeout       time.Duration // 60 s (0: never)
	MaxAckQueue      int           // 5000 (0: no limit)
	// ResendOnTimeout: what a session that timed out had not had
	// acknowledged is re-routed ("true"), or only when the user has no
	// other session ("if_offline"), else ("false") bounced or dropped.
	ResendOnTimeout string
}

// smItem is a stanza sent and not acknowledged.
type smItem struct {
	n  uint32
	at time.Time
	el *codec.Element
}

// smState is a connection's stream management (guarded by Conn.wmu).
type smState struct {
	ns       string // "" until enabled
	id       []byte
	timeout  time.Duration // resumption (0: none)
	in       uint32        // stanzas handled from the client
	out, req uint32        // stanzas sent; out when <r/> was last sent
	queue    []smItem
	ackTimer *time.Timer
	exceeded bool
	// lost: the connection was lost (not closed by a stream end or
	// error): the session may wait for resumption.
	lost    bool
	pending bool
	// takenBy is the connection that resumed the session.
	takenBy chan *Conn
	resend  bool // when the session ends, what was not acknowledged is re-routed
}

func isSMNS(ns string) bool { return ns == NSSM2 || ns == NSSM3 }

func isStanza(el *codec.Element) bool {
	return el != nil && (el.Name == "message" || el.Name == "presence" || el.Name == "iq")
}

func smElement(name, ns string, attrs ...[2]string) *codec.Element {
	return &codec.Element{Name: name, Attrs: append(attrs, [2]string{"xmlns", ns})}
}

// smFailed is a <failed/> with a stanza error condition and text.
func (c *Conn) smFailed(ns, condition, text string, h *uint32) error {
	f := &codec.Element{Name: "failed"}
	if h != nil {
		f.Attrs = append(f.Attrs, [2]string{"h", strconv.FormatUint(uint64(*h), 10)})
	}
	f.Attrs = append(f.Attrs, [2]string{"xmlns", ns})
	f.Kids = []any{&codec.Element{Name: condition, Attrs: [][2]string{{"xmlns", stanza.NSStanzas}}}}
	if text != "" {
		f.Kids = append(f.Kids, &codec.Element{Name: "text", Attrs: [][2]string{{"xml:lang", c.lang}, {"xmlns", stanza.NSStanzas}}, Kids: []any{text}})
	}
	return c.write(codec.AppendElement(nil, f))
}

// smAdd numbers a stanza sent and keeps it until acknowledged (c.wmu
// held); it says whether an <r/> should follow.
func (c *Conn) smAdd(el *codec.Element) (request bool) {
	c.sm.out++
	c.sm.queue = append(c.sm.queue, smItem{n: c.sm.out, at: time.Now(), el: el})
	if max := c.s.opt.SM.MaxAckQueue; max > 0 && len(c.sm.queue) > max {
		c.sm.exceeded = true
	}
	if c.sm.ackTimer != nil || c.sm.pending {
		return false
	}
	c.sm.req = c.sm.out
	if t := c.s.opt.SM.AckTimeout; t > 0 {
		c.sm.ackTimer = time.AfterFunc(t, c.ackTimedOut)
	}
	return true
}

// Drop closes the connection as lost (a client that stopped answering):
// a session with stream management then waits to be resumed.
func (c *Conn) Drop() {
	c.wmu.Lock()
	c.sm.lost = true
	c.wmu.Unlock()
	c.raw.Close()
}

// ackTimedOut: the client did not answer an <r/> in time: the connection
// is taken as lost.
func (c *Conn) ackTimedOut() {
	c.wmu.Lock()
	c.sm.lost = true
	c.wmu.Unlock()
	c.log.Debug("timed out waiting for a stream management acknowledgement")
	c.raw.Close()
}

// handleSM takes a stream management element of an established stream.
func (c *Conn) handleSM(el *codec.Element) error {
	ns := stanza.NS(el)
	c.wmu.Lock()
	enabled := c.sm.ns
	c.wmu.Unlock()
	if enabled == "" {
		if el.Name == "enable" {
			return c.smEnable(el, ns)
		}
		return c.smFailed(ns, "unexpected-request", "Stream management is not enabled", nil)
	}
	if ns != enabled {
		return c.smFailed(enabled, "unexpected-request", "Unsupported version", nil)
	}
	switch el.Name {
	case "r":
		c.wmu.Lock()
		h := c.sm.in
		c.wmu.Unlock()
		return c.write(codec.AppendElement(nil, smElement("a", ns, [2]string{"h", strconv.FormatUint(uint64(h), 10)})))
	case "a":
		h, err := strconv.ParseUint(stanza.Attr(el, "h"), 10, 32)
		if err != nil {
			return c.smFailed(ns, "bad-request", "Bad value of attribute 'h' in tag <a/> qualified by namespace '"+ns+"'", nil)
		}
		return c.smAck(uint32(h))
	default:
		return c.smFailed(ns, "unexpected-request", "Stream management is already enabled", nil)
	}
}

// smAck drops what the client acknowledged, and asks again when more
// was sent since the last request.
func (c *Conn) smAck(h uint32) error {
	c.wmu.Lock()
	if h > c.sm.out {
		c.sm.resend = false
		c.wmu.Unlock()
		c.log.Warn("the client acknowledged more stanzas than were sent", "h", h, "sent", c.sm.out)
		return &stream.Error{Condition: "undefined-condition", Text: "Client acknowledged more stanzas than sent by server"}
	}
	i := 0
	for i < len(c.sm.queue) && c.sm.queue[i].n <= h {
		i++
	}
	clear(c.sm.queue[:i])
	c.sm.queue = c.sm.queue[i:]
	if c.sm.ackTimer != nil {
		c.sm.ackTimer.Stop()
		c.sm.ackTimer = nil
		if c.sm.req < c.sm.out && len(c.sm.queue) > 0 {
			c.sm.req = c.sm.out
			if t := c.s.opt.SM.AckTimeout; t > 0 {
				c.sm.ackTimer = time.AfterFunc(t, c.ackTimedOut)
			}
			c.wmu.Unlock()
			return c.write(codec.AppendElement(nil, smElement("r", c.sm.ns)))
		}
	}
	c.wmu.Unlock()
	return nil
}

func (c *Conn) smEnable(el *codec.Element, ns string) error {
	opt := c.s.opt.SM
	resume := stanza.Attr(el, "resume") == "true" || stanza.Attr(el, "resume") == "1"
	timeout := opt.ResumeTimeout
	if max, err := strconv.ParseInt(stanza.Attr(el, "max"), 10, 64); err == nil && max > 0 && time.Duration(max)*time.Second <= opt.MaxResumeTimeout {
		timeout = time.Duration(max) * time.Second
	}
	if !resume {
		timeout = 0
	}
	id := make([]byte, 8)
	rand.Read(id)
	c.wmu.Lock()
	c.sm.ns, c.sm.id, c.sm.timeout = ns, id, timeout
	c.sm.resend = opt.ResendOnTimeout == "true"
	c.wmu.Unlock()
	var enabled *codec.Element
	if timeout > 0 {
		enabled = smElement("enabled", ns, [2]string{"resume", "true"}, [2]string{"max", strconv.FormatInt(int64(timeout/time.Second), 10)},
			[2]string{"id", EncodeResumeID(c.jid.Resource, id)})
	} else {
		enabled = smElement("enabled", ns)
	}
	return c.write(codec.AppendElement(nil, enabled))
}

// EncodeResumeID writes a resumption id as ejabberd does (base64 of
// the Erlang term {Resource, Id}), so that ids ejabberd gave before a
// cutover are read alike.
func EncodeResumeID(resource string, id []byte) string {
	b, _ := term.Encode(term.Tuple{term.Binary(resource), term.Binary(id)})
	return base64.StdEncoding.EncodeToString(b)
}

// DecodeResumeID reads a resumption id.
func DecodeResumeID(s string) (resource string, id []byte, ok bool) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return "", nil, false
	}
	t, err := term.Decode(b)
	if err != nil {
		return "", nil, false
	}
	tu, isTuple := t.(term.Tuple)
	if !isTuple || len(tu) != 2 {
		return "", nil, false
	}
	r, ok1 := tu[0].(term.Binary)
	i, ok2 := tu[1].(term.Binary)
	if !ok1 || !ok2 {
		return "", nil, false
	}
	return string(r), []byte(i), true
}

// ResumeError is why a session cannot be resumed: ejabberd's words, and
// the number of stanzas the old session handled when it is known.
type ResumeError struct {
	Text string
	H    *uint32
}

func (e *ResumeError) Error() string { return e.Text }

// handleResume resumes a session of this user (before binding).
func (c *Conn) handleResume(el *codec.Element) error {
	ns := stanza.NS(el)
	if c.s.opt.SM == nil {
		return nil
	}
	h, err := strconv.ParseUint(stanza.Attr(el, "h"), 10, 32)
	if err != nil {
		return c.smFailed(ns, "bad-request", "Bad value of attribute 'h' in tag <resume/> qualified by namespace '"+ns+"'", nil)
	}
	previd := stanza.Attr(el, "previd")
	resource, id, ok := DecodeResumeID(previd)
	if !ok {
		c.log.Warn("cannot resume the session: invalid previd")
		return c.smFailed(ns, "item-not-found", "Invalid 'previd' value", nil)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	old, err := c.s.opt.Backend.Resume(ctx, c, resource, id)
	if err != nil {
		var re *ResumeError
		if !errors.As(err, &re) {
			re = &ResumeError{Text: "Previous session not found"}
		}
		c.log.Info("cannot resume the session", "reason", re.Text)
		return c.smFailed(ns, "item-not-found", re.Text, re.H)
	}
	// The session is this connection's from now on: what is routed to it
	// waits here (the connection is not routable yet) — then the old
	// connection's counts and what it sent that was not acknowledged.
	c.jid, c.user = old.jid, old.user
	c.s.opt.Backend.Resumed(old, c)
	old.wmu.Lock()
	st := old.sm
	old.sm.queue = nil
	if old.sm.ackTimer != nil {
		old.sm.ackTimer.Stop()
	}
	taken := old.sm.takenBy
	if taken == nil {
		taken = make(chan *Conn, 1)
		old.sm.takenBy = taken
	}
	old.closing = true
	old.wmu.Unlock()
	taken <- c
	old.raw.Close()
	c.bound.Store(true)
	c.state = established
	c.raw.SetReadDeadline(time.Time{})
	c.log = c.log.With("resource", c.jid.Resource)
	c.wmu.Lock()
	c.sm = smState{ns: st.ns, id: st.id, timeout: st.timeout, in: st.in, out: st.out, req: st.out, queue: st.queue, resend: st.resend}
	c.keepalive = time.AfterFunc(c.s.opt.Keepalive, c.sendKeepalive)
	c.wmu.Unlock()
	if uint32(h) > st.out {
		return &stream.Error{Condition: "undefined-condition", Text: "Client acknowledged more stanzas than sent by server"}
	}
	c.wmu.Lock()
	i := 0
	for i < len(c.sm.queue) && c.sm.queue[i].n <= uint32(h) {
		i++
	}
	c.sm.queue = c.sm.queue[i:]
	resent := append([]smItem(nil), c.sm.queue...)
	in := c.sm.in
	queued := c.queued
	c.queued = nil
	c.routable = true
	c.wmu.Unlock()
	c.log.Info("resumed the session", "resent", len(resent))
	if err := c.write(codec.AppendElement(nil, smElement("resumed", ns, [2]string{"previd", previd}, [2]string{"h", strconv.FormatUint(uint64(in), 10)}))); err != nil {
		return err
	}
	for _, it := range resent {
		c.resend(it)
	}
	if err := c.write(codec.AppendElement(nil, smElement("r", ns))); err != nil {
		return err
	}
	// What came while the session moved: sent (and counted) now.
	for _, it := range queued {
		if err := c.enqueue(it); err != nil {
			c.s.opt.Backend.Undelivered(c, it.el)
		}
	}
	return nil
}

// resend writes an unacknowledged stanza again, not queued again, with a
// delay saying it is resent (messages and presence).
func (c *Conn) resend(it smItem) {
	el := it.el
	if el.Name == "message" || el.Name == "presence" {
		el = WithDelay(el, c.host, it.at, "Resent")
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closing {
		return
	}
	c.out = append(c.out, outItem{el: el})
	c.startWriter()
}

// WithDelay adds a <delay/> from the host unless it has one from it
// (misc:add_delay_info).
func WithDelay(el *codec.Element, host string, at time.Time, text string) *codec.Element {
	for _, k := range el.Kids {
		if d, ok := k.(*codec.Element); ok && d.Name == "delay" && stanza.NS(d) == "urn:xmpp:delay" && stanza.Attr(d, "from") == host {
			return el
		}
	}
	out := *el
	d := &codec.Element{Name: "delay", Attrs: [][2]string{{"from", host}, {"stamp", codec.XMPPStamp(at.UnixMicro())}, {"xmlns", "urn:xmpp:delay"}}}
	if text != "" {
		d.Kids = []any{text}
	}
	// As the codec writes it: after the other extensions, before the
	// stanza's own children (body, subject, thread; priority, show,
	// status), which come last.
	pos := len(el.Kids)
	for i, k := range el.Kids {
		if c, ok := k.(*codec.Element); ok && stanza.NS(c) == "" && ownChild[c.Name] {
			pos = i
			break
		}
	}
	out.Kids = make([]any, 0, len(el.Kids)+1)
	out.Kids = append(append(append(out.Kids, el.Kids[:pos]...), d), el.Kids[pos:]...)
	return &out
}

var ownChild = map[string]bool{"body": true, "subject": true, "thread": true, "priority": true, "show": true, "status": true}

// awaitResumption holds a session whose connection was lost while
// stream management with resumption was on: it stays present, what is
// routed to it is kept, until the client resumes it (true: another
// connection has it) or the timeout passes.
func (c *Conn) awaitResumption() bool {
	c.wmu.Lock()
	if c.sm.takenBy != nil {
		taken := c.sm.takenBy
		c.wmu.Unlock()
		<-taken
		return true
	}
	if c.sm.ns == "" || c.sm.timeout == 0 || !c.sm.lost {
		c.wmu.Unlock()
		return false
	}
	c.sm.pending = true
	c.sm.takenBy = make(chan *Conn, 1)
	taken := c.sm.takenBy
	if c.sm.ackTimer != nil {
		c.sm.ackTimer.Stop()
		c.sm.ackTimer = nil
	}
	timeout := c.sm.timeout
	c.wmu.Unlock()
	c.log.Info("connection lost; waiting for the session to be resumed", "timeout", timeout)
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case _, resumed := <-taken:
		if !resumed {
			return false // ended by a takeover from another node, or replaced
		}
		return true
	case <-t.C:
	case <-c.s.closedCh:
	}
	c.wmu.Lock()
	select {
	case _, resumed := <-taken: // resumed (or ended) at the last moment
		c.wmu.Unlock()
		return resumed
	default:
	}
	c.sm.pending = false
	c.sm.takenBy = nil
	c.wmu.Unlock()
	c.log.Info("the session was not resumed in time")
	return false
}

// endPending ends the wait of a pending session without resumption
// (c.wmu held): it was replaced, or taken over from another node.
func (c *Conn) endPending() {
	if c.sm.pending {
		c.sm.pending = false
		close(c.sm.takenBy)
		c.sm.takenBy = nil
	}
}

// ResumableBy reports whether id is the session's resumption id.
func (c *Conn) ResumableBy(id []byte) bool {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.sm.ns != "" && c.sm.timeout > 0 && string(c.sm.id) == string(id) && (c.sm.takenBy == nil || c.sm.pending)
}

// TakeOver ends a session another node's client resumes (which fails
// there): its handled count is returned; what it had not had
// acknowledged is re-routed when it ends. ok is false when id is not
// its resumption id.
func (c *Conn) TakeOver(id []byte) (h uint32, ok bool) {
	c.wmu.Lock()
	if c.sm.ns == "" || string(c.sm.id) != string(id) || c.sm.takenBy != nil && !c.sm.pending {
		c.wmu.Unlock()
		return 0, false
	}
	h = c.sm.in
	c.sm.resend = true
	c.sm.lost = false
	pending := c.sm.pending
	c.endPending()
	c.wmu.Unlock()
	if !pending {
		c.Close("conflict", "Replaced by new connection")
	}
	return h, true
}

// unacked hands what was sent and not acknowledged to the backend when
// the session ends.
func (c *Conn) unacked() {
	c.wmu.Lock()
	items := c.sm.queue
	c.sm.queue = nil
	resend := c.sm.resend
	c.wmu.Unlock()
	if len(items) == 0 {
		return
	}
	if !resend && c.s.opt.SM != nil && c.s.opt.SM.ResendOnTimeout == "if_offline" {
		resend = c.s.opt.Backend.Offline(c)
	}
	for _, it := range items {
		el := it.el
		if el.Name == "message" {
			el = WithDelay(el, c.host, it.at, "Resent")
		}
		c.s.opt.Backend.Unacked(c, el, resend)
	}
}
