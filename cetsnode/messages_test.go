package cetsnode

import (
	"context"
	"errors"
	"testing"

	"github.com/mimmigrate/mimmigrate/erldist/term"
)

// validMessages is one message of every kind, as nodes send them.
func validMessages() []message {
	rec := Record{term.Atom("session"), term.Binary("k"), term.Atom("a@h"), int64(1)}
	entries := []Entry{{Rec: rec, Stamp: 17, Writer: "a@h"}}
	ref := term.Tuple{term.Atom("a@h"), int64(3)}
	reqs := []request{
		infoReq{Table: "session"}, connectReq{Nodes: []term.Atom{"a@h", "b@h"}},
		pauseReq{Table: "session", PauseRef: "p1"}, dumpReq{Table: "session", PauseRef: "p1", Chunk: 2},
		installChunkReq{Table: "session", PauseRef: "p1", Entries: entries, Total: 40000},
		installReq{Table: "session", PauseRef: "p1", JoinRef: "j1", Nodes: []term.Atom{"a@h", "b@h"}},
		unpauseReq{Table: "session", PauseRef: "p1"}, insertNewReq{Table: "route", Stamp: 5, Rec: rec},
		tablesReq{}, removeNodeReq{Node: "c@h"},
	}
	out := []message{
		opMsg{Table: "session", Seq: 1, JoinRef: "j1", Stamp: 99, Writer: "a@h", Op: writeOp{Kind: "insert", Items: term.List{rec}}},
		opMsg{Table: "session", Seq: 2, JoinRef: "j1", Stamp: 99, Writer: "a@h", Op: writeOp{Kind: "delete", Items: term.List{term.Binary("k")}}},
		ackMsg{Table: "session", Seq: 2}, checkMsg{Table: "session", JoinRef: "j1"}, checkFailedMsg{Table: "session"},
		repMsg{Ref: ref, Result: term.Atom("ok")},
	}
	for _, r := range reqs {
		out = append(out, reqMsg{Ref: ref, Body: r})
	}
	return out
}

// Every message decodes to what was encoded.
func TestMessagesRoundTrip(t *testing.T) {
	for _, m := range validMessages() {
		b, err := term.Encode(m.encode())
		if err != nil {
			t.Fatal(err)
		}
		v, err := term.Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeMessage(v)
		if err != nil {
			t.Errorf("%s: %v", term.Format(m.encode()), err)
			continue
		}
		if !term.Equal(got.encode(), m.encode()) {
			t.Errorf("%s came back as %s", term.Format(m.encode()), term.Format(got.encode()))
		}
	}
}

// A malformed message is an error, never zero values: a field of the
// wrong type, a missing field, an unknown tag or request.
func TestMalformedMessagesRejected(t *testing.T) {
	a := func(s string) term.Atom { return term.Atom(s) }
	for _, bad := range []term.Term{
		term.Tuple{a("op"), a("session"), int64(1), a("not-a-binary"), int64(1), a("a@h"), term.Tuple{a("insert"), term.List{}}},
		term.Tuple{a("op"), a("session"), int64(1), term.Binary("j"), int64(1), a("a@h"), term.Tuple{a("upsert"), term.List{}}},
		term.Tuple{a("op"), a("session"), int64(1), term.Binary("j"), int64(1), a("a@h"), term.Tuple{a("insert"), term.List{int64(5)}}},
		term.Tuple{a("op"), a("session"), int64(0), term.Binary("j"), int64(1), a("a@h"), term.Tuple{a("insert"), term.List{}}},
		term.Tuple{a("ack"), a("session")},
		term.Tuple{a("ack"), term.Binary("session"), int64(1)},
		term.Tuple{a("check"), a("session"), int64(7)},
		term.Tuple{a("req"), int64(1), term.Tuple{a("dump"), a("session"), term.Binary("p"), int64(-1)}},
		term.Tuple{a("req"), int64(1), term.Tuple{a("install"), a("session"), term.Binary("p"), term.Binary("j"), term.List{int64(1)}}},
		term.Tuple{a("req"), int64(1), term.Tuple{a("install_chunk"), a("session"), term.Binary("p"), term.List{term.Tuple{int64(1)}}, int64(1)}},
		term.Tuple{a("req"), int64(1), term.Tuple{a("format_disk")}},
		term.Tuple{a("hello")}, term.List{}, a("op"),
	} {
		if m, err := decodeMessage(bad); err == nil {
			t.Errorf("%s decoded as %#v", term.Format(bad), m)
		}
	}
	if _, err := decodeDumpReply(term.Tuple{term.List{}, a("maybe"), int64(0)}); err == nil {
		t.Error("a dump reply with more = maybe decoded")
	}
	if _, err := decodeDumpReply(term.Tuple{term.List{term.Tuple{term.Tuple{a("r"), int64(1)}, a("not-a-stamp"), a("a@h")}}, a("false"), int64(1)}); err == nil {
		t.Error("a dump reply with a malformed entry decoded")
	}
}

// A join forwards a dump's chunk as it came (checked, not decoded); the
// node that installs it decodes the same entries the dumping node had.
func TestDumpChunkForwarded(t *testing.T) {
	entries := []Entry{{Rec: Record{term.Atom("r"), int64(1)}, Stamp: 5, Writer: "a@h"}, {Rec: Record{term.Atom("r"), term.Binary("k")}, Stamp: 6, Writer: "b@h"}}
	roundTrip := func(v term.Term) term.Term {
		b, err := term.Encode(v)
		if err != nil {
			t.Fatal(err)
		}
		out, err := term.Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	rep, err := decodeDumpReply(roundTrip(dumpReply{Entries: entries, More: true, Total: 2}.encode()))
	if err != nil || len(rep.Items) != 2 || !rep.More || rep.Total != 2 {
		t.Fatalf("dump reply: %+v %v", rep, err)
	}
	m, err := decodeMessage(roundTrip(reqMsg{Ref: int64(1), Body: installChunkReq{Table: "r", PauseRef: "p", Items: rep.Items, Total: rep.Total}}.encode()))
	if err != nil {
		t.Fatal(err)
	}
	got := m.(reqMsg).Body.(installChunkReq)
	if !term.Equal(encodeEntries(got.Entries), encodeEntries(entries)) || got.Total != 2 {
		t.Errorf("installed %s, want %s", term.Format(encodeEntries(got.Entries)), term.Format(encodeEntries(entries)))
	}
}

// A malformed message reaching a node is dropped: nothing changes.
func TestDeliverDropsMalformed(t *testing.T) {
	c := NewCluster(ClusterOptions{})
	c.SetTransport(loneTransport("a@h"))
	tbl := c.Table("t", TableOptions{})
	c.Deliver("b@h", term.Tuple{term.Atom("op"), term.Atom("t"), int64(1), term.Binary(tbl.JoinRef()), term.Atom("x"), term.Atom("b@h"),
		term.Tuple{term.Atom("insert"), term.List{term.Tuple{term.Atom("r"), int64(1)}}}})
	c.Deliver("b@h", term.Tuple{term.Atom("op"), term.Atom("t"), int64(1), term.Binary(tbl.JoinRef()), int64(1), term.Atom("b@h"),
		term.Tuple{term.Atom("insert"), term.List{term.Tuple{term.Atom("r"), int64(2)}}}})
	done := make(chan struct{})
	tbl.post(func() { close(done) })
	<-done
	if tbl.Size() != 1 {
		t.Fatalf("%d records: the malformed write (a stamp that is not an integer) was applied, or the good one was not", tbl.Size())
	}
}

// FuzzDecodeMessage feeds terms to the message decoder: it never panics,
// and what decodes encodes to a term that decodes alike.
func FuzzDecodeMessage(f *testing.F) {
	for _, m := range validMessages() {
		b, _ := term.Encode(m.encode())
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := term.Decode(b)
		if err != nil {
			return
		}
		m, err := decodeMessage(v)
		if err != nil {
			return
		}
		again, err := decodeMessage(m.encode())
		if err != nil {
			t.Fatalf("%s does not decode again: %v", term.Format(m.encode()), err)
		}
		if !term.Equal(again.encode(), m.encode()) {
			t.Fatalf("%s became %s", term.Format(m.encode()), term.Format(again.encode()))
		}
	})
}

// loneTransport is a node with no peers (its acknowledgements go nowhere):
// enough to feed a cluster messages by hand.
type loneTransport term.Atom

func (l loneTransport) Self() term.Atom                            { return term.Atom(l) }
func (l loneTransport) Send(peer term.Atom, _ term.Term) error     { return errNotConnected(peer) }
func (l loneTransport) SendEncoded(peer term.Atom, _ []byte) error { return errNotConnected(peer) }
func (l loneTransport) Connect(context.Context, term.Atom) error   { return errors.New("no network") }
func (l loneTransport) Connected(term.Atom) bool                   { return false }
