package erldist

import (
	"bufio"
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"sort"
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
	req := make([]byte, 2)
	if _, err := io.ReadFull(r, req); err != nil {
		return
	}
	n := int(binary.BigEndian.Uint16(req))
	if n == 0 {
		return
	}
	req = append(req, make([]byte, n)...)
	if _, err := io.ReadFull(r, req[2:]); err != nil {
		return
	}
	switch req[2] {
	case epmdAlive2Req:
		var a Alive2Req
		if err := a.Decode(req); err != nil {
			s.log.Debug("epmd: bad ALIVE2", "err", err)
			return
		}
		s.alive2(c, r, a)
	case epmdPortPlease2:
		var p PortPlease2Req
		if p.Decode(req) == nil {
			s.portPlease(c, p.Name)
		}
	case epmdNamesReq:
		var q NamesReq
		if q.Decode(req) == nil {
			s.names(c)
		}
	default:
		s.log.Debug("epmd: unknown request", "code", req[2])
	}
}

func (s *EPMDServer) alive2(c net.Conn, r *bufio.Reader, a Alive2Req) {
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
	resp := Alive2Resp{Creation: creation, Extended: true}
	if taken {
		resp.Result = 1
	}
	if _, err := c.Write(resp.Encode(nil)); err != nil || taken {
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
		c.Write(Port2Resp{Result: 1}.Encode(nil))
		return
	}
	c.Write(Port2Resp{Node: e.req.info()}.Encode(nil))
}

func (s *EPMDServer) names(c net.Conn) {
	var resp NamesResp
	s.mu.Lock()
	for name, e := range s.nodes {
		resp.Names = append(resp.Names, NameEntry{Name: name, Port: int(e.req.Port)})
	}
	s.mu.Unlock()
	sort.Slice(resp.Names, func(i, j int) bool { return resp.Names[i].Name < resp.Names[j].Name })
	if a, ok := s.ln.Addr().(*net.TCPAddr); ok {
		resp.EPMDPort = uint32(a.Port)
	}
	c.Write(resp.Encode(nil))
}
