package erldist

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// DefaultEPMDPort is where epmd listens unless ERL_EPMD_PORT says otherwise.
const DefaultEPMDPort = 4369

// EPMD request and reply codes.
const (
	epmdAlive2Req     = 120 // 'x'
	epmdAlive2Resp    = 121 // 'y', 16-bit creation
	epmdAlive2XResp   = 118 // 'v', 32-bit creation
	epmdPortPlease2   = 122 // 'z'
	epmdPort2Resp     = 119 // 'w'
	epmdNamesReq      = 110 // 'n'
	nodeTypeNormal    = 77
	nodeTypeHidden    = 72
	protocolTCPv4     = 0
	maxEPMDReplyBytes = 1 << 20
)

// NodeInfo is what epmd knows about a registered node.
type NodeInfo struct {
	Name           string // the part before '@'
	Port           int
	Hidden         bool
	Protocol       byte
	HighestVersion uint16
	LowestVersion  uint16
	Extra          []byte
}

// PortPlease2Req asks epmd for a node's port.
type PortPlease2Req struct{ Name string }

// Encode appends the request, length prefix included.
func (m PortPlease2Req) Encode(dst []byte) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(1+len(m.Name)))
	dst = append(dst, epmdPortPlease2)
	return append(dst, m.Name...)
}

// Port2Resp is epmd's answer to PortPlease2Req.
type Port2Resp struct {
	Result byte // 0 = found
	Node   NodeInfo
}

// Decode parses a complete reply.
func (m *Port2Resp) Decode(src []byte) error {
	if len(src) < 2 || src[0] != epmdPort2Resp {
		return errors.New("not a PORT2_RESP")
	}
	m.Result = src[1]
	if m.Result != 0 {
		return nil
	}
	b := src[2:]
	if len(b) < 10 {
		return errors.New("short PORT2_RESP")
	}
	n := NodeInfo{
		Port:           int(binary.BigEndian.Uint16(b)),
		Hidden:         b[2] == nodeTypeHidden,
		Protocol:       b[3],
		HighestVersion: binary.BigEndian.Uint16(b[4:]),
		LowestVersion:  binary.BigEndian.Uint16(b[6:]),
	}
	nlen := int(binary.BigEndian.Uint16(b[8:]))
	b = b[10:]
	if len(b) < nlen {
		return errors.New("short PORT2_RESP name")
	}
	n.Name, b = string(b[:nlen]), b[nlen:]
	if len(b) >= 2 {
		elen := int(binary.BigEndian.Uint16(b))
		if len(b)-2 < elen {
			return errors.New("short PORT2_RESP extra")
		}
		n.Extra = append([]byte(nil), b[2:2+elen]...)
	}
	m.Node = n
	return nil
}

// Alive2Req registers a node with epmd.
type Alive2Req struct {
	Port           uint16
	Hidden         bool
	HighestVersion uint16
	LowestVersion  uint16
	Name           string
	Extra          []byte
}

// Encode appends the request, length prefix included.
func (m Alive2Req) Encode(dst []byte) []byte {
	body := 13 + len(m.Name) + len(m.Extra)
	dst = binary.BigEndian.AppendUint16(dst, uint16(body))
	dst = append(dst, epmdAlive2Req)
	dst = binary.BigEndian.AppendUint16(dst, m.Port)
	if m.Hidden {
		dst = append(dst, nodeTypeHidden)
	} else {
		dst = append(dst, nodeTypeNormal)
	}
	dst = append(dst, protocolTCPv4)
	dst = binary.BigEndian.AppendUint16(dst, m.HighestVersion)
	dst = binary.BigEndian.AppendUint16(dst, m.LowestVersion)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(m.Name)))
	dst = append(dst, m.Name...)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(m.Extra)))
	return append(dst, m.Extra...)
}

// Alive2Resp is epmd's answer to a registration, in either of its forms:
// ALIVE2_X_RESP (32-bit creation, OTP 23+ epmd for version-6 nodes) or
// ALIVE2_RESP (16-bit creation).
type Alive2Resp struct {
	Result   byte
	Creation uint32
	Extended bool
}

// Len reports how many bytes a complete reply starting with tag takes.
func alive2RespLen(tag byte) int {
	if tag == epmdAlive2XResp {
		return 6
	}
	return 4
}

// Decode parses a complete reply.
func (m *Alive2Resp) Decode(src []byte) error {
	if len(src) < 1 {
		return errors.New("empty ALIVE2 reply")
	}
	switch src[0] {
	case epmdAlive2XResp:
		if len(src) < 6 {
			return errors.New("short ALIVE2_X_RESP")
		}
		m.Result, m.Creation, m.Extended = src[1], binary.BigEndian.Uint32(src[2:]), true
	case epmdAlive2Resp:
		if len(src) < 4 {
			return errors.New("short ALIVE2_RESP")
		}
		m.Result, m.Creation, m.Extended = src[1], uint32(binary.BigEndian.Uint16(src[2:])), false
	default:
		return fmt.Errorf("unexpected ALIVE2 reply tag %d", src[0])
	}
	return nil
}

// NameEntry is one line of epmd's NAMES reply.
type NameEntry struct {
	Name string
	Port int
}

// ParseNames parses the NAMES reply: the epmd port, then lines "name N at port P".
func ParseNames(src []byte) ([]NameEntry, error) {
	if len(src) < 4 {
		return nil, errors.New("short NAMES reply")
	}
	var out []NameEntry
	for _, line := range strings.Split(string(src[4:]), "\n") {
		if line == "" {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 5 || f[0] != "name" || f[2] != "at" || f[3] != "port" {
			return nil, fmt.Errorf("unexpected NAMES line %q", line)
		}
		port, err := strconv.Atoi(f[4])
		if err != nil {
			return nil, fmt.Errorf("unexpected NAMES line %q", line)
		}
		out = append(out, NameEntry{Name: f[1], Port: port})
	}
	return out, nil
}

// EPMD is a client of one host's epmd.
type EPMD struct {
	Host string
	Port int // DefaultEPMDPort when 0
}

func (e EPMD) addr() string {
	port := e.Port
	if port == 0 {
		port = DefaultEPMDPort
	}
	return net.JoinHostPort(e.Host, strconv.Itoa(port))
}

func (e EPMD) dial(ctx context.Context) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", e.addr())
	if err != nil {
		return nil, classifyDial(err, "", e.addr(), "epmd")
	}
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	return c, nil
}

// exchange sends req and reads the whole reply (epmd closes after answering).
func (e EPMD) exchange(ctx context.Context, req []byte) ([]byte, error) {
	c, err := e.dial(ctx)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
	defer stop()
	if _, err := c.Write(req); err != nil {
		return nil, e.ioError(err)
	}
	reply, err := io.ReadAll(io.LimitReader(c, maxEPMDReplyBytes))
	if err != nil {
		return nil, e.ioError(err)
	}
	return reply, nil
}

func (e EPMD) ioError(err error) error {
	if isTimeout(err) {
		return newError(KindUnreachable, "", "is this port really epmd? a silent service also looks like this",
			nil, "epmd at %s did not answer within the timeout", e.addr())
	}
	return newError(KindNotEPMD, "", "", err, "talking to epmd at %s", e.addr())
}

func (e EPMD) notEPMD(reply []byte) error {
	return newError(KindNotEPMD, "",
		"check --epmd-port (or ERL_EPMD_PORT); epmd normally listens on 4369",
		nil, "%s does not answer like epmd (got %d bytes starting %q)", e.addr(), len(reply), head(reply))
}

func head(b []byte) string {
	if len(b) > 12 {
		b = b[:12]
	}
	return string(b)
}

// PortPlease looks up a node by the part of its name before '@'.
// found is false when epmd does not know the name.
func (e EPMD) PortPlease(ctx context.Context, name string) (info NodeInfo, found bool, err error) {
	reply, err := e.exchange(ctx, PortPlease2Req{Name: name}.Encode(nil))
	if err != nil {
		return NodeInfo{}, false, err
	}
	var resp Port2Resp
	if err := resp.Decode(reply); err != nil {
		return NodeInfo{}, false, e.notEPMD(reply)
	}
	if resp.Result != 0 {
		return NodeInfo{}, false, nil
	}
	return resp.Node, true, nil
}

// Names lists the nodes registered with epmd.
func (e EPMD) Names(ctx context.Context) ([]NameEntry, error) {
	reply, err := e.exchange(ctx, []byte{0, 1, epmdNamesReq})
	if err != nil {
		return nil, err
	}
	names, err := ParseNames(reply)
	if err != nil {
		return nil, e.notEPMD(reply)
	}
	return names, nil
}

// Registration is a node registered with epmd. It stays registered while the
// connection is open; Close unregisters it.
type Registration struct {
	conn     net.Conn
	Creation uint32
	Extended bool // epmd answered with ALIVE2_X_RESP
}

// Close ends the registration.
func (r *Registration) Close() error { return r.conn.Close() }

// Done is closed when epmd drops the registration connection.
func (r *Registration) Done() <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.conn.SetReadDeadline(time.Time{})
		io.Copy(io.Discard, r.conn)
	}()
	return done
}

// Register publishes a node with epmd (which accepts this only from the local host).
func (e EPMD) Register(ctx context.Context, req Alive2Req) (*Registration, error) {
	c, err := e.dial(ctx)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			c.Close()
		}
	}()
	if _, err := c.Write(req.Encode(nil)); err != nil {
		return nil, e.ioError(err)
	}
	r := bufio.NewReader(c)
	tag, err := r.Peek(1)
	if err != nil {
		return nil, e.ioError(err)
	}
	reply := make([]byte, alive2RespLen(tag[0]))
	if _, err := io.ReadFull(r, reply); err != nil {
		return nil, e.ioError(err)
	}
	var resp Alive2Resp
	if err := resp.Decode(reply); err != nil {
		return nil, e.notEPMD(reply)
	}
	if resp.Result != 0 {
		return nil, newError(KindOther, req.Name, "another node may already use that name on this host",
			nil, "epmd refused to register %q (result %d)", req.Name, resp.Result)
	}
	c.SetDeadline(time.Time{})
	ok = true
	return &Registration{conn: c, Creation: resp.Creation, Extended: resp.Extended}, nil
}
