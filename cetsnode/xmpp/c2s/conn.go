package c2s

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mimmigrate/mimmigrate/cetsnode/xmpp/config"
	"github.com/mimmigrate/mimmigrate/cetsnode/xmpp/jid"
	"github.com/mimmigrate/mimmigrate/cetsnode/xmpp/sasl"
	"github.com/mimmigrate/mimmigrate/cetsnode/xmpp/stanza"
	"github.com/mimmigrate/mimmigrate/cetsnode/xmpp/stream"
	"github.com/mimmigrate/mimmigrate/migrate/codec"
)

type state int

const (
	waitStartTLS state = iota
	waitSASL
	waitSASLResponse
	waitBind
	established
)

// StanzaError is a stanza error a Backend answers with.
type StanzaError = stanza.Error

// Conn is one client connection.
type Conn struct {
	s       *Service
	raw     net.Conn // the TCP connection
	nc      net.Conn // raw, or TLS over it
	tlsConn *tls.Conn
	// ws: XMPP over WebSocket (no STARTTLS); secure: over the HTTP
	// listener's TLS.
	ws, secure bool
	served     func() *tls.Certificate
	br         *bufio.Reader
	rd         *stream.Reader
	ip         netip.Addr
	listener   config.Listener
	log        *slog.Logger
	started    time.Time
	sid        uint64
	done       chan struct{}

	// Written by the reader goroutine; read by others only once bound.
	state    state
	host     string
	streamID string
	lang     string
	mech     string
	conv     sasl.Conversation
	offered  []string
	user     string
	jid      jid.JID
	bound    atomic.Bool

	wmu      sync.Mutex // guards what follows
	routable bool       // the bind result is written: routed stanzas go out
	queued   []outItem  // routed before that
	// Once routable, stanzas wait in out for a writer goroutine, started
	// when out turns non-empty and gone when it is empty again: whoever
	// routes a stanza here (another session, a message from another
	// node) never waits for this client's socket, and what piles up
	// goes out in one write.
	out        []outItem
	writing    bool
	writers    sync.WaitGroup // the writer, waited for before the socket closes
	maxOut     int            // max_fsm_queue
	headerSent bool
	closing    bool
	keepalive  *time.Timer
	closeOnce  sync.Once
	sock       sync.Mutex // one write on the connection at a time
	endReason  string     // why the stream ended, worded as ejabberd's c2s
	sm         smState
}

// EndReason says why the stream ended, as ejabberd words it in the last
// activity it stores ("Stream reset by peer", "Connection failed:
// connection closed", "Stream closed by local host: …").
func (c *Conn) EndReason() string {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.endReason == "" {
		return "Connection failed: connection closed"
	}
	return c.endReason
}

func (c *Conn) setEndReason(r string) {
	if c.endReason == "" {
		c.endReason = r
	}
}

// JID is the bound session's full JID.
func (c *Conn) JID() jid.JID { return c.jid }

// Host is the stream's virtual host.
func (c *Conn) Host() string { return c.host }

// User is the authenticated user's local part ("" before SASL).
func (c *Conn) User() string { return c.user }

// IP is the client's address.
func (c *Conn) IP() netip.Addr { return c.ip }

// Lang is the stream's language.
func (c *Conn) Lang() string { return c.lang }

// Started is when the client connected.
func (c *Conn) Started() time.Time { return c.started }

// Encrypted reports whether the stream runs over TLS.
func (c *Conn) Encrypted() bool { return c.tlsConn != nil || c.secure }

// WebSocket reports whether the client came over WebSocket (RFC 7395).
func (c *Conn) WebSocket() bool { return c.ws }

// Mechanism is the SASL mechanism the client authenticated with.
func (c *Conn) Mechanism() string { return c.mech }

// Done is closed when the connection has ended.
func (c *Conn) Done() <-chan struct{} { return c.done }

// outItem is output waiting: a stanza routed to the session (handed to
// the backend if it is not written), or anything else.
type outItem struct {
	el     *codec.Element
	b      []byte
	routed bool
	last   bool // the end of the stream
}

func (it outItem) append(dst []byte) []byte {
	if it.el != nil {
		return codec.AppendElement(dst, it.el)
	}
	return append(dst, it.b...)
}

// Send writes a stanza to the client.
func (c *Conn) Send(el *codec.Element) error {
	c.s.Stats.StanzasOut.Add(1)
	return c.enqueue(outItem{el: el})
}

var errClosing = errors.New("the connection is closing")

// ErrClosed is what Route returns for a connection that is closing.
var ErrClosed = errClosing

var errOverflow = errors.New("the client's output queue is full")

// Route sends a stanza routed to the session (one that arrives before
// the bind result is written follows it). It does not wait for the
// client: the stanza is queued. It fails once the connection is
// closing, or when max_fsm_queue stanzas are already waiting (then the
// connection is closed): the caller treats the stanza as undeliverable.
// A queued stanza that is never written goes to Backend.Undelivered.
func (c *Conn) Route(el *codec.Element) error {
	err := c.enqueue(outItem{el: el, routed: true})
	if err == nil {
		c.s.Stats.StanzasOut.Add(1)
	}
	return err
}

func (c *Conn) write(b []byte) error { return c.enqueue(outItem{b: b}) }

// enqueue writes at once during negotiation (from the reader goroutine,
// which waits for it); once the session is routable it queues for the
// writer.
func (c *Conn) enqueue(it outItem) error {
	c.wmu.Lock()
	if c.sm.pending && isStanza(it.el) {
		// Kept for the client that resumes the session.
		c.smAdd(it.el)
		c.wmu.Unlock()
		return nil
	}
	if c.closing {
		c.wmu.Unlock()
		return errClosing
	}
	if !c.routable {
		var err error
		if it.routed {
			c.queued = append(c.queued, it)
		} else {
			err = c.writeLocked(it.append(nil))
		}
		c.wmu.Unlock()
		return err
	}
	if len(c.out) >= c.maxOut {
		left := c.out
		c.out = nil
		c.wmu.Unlock()
		c.log.Warn("the client does not read its stream: output queue full, closing", "queued", len(left))
		c.undelivered(left)
		c.Close("policy-violation", "Too many unread stanzas")
		return errOverflow
	}
	c.out = append(c.out, it)
	if c.sm.ns != "" && isStanza(it.el) {
		if c.smAdd(it.el) {
			c.out = append(c.out, outItem{el: smElement("r", c.sm.ns)})
		}
		if c.sm.exceeded {
			c.sm.resend = false
			c.startWriter()
			c.wmu.Unlock()
			c.Close("policy-violation", "Too many unacked stanzas")
			return nil
		}
	}
	c.startWriter()
	c.wmu.Unlock()
	return nil
}

// startWriter starts the writer unless it runs (c.wmu held).
func (c *Conn) startWriter() {
	if !c.writing {
		c.writing = true
		c.writers.Add(1)
		go c.drain()
	}
}

// drain writes what is queued, batch after batch, until the queue is
// empty; after the end of the stream it closes the writing side.
func (c *Conn) drain() {
	defer c.writers.Done()
	var buf []byte
	var batch []outItem
	for {
		c.wmu.Lock()
		if len(c.out) == 0 {
			c.writing = false
			c.wmu.Unlock()
			return
		}
		batch, c.out = c.out, batch[:0]
		if c.keepalive != nil && !c.closing {
			c.keepalive.Reset(c.s.opt.Keepalive)
		}
		c.wmu.Unlock()
		buf = buf[:0]
		last := false
		for _, it := range batch {
			buf = it.append(buf)
			last = last || it.last
		}
		if err := c.sockWrite(buf); err != nil {
			c.wmu.Lock()
			c.closing = true
			rest := c.out
			c.out = nil
			c.writing = false
			c.wmu.Unlock()
			c.raw.Close()
			c.undelivered(batch)
			c.undelivered(rest)
			return
		}
		if last {
			// Let the peer read the end, then the connection ends.
			if tc, ok := c.raw.(*net.TCPConn); ok {
				tc.CloseWrite()
			}
		}
		clear(batch)
		if cap(buf) > 1<<20 {
			buf = nil
		}
	}
}

// undelivered hands routed stanzas that were not written to the backend
// (with stream management, those wait for an acknowledgement instead).
func (c *Conn) undelivered(items []outItem) {
	c.wmu.Lock()
	sm := c.sm.ns != ""
	c.wmu.Unlock()
	if sm {
		return
	}
	for _, it := range items {
		if it.routed {
			c.s.opt.Backend.Undelivered(c, it.el)
		}
	}
}

// writeLocked writes at once (c.wmu held).
func (c *Conn) writeLocked(b []byte) error {
	if c.closing {
		return errClosing
	}
	if err := c.sockWrite(b); err != nil {
		c.closing = true
		c.raw.Close()
		return err
	}
	if c.keepalive != nil {
		c.keepalive.Reset(c.s.opt.Keepalive)
	}
	return nil
}

func (c *Conn) sockWrite(b []byte) error {
	c.sock.Lock()
	defer c.sock.Unlock()
	c.nc.SetWriteDeadline(time.Now().Add(c.s.opt.WriteTimeout))
	_, err := c.nc.Write(b)
	return err
}

// Close ends the stream with a stream error (condition "" ends it
// without one), from any goroutine.
func (c *Conn) Close(condition, text string) {
	c.closeOnce.Do(func() {
		c.wmu.Lock()
		defer c.wmu.Unlock()
		if c.closing {
			return
		}
		c.endPending()
		switch {
		case condition != "" && text != "":
			c.setEndReason("Stream closed by local host: " + text + " (" + condition + ")")
		case condition != "":
			c.setEndReason("Stream closed by local host: " + condition)
		}
		// What is queued goes out first, then the end of the stream, by
		// the writer: nobody waits here for a client that does not read.
		var b []byte
		if !c.headerSent {
			b = stream.AppendHeader(b, newStreamID(), "1.0", c.lang, c.host)
		}
		if condition != "" {
			b = stream.AppendError(b, &stream.Error{Condition: condition, Text: text}, c.lang)
		}
		b = append(b, stream.Close...)
		c.closing = true
		if c.keepalive != nil {
			c.keepalive.Stop()
		}
		c.out = append(c.out, outItem{b: b, last: true})
		c.startWriter()
		c.raw.SetReadDeadline(time.Now().Add(2 * time.Second))
	})
}

// serve runs the connection until it ends.
func (c *Conn) serve() {
	defer func() {
		if c.bound.Load() && c.awaitResumption() {
			// Another connection has the session.
			c.wmu.Lock()
			c.closing = true
			if c.keepalive != nil {
				c.keepalive.Stop()
			}
			c.wmu.Unlock()
			c.writers.Wait()
			c.raw.Close()
			c.s.forget(c)
			close(c.done)
			return
		}
		if c.bound.Load() {
			c.s.opt.Backend.Unbind(c)
			c.unacked()
		}
		c.wmu.Lock()
		c.closing = true
		if c.keepalive != nil {
			c.keepalive.Stop()
		}
		left := c.queued
		c.queued = nil
		c.wmu.Unlock()
		c.undelivered(left)
		c.writers.Wait() // the end of the stream goes out first
		c.raw.Close()
		c.s.forget(c)
		close(c.done)
	}()
	c.raw.SetReadDeadline(c.started.Add(c.s.opt.NegotiationTimeout))
	if c.listener.TLS {
		if err := c.startTLS(c.s.opt.Hosts[0]); err != nil {
			c.log.Debug("TLS handshake failed", "err", err)
			return
		}
	} else {
		c.br = bufio.NewReaderSize(c.nc, 4096)
	}
	for {
		restart, err := c.runStream()
		if err != nil || !restart {
			c.end(err)
			return
		}
	}
}

// end reacts to what ended the stream.
func (c *Conn) end(err error) {
	var se *stream.Error
	var ne net.Error
	switch {
	case err == nil:
	case errors.Is(err, stream.ErrEnd):
		c.wmu.Lock()
		c.setEndReason("Stream reset by peer")
		c.wmu.Unlock()
		c.Close("", "")
	case errors.As(err, &se):
		c.Close(se.Condition, se.Text)
	case errors.As(err, &ne) && ne.Timeout() && !c.bound.Load():
		c.Close("connection-timeout", "Idle connection")
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed), errors.Is(err, errClosing):
		c.lostConnection()
	default:
		c.log.Debug("connection ended", "err", err)
		c.lostConnection()
	}
}

// lostConnection: the connection ended without a stream end or error
// (a session with stream management may then be resumed).
func (c *Conn) lostConnection() {
	c.wmu.Lock()
	if !c.closing || c.sm.lost {
		c.sm.lost = true
	}
	c.wmu.Unlock()
}

// runStream reads one stream (until a restart after STARTTLS or SASL).
func (c *Conn) runStream() (restart bool, err error) {
	c.rd = stream.NewReader(c.br, stream.Limits{MaxStanzaSize: c.listener.MaxStanzaSize})
	h, err := c.rd.Header()
	if err != nil {
		return false, err
	}
	if err := c.streamStart(h); err != nil {
		return false, err
	}
	for {
		el, err := c.rd.Next()
		if err != nil {
			return false, err
		}
		restart, err := c.element(el)
		if err != nil || restart {
			return restart, err
		}
	}
}

// streamStart checks a stream header and answers with ours and the
// features, as ejabberd's xmpp_stream_in does.
func (c *Conn) streamStart(h stream.Header) error {
	if h.Lang != "" && len(h.Lang) <= 35 {
		c.lang = h.Lang
	}
	version := "1.0"
	if h.Version == "" {
		version = ""
	}
	c.streamID = newStreamID()
	if c.host == "" {
		host := h.To
		if j, err := jid.Parse(h.To); err == nil && j.Local == "" && j.Resource == "" {
			host = j.Domain
		}
		c.host = host
	}
	c.wmu.Lock()
	c.headerSent = true
	err := c.writeLocked(stream.AppendHeader(nil, c.streamID, version, c.lang, c.host))
	c.wmu.Unlock()
	if err != nil {
		return err
	}
	switch {
	case h.NS != stream.NSClient:
		return &stream.Error{Condition: "invalid-namespace"}
	case version == "" || !strings.HasPrefix(h.Version, "1."):
		return &stream.Error{Condition: "unsupported-version", Text: "XMPP 1.0 is required"}
	case len(h.Lang) > 35:
		return &stream.Error{Condition: "policy-violation", Text: "Too long value of 'xml:lang' attribute"}
	case h.To == "":
		return &stream.Error{Condition: "improper-addressing", Text: "Missing 'to' attribute"}
	}
	if j, err := jid.Parse(h.To); err != nil || j.Local != "" || j.Resource != "" {
		return &stream.Error{Condition: "improper-addressing", Text: "Improper 'to' attribute"}
	}
	if !c.servesHost() {
		return &stream.Error{Condition: "host-unknown"}
	}
	if txt := c.s.bans.banned(c.ip, time.Now()); txt != "" {
		c.s.Stats.Throttled.Add(1)
		c.log.Warn("connection from a banned address", "ip", c.ip.String())
		return &stream.Error{Condition: "policy-violation", Text: txt}
	}
	features := &codec.Element{Name: "stream:features"}
	switch {
	case c.user != "":
		features.Kids = append(features.Kids,
			&codec.Element{Name: "bind", Attrs: [][2]string{{"xmlns", stream.NSBind}}},
			&codec.Element{Name: "session", Attrs: [][2]string{{"xmlns", stream.NSSession}}, Kids: []any{&codec.Element{Name: "optional"}}})
		if c.s.opt.SM != nil {
			features.Kids = append(features.Kids, smElement("sm", NSSM2), smElement("sm", NSSM3))
		}
		for _, f := range c.s.opt.Backend.Features(c) {
			features.Kids = append(features.Kids, f)
		}
		c.state = waitBind
	case c.tlsConn == nil && c.listener.StartTLSRequired:
		features.Kids = append(features.Kids, &codec.Element{Name: "starttls", Attrs: [][2]string{{"xmlns", stream.NSTLS}},
			Kids: []any{&codec.Element{Name: "required"}}})
		c.state = waitStartTLS
	default:
		c.offered = c.s.opt.Policy.Mechanisms(c.tlsConn != nil || c.secure)
		if c.ws {
			// A WebSocket client (a browser) has no access to the TLS
			// channel: no channel binding, as ejabberd_http_ws offers.
			c.offered = slices.DeleteFunc(slices.Clone(c.offered), func(m string) bool { return strings.HasSuffix(m, "-PLUS") })
		}
		mechs := &codec.Element{Name: "mechanisms", Attrs: [][2]string{{"xmlns", stream.NSSASL}}}
		for _, m := range c.offered {
			mechs.Kids = append(mechs.Kids, &codec.Element{Name: "mechanism", Kids: []any{m}})
		}
		features.Kids = append(features.Kids, mechs)
		if c.tlsConn == nil && !c.ws {
			features.Kids = append(features.Kids, &codec.Element{Name: "starttls", Attrs: [][2]string{{"xmlns", stream.NSTLS}}})
		} else if cbs := sasl.ChannelBindings(c.tlsInfo()); len(cbs) > 0 {
			// XEP-0440: the channel-binding types -PLUS can use here.
			cb := &codec.Element{Name: "sasl-channel-binding", Attrs: [][2]string{{"xmlns", "urn:xmpp:sasl-cb:0"}}}
			for _, t := range cbs {
				cb.Kids = append(cb.Kids, &codec.Element{Name: "channel-binding", Attrs: [][2]string{{"type", t}}})
			}
			features.Kids = append(features.Kids, cb)
		}
		c.state = waitSASL
	}
	return c.write(codec.AppendElement(nil, features))
}

func (c *Conn) servesHost() bool {
	for _, h := range c.s.opt.Hosts {
		if h == c.host {
			return true
		}
	}
	return false
}

func (c *Conn) tlsInfo() sasl.TLS {
	if c.tlsConn == nil {
		return sasl.TLS{}
	}
	st := c.tlsConn.ConnectionState()
	info := sasl.TLS{State: &st}
	if cert := c.served(); cert != nil && len(cert.Certificate) > 0 {
		info.Certificate = cert.Certificate[0]
	}
	return info
}

// element handles one top-level element; restart says the stream starts
// over (after STARTTLS or SASL success).
func (c *Conn) element(el *codec.Element) (restart bool, err error) {
	c.s.Stats.StanzasIn.Add(1)
	ns := stanza.NS(el)
	switch {
	case el.Name == "starttls" && ns == stream.NSTLS:
		return c.handleStartTLS()
	case (el.Name == "auth" || el.Name == "response" || el.Name == "abort") && ns == stream.NSSASL:
		return c.handleSASL(el)
	case el.Name == "stream:error":
		return false, stream.ErrEnd
	case isSMNS(ns) && c.s.opt.SM != nil:
		switch {
		case c.state == waitBind && el.Name == "resume":
			return false, c.handleResume(el)
		case c.state != established:
			// ejabberd answers, and the stream goes on.
			return false, c.smFailed(NSSM3, "not-authorized", "Unauthorized", nil)
		}
		return false, c.handleSM(el)
	}
	switch c.state {
	case waitStartTLS:
		return false, &stream.Error{Condition: "policy-violation", Text: "Use of STARTTLS required"}
	case waitSASL, waitSASLResponse:
		return false, &stream.Error{Condition: "not-authorized"}
	case waitBind:
		return false, c.handleBind(el)
	}
	return false, c.handleEstablished(el)
}

func (c *Conn) handleStartTLS() (bool, error) {
	if c.tlsConn != nil || c.ws || (c.state != waitStartTLS && c.state != waitSASL) {
		c.write([]byte("<failure xmlns='" + stream.NSTLS + "'/>"))
		return false, stream.ErrEnd
	}
	if err := c.write([]byte("<proceed xmlns='" + stream.NSTLS + "'/>")); err != nil {
		return false, err
	}
	if n := c.rd.Buffered(); n > 0 {
		// Bytes sent before the TLS handshake would be taken as if they
		// came over TLS (CVE-2011-1431 and its kin). Whitespace is what
		// some clients send after <starttls/> ("\n"): it is dropped.
		b, _ := c.br.Peek(n)
		if len(strings.TrimSpace(string(b))) > 0 {
			c.log.Warn("plaintext after <starttls/>: closing")
			c.raw.Close()
			return false, io.EOF
		}
		c.br.Discard(n)
	}
	if err := c.startTLS(c.host); err != nil {
		c.log.Debug("TLS handshake failed", "err", err)
		return false, io.EOF
	}
	return true, nil
}

func (c *Conn) startTLS(host string) error {
	cfg, served := c.s.opt.Certs.TLSConfig(host)
	tc := tls.Server(&skipSpace{Conn: c.raw}, cfg)
	ctx, cancel := context.WithDeadline(context.Background(), c.started.Add(c.s.opt.NegotiationTimeout))
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		return err
	}
	c.wmu.Lock()
	c.tlsConn, c.nc, c.served, c.headerSent = tc, tc, served, false
	c.wmu.Unlock()
	c.br = bufio.NewReaderSize(tc, 4096)
	return nil
}

// handleSASL runs auth, response and abort as xmpp_stream_in does.
func (c *Conn) handleSASL(el *codec.Element) (bool, error) {
	fail := func(f *sasl.Failure) (bool, error) {
		return false, c.saslFailure(f)
	}
	switch {
	case c.state == waitStartTLS:
		return fail(&sasl.Failure{Condition: "encryption-required"})
	case c.user != "" || c.state == waitBind || c.state == established:
		return fail(&sasl.Failure{Condition: "not-authorized", Text: "SASL negotiation is not allowed in this state"})
	}
	var in []byte
	switch el.Name {
	case "abort":
		if c.state != waitSASLResponse {
			return false, c.write([]byte("<failure xmlns='" + stream.NSSASL + "'><aborted/></failure>"))
		}
		return fail(&sasl.Failure{Condition: "aborted"})
	case "auth":
		c.mech = stanza.Attr(el, "mechanism")
		conv, err := (&sasl.Server{Lookup: func(ctx context.Context, user string) (sasl.Credentials, error) {
			return c.s.opt.Backend.Credentials(ctx, c.host, user)
		}, Secret: c.s.opt.Secret, Host: c.host}).Start(c.mech, c.offered, c.tlsInfo())
		if err != nil {
			f := &sasl.Failure{Condition: "invalid-mechanism"}
			errors.As(err, &f)
			return fail(f)
		}
		c.conv = conv
	case "response":
		if c.state != waitSASLResponse {
			return fail(&sasl.Failure{Condition: "not-authorized", Text: "SASL negotiation is not allowed in this state"})
		}
	}
	text := strings.TrimSpace(el.Text())
	if text != "=" {
		b, err := base64.StdEncoding.DecodeString(text)
		if err != nil {
			return fail(&sasl.Failure{Condition: "incorrect-encoding"})
		}
		in = b
	}
	ctx, cancel := context.WithDeadline(context.Background(), c.started.Add(c.s.opt.NegotiationTimeout))
	defer cancel()
	out, done, err := c.conv.Step(ctx, in)
	if err != nil {
		var f *sasl.Failure
		if !errors.As(err, &f) {
			f = &sasl.Failure{Condition: "temporary-auth-failure"}
		}
		return fail(f)
	}
	if !done {
		c.state = waitSASLResponse
		return false, c.write([]byte("<challenge xmlns='" + stream.NSSASL + "'>" + base64.StdEncoding.EncodeToString(out) + "</challenge>"))
	}
	c.user = c.conv.User()
	c.conv = nil
	c.s.bans.succeeded(c.ip)
	c.s.Stats.login(c.mech, true)
	c.log = c.log.With("jid", c.user+"@"+c.host)
	c.log.Info("authenticated", "mechanism", c.mech)
	success := "<success xmlns='" + stream.NSSASL + "'/>"
	if len(out) > 0 {
		success = "<success xmlns='" + stream.NSSASL + "'>" + base64.StdEncoding.EncodeToString(out) + "</success>"
	}
	c.wmu.Lock()
	c.headerSent = false
	err = c.writeLocked([]byte(success))
	c.wmu.Unlock()
	return err == nil, err
}

// saslFailure sends a failure, counts it for mod_fail2ban, and ends the
// stream when the address has failed too often.
func (c *Conn) saslFailure(f *sasl.Failure) error {
	c.conv = nil
	if c.state == waitSASLResponse {
		c.state = waitSASL
	}
	failure := &codec.Element{Name: "failure", Attrs: [][2]string{{"xmlns", stream.NSSASL}}, Kids: []any{&codec.Element{Name: f.Condition}}}
	if f.Text != "" {
		failure.Kids = append(failure.Kids, &codec.Element{Name: "text", Attrs: [][2]string{{"xml:lang", c.lang}}, Kids: []any{f.Text}})
	}
	if err := c.write(codec.AppendElement(nil, failure)); err != nil {
		return err
	}
	if f.Condition == "encryption-required" || f.Condition == "temporary-auth-failure" {
		return nil
	}
	c.s.Stats.login(c.mech, false)
	c.log.Info("authentication failed", "mechanism", c.mech, "user", f.User, "reason", f.Condition)
	if txt := c.s.bans.failed(c.ip, time.Now()); txt != "" {
		c.s.Stats.Throttled.Add(1)
		c.log.Warn("too many failed authentications: disconnecting", "ip", c.ip.String())
		return &stream.Error{Condition: "policy-violation", Text: txt}
	}
	return nil
}

// handleBind binds a resource (RFC 6120 §7); anything else before that is
// not authorized.
func (c *Conn) handleBind(el *codec.Element) error {
	if el.Name != "iq" || stanza.Attr(el, "type") != "set" || stanza.Payload(el) == nil ||
		stanza.Payload(el).Name != "bind" || stanza.NS(stanza.Payload(el)) != stream.NSBind {
		if el.Name == "iq" && !stanza.IsError(el) {
			return c.Send(stanza.ErrorReply(el, stanza.NewError("not-authorized", ""), c.lang))
		}
		return nil
	}
	resource := ""
	if r := stanza.Payload(el).Child("resource"); r != nil {
		resource = strings.TrimSpace(r.Text())
	}
	if resource != "" {
		prepped, err := jid.Resourceprep(resource)
		if err != nil || prepped == "" {
			return c.Send(stanza.ErrorReply(el, stanza.NewError("bad-request", "Malformed resource"), c.lang))
		}
		resource = prepped
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.s.opt.WriteTimeout)
	defer cancel()
	full, serr := c.s.opt.Backend.Bind(ctx, c, resource)
	if serr != nil {
		return c.Send(stanza.ErrorReply(el, serr, c.lang))
	}
	c.jid = full
	c.bound.Store(true)
	c.state = established
	c.raw.SetReadDeadline(time.Time{})
	c.log = c.log.With("resource", full.Resource)
	c.wmu.Lock()
	c.keepalive = time.AfterFunc(c.s.opt.Keepalive, c.sendKeepalive)
	c.wmu.Unlock()
	reply := &codec.Element{Name: "iq", Attrs: [][2]string{{"type", "result"}, {"id", stanza.Attr(el, "id")}}, Kids: []any{
		&codec.Element{Name: "bind", Attrs: [][2]string{{"xmlns", stream.NSBind}}, Kids: []any{
			&codec.Element{Name: "jid", Kids: []any{full.String()}}}}}}
	err := c.Send(reply)
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.routable = true
	if len(c.queued) > 0 && !c.closing {
		c.out = append(c.out, c.queued...)
		c.queued = nil
		c.startWriter()
	}
	return err
}

func (c *Conn) sendKeepalive() {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if !c.closing && !c.writing {
		c.out = append(c.out, outItem{b: []byte(" ")})
		c.startWriter()
	}
}

// handleEstablished addresses a stanza of a bound session (from must be
// the session's JID, or its bare JID; to defaults to the bare JID) and
// hands it to the backend; the legacy session IQ is answered here.
func (c *Conn) handleEstablished(el *codec.Element) error {
	if (el.Name == "active" || el.Name == "inactive") && stanza.NS(el) == "urn:xmpp:csi:0" {
		c.s.opt.Backend.CSI(c, el.Name == "active")
		return nil
	}
	if _, ok := stanza.Kind(el); !ok {
		c.log.Debug("unknown element ignored", "name", el.Name)
		return nil
	}
	c.wmu.Lock()
	if c.sm.ns != "" {
		c.sm.in++
	}
	taken := c.sm.takenBy != nil && !c.sm.pending
	c.wmu.Unlock()
	if taken {
		return nil // the session is another connection's now
	}
	if from := stanza.Attr(el, "from"); from != "" {
		f, err := jid.Parse(from)
		if err != nil || f.Local != c.jid.Local || f.Domain != c.jid.Domain || (f.Resource != "" && f.Resource != c.jid.Resource) {
			return &stream.Error{Condition: "invalid-from", Text: "Improper 'from' attribute"}
		}
	}
	to := c.jid.Bare()
	if t := stanza.Attr(el, "to"); t != "" {
		j, err := jid.Parse(t)
		if err != nil {
			if stanza.IsError(el) {
				return nil
			}
			return c.Send(stanza.ErrorReply(stanza.Address(el, c.lang, c.jid.Domain, c.jid.String()), stanza.NewError("jid-malformed", "Malformed jid in 'to' attribute"), c.lang))
		}
		to = j
	}
	lang := stanza.Attr(el, "xml:lang")
	if lang == "" {
		lang = c.lang
	}
	canon, err := stanza.Canonical(el, to.String(), c.jid.String(), lang)
	if err != nil {
		if stanza.IsError(el) {
			return nil
		}
		text := err.Error()
		var se *codec.StanzaError
		if !errors.As(err, &se) {
			text = ""
		}
		return c.Send(stanza.RawError(el, stanza.NewError("bad-request", text), lang))
	}
	el = canon
	if el.Name == "iq" && stanza.Attr(el, "type") == "set" {
		if p := stanza.Payload(el); p != nil && p.Name == "session" && stanza.NS(p) == stream.NSSession {
			// ejabberd answers from the server.
			return c.Send(stanza.Result(stanza.Address(el, c.lang, c.jid.Domain, c.jid.String()), c.lang))
		}
	}
	c.s.opt.Backend.Handle(c, el)
	return nil
}

// skipSpace drops whitespace the client sends after <starttls/> and
// before its TLS handshake.
type skipSpace struct {
	net.Conn
	started bool
}

func (s *skipSpace) Read(p []byte) (int, error) {
	for {
		n, err := s.Conn.Read(p)
		if s.started || n == 0 {
			return n, err
		}
		i := 0
		for i < n && (p[i] == ' ' || p[i] == '\n' || p[i] == '\r' || p[i] == '\t') {
			i++
		}
		if i < n {
			s.started = true
			copy(p, p[i:n])
			return n - i, err
		}
		if err != nil {
			return 0, err
		}
	}
}
