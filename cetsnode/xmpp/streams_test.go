package xmpp_test

import (
	"encoding/base64"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mimmigrate/mimmigrate/internal/xmpptest"
)

// The stream negotiation says what ejabberd 23.01 says, byte for byte
// but for the stream ids (seen on its own c2s listener, STARTTLS
// required): header, features before and after TLS and after SASL, the
// bind result, the session result, an unhandled IQ.
func TestStreamAsEjabberd(t *testing.T) {
	needBed(t)
	n := bed.StartNode(t, "wire"+strings.ToLower(t.Name()[:4]), "")
	r, err := xmpptest.DialRaw(n.StartTLS, false, bed.CA)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ids := regexp.MustCompile(`id='[0-9]+'`)
	expect := func(send, want string) {
		t.Helper()
		if send != "" {
			r.Send(send)
		}
		last := want[max(0, len(want)-12):]
		got, err := r.Expect(last, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if got = ids.ReplaceAllString(got, "id='ID'"); got != want {
			t.Fatalf("after %q\n got %s\nwant %s", send, got, want)
		}
	}
	header := "<?xml version='1.0'?><stream:stream id='ID' version='1.0' xml:lang='en' xmlns:stream='http://etherx.jabber.org/streams' from='localhost' xmlns='jabber:client'>"
	expect(xmpptest.Header, header+"<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls></stream:features>")
	expect("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGEAYg==</auth>", "<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><encryption-required/></failure>")
	expect("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>", "<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
	if err := xmpptest.Handshake(r); err != nil {
		t.Fatal(err)
	}
	expect(xmpptest.Header, header+"<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism><mechanism>SCRAM-SHA-1-PLUS</mechanism><mechanism>SCRAM-SHA-1</mechanism></mechanisms>"+
		"<sasl-channel-binding xmlns='urn:xmpp:sasl-cb:0'><channel-binding type='tls-exporter'/><channel-binding type='tls-server-end-point'/></sasl-channel-binding></stream:features>")
	a := bed.Account(t, "scram-sha-1")
	expect("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>"+b64("\x00"+a.User+"\x00wrong")+"</auth>",
		"<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/><text xml:lang='en'>Invalid username or password</text></failure>")
	expect("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>"+b64("\x00"+a.User+"\x00"+a.Password)+"</auth>",
		"<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>")
	expect(xmpptest.Header, header+"<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/><session xmlns='urn:ietf:params:xml:ns:xmpp-session'><optional/></session></stream:features>")
	expect("<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>r1</resource></bind></iq>",
		"<iq type='result' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>"+a.JID()+"/r1</jid></bind></iq>")
	expect("<iq type='set' id='s1'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>",
		"<iq xml:lang='en' to='"+a.JID()+"/r1' from='localhost' type='result' id='s1'/>")
	expect("<iq type='get' id='x1'><foo xmlns='urn:x'/></iq>",
		"<iq xml:lang='en' to='"+a.JID()+"/r1' from='"+a.JID()+"' type='error' id='x1'><foo xmlns='urn:x'/><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xml:lang='en' xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>No module is handling this query</text></error></iq>")
	expect("</stream:stream>", "</stream:stream>")
}

// Every kind of bad input ends in the right stream error, and the
// connection closes.
func TestBadInput(t *testing.T) {
	needBed(t)
	n := bed.StartNode(t, "bad"+strings.ToLower(t.Name()[:4]), "negotiation_timeout: 2\n")
	a := bed.Account(t, "scram-sha-1")
	streamErr := func(cond string) string {
		return "<stream:error><" + cond + " xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
	}
	for _, c := range []struct {
		name  string
		setup func(r *xmpptest.Raw) error // what to do before sending
		send  string
		want  string
	}{
		{"unknown host", nil, strings.Replace(xmpptest.Header, "to='localhost'", "to='elsewhere.example'", 1), streamErr("host-unknown")},
		{"a stanza before STARTTLS", opened, "<message to='a@localhost'><body>x</body></message>", streamErr("policy-violation") + "<text xml:lang='en' xmlns='urn:ietf:params:xml:ns:xmpp-streams'>Use of STARTTLS required</text>"},
		{"billion laughs", encrypted, "<!DOCTYPE lolz [<!ENTITY lol 'lol'><!ENTITY lol2 '&lol;&lol;&lol;&lol;&lol;'>]><message>&lol2;</message>", streamErr("restricted-xml")},
		{"an external entity", encrypted, "<message><body>&xxe;</body></message>", streamErr("not-well-formed")},
		{"a stanza over max_stanza_size", encrypted, "<message><body>" + strings.Repeat("x", 300000) + "</body></message>",
			streamErr("policy-violation") + "<text xml:lang='en' xmlns='urn:ietf:params:xml:ns:xmpp-streams'>XML stanza is too big</text>"},
		{"deep nesting", encrypted, strings.Repeat("<a>", 5000), streamErr("policy-violation")},
		{"invalid UTF-8", encrypted, "<message><body>\xc3\x28</body></message>", streamErr("not-well-formed")},
		{"a processing instruction", encrypted, "<?php evil ?>", streamErr("restricted-xml")},
		{"unauthenticated stanza", encrypted, "<iq type='get' id='1'><query xmlns='jabber:iq:roster'/></iq>", streamErr("not-authorized")},
		{"a spoofed from", func(r *xmpptest.Raw) error { return bound(r, a) }, "<message from='user2@localhost/x' to='user3@localhost'><body>hi</body></message>", streamErr("invalid-from")},
		{"a connection that says nothing", nil, "", streamErr("connection-timeout")},
	} {
		t.Run(c.name, func(t *testing.T) {
			r, err := xmpptest.DialRaw(n.StartTLS, false, bed.CA)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			if c.setup != nil {
				if err := c.setup(r); err != nil {
					t.Fatal(err)
				}
			}
			if c.send != "" {
				r.Send(c.send)
			}
			out, err := r.Closed(5 * time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out, c.want) || !strings.HasSuffix(out, "</stream:stream>") {
				t.Errorf("got %q\nwant %q then the end of the stream", out, c.want)
			}
		})
	}
	if !strings.Contains(n.Log.String(), "node started") {
		t.Error("node log missing")
	}
}

func opened(r *xmpptest.Raw) error {
	r.Send(xmpptest.Header)
	_, err := r.Expect("</stream:features>", 5*time.Second)
	return err
}

func encrypted(r *xmpptest.Raw) error {
	if err := r.StartTLS(); err != nil {
		return err
	}
	return opened(r)
}

func bound(r *xmpptest.Raw, a xmpptest.Account) error {
	if err := r.StartTLS(); err != nil {
		return err
	}
	if err := r.Plain(a.User, a.Password); err != nil {
		return err
	}
	_, err := r.Bind("spoofer")
	return err
}

// Plaintext sent after <starttls/> (before TLS) is never taken as if it
// came over TLS: the connection is closed.
func TestSTARTTLSInjection(t *testing.T) {
	needBed(t)
	n := bed.StartNode(t, "inj"+strings.ToLower(t.Name()[:4]), "")
	r, err := xmpptest.DialRaw(n.StartTLS, false, bed.CA)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := opened(r); err != nil {
		t.Fatal(err)
	}
	r.Send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/><auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGEAYg==</auth>")
	if out, err := r.Closed(5 * time.Second); err != nil || strings.Contains(out, "failure") {
		t.Errorf("%q %v", out, err)
	}
	if !strings.Contains(n.Log.String(), "plaintext after <starttls/>") {
		t.Error("the injection was not logged")
	}
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
