package records

import (
	"github.com/mimmigrate/mimmigrate/erldist/term"
	"github.com/mimmigrate/mimmigrate/migrate/schema"
)

// Room is a persistent MUC room: {muc_room, {Name, Service}, Options}.
type Room struct {
	Name, Service string
	VHost         string // the virtual host the service belongs to
	Options       []term.Term
}

// ReadRoomKey reads a muc_room record's {Name, Service} and the virtual
// host the service belongs to.
func ReadRoomKey(rec term.Tuple, scope *schema.Scope) (Room, error) {
	var r Room
	if len(rec) != 3 {
		return r, rejectf("muc_room record of %d fields", len(rec)-1)
	}
	var err error
	if r.Name, r.Service, err = Pair(rec[1], "room"); err != nil {
		return r, err
	}
	if r.VHost, err = scope.ServiceHost(r.Service); err != nil {
		return r, err
	}
	return r, scope.Check(r.VHost)
}

// ReadRoom reads a muc_room record with its options.
func ReadRoom(rec term.Tuple, scope *schema.Scope) (Room, error) {
	r, err := ReadRoomKey(rec, scope)
	if err != nil {
		return r, err
	}
	opts, ok := term.Elems(rec[2])
	if !ok {
		return r, rejectf("room options are not a list: %s", short(rec[2]))
	}
	r.Options = opts
	return r, nil
}

// MucRegistered is a nick registered with a MUC service:
// {muc_registered, {{User, Server}, Service}, Nick}.
type MucRegistered struct {
	User, Server, Service string
	VHost                 string
	Nick                  string
}

// ReadMucRegistered reads a muc_registered record.
func ReadMucRegistered(rec term.Tuple, scope *schema.Scope) (MucRegistered, error) {
	var m MucRegistered
	k, err := keyedRecord(rec, 2, 2, "key is not {{User, Server}, Service}")
	if err != nil {
		return m, err
	}
	if m.User, m.Server, err = US(k[0]); err != nil {
		return m, err
	}
	if m.Service, err = Text(k[1], "service"); err != nil {
		return m, err
	}
	if m.VHost, err = scope.ServiceHost(m.Service); err != nil {
		return m, err
	}
	if err := scope.Check(m.VHost); err != nil {
		return m, err
	}
	m.Nick, err = Text(rec[2], "nick")
	return m, err
}

// JID is the registered user's JID.
func (m MucRegistered) JID() string {
	if m.User == "" {
		return m.Server
	}
	return m.User + "@" + m.Server
}
