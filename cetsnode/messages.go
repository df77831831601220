package cetsnode

import (
	"fmt"

	"github.com/mimmigrate/mimmigrate/erldist/term"
)

// The replication protocol between nodes, each message a type with an
// encode to its Erlang term and a decode that checks every field: a
// malformed message is an error (logged and dropped), never zero values.
// One-way messages go to the registered name mimmigrate_cets:
//
//	{op, Table, Seq, JoinRef, Stamp, Writer, {insert, Recs} | {delete, Keys} | {delete_object, Recs}}
//	{ack, Table, Seq}
//	{check, Table, JoinRef}
//	{check_failed, Table}
//	{req, Ref, Body} answered by {rep, Ref, Result}
//
// Requests (Body), with their results:
//
//	{info, Table}                                  {Nodes, JoinRef}
//	{connect, Nodes}                               ok | {error, Node}
//	{pause, Table, PauseRef}                       ok
//	{dump, Table, PauseRef, I}                     {Entries, More, Total} | not_paused
//	{install_chunk, Table, PauseRef, Entries, N}   ok | not_paused | bad_dump
//	{install, Table, PauseRef, JoinRef, Nodes}     ok | not_paused
//	{unpause, Table, PauseRef}                     ok
//	{insert_new, Table, Stamp, Rec}                true | false | {wrong_leader, Node}
//	{tables}                                       [{Table, Nodes}]
//	{remove_node, Node}                            ok

// message is a one-way message or a request's envelope.
type message interface{ encode() term.Tuple }

// opMsg carries a write to every member of the table's segment.
type opMsg struct {
	Table   term.Atom
	Seq     int64
	JoinRef string
	Stamp   int64
	Writer  term.Atom
	Op      writeOp
}

// writeOp is a write: insert records, delete keys, delete exact records.
type writeOp struct {
	Kind  term.Atom // insert, delete, delete_object
	Items term.List
}

type ackMsg struct {
	Table term.Atom
	Seq   int64
}

type checkMsg struct {
	Table   term.Atom
	JoinRef string
}

type checkFailedMsg struct{ Table term.Atom }

// reqMsg is a request and the reference its reply carries.
type reqMsg struct {
	Ref  term.Term
	Body request
}

type repMsg struct {
	Ref    term.Term
	Result term.Term
}

func (m opMsg) encode() term.Tuple {
	return term.Tuple{term.Atom("op"), m.Table, m.Seq, term.Binary(m.JoinRef), m.Stamp, m.Writer, m.Op.encode()}
}
func (o writeOp) encode() term.Tuple { return term.Tuple{o.Kind, o.Items} }
func (m ackMsg) encode() term.Tuple  { return term.Tuple{term.Atom("ack"), m.Table, m.Seq} }
func (m checkMsg) encode() term.Tuple {
	return term.Tuple{term.Atom("check"), m.Table, term.Binary(m.JoinRef)}
}
func (m checkFailedMsg) encode() term.Tuple { return term.Tuple{term.Atom("check_failed"), m.Table} }
func (m reqMsg) encode() term.Tuple         { return term.Tuple{term.Atom("req"), m.Ref, m.Body.encode()} }
func (m repMsg) encode() term.Tuple         { return term.Tuple{term.Atom("rep"), m.Ref, m.Result} }

// badMessage: a message that does not have the shape its tag says.
type badMessage struct {
	What string
	Msg  term.Term
}

func (e *badMessage) Error() string {
	s := term.Format(e.Msg)
	if len(s) > 120 {
		s = s[:117] + "..."
	}
	return fmt.Sprintf("malformed %s: %s", e.What, s)
}

// fields checks a tuple's tag and size.
func fields(t term.Term, tag string, size int) (term.Tuple, error) {
	tu, ok := t.(term.Tuple)
	if !ok || len(tu) != size || !term.IsAtom(tu[0], term.Atom(tag)) {
		return nil, &badMessage{What: tag, Msg: t}
	}
	return tu, nil
}

func atomField(t term.Term) (term.Atom, bool) { a, ok := t.(term.Atom); return a, ok && a != "" }

func binField(t term.Term) (string, bool) { b, ok := t.(term.Binary); return string(b), ok }

// decodeMessage reads a message sent to mimmigrate_cets.
func decodeMessage(t term.Term) (message, error) {
	tu, ok := t.(term.Tuple)
	if !ok || len(tu) == 0 {
		return nil, &badMessage{What: "message", Msg: t}
	}
	tag, _ := tu[0].(term.Atom)
	bad := &badMessage{What: string(tag), Msg: t}
	switch tag {
	case "op":
		f, err := fields(t, "op", 7)
		if err != nil {
			return nil, err
		}
		var m opMsg
		var ok1, ok2, ok3, ok4, ok5 bool
		m.Table, ok1 = atomField(f[1])
		m.Seq, ok2 = term.Int(f[2])
		m.JoinRef, ok3 = binField(f[3])
		m.Stamp, ok4 = term.Int(f[4])
		m.Writer, ok5 = atomField(f[5])
		if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 || m.Seq <= 0 {
			return nil, bad
		}
		if m.Op, err = decodeWriteOp(f[6]); err != nil {
			return nil, bad
		}
		return m, nil
	case "ack", "check", "check_failed":
		// {Tag, Table} and one more field (check_failed: none).
		size := 3
		if tag == "check_failed" {
			size = 2
		}
		f, err := fields(t, string(tag), size)
		if err != nil {
			return nil, err
		}
		table, ok := atomField(f[1])
		if !ok {
			return nil, bad
		}
		switch tag {
		case "ack":
			if seq, ok := term.Int(f[2]); ok && seq >= 0 {
				return ackMsg{Table: table, Seq: seq}, nil
			}
		case "check":
			if ref, ok := binField(f[2]); ok {
				return checkMsg{Table: table, JoinRef: ref}, nil
			}
		default:
			return checkFailedMsg{Table: table}, nil
		}
		return nil, bad
	case "req":
		f, err := fields(t, "req", 3)
		if err != nil {
			return nil, err
		}
		body, err := decodeRequest(f[2])
		if err != nil {
			return nil, err
		}
		return reqMsg{Ref: f[1], Body: body}, nil
	case "rep":
		f, err := fields(t, "rep", 3)
		if err != nil {
			return nil, err
		}
		return repMsg{Ref: f[1], Result: f[2]}, nil
	}
	return nil, bad
}

func decodeWriteOp(t term.Term) (writeOp, error) {
	tu, ok := t.(term.Tuple)
	if !ok || len(tu) != 2 {
		return writeOp{}, &badMessage{What: "write", Msg: t}
	}
	kind, _ := tu[0].(term.Atom)
	items, ok := term.Elems(tu[1])
	if !ok || (kind != "insert" && kind != "delete" && kind != "delete_object") {
		return writeOp{}, &badMessage{What: "write", Msg: t}
	}
	if kind != "delete" {
		for _, r := range items {
			if rec, ok := r.(term.Tuple); !ok || len(rec) == 0 {
				return writeOp{}, &badMessage{What: "write", Msg: t}
			}
		}
	}
	return writeOp{Kind: kind, Items: term.List(items)}, nil
}

// request is the body of a {req, Ref, Body}.
type request interface{ encode() term.Tuple }

type (
	infoReq    struct{ Table term.Atom }
	connectReq struct{ Nodes []term.Atom }
	pauseReq   struct {
		Table    term.Atom
		PauseRef string
	}
	dumpReq struct {
		Table    term.Atom
		PauseRef string
		Chunk    int64
	}
	installChunkReq struct {
		Table    term.Atom
		PauseRef string
		Entries  []Entry   // as decoded by the node that installs them
		Items    term.List // as a join forwards a dump's chunk (checkEntries)
		Total    int64
	}
	installReq struct {
		Table             term.Atom
		PauseRef, JoinRef string
		Nodes             []term.Atom
	}
	unpauseReq struct {
		Table    term.Atom
		PauseRef string
	}
	insertNewReq struct {
		Table term.Atom
		Stamp int64
		Rec   Record
	}
	tablesReq     struct{}
	removeNodeReq struct{ Node term.Atom }
)

func (r infoReq) encode() term.Tuple    { return term.Tuple{term.Atom("info"), r.Table} }
func (r connectReq) encode() term.Tuple { return term.Tuple{term.Atom("connect"), nodeList(r.Nodes)} }
func (r pauseReq) encode() term.Tuple {
	return term.Tuple{term.Atom("pause"), r.Table, term.Binary(r.PauseRef)}
}
func (r dumpReq) encode() term.Tuple {
	return term.Tuple{term.Atom("dump"), r.Table, term.Binary(r.PauseRef), r.Chunk}
}
func (r installChunkReq) encode() term.Tuple {
	items := r.Items
	if items == nil {
		items = encodeEntries(r.Entries)
	}
	return term.Tuple{term.Atom("install_chunk"), r.Table, term.Binary(r.PauseRef), items, r.Total}
}
func (r installReq) encode() term.Tuple {
	return term.Tuple{term.Atom("install"), r.Table, term.Binary(r.PauseRef), term.Binary(r.JoinRef), nodeList(r.Nodes)}
}
func (r unpauseReq) encode() term.Tuple {
	return term.Tuple{term.Atom("unpause"), r.Table, term.Binary(r.PauseRef)}
}
func (r insertNewReq) encode() term.Tuple {
	return term.Tuple{term.Atom("insert_new"), r.Table, r.Stamp, r.Rec}
}
func (tablesReq) encode() term.Tuple       { return term.Tuple{term.Atom("tables")} }
func (r removeNodeReq) encode() term.Tuple { return term.Tuple{term.Atom("remove_node"), r.Node} }

// decodeRequest reads a request body.
func decodeRequest(t term.Term) (request, error) {
	tu, ok := t.(term.Tuple)
	if !ok || len(tu) == 0 {
		return nil, &badMessage{What: "request", Msg: t}
	}
	tag, _ := tu[0].(term.Atom)
	bad := &badMessage{What: string(tag) + " request", Msg: t}
	table := func(i int) (term.Atom, bool) { return atomField(tu[i]) }
	switch {
	case tag == "info" && len(tu) == 2:
		if tb, ok := table(1); ok {
			return infoReq{Table: tb}, nil
		}
	case tag == "connect" && len(tu) == 2:
		if nodes, ok := atomList(tu[1]); ok {
			return connectReq{Nodes: nodes}, nil
		}
	case (tag == "pause" || tag == "unpause") && len(tu) == 3:
		tb, ok1 := table(1)
		ref, ok2 := binField(tu[2])
		if ok1 && ok2 && tag == "pause" {
			return pauseReq{Table: tb, PauseRef: ref}, nil
		}
		if ok1 && ok2 {
			return unpauseReq{Table: tb, PauseRef: ref}, nil
		}
	case tag == "dump" && len(tu) == 4:
		tb, ok1 := table(1)
		ref, ok2 := binField(tu[2])
		i, ok3 := term.Int(tu[3])
		if ok1 && ok2 && ok3 && i >= 0 {
			return dumpReq{Table: tb, PauseRef: ref, Chunk: i}, nil
		}
	case tag == "install_chunk" && len(tu) == 5:
		tb, ok1 := table(1)
		ref, ok2 := binField(tu[2])
		n, ok3 := term.Int(tu[4])
		es, err := decodeEntries(tu[3])
		if ok1 && ok2 && ok3 && err == nil && n >= 0 {
			return installChunkReq{Table: tb, PauseRef: ref, Entries: es, Total: n}, nil
		}
	case tag == "install" && len(tu) == 5:
		tb, ok1 := table(1)
		pref, ok2 := binField(tu[2])
		jref, ok3 := binField(tu[3])
		nodes, ok4 := atomList(tu[4])
		if ok1 && ok2 && ok3 && ok4 {
			return installReq{Table: tb, PauseRef: pref, JoinRef: jref, Nodes: nodes}, nil
		}
	case tag == "insert_new" && len(tu) == 4:
		tb, ok1 := table(1)
		stamp, ok2 := term.Int(tu[2])
		rec, ok3 := tu[3].(term.Tuple)
		if ok1 && ok2 && ok3 && len(rec) > 0 {
			return insertNewReq{Table: tb, Stamp: stamp, Rec: rec}, nil
		}
	case tag == "tables" && len(tu) == 1:
		return tablesReq{}, nil
	case tag == "remove_node" && len(tu) == 2:
		if n, ok := atomField(tu[1]); ok {
			return removeNodeReq{Node: n}, nil
		}
	}
	return nil, bad
}

func atomList(t term.Term) ([]term.Atom, bool) {
	l, ok := term.Elems(t)
	if !ok {
		return nil, false
	}
	out := make([]term.Atom, 0, len(l))
	for _, e := range l {
		a, ok := atomField(e)
		if !ok {
			return nil, false
		}
		out = append(out, a)
	}
	return out, true
}

func nodeList(nodes []term.Atom) term.List {
	out := make(term.List, len(nodes))
	for i, n := range nodes {
		out[i] = n
	}
	return out
}

func encodeEntries(es []Entry) term.List {
	out := make(term.List, len(es))
	for i, e := range es {
		out[i] = term.Tuple{e.Rec, e.Stamp, e.Writer}
	}
	return out
}

func decodeEntries(t term.Term) ([]Entry, error) {
	l, err := checkEntries(t)
	if err != nil {
		return nil, err
	}
	out := make([]Entry, len(l))
	for i, e := range l {
		out[i], _ = entryOf(e)
	}
	return out, nil
}

// checkEntries checks that t is a list of {Rec, Stamp, Writer} without
// building entries: a join forwards a dump's chunk as it came, and the
// node that installs it decodes it.
func checkEntries(t term.Term) (term.List, error) {
	l, ok := term.Elems(t)
	if !ok {
		return nil, fmt.Errorf("not a list: %s", term.Format(t))
	}
	for _, e := range l {
		if _, ok := entryOf(e); !ok {
			return nil, fmt.Errorf("bad entry %s", term.Format(e))
		}
	}
	return l, nil
}

func entryOf(e term.Term) (Entry, bool) {
	tu, ok := e.(term.Tuple)
	if !ok || len(tu) != 3 {
		return Entry{}, false
	}
	rec, ok1 := tu[0].(term.Tuple)
	stamp, ok2 := term.Int(tu[1])
	w, ok3 := tu[2].(term.Atom)
	if !ok1 || !ok2 || !ok3 || len(rec) == 0 {
		return Entry{}, false
	}
	return Entry{Rec: rec, Stamp: stamp, Writer: w}, true
}

// Replies.

// infoReply is a table's segment as one member sees it.
type infoReply struct {
	Nodes   []term.Atom
	JoinRef string
}

func (r infoReply) encode() term.Term { return term.Tuple{nodeList(r.Nodes), term.Binary(r.JoinRef)} }

func decodeInfoReply(t term.Term) (infoReply, error) {
	tu, ok := t.(term.Tuple)
	if ok && len(tu) == 2 {
		nodes, ok1 := atomList(tu[0])
		ref, ok2 := binField(tu[1])
		if ok1 && ok2 {
			return infoReply{Nodes: nodes, JoinRef: ref}, nil
		}
	}
	return infoReply{}, &badMessage{What: "info reply", Msg: t}
}

// dumpReply is one chunk of a table's records: Entries when it is made,
// Items (checked, not decoded) when it is read.
type dumpReply struct {
	Entries []Entry
	Items   term.List
	More    bool
	Total   int64
}

func (r dumpReply) encode() term.Term {
	return term.Tuple{encodeEntries(r.Entries), term.Atom(fmt.Sprint(r.More)), r.Total}
}

func decodeDumpReply(t term.Term) (dumpReply, error) {
	tu, ok := t.(term.Tuple)
	if ok && len(tu) == 3 {
		items, err := checkEntries(tu[0])
		more, ok1 := term.Bool(tu[1])
		n, ok2 := term.Int(tu[2])
		if err == nil && ok1 && ok2 {
			return dumpReply{Items: items, More: more, Total: n}, nil
		}
	}
	return dumpReply{}, &badMessage{What: "dump reply", Msg: t}
}

// tablesReply lists a node's tables and the nodes each replicates to.
type tablesReply map[string][]term.Atom

func (r tablesReply) encode() term.Term {
	out := term.List{}
	for name, nodes := range r {
		out = append(out, term.Tuple{term.Atom(name), nodeList(nodes)})
	}
	return out
}

func decodeTablesReply(t term.Term) (tablesReply, error) {
	l, ok := term.Elems(t)
	if !ok {
		return nil, &badMessage{What: "tables reply", Msg: t}
	}
	out := tablesReply{}
	for _, e := range l {
		tu, ok := e.(term.Tuple)
		if !ok || len(tu) != 2 {
			return nil, &badMessage{What: "tables reply", Msg: t}
		}
		name, ok1 := atomField(tu[0])
		nodes, ok2 := atomList(tu[1])
		if !ok1 || !ok2 {
			return nil, &badMessage{What: "tables reply", Msg: t}
		}
		out[string(name)] = nodes
	}
	return out, nil
}
