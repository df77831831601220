package erldist

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
)

// Kind classifies a failure so that the CLI can give a diagnosis and a hint.
type Kind int

// Failure kinds.
const (
	KindOther               Kind = iota
	KindBadName                  // the node name given is not name@host
	KindHostNotFound             // the host name does not resolve
	KindUnreachable              // no answer from the host (timeout, no route)
	KindNoEPMD                   // nothing listens on the epmd port
	KindNotEPMD                  // something listens there, but it is not epmd
	KindNotRegistered            // epmd answers, but the node is not registered
	KindRefused                  // the distribution port refused the TCP connection
	KindNotDistribution          // the port does not speak the distribution protocol
	KindClosedAfterSendName      // the peer closed the connection after our send_name
	KindNotAllowed               // status not_allowed
	KindSimultaneous             // status nok: the peer is connecting to us
	KindNameInUse                // status alive for every client name we could use
	KindNameMismatch             // the peer's challenge names another node
	KindBadCookie                // the peer closed after our challenge reply
	KindPeerAuth                 // the peer's ack digest is wrong
	KindTimeout                  // a deadline passed
	KindConnectionLost           // the connection closed while we waited
	KindBadRPC                   // the call returned {badrpc, Reason}
	KindProtocol                 // the peer sent something malformed
	KindNoCookie                 // no cookie could be found
)

// Remedy names what the caller can change to get past a failure (its own
// node name, the cookie, a port, the handshake version): a program maps it
// to its own options. The Hint says the same in neutral words.
type Remedy string

// Remedies.
const (
	RemedyOwnName       Remedy = "own name"          // every client name is in use
	RemedyAllowName     Remedy = "allowed name"      // not_allowed: our name is not in net_kernel:allow/1
	RemedyCookie        Remedy = "cookie"            // no cookie found
	RemedyRightCookie   Remedy = "right cookie"      // the node rejected our cookie
	RemedyEPMDPort      Remedy = "epmd port"         // something else answers on the epmd port
	RemedyNoEPMD        Remedy = "no epmd"           // nothing on the epmd port
	RemedyPeerName      Remedy = "peer name"         // the node has another name (Detail)
	RemedyVersion6      Remedy = "version 6"         // retry the handshake with version 6
	RemedyVersion5      Remedy = "version 5"         // retry the handshake with version 5
	RemedyDistPort      Remedy = "distribution port" // not a distribution port
	RemedyDistPortOrTLS Remedy = "distribution port or TLS"
	RemedyNameTaken     Remedy = "name taken" // epmd holds the name (Detail) for another node
)

// Error is a distribution failure: a one-line diagnosis, a hint on how to fix
// it, and the underlying cause. It never contains the cookie.
type Error struct {
	Kind Kind
	Node string // the node we were talking to, if known
	Msg  string
	Hint string
	Err  error
	// Remedy, when set, names what to change; Detail is its value (the
	// name the node really has).
	Remedy Remedy
	Detail string
}

// withRemedy sets an error's remedy.
func (e *Error) withRemedy(r Remedy, detail string) *Error {
	e.Remedy, e.Detail = r, detail
	return e
}

func (e *Error) Error() string {
	msg := e.Msg
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// KindOf returns the Kind of err, or KindOther.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return KindOther
}

// HintOf returns the hint carried by err, if any.
func HintOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Hint
	}
	return ""
}

func newError(kind Kind, node, hint string, cause error, format string, args ...any) *Error {
	return &Error{Kind: kind, Node: node, Msg: fmt.Sprintf(format, args...), Hint: hint, Err: cause}
}

// classifyDial turns a TCP dial failure into a diagnosis. what names the
// service ("epmd" or "the distribution port").
func classifyDial(err error, node, addr, what string) *Error {
	var dnsErr *net.DNSError
	switch {
	case errors.As(err, &dnsErr):
		return newError(KindHostNotFound, node,
			"use the host name exactly as the node's name has it; for -sname nodes it must resolve here too (check /etc/hosts)",
			nil, "host name %q does not resolve", dnsErr.Name)
	case errors.Is(err, syscall.ECONNREFUSED):
		if what == "epmd" {
			return newError(KindNoEPMD, node,
				"is the node running on that host? epmd starts with the first Erlang node; a node started with -start_epmd false needs its distribution port given",
				nil, "no epmd on %s (connection refused)", addr).withRemedy(RemedyNoEPMD, "")
		}
		return newError(KindRefused, node, "the node may have just stopped; check that it is running",
			nil, "%s %s refused the connection", what, addr)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded), isTimeout(err):
		return newError(KindUnreachable, node,
			"check the host name, the network path and firewalls (epmd uses TCP 4369, the node its own distribution port)",
			nil, "no answer from %s (%s) within the timeout", addr, what)
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return newError(KindUnreachable, node, "check the host name and the network path",
			nil, "host of %s is unreachable", addr)
	}
	return newError(KindOther, node, "", err, "cannot connect to %s at %s", what, addr)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
