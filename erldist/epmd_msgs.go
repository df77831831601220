package erldist

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// EPMD's messages, each a type with symmetric Encode and Decode: Encode
// appends the message as it goes on the wire (a request with its 2-byte
// length, a reply without one), Decode parses exactly that. The client
// (epmd.go) and the embedded server (epmdserver.go) both use them.

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

var errShortRequest = errors.New("short EPMD request")

// request checks a request's length prefix and code and returns its body
// after the code.
func request(src []byte, code byte) ([]byte, error) {
	if len(src) < 3 {
		return nil, errShortRequest
	}
	n := int(binary.BigEndian.Uint16(src))
	if n == 0 || len(src) != 2+n {
		return nil, fmt.Errorf("EPMD request of %d bytes says %d", len(src)-2, n)
	}
	if src[2] != code {
		return nil, fmt.Errorf("EPMD request %d, want %d", src[2], code)
	}
	return src[3:], nil
}

// appendRequest appends a request: its length, then the body (code first).
func appendRequest(dst []byte, body []byte) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(body)))
	return append(dst, body...)
}

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

// appendNodeInfo writes the fields PORT2_RESP and ALIVE2_REQ share, from
// the port to the extra field.
func appendNodeInfo(dst []byte, n NodeInfo) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(n.Port))
	if n.Hidden {
		dst = append(dst, nodeTypeHidden)
	} else {
		dst = append(dst, nodeTypeNormal)
	}
	dst = append(dst, n.Protocol)
	dst = binary.BigEndian.AppendUint16(dst, n.HighestVersion)
	dst = binary.BigEndian.AppendUint16(dst, n.LowestVersion)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(n.Name)))
	dst = append(dst, n.Name...)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(n.Extra)))
	return append(dst, n.Extra...)
}

// decodeNodeInfo reads those fields; the extra field may be missing (old
// epmd replies end after the name).
func decodeNodeInfo(b []byte) (NodeInfo, error) {
	var n NodeInfo
	if len(b) < 10 {
		return n, errors.New("short node info")
	}
	n.Port = int(binary.BigEndian.Uint16(b))
	n.Hidden = b[2] == nodeTypeHidden
	n.Protocol = b[3]
	n.HighestVersion = binary.BigEndian.Uint16(b[4:])
	n.LowestVersion = binary.BigEndian.Uint16(b[6:])
	nlen := int(binary.BigEndian.Uint16(b[8:]))
	b = b[10:]
	if len(b) < nlen {
		return n, errors.New("short node name")
	}
	n.Name, b = string(b[:nlen]), b[nlen:]
	if len(b) >= 2 {
		elen := int(binary.BigEndian.Uint16(b))
		if len(b)-2 < elen {
			return n, errors.New("short extra field")
		}
		n.Extra = append([]byte(nil), b[2:2+elen]...)
	}
	return n, nil
}

// Alive2Req registers a node with epmd (ALIVE2_REQ).
type Alive2Req struct {
	Port           uint16
	Hidden         bool
	HighestVersion uint16
	LowestVersion  uint16
	Name           string
	Extra          []byte
}

func (m Alive2Req) info() NodeInfo {
	return NodeInfo{Name: m.Name, Port: int(m.Port), Hidden: m.Hidden, Protocol: protocolTCPv4,
		HighestVersion: m.HighestVersion, LowestVersion: m.LowestVersion, Extra: m.Extra}
}

// Encode appends the request, length prefix included.
func (m Alive2Req) Encode(dst []byte) []byte {
	return appendRequest(dst, appendNodeInfo([]byte{epmdAlive2Req}, m.info()))
}

// Decode parses a whole request, length prefix included.
func (m *Alive2Req) Decode(src []byte) error {
	body, err := request(src, epmdAlive2Req)
	if err != nil {
		return err
	}
	n, err := decodeNodeInfo(body)
	if err != nil {
		return fmt.Errorf("ALIVE2_REQ: %w", err)
	}
	*m = Alive2Req{Port: uint16(n.Port), Hidden: n.Hidden, HighestVersion: n.HighestVersion, LowestVersion: n.LowestVersion,
		Name: n.Name, Extra: n.Extra}
	return nil
}

// Alive2Resp is epmd's answer to a registration, in either of its forms:
// ALIVE2_X_RESP (32-bit creation, OTP 23+ epmd for version-6 nodes) or
// ALIVE2_RESP (16-bit creation).
type Alive2Resp struct {
	Result   byte
	Creation uint32
	Extended bool
}

// alive2RespLen reports how many bytes a complete reply starting with tag
// takes.
func alive2RespLen(tag byte) int {
	if tag == epmdAlive2XResp {
		return 6
	}
	return 4
}

// Encode appends the reply.
func (m Alive2Resp) Encode(dst []byte) []byte {
	if m.Extended {
		dst = append(dst, epmdAlive2XResp, m.Result)
		return binary.BigEndian.AppendUint32(dst, m.Creation)
	}
	dst = append(dst, epmdAlive2Resp, m.Result)
	return binary.BigEndian.AppendUint16(dst, uint16(m.Creation))
}

// Decode parses a complete reply.
func (m *Alive2Resp) Decode(src []byte) error {
	if len(src) < 1 {
		return errors.New("empty ALIVE2 reply")
	}
	switch src[0] {
	case epmdAlive2XResp:
		if len(src) != 6 {
			return errors.New("ALIVE2_X_RESP is not 6 bytes")
		}
		m.Result, m.Creation, m.Extended = src[1], binary.BigEndian.Uint32(src[2:]), true
	case epmdAlive2Resp:
		if len(src) != 4 {
			return errors.New("ALIVE2_RESP is not 4 bytes")
		}
		m.Result, m.Creation, m.Extended = src[1], uint32(binary.BigEndian.Uint16(src[2:])), false
	default:
		return fmt.Errorf("unexpected ALIVE2 reply tag %d", src[0])
	}
	return nil
}

// PortPlease2Req asks epmd for a node's port (PORT_PLEASE2_REQ).
type PortPlease2Req struct{ Name string }

// Encode appends the request, length prefix included.
func (m PortPlease2Req) Encode(dst []byte) []byte {
	return appendRequest(dst, append([]byte{epmdPortPlease2}, m.Name...))
}

// Decode parses a whole request, length prefix included.
func (m *PortPlease2Req) Decode(src []byte) error {
	body, err := request(src, epmdPortPlease2)
	if err != nil {
		return err
	}
	m.Name = string(body)
	return nil
}

// Port2Resp is epmd's answer to PortPlease2Req (PORT2_RESP).
type Port2Resp struct {
	Result byte // 0 = found
	Node   NodeInfo
}

// Encode appends the reply: the node's fields only when found.
func (m Port2Resp) Encode(dst []byte) []byte {
	dst = append(dst, epmdPort2Resp, m.Result)
	if m.Result != 0 {
		return dst
	}
	return appendNodeInfo(dst, m.Node)
}

// Decode parses a complete reply.
func (m *Port2Resp) Decode(src []byte) error {
	if len(src) < 2 || src[0] != epmdPort2Resp {
		return errors.New("not a PORT2_RESP")
	}
	m.Result, m.Node = src[1], NodeInfo{}
	if m.Result != 0 {
		return nil
	}
	n, err := decodeNodeInfo(src[2:])
	if err != nil {
		return fmt.Errorf("PORT2_RESP: %w", err)
	}
	m.Node = n
	return nil
}

// NamesReq asks epmd for every registered name (NAMES_REQ).
type NamesReq struct{}

// Encode appends the request, length prefix included.
func (NamesReq) Encode(dst []byte) []byte { return appendRequest(dst, []byte{epmdNamesReq}) }

// Decode parses a whole request, length prefix included.
func (*NamesReq) Decode(src []byte) error {
	body, err := request(src, epmdNamesReq)
	if err == nil && len(body) != 0 {
		err = errors.New("NAMES_REQ with a body")
	}
	return err
}

// NameEntry is one line of epmd's NAMES reply.
type NameEntry struct {
	Name string
	Port int
}

// NamesResp is epmd's answer to NAMES_REQ: its own port, then a line
// "name N at port P" per node.
type NamesResp struct {
	EPMDPort uint32
	Names    []NameEntry
}

// Encode appends the reply.
func (m NamesResp) Encode(dst []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, m.EPMDPort)
	for _, n := range m.Names {
		dst = fmt.Appendf(dst, "name %s at port %d\n", n.Name, n.Port)
	}
	return dst
}

// Decode parses a complete reply.
func (m *NamesResp) Decode(src []byte) error {
	if len(src) < 4 {
		return errors.New("short NAMES reply")
	}
	m.EPMDPort, m.Names = binary.BigEndian.Uint32(src), nil
	for _, line := range strings.Split(string(src[4:]), "\n") {
		if line == "" {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 5 || f[0] != "name" || f[2] != "at" || f[3] != "port" {
			return fmt.Errorf("unexpected NAMES line %q", line)
		}
		port, err := strconv.Atoi(f[4])
		if err != nil || port < 0 || port > 65535 {
			return fmt.Errorf("unexpected NAMES line %q", line)
		}
		m.Names = append(m.Names, NameEntry{Name: f[1], Port: port})
	}
	return nil
}
