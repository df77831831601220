package erldist

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// handshakeResult is what both sides know once a handshake succeeded.
type handshakeResult struct {
	PeerName     string
	PeerFlags    Flags // as the peer offered them, expanded
	Flags        Flags // negotiated: ours AND the peer's
	PeerCreation uint32
	Version      int // 5 or 6: the send_name form the initiator used
}

// Hidden reports whether the negotiated connection is hidden (no PUBLISHED on both sides).
func (r handshakeResult) Hidden() bool { return !r.Flags.Has(FlagPublished) }

// hsConn reads and writes 2-byte-framed handshake messages.
type hsConn struct {
	nc net.Conn
	r  *bufio.Reader
}

func (c *hsConn) write(body []byte) error {
	buf := binary.BigEndian.AppendUint16(make([]byte, 0, 2+len(body)), uint16(len(body)))
	_, err := c.nc.Write(append(buf, body...))
	return err
}

// errTLS is returned when the first reply bytes look like a TLS record.
var errTLS = errors.New("the reply looks like TLS")

func (c *hsConn) read() ([]byte, error) {
	var hdr [2]byte
	if _, err := io.ReadFull(c.r, hdr[:]); err != nil {
		return nil, err
	}
	if (hdr[0] == 0x15 || hdr[0] == 0x16) && hdr[1] == 0x03 {
		return nil, errTLS
	}
	n := int(binary.BigEndian.Uint16(hdr[:]))
	if n == 0 {
		return nil, errors.New("empty handshake message")
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(c.r, body); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("reply of %d bytes ends after %d (not the distribution protocol?)", n, len(body))
		}
		return nil, err
	}
	return body, nil
}

func randomUint32() uint32 {
	var b [4]byte
	rand.Read(b[:])
	return binary.BigEndian.Uint32(b[:])
}

// clientHandshake is the initiator's side, A in the protocol description.
type clientHandshake struct {
	OurName   string
	PeerName  string // the node we dialed; its challenge must carry this name
	Cookie    string
	Creation  uint32
	Flags     Flags
	Version   int  // 5 or 6
	ReplaceIf bool // answer true to status alive (take over a connection the peer thinks is up)
}

// run performs the handshake on nc. r must be the reader the connection will
// go on using: it may already hold the peer's first packets.
func (h clientHandshake) run(ctx context.Context, nc net.Conn, r *bufio.Reader) (handshakeResult, error) {
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Now()) })
	defer stop()
	if dl, ok := ctx.Deadline(); ok {
		nc.SetDeadline(dl)
	}
	c := &hsConn{nc: nc, r: r}
	res := handshakeResult{Version: h.Version}
	node := h.PeerName

	// 1. send_name
	var name []byte
	if h.Version == 5 {
		name = SendNameV5{Version: 5, Flags: uint32(h.Flags | FlagHandshake23), Name: h.OurName}.Encode(nil)
	} else {
		name = SendNameV6{Flags: h.Flags, Creation: h.Creation, Name: h.OurName}.Encode(nil)
	}
	if err := c.write(name); err != nil {
		return res, h.ioErr(err, "sending our name")
	}

	// 2. status
	msg, err := c.read()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return res, h.closedAfterSendName()
		}
		return res, h.ioErr(err, "waiting for the status")
	}
	var st Status
	if err := st.Decode(msg); err != nil {
		return res, h.notDistribution(msg)
	}
	switch st.Status {
	case "ok", "ok_simultaneous":
	case "nok":
		return res, newError(KindSimultaneous, node, "retry in a moment",
			nil, "%s is setting up a connection to us at the same time and won (status nok)", node)
	case "not_allowed":
		return res, newError(KindNotAllowed, node,
			"net_kernel:allow/1 on that node must include our node name, or the node requires distribution features this client lacks",
			nil, "%s does not allow a connection from %s (status not_allowed)", node, h.OurName).withRemedy(RemedyAllowName, "")
	case "alive":
		answer := "false"
		if h.ReplaceIf {
			answer = "true"
		}
		if err := c.write(Status{Status: answer}.Encode(nil)); err != nil {
			return res, h.ioErr(err, "answering status alive")
		}
		if !h.ReplaceIf {
			return res, newError(KindNameInUse, node, "",
				nil, "%s already has a connection from %s (status alive)", node, h.OurName)
		}
	default:
		return res, newError(KindProtocol, node, "", nil, "%s sent unexpected status %q", node, st.Status)
	}

	// 3. challenge
	msg, err = c.read()
	if err != nil {
		return res, h.ioErr(err, "waiting for the challenge")
	}
	var peerChallenge uint32
	switch {
	case len(msg) > 0 && msg[0] == 'N':
		var ch ChallengeV6
		if err := ch.Decode(msg); err != nil {
			return res, newError(KindProtocol, node, "", err, "bad challenge from %s", node)
		}
		res.PeerName, res.PeerFlags, res.PeerCreation, peerChallenge = ch.Name, ch.Flags, ch.Creation, ch.Challenge
	case len(msg) > 0 && msg[0] == 'n':
		var ch ChallengeV5
		if err := ch.Decode(msg); err != nil {
			return res, newError(KindProtocol, node, "", err, "bad challenge from %s", node)
		}
		res.PeerName, res.PeerFlags, peerChallenge = ch.Name, Flags(ch.Flags), ch.Challenge
	case len(msg) > 0 && msg[0] == 's':
		var st Status
		st.Decode(msg)
		return res, newError(KindProtocol, node, "", nil, "%s sent status %q where the challenge was due", node, st.Status)
	default:
		return res, h.notDistribution(msg)
	}
	if res.PeerName != h.PeerName {
		return res, newError(KindNameMismatch, node,
			fmt.Sprintf("use the name the node itself uses: %s", res.PeerName),
			nil, "the node at that address is %s, not %s", res.PeerName, h.PeerName).withRemedy(RemedyPeerName, res.PeerName)
	}
	res.PeerFlags = res.PeerFlags.expand()
	if !res.PeerFlags.Has(legacyRequired) {
		return res, newError(KindProtocol, node, "", nil,
			"%s lacks extended references or pids (flags %s): older than R10", node, res.PeerFlags)
	}
	res.Flags = h.Flags & res.PeerFlags
	if h.Version == 5 && msg[0] == 'N' {
		if err := c.write(Complement{FlagsHigh: uint32(h.Flags >> 32), Creation: h.Creation}.Encode(nil)); err != nil {
			return res, h.ioErr(err, "sending the complement")
		}
	}

	// 4. challenge_reply: prove we know the cookie, and challenge the peer.
	ourChallenge := randomUint32()
	if err := c.write(ChallengeReply{Challenge: ourChallenge, Digest: digest(h.Cookie, peerChallenge)}.Encode(nil)); err != nil {
		return res, h.ioErr(err, "sending our challenge reply")
	}

	// 5. challenge_ack: the peer proves it knows the cookie too.
	msg, err = c.read()
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || isConnReset(err) {
			return res, newError(KindBadCookie, node,
				"use the cookie of the node's service user (e.g. /var/lib/ejabberd/.erlang.cookie), or set "+CookieEnv,
				nil, "%s rejected our cookie", node).withRemedy(RemedyRightCookie, "")
		}
		return res, h.ioErr(err, "waiting for the challenge ack")
	}
	if len(msg) > 0 && msg[0] == 's' {
		var st Status
		st.Decode(msg)
		if st.Status == "not_allowed" {
			return res, newError(KindNotAllowed, node,
				"the node requires distribution flags this client does not offer; report this with the node's OTP version",
				nil, "%s refused the connection after the flag exchange (status not_allowed)", node)
		}
		return res, newError(KindProtocol, node, "", nil, "%s sent status %q instead of the ack", node, st.Status)
	}
	var ack ChallengeAck
	if err := ack.Decode(msg); err != nil {
		return res, newError(KindProtocol, node, "", err, "bad challenge ack from %s", node)
	}
	want := digest(h.Cookie, ourChallenge)
	if subtle.ConstantTimeCompare(ack.Digest[:], want[:]) != 1 {
		return res, newError(KindPeerAuth, node,
			"the peer does not know our cookie: something else answers on that port",
			nil, "%s failed to prove it knows the cookie", node)
	}
	nc.SetDeadline(time.Time{})
	return res, nil
}

func (h clientHandshake) closedAfterSendName() error {
	if h.Version == 5 {
		return newError(KindClosedAfterSendName, h.PeerName,
			"OTP 25.0-25.2 refuse the version 5 handshake: retry with version 6",
			nil, "%s closed the connection after our version 5 send_name", h.PeerName).withRemedy(RemedyVersion6, "")
	}
	return newError(KindClosedAfterSendName, h.PeerName,
		"an OTP older than 23 needs the version 5 handshake; a port that is not an Erlang node does this too",
		nil, "%s closed the connection after our send_name", h.PeerName).withRemedy(RemedyVersion5, "")
}

func (h clientHandshake) notDistribution(msg []byte) error {
	return newError(KindNotDistribution, h.PeerName, "check the distribution port, or whether the node uses TLS distribution",
		nil, "the port does not speak the Erlang distribution protocol (got %s)", describeHandshakeMsg(msg)).withRemedy(RemedyDistPortOrTLS, "")
}

func (h clientHandshake) ioErr(err error, doing string) error {
	switch {
	case errors.Is(err, errTLS):
		return newError(KindNotDistribution, h.PeerName,
			"the node uses TLS distribution (-proto_dist inet_tls), which mimmigrate does not speak yet",
			nil, "%s answered with TLS", h.PeerName)
	case isTimeout(err):
		return newError(KindTimeout, h.PeerName,
			"the port accepted the connection but never answered: is it really the node's distribution port?",
			nil, "handshake with %s timed out %s", h.PeerName, doing)
	case errors.Is(err, io.EOF), isConnReset(err):
		return newError(KindConnectionLost, h.PeerName, "", nil, "%s closed the connection while %s", h.PeerName, doing)
	}
	return newError(KindNotDistribution, h.PeerName, "check the distribution port", err, "handshake with %s failed while %s", h.PeerName, doing).withRemedy(RemedyDistPort, "")
}

func isConnReset(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && !op.Timeout() && op.Op == "read"
}

// serverHandshake is the accepting side, B in the protocol description.
type serverHandshake struct {
	OurName  string
	Cookie   string
	Creation uint32
	Flags    Flags
	// Status decides the status sent to an initiator ("ok" when nil),
	// given its name and creation (0 when a version 5 send_name has none).
	Status func(peer string, creation uint32) string
}

func (h serverHandshake) run(ctx context.Context, nc net.Conn, r *bufio.Reader) (handshakeResult, error) {
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Now()) })
	defer stop()
	if dl, ok := ctx.Deadline(); ok {
		nc.SetDeadline(dl)
	}
	c := &hsConn{nc: nc, r: r}
	var res handshakeResult

	msg, err := c.read()
	if err != nil {
		return res, fmt.Errorf("reading send_name: %w", err)
	}
	switch {
	case len(msg) > 0 && msg[0] == 'N':
		var sn SendNameV6
		if err := sn.Decode(msg); err != nil {
			return res, err
		}
		res.PeerName, res.PeerFlags, res.PeerCreation, res.Version = sn.Name, sn.Flags, sn.Creation, 6
	case len(msg) > 0 && msg[0] == 'n':
		var sn SendNameV5
		if err := sn.Decode(msg); err != nil {
			return res, err
		}
		res.PeerName, res.PeerFlags, res.Version = sn.Name, Flags(sn.Flags), 5
	default:
		return res, fmt.Errorf("expected send_name, got %s", describeHandshakeMsg(msg))
	}
	status := "ok"
	if h.Status != nil {
		status = h.Status(res.PeerName, res.PeerCreation)
	}
	if err := c.write(Status{Status: status}.Encode(nil)); err != nil {
		return res, err
	}
	switch status {
	case "ok", "ok_simultaneous":
	case "alive":
		msg, err := c.read()
		if err != nil {
			return res, err
		}
		var st Status
		if err := st.Decode(msg); err != nil || st.Status != "true" {
			return res, fmt.Errorf("%s declined to replace its connection", res.PeerName)
		}
	default:
		return res, fmt.Errorf("refused %s with status %s", res.PeerName, status)
	}

	ourChallenge := randomUint32()
	newStyle := res.Version == 6 || res.PeerFlags.Has(FlagHandshake23)
	if newStyle {
		err = c.write(ChallengeV6{Flags: h.Flags, Challenge: ourChallenge, Creation: h.Creation, Name: h.OurName}.Encode(nil))
	} else {
		err = c.write(ChallengeV5{Version: 5, Flags: uint32(h.Flags), Challenge: ourChallenge, Name: h.OurName}.Encode(nil))
	}
	if err != nil {
		return res, err
	}
	if res.Version == 5 && newStyle {
		msg, err := c.read()
		if err != nil {
			return res, fmt.Errorf("reading complement: %w", err)
		}
		var cm Complement
		if err := cm.Decode(msg); err != nil {
			return res, err
		}
		res.PeerFlags |= Flags(cm.FlagsHigh) << 32
		res.PeerCreation = cm.Creation
	}
	res.PeerFlags = res.PeerFlags.expand()
	res.Flags = h.Flags & res.PeerFlags

	msg, err = c.read()
	if err != nil {
		return res, fmt.Errorf("reading challenge reply: %w", err)
	}
	var reply ChallengeReply
	if err := reply.Decode(msg); err != nil {
		return res, err
	}
	want := digest(h.Cookie, ourChallenge)
	if subtle.ConstantTimeCompare(reply.Digest[:], want[:]) != 1 {
		// Like Erlang: say nothing and close.
		return res, fmt.Errorf("connection attempt from %s rejected: invalid challenge reply", res.PeerName)
	}
	if err := c.write(ChallengeAck{Digest: digest(h.Cookie, reply.Challenge)}.Encode(nil)); err != nil {
		return res, err
	}
	nc.SetDeadline(time.Time{})
	return res, nil
}
