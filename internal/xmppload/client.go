// Package xmppload is the benchmarks' load generator: a bounded XMPP
// client that logs in over STARTTLS (PLAIN or SCRAM-SHA-1), binds, and
// sends and reads stanzas, with nothing else in the way — so that the
// same code measures ejabberd and the Go nodes.
package xmppload

import (
	"bufio"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/xdg-go/scram"

	"github.com/mimmigrate/mimmigrate/cetsnode/xmpp/stanza"
	"github.com/mimmigrate/mimmigrate/cetsnode/xmpp/stream"
	"github.com/mimmigrate/mimmigrate/migrate/codec"
)

// Options say how a client logs in.
type Options struct {
	Addr, Host     string
	TLS            *tls.Config
	Mechanism      string // PLAIN or SCRAM-SHA-1
	User, Password string
	Resource       string
	Timeout        time.Duration // for the whole login (10 s)
	// SCRAM is a client shared by logins with one password (it caches the
	// salted password, as a real client keeps it).
	SCRAM *scram.Client
	// Carbons enables message carbons after binding; SM enables stream
	// management (with resumption), and Next then answers the server's
	// requests for acknowledgement.
	Carbons, SM bool
}

// Client is a logged-in session.
type Client struct {
	JID  string
	conn net.Conn
	br   *bufio.Reader
	rd   *stream.Reader
	wmu  sync.Mutex
	sm   bool
	h    uint32 // stanzas handled, with SM
}

const header = "<?xml version='1.0'?><stream:stream to='%s' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>"

// Login connects, negotiates STARTTLS, authenticates and binds.
func Login(o Options) (*Client, error) {
	if o.Timeout == 0 {
		o.Timeout = 10 * time.Second
	}
	nc, err := net.DialTimeout("tcp", o.Addr, o.Timeout)
	if err != nil {
		return nil, err
	}
	c := &Client{conn: nc}
	nc.SetDeadline(time.Now().Add(o.Timeout))
	if err := c.login(o); err != nil {
		nc.Close()
		return nil, fmt.Errorf("%s: %w", o.User, err)
	}
	c.conn.SetDeadline(time.Time{})
	return c, nil
}

func (c *Client) restart(host string) (*codec.Element, error) {
	c.rd = stream.NewReader(c.br, stream.Limits{MaxStanzaSize: 1 << 20})
	if _, err := fmt.Fprintf(c.conn, header, host); err != nil {
		return nil, err
	}
	if _, err := c.rd.Header(); err != nil {
		return nil, err
	}
	return c.expect("stream:features")
}

func (c *Client) expect(name string) (*codec.Element, error) {
	el, err := c.rd.Next()
	if err != nil {
		return nil, err
	}
	if el.Name != name {
		return el, fmt.Errorf("got <%s>, want <%s>: %s", el.Name, name, codec.AppendElement(nil, el))
	}
	return el, nil
}

func (c *Client) login(o Options) error {
	c.br = bufio.NewReader(c.conn)
	if _, err := c.restart(o.Host); err != nil {
		return err
	}
	if _, err := c.conn.Write([]byte("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")); err != nil {
		return err
	}
	if _, err := c.expect("proceed"); err != nil {
		return err
	}
	tc := tls.Client(c.conn, o.TLS)
	if err := tc.Handshake(); err != nil {
		return err
	}
	c.conn, c.br = tc, bufio.NewReader(tc)
	if _, err := c.restart(o.Host); err != nil {
		return err
	}
	if err := c.auth(o); err != nil {
		return err
	}
	if _, err := c.restart(o.Host); err != nil {
		return err
	}
	if _, err := fmt.Fprintf(c.conn, "<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>%s</resource></bind></iq>", o.Resource); err != nil {
		return err
	}
	el, err := c.expect("iq")
	if err != nil {
		return err
	}
	if stanza.Attr(el, "type") != "result" {
		return fmt.Errorf("bind: %s", codec.AppendElement(nil, el))
	}
	if b := stanza.Payload(el); b != nil && b.Child("jid") != nil {
		c.JID = b.Child("jid").Text()
	}
	if o.Carbons {
		fmt.Fprintf(c.conn, "<iq type='set' id='cc'><enable xmlns='urn:xmpp:carbons:2'/></iq>")
		if el, err := c.expect("iq"); err != nil || stanza.Attr(el, "type") != "result" {
			return fmt.Errorf("enabling carbons: %v", err)
		}
	}
	if o.SM {
		fmt.Fprintf(c.conn, "<enable xmlns='urn:xmpp:sm:3' resume='true'/>")
		if _, err := c.expect("enabled"); err != nil {
			return fmt.Errorf("enabling stream management: %w", err)
		}
		c.sm = true
	}
	return nil
}

func (c *Client) auth(o Options) error {
	b64 := base64.StdEncoding
	switch o.Mechanism {
	case "PLAIN":
		fmt.Fprintf(c.conn, "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>%s</auth>", b64.EncodeToString([]byte("\x00"+o.User+"\x00"+o.Password)))
		return c.success(nil)
	case "SCRAM-SHA-1":
		cl := o.SCRAM
		if cl == nil {
			var err error
			if cl, err = scram.SHA1.NewClient(o.User, o.Password, ""); err != nil {
				return err
			}
		}
		conv := cl.NewConversation()
		first, err := conv.Step("")
		if err != nil {
			return err
		}
		fmt.Fprintf(c.conn, "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-1'>%s</auth>", b64.EncodeToString([]byte(first)))
		ch, err := c.expect("challenge")
		if err != nil {
			return err
		}
		in, err := b64.DecodeString(ch.Text())
		if err != nil {
			return err
		}
		final, err := conv.Step(string(in))
		if err != nil {
			return err
		}
		fmt.Fprintf(c.conn, "<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>%s</response>", b64.EncodeToString([]byte(final)))
		return c.success(conv)
	}
	return errors.New("unknown mechanism " + o.Mechanism)
}

func (c *Client) success(conv *scram.ClientConversation) error {
	el, err := c.expect("success")
	if err != nil {
		return err
	}
	if conv != nil {
		in, err := base64.StdEncoding.DecodeString(strings.TrimSpace(el.Text()))
		if err != nil {
			return err
		}
		if _, err := conv.Step(string(in)); err != nil {
			return fmt.Errorf("the server's signature: %w", err)
		}
	}
	return nil
}

// Send writes raw XML.
func (c *Client) Send(s string) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.conn.SetWriteDeadline(time.Now().Add(30 * time.Second))
	_, err := c.conn.Write([]byte(s))
	return err
}

// Next reads the next stanza (whitespace keepalives are skipped; with
// stream management, requests for acknowledgement are answered).
func (c *Client) Next(timeout time.Duration) (*codec.Element, error) {
	if timeout > 0 {
		c.conn.SetReadDeadline(time.Now().Add(timeout))
	} else {
		c.conn.SetReadDeadline(time.Time{})
	}
	for {
		el, err := c.rd.Next()
		if err != nil || !c.sm {
			return el, err
		}
		switch el.Name {
		case "r":
			if err := c.Send(fmt.Sprintf("<a xmlns='urn:xmpp:sm:3' h='%d'/>", c.h)); err != nil {
				return nil, err
			}
			continue
		case "a":
			continue
		case "message", "presence", "iq":
			c.h++
		}
		return el, nil
	}
}

// Close ends the stream and the connection.
func (c *Client) Close() {
	c.Send("</stream:stream>")
	c.conn.Close()
}
