package stream

import (
	"bufio"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/mimmigrate/mimmigrate/migrate/codec"
)

const clientHeader = "<?xml version='1.0'?><stream:stream to='localhost' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>"

func reader(s string, lim Limits) *Reader {
	return NewReader(bufio.NewReader(strings.NewReader(s)), lim)
}

// The elements come back as ejabberd's parser builds them: fxml writes
// them as they were sent (single quotes, same attribute order, prefixes).
func TestElements(t *testing.T) {
	stanzas := []string{
		"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>",
		"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGFsaWNlAHNlY3JldA==</auth>",
		"<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>r 1</resource></bind></iq>",
		"<message to='bob@localhost' id='m1' xml:lang='de'><body>a &amp; b &lt;c&gt; &apos;d&apos; &quot;e&quot;</body><x:y xmlns:x='urn:x' x:a='1'/></message>",
		"<presence><status>Grüße ✓</status><priority>5</priority></presence>",
	}
	h, err := reader(clientHeader+"\n  "+strings.Join(stanzas, " \n")+"</stream:stream>", Limits{}).Header()
	if err != nil || h.To != "localhost" || h.NS != NSClient || h.Version != "1.0" {
		t.Fatalf("header %+v %v", h, err)
	}
	r := reader(clientHeader+"\n  "+strings.Join(stanzas, " \n")+"</stream:stream>", Limits{})
	if _, err := r.Header(); err != nil {
		t.Fatal(err)
	}
	for _, want := range stanzas {
		el, err := r.Next()
		if err != nil {
			t.Fatalf("%s: %v", want, err)
		}
		want = strings.ReplaceAll(want, "&gt;", "&gt;")
		if got := string(codec.AppendElement(nil, el)); got != want {
			t.Errorf("got  %s\nwant %s", got, want)
		}
	}
	if _, err := r.Next(); !errors.Is(err, ErrEnd) {
		t.Errorf("after the last stanza: %v, want the end of the stream", err)
	}
}

func TestRefused(t *testing.T) {
	for _, c := range []struct {
		name, input, condition string
		lim                    Limits
	}{
		{"doctype before the header", "<?xml version='1.0'?><!DOCTYPE x [<!ENTITY a 'b'>]>" + clientHeader, "restricted-xml", Limits{}},
		{"billion laughs", clientHeader + "<!DOCTYPE lolz [<!ENTITY lol 'lol'><!ENTITY lol2 '&lol;&lol;&lol;&lol;'>]><message><body>&lol2;</body></message>", "restricted-xml", Limits{}},
		{"external entity", clientHeader + "<message><body>&xxe;</body></message>", "not-well-formed", Limits{}},
		{"processing instruction", clientHeader + "<?evil x?><message/>", "restricted-xml", Limits{}},
		{"comment", clientHeader + "<message><!-- hi --></message>", "restricted-xml", Limits{}},
		{"too big", clientHeader + "<message><body>" + strings.Repeat("x", 2000) + "</body></message>", "policy-violation", Limits{MaxStanzaSize: 1000}},
		{"huge attribute", clientHeader + "<message id='" + strings.Repeat("x", 5000) + "'/>", "policy-violation", Limits{MaxStanzaSize: 1000}},
		{"too deep", clientHeader + strings.Repeat("<a>", 20) + strings.Repeat("</a>", 20), "policy-violation", Limits{MaxDepth: 10}},
		{"invalid UTF-8", clientHeader + "<message><body>\xff\xfe</body></message>", "not-well-formed", Limits{}},
		{"a forbidden character", clientHeader + "<message><body>\x01</body></message>", "not-well-formed", Limits{}},
		{"mismatched tags", clientHeader + "<message><body></message></body>", "not-well-formed", Limits{}},
		{"attribute twice", clientHeader + "<message id='1' id='2'/>", "not-well-formed", Limits{}},
		{"text between stanzas", clientHeader + "hello<message/>", "not-well-formed", Limits{}},
		{"unknown prefix end", clientHeader + "</foo:stream>", "not-well-formed", Limits{}},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := reader(c.input, c.lim)
			var err error
			if _, err = r.Header(); err == nil {
				for range 3 {
					if _, err = r.Next(); err != nil {
						break
					}
				}
			}
			var se *Error
			if !errors.As(err, &se) || se.Condition != c.condition {
				t.Errorf("%v, want the stream error %s", err, c.condition)
			}
		})
	}
}

func TestHeaderNamespace(t *testing.T) {
	for _, in := range []string{
		"<stream:stream xmlns='jabber:client' xmlns:stream='urn:wrong'>",
		"<stream xmlns='jabber:client'>",
		"<s:stream xmlns:stream='http://etherx.jabber.org/streams'>",
	} {
		_, err := reader(in, Limits{}).Header()
		var se *Error
		if !errors.As(err, &se) || se.Condition != "invalid-namespace" {
			t.Errorf("%s: %v", in, err)
		}
	}
}

// A stanza over the limit is refused after reading at most the limit: a
// peer cannot make the reader buffer more.
func TestSizeLimitBoundsReading(t *testing.T) {
	src := &countingReader{r: strings.NewReader(clientHeader + "<message><body>" + strings.Repeat("x", 10<<20) + "</body></message>")}
	r := NewReader(bufio.NewReaderSize(src, 4096), Limits{MaxStanzaSize: 65536})
	if _, err := r.Header(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Next(); err == nil {
		t.Fatal("a 10 MB stanza was read")
	}
	if src.n > 65536+len(clientHeader)+8192 {
		t.Errorf("read %d bytes for a 64 KiB limit", src.n)
	}
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

func TestWriter(t *testing.T) {
	got := string(AppendHeader(nil, "42", "1.0", "en", "localhost"))
	want := "<?xml version='1.0'?><stream:stream id='42' version='1.0' xml:lang='en' xmlns:stream='http://etherx.jabber.org/streams' from='localhost' xmlns='jabber:client'>"
	if got != want {
		t.Errorf("header\n got %s\nwant %s", got, want)
	}
	got = string(AppendError(nil, &Error{Condition: "policy-violation", Text: "XML stanza is too big"}, "en"))
	want = "<stream:error><policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-streams'/><text xml:lang='en' xmlns='urn:ietf:params:xml:ns:xmpp-streams'>XML stanza is too big</text></stream:error>"
	if got != want {
		t.Errorf("error\n got %s\nwant %s", got, want)
	}
}

// FuzzReader feeds whole client streams — the seeds in
// testdata/fuzz/FuzzReader are real clients' streams (slixmpp,
// @xmpp/client, go-sendxmpp) recorded by the XMPP service's
// TestRealClientStreams, plus the hand-written ones below: the reader
// never panics, stays within its limits, and what it returns as an
// element writes out and reads back as the same element.
func FuzzReader(f *testing.F) {
	for _, s := range []string{
		"<message to='a@b'><body>hi</body></message>",
		"<iq type='get' id='1'><query xmlns='jabber:iq:roster'/></iq>",
		"<presence><show>away</show><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='n' ver='v'/></presence>",
		"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-1'>biwsbj1hLHI9Yg==</auth>",
		"<!DOCTYPE a [<!ENTITY b 'c'>]><a>&b;</a>", " \n\t ", "</stream:stream>", "<a><![CDATA[x<y]]></a>",
	} {
		f.Add(clientHeader + s)
	}
	const limit = 4096
	f.Fuzz(func(t *testing.T, s string) {
		r := reader(s, Limits{MaxStanzaSize: limit, MaxDepth: 20})
		if _, err := r.Header(); err != nil {
			return
		}
		for range 50 {
			el, err := r.Next()
			if err != nil {
				return
			}
			out := codec.AppendElement(nil, el)
			// What came in under the limit writes out under a bound
			// (entities and attribute quoting can grow it, not without
			// limit).
			if len(out) > 6*limit {
				t.Fatalf("an element of %d bytes from a stream limited to %d", len(out), limit)
			}
			again := reader(clientHeader+string(out), Limits{MaxStanzaSize: 1 << 20, MaxDepth: 20})
			again.Header()
			el2, err := again.Next()
			if err != nil {
				t.Fatalf("%q written as %q does not read back: %v", s, out, err)
			}
			if out2 := codec.AppendElement(nil, el2); string(out2) != string(out) {
				t.Fatalf("%q became %q", out, out2)
			}
		}
	})
}
