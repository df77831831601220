package cetsnode

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/mimmigrate/mimmigrate/erldist/term"
)

// Sessions is the session table the XMPP service registers connections
// in: {session, {Server, User, Resource, SID}, Node, Priority, Info}, SID
// being {StartMicros, Node} so that a resource reconnecting on another node
// is a new key. A node going down takes its sessions with it.
type Sessions struct{ T *Table }

// Session is one connected resource.
type Session struct {
	Server, User, Resource string
	SID                    term.Tuple // {µs, node}
	Node                   term.Atom
	// Available: the resource sent its initial presence, with Priority.
	Available bool
	Priority  int64
	Info      term.Term // connection info (address, …)
}

// NewSessions creates the session table on a cluster node.
func NewSessions(c *Cluster) *Sessions {
	return &Sessions{T: c.Table("session", TableOptions{
		KeyPos: 2,
		Owner:  func(r Record) term.Atom { a, _ := r[2].(term.Atom); return a },
		Index: func(r Record) string {
			if k, ok := r[1].(term.Tuple); ok && len(k) == 4 {
				s, _ := term.Text(k[0])
				u, _ := term.Text(k[1])
				return s + "\x00" + u
			}
			return ""
		},
	})}
}

func (s Session) key() term.Tuple {
	return term.Tuple{term.Binary(s.Server), term.Binary(s.User), term.Binary(s.Resource), s.SID}
}

func (s Session) record() Record {
	info := s.Info
	if info == nil {
		info = term.List{}
	}
	var prio term.Term = term.Atom("undefined")
	if s.Available {
		prio = s.Priority
	}
	return Record{term.Atom("session"), s.key(), s.Node, prio, info}
}

func sessionOf(r Record) (Session, bool) {
	if len(r) != 5 {
		return Session{}, false
	}
	k, ok := r[1].(term.Tuple)
	if !ok || len(k) != 4 {
		return Session{}, false
	}
	var s Session
	s.Server, _ = term.Text(k[0])
	s.User, _ = term.Text(k[1])
	s.Resource, _ = term.Text(k[2])
	s.SID, _ = k[3].(term.Tuple)
	s.Node, _ = r[2].(term.Atom)
	s.Priority, s.Available = term.Int(r[3])
	s.Info = r[4]
	return s, true
}

// lastSID is the last session id's time: ids are unique on a node even
// when two sessions open in the same microsecond (as ejabberd's
// misc:unique_timestamp).
var lastSID atomic.Int64

// NewSID makes a session id owned by this node: {µs, node}, the time
// strictly increasing on the node.
func (ss *Sessions) NewSID() term.Tuple {
	for {
		now, last := time.Now().UnixMicro(), lastSID.Load()
		if now <= last {
			now = last + 1
		}
		if lastSID.CompareAndSwap(last, now) {
			return term.Tuple{now, ss.T.c.self}
		}
	}
}

// Register adds (or updates) a session owned by this node.
func (ss *Sessions) Register(ctx context.Context, s Session) error {
	if s.Node == "" {
		s.Node = ss.T.c.self
	}
	if s.SID == nil {
		s.SID = ss.NewSID()
	}
	return ss.T.Insert(ctx, s.record())
}

// Unregister removes a session.
func (ss *Sessions) Unregister(ctx context.Context, s Session) error {
	return ss.T.Delete(ctx, s.key())
}

// Bare lists a user's sessions on every node.
func (ss *Sessions) Bare(server, user string) []Session {
	var out []Session
	for _, r := range ss.T.Select(server + "\x00" + user) {
		if s, ok := sessionOf(r); ok {
			out = append(out, s)
		}
	}
	return out
}

// Full lists the sessions of one resource (more than one while a
// reconnect replaces an old one).
func (ss *Sessions) Full(server, user, resource string) []Session {
	var out []Session
	for _, s := range ss.Bare(server, user) {
		if s.Resource == resource {
			out = append(out, s)
		}
	}
	return out
}

// CountByNode is the number of sessions each node owns.
func (ss *Sessions) CountByNode() map[term.Atom]int {
	by := map[term.Atom]int{}
	ss.T.Each(func(r Record) {
		if n, ok := r[2].(term.Atom); ok {
			by[n]++
		}
	})
	return by
}

// Count is the number of sessions in the cluster.
func (ss *Sessions) Count() int { return ss.T.Size() }
