package codec

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/mimmigrate/mimmigrate/erldist/term"
	"github.com/mimmigrate/mimmigrate/internal/testenv"
)

// randomText draws text full of what XML must escape, and UTF-8.
func randomText(r *rand.Rand, n int) term.Binary {
	pieces := []string{"a", "Z", "0", " ", "&", "<", ">", "'", "\"", "\n", "\t", "\r", "é", "日本", "😀", "&amp;", "]]>", ";", "="}
	var b []byte
	for range r.Intn(n + 1) {
		b = append(b, pieces[r.Intn(len(pieces))]...)
	}
	return term.Binary(b)
}

func randomName(r *rand.Rand) term.Binary {
	names := []string{"message", "body", "x", "vCard", "FN", "PHOTO", "BINVAL", "delay", "stream:error", "a-b_c.d"}
	return term.Binary(names[r.Intn(len(names))])
}

func randomElement(r *rand.Rand, depth int) term.Tuple {
	var attrs term.List
	for range r.Intn(4) {
		attrs = append(attrs, term.Tuple{randomName(r), randomText(r, 6)})
	}
	var children term.List
	if depth < 4 {
		for range r.Intn(5) {
			if r.Intn(3) == 0 {
				children = append(children, randomElement(r, depth+1))
			} else {
				children = append(children, term.Tuple{term.Atom("xmlcdata"), randomText(r, 8)})
			}
		}
	}
	return term.Tuple{term.Atom("xmlel"), randomName(r), attrs, children}
}

// Our XML equals fxml:element_to_binary/1's, byte for byte, on random
// elements full of characters to escape, run through the real fxml that
// ejabberd 23.01 uses.
func TestXMLMatchesFxml(t *testing.T) {
	escript := testenv.Escript(t)
	r := rand.New(rand.NewSource(1))
	var els term.List
	for range 3000 {
		els = append(els, randomElement(r, 0))
	}
	els = append(els,
		term.Tuple{term.Atom("xmlel"), term.Binary("empty"), term.List{}, term.List{}},
		term.Tuple{term.Atom("xmlel"), term.Binary("a"), term.List{term.Tuple{term.Binary("k"), term.Binary("")}}, term.List{term.Tuple{term.Atom("xmlcdata"), term.Binary("")}}},
	)
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.etf"), filepath.Join(dir, "out.bin")
	enc, err := term.Encode(els)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(in, enc, 0o644)
	if b, err := exec.Command(escript, "testdata/fxml.escript", in, out).CombinedOutput(); err != nil {
		t.Fatalf("fxml.escript: %v\n%s", err, b)
	}
	want, _ := os.ReadFile(out)
	for i, el := range els {
		n := binary.BigEndian.Uint32(want)
		want = want[4:]
		if n == 0xFFFFFFFF {
			t.Fatalf("fxml refused element %d: %s", i, term.Format(el))
		}
		exp := want[:n]
		want = want[n:]
		got, err := AppendXML(nil, el)
		if err != nil {
			t.Fatalf("element %d: %v", i, err)
		}
		if !bytes.Equal(got, exp) {
			t.Fatalf("element %d:\nours: %q\nfxml: %q", i, got, exp)
		}
	}
}

// ejabberd 2.x shapes: xmlelement with byte-list strings and iolists read
// as ejabberd's upgrade code reads them.
func TestXMLOldShapes(t *testing.T) {
	old := term.Tuple{term.Atom("xmlelement"), term.Charlist("message"),
		term.List{term.Tuple{term.Charlist("to"), term.Charlist("b@x")}},
		term.List{term.Tuple{term.Atom("xmlelement"), term.Charlist("body"), term.List{},
			term.List{term.Tuple{term.Atom("xmlcdata"), term.List{term.Binary("h\xc3\xa9"), term.List{int64('<'), term.Binary("!")}}}}}}}
	got, err := AppendXML(nil, old)
	if want := "<message to='b@x'><body>hé&lt;!</body></message>"; err != nil || string(got) != want {
		t.Fatalf("got %q, %v; want %q", got, err, want)
	}
	for _, bad := range []term.Term{
		term.Atom("x"),
		term.Tuple{term.Atom("xmlel"), term.Binary(""), term.List{}, term.List{}},
		term.Tuple{term.Atom("xmlel"), term.Binary("a"), term.List{term.Atom("k")}, term.List{}},
		term.Tuple{term.Atom("xmlel"), term.Binary("a"), term.List{}, term.List{term.Tuple{term.Atom("xmlcdata"), term.List{int64(300)}}}},
	} {
		if _, err := AppendXML(nil, bad); err == nil {
			t.Errorf("accepted %s", term.Format(bad))
		} else if fmt.Sprint(err) == "" {
			t.Errorf("empty error for %s", term.Format(bad))
		}
	}
}

// Push sessions' publish options (#xdata{} records) become the XML
// ejabberd's SQL backend stores: checked against xmpp:encode and fxml on
// random forms.
func TestXDataMatchesXmppCodec(t *testing.T) {
	escript := testenv.Escript(t)
	r := rand.New(rand.NewSource(2))
	texts := func(n int) term.List {
		var l term.List
		for range r.Intn(n + 1) {
			l = append(l, randomText(r, 5))
		}
		return l
	}
	orEmpty := func() term.Binary {
		if r.Intn(2) == 0 {
			return term.Binary("")
		}
		return randomText(r, 5)
	}
	fieldTypes := []term.Atom{"undefined", "boolean", "fixed", "hidden", "jid-multi", "jid-single", "list-multi", "list-single", "text-multi", "text-private", "text-single"}
	field := func() term.Tuple {
		var opts term.List
		for range r.Intn(3) {
			opts = append(opts, term.Tuple{term.Atom("xdata_option"), orEmpty(), randomText(r, 4)})
		}
		var subs term.List
		if r.Intn(4) == 0 {
			subs = append(subs, randomElement(r, 2))
		}
		return term.Tuple{term.Atom("xdata_field"), orEmpty(), fieldTypes[r.Intn(len(fieldTypes))], orEmpty(),
			term.Atom([]string{"true", "false"}[r.Intn(2)]), orEmpty(), texts(3), opts, subs}
	}
	fields := func(n int) term.List {
		var l term.List
		for range r.Intn(n + 1) {
			l = append(l, field())
		}
		return l
	}
	var xs term.List
	for range 500 {
		var title, reported term.Term = term.Atom("undefined"), term.Atom("undefined")
		if r.Intn(2) == 0 {
			title = orEmpty()
		}
		if r.Intn(3) == 0 {
			reported = fields(2)
		}
		var items term.List
		for range r.Intn(3) {
			items = append(items, fields(2))
		}
		xs = append(xs, term.Tuple{term.Atom("xdata"), term.Atom([]string{"cancel", "form", "result", "submit"}[r.Intn(4)]),
			texts(2), title, reported, items, fields(4)})
	}
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.etf"), filepath.Join(dir, "out.bin")
	enc, err := term.Encode(xs)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(in, enc, 0o644)
	if b, err := exec.Command(escript, "testdata/xdata.escript", in, out).CombinedOutput(); err != nil {
		t.Fatalf("xdata.escript: %v\n%s", err, b)
	}
	want, _ := os.ReadFile(out)
	compared := 0
	for i, x := range xs {
		n := binary.BigEndian.Uint32(want)
		want = want[4:]
		got, err := AppendXData(nil, x)
		if n == 0xFFFFFFFF {
			continue // the codec refuses it (e.g. an element it cannot encode)
		}
		exp := want[:n]
		want = want[n:]
		if err != nil {
			t.Fatalf("form %d: %v", i, err)
		}
		if !bytes.Equal(got, exp) {
			t.Fatalf("form %d:\nours:  %q\nxmpp:  %q", i, got, exp)
		}
		compared++
	}
	if compared < 400 {
		t.Fatalf("only %d of %d forms compared", compared, len(xs))
	}
}
