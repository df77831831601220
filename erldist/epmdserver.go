package erldist

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sort"
	"strings"
	"sync"
	"time"
)

// EPMDServer is a port mapper for hosts that have no epmd: it answers
// ALIVE2 (a registration lasts while its connection stays open),
// PORT_PLEASE2 and NAMES as epmd does, so Erlang nodes and other
// mimmigrate nodes find ours the usual way.
type EPMDServer struct {
	ln     net.Listener
	log    *slog.Logger
	mu     sync.Mutex
	nodes  map[string]epmdEntry
	serial uint32
	wg     sync.WaitGroup
}

type epmdEntry struct {
	req      Alive2Req
	creation uint32
}

// ServeEPMD listens on addr (e.g. ":4369") and serves until Close.
func ServeEPMD(addr string, log *slog.Logger) (*EPMDServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &EPMDServer{ln: ln, log: log, nodes: map[string]epmdEntry{}, serial: randomUint32()}
	s.wg.Add(1)
	go s.accept()
	return s, nil
}

// Addr is the address the server listens on.
func (s *EPMDServer) Addr() net.Addr { return s.ln.Addr() }

// Close stops the server; registrations end with it.
func (s *EPMDServer) Close() error {
	err := s.ln.Close()
	s.wg.Wait()
	return err
}

func (s *EPMDServer) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		go s.serve(c)
	}
}

func (s *EPMDServer) serve(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	var hdr [2]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return
	}
	n := int(binary.BigEndian.Uint16(hdr[:]))
	if n == 0 {
		return
	}
	req := make([]byte, n)
	if _, err := io.ReadFull(r, req); err != nil {
		return
	}
	switch req[0] {
	case epmdAlive2Req:
		s.alive2(c, r, req)
	case epmdPortPlease2:
		s.portPlease(c, string(req[1:]))
	case epmdNamesReq:
		s.names(c)
	default:
		s.log.Debug("epmd: unknown request", "code", req[0])
	}
}

func (s *EPMDServer) alive2(c net.Conn, r *bufio.Reader, req []byte) {
	a, err := decodeAlive2(req)
	if err != nil {
		s.log.Debug("epmd: bad ALIVE2", "err", err)
		return
	}
	s.mu.Lock()
	_, taken := s.nodes[a.Name]
	s.serial++
	if s.serial < 4 {
		s.serial = 4
	}
	creation := s.serial
	if !taken {
		s.nodes[a.Name] = epmdEntry{req: a, creation: creation}
	}
	s.mu.Unlock()
	resp := []byte{epmdAlive2XResp, 0}
	if taken {
		resp[1] = 1
	}
	resp = binary.BigEndian.AppendUint32(resp, creation)
	if _, err := c.Write(resp); err != nil || taken {
		if !taken {
			s.forget(a.Name, creation)
		}
		return
	}
	// The registration lasts as long as the connection.
	c.SetDeadline(time.Time{})
	io.Copy(io.Discard, r)
	s.forget(a.Name, creation)
}

func (s *EPMDServer) forget(name string, creation uint32) {
	s.mu.Lock()
	if e, ok := s.nodes[name]; ok && e.creation == creation {
		delete(s.nodes, name)
	}
	s.mu.Unlock()
}

func (s *EPMDServer) portPlease(c net.Conn, name string) {
	s.mu.Lock()
	e, ok := s.nodes[name]
	s.mu.Unlock()
	if !ok {
		c.Write([]byte{epmdPort2Resp, 1})
		return
	}
	typ := byte(nodeTypeNormal)
	if e.req.Hidden {
		typ = nodeTypeHidden
	}
	out := []byte{epmdPort2Resp, 0}
	out = binary.BigEndian.AppendUint16(out, e.req.Port)
	out = append(out, typ, protocolTCPv4)
	out = binary.BigEndian.AppendUint16(out, e.req.HighestVersion)
	out = binary.BigEndian.AppendUint16(out, e.req.LowestVersion)
	out = binary.BigEndian.AppendUint16(out, uint16(len(e.req.Name)))
	out = append(out, e.req.Name...)
	out = binary.BigEndian.AppendUint16(out, uint16(len(e.req.Extra)))
	out = append(out, e.req.Extra...)
	c.Write(out)
}

func (s *EPMDServer) names(c net.Conn) {
	s.mu.Lock()
	var lines []string
	for name, e := range s.nodes {
		lines = append(lines, fmt.Sprintf("name %s at port %d\n", name, e.req.Port))
	}
	s.mu.Unlock()
	sort.Strings(lines)
	port := 0
	if a, ok := s.ln.Addr().(*net.TCPAddr); ok {
		port = a.Port
	}
	out := binary.BigEndian.AppendUint32(nil, uint32(port))
	c.Write(append(out, strings.Join(lines, "")...))
}

// decodeAlive2 parses an ALIVE2_REQ body (the code byte first).
func decodeAlive2(b []byte) (Alive2Req, error) {
	var a Alive2Req
	if len(b) < 13 {
		return a, fmt.Errorf("short ALIVE2_REQ")
	}
	a.Port = binary.BigEndian.Uint16(b[1:])
	a.Hidden = b[3] == nodeTypeHidden
	a.HighestVersion = binary.BigEndian.Uint16(b[5:])
	a.LowestVersion = binary.BigEndian.Uint16(b[7:])
	n := int(binary.BigEndian.Uint16(b[9:]))
	if len(b) < 11+n+2 {
		return a, fmt.Errorf("short ALIVE2_REQ name")
	}
	a.Name = string(b[11 : 11+n])
	e := int(binary.BigEndian.Uint16(b[11+n:]))
	if len(b) < 13+n+e {
		return a, fmt.Errorf("short ALIVE2_REQ extra")
	}
	a.Extra = append([]byte(nil), b[13+n:13+n+e]...)
	return a, nil
}
