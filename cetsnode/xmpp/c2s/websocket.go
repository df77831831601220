package c2s

import (
	"bufio"
	"bytes"
	"crypto/sha1"
	"crypto/tls"
	"encoding/base64"
	"encoding/binary"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/mimmigrate/mimmigrate/cetsnode/xmpp/config"
	"github.com/mimmigrate/mimmigrate/cetsnode/xmpp/stream"
	"github.com/mimmigrate/mimmigrate/migrate/codec"
)

// XMPP over WebSocket (RFC 7395) on an ejabberd_http listener's path, as
// ejabberd_http_ws serves it: each WebSocket text message is one XML
// element; <open/> and <close/> of the framing namespace stand for the
// stream's start and end. A connection is adapted into the byte stream
// of a TCP client, so that it is the same session as any other: the
// same negotiation (without STARTTLS: the listener's TLS, if any, is the
// connection's), routing and stream management.

const (
	nsFraming = "urn:ietf:params:xml:ns:xmpp-framing"
	wsGUID    = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
)

// ListenWebSocket opens an ejabberd_http listener: its WebSocket path
// serves XMPP; any other request is answered 404.
func (s *Service) ListenWebSocket(l config.Listener) (net.Addr, error) {
	var wrap func(net.Listener) net.Listener
	if l.TLS {
		cfg, _ := s.opt.Certs.TLSConfig(s.opt.Hosts[0])
		cfg = cfg.Clone()
		cfg.NextProtos = []string{"http/1.1"}
		wrap = func(ln net.Listener) net.Listener { return tls.NewListener(ln, cfg) }
	}
	ln, err := s.listen(l, wrap)
	if err != nil {
		return nil, err
	}
	srv := &http.Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { s.serveWebSocket(w, r, l) }),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          nil,
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		srv.Serve(ln)
	}()
	return ln.Addr(), nil
}

func headerHas(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

func (s *Service) serveWebSocket(w http.ResponseWriter, r *http.Request, l config.Listener) {
	if r.URL.Path != l.WebSocket {
		http.NotFound(w, r)
		return
	}
	key := r.Header.Get("Sec-WebSocket-Key")
	switch {
	case r.Method != http.MethodGet || !headerHas(r.Header, "Connection", "upgrade") || !headerHas(r.Header, "Upgrade", "websocket") || key == "":
		http.Error(w, "This is a WebSocket endpoint for XMPP (RFC 7395)", http.StatusBadRequest)
		return
	case r.Header.Get("Sec-WebSocket-Version") != "13":
		w.Header().Set("Sec-WebSocket-Version", "13")
		http.Error(w, "Unsupported WebSocket version", http.StatusUpgradeRequired)
		return
	case !headerHas(r.Header, "Sec-WebSocket-Protocol", "xmpp"):
		http.Error(w, "The WebSocket subprotocol must be xmpp", http.StatusBadRequest)
		return
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		http.Error(w, "cannot take the connection over", http.StatusInternalServerError)
		return
	}
	nc, rw, err := hj.Hijack()
	if err != nil {
		return
	}
	sum := sha1.Sum([]byte(key + wsGUID))
	resp := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
		base64.StdEncoding.EncodeToString(sum[:]) + "\r\nSec-WebSocket-Protocol: xmpp\r\n\r\n"
	nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := nc.Write([]byte(resp)); err != nil {
		nc.Close()
		return
	}
	nc.SetWriteDeadline(time.Time{})
	wc := &wsConn{Conn: nc, br: rw.Reader, max: l.MaxStanzaSize + 4096}
	cl := l
	cl.TLS, cl.StartTLSRequired = false, false
	c := s.newConn(wc, cl)
	if c == nil {
		wc.Close()
		return
	}
	c.ws, c.secure = true, l.TLS
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		c.serve()
	}()
}

// wsConn is a WebSocket connection seen as an XMPP byte stream.
type wsConn struct {
	net.Conn
	br  *bufio.Reader
	max int
	in  bytes.Buffer // the stream's bytes not read yet

	wmu      sync.Mutex
	out      []byte // the stream's bytes not framed yet
	closed   bool
	sentOpen bool
}

var errTooBig = errors.New("websocket: message over the size limit")

func (w *wsConn) Read(p []byte) (int, error) {
	for w.in.Len() == 0 {
		msg, err := w.readMessage()
		if err != nil {
			return 0, err
		}
		w.in.Write(inbound(msg))
	}
	return w.in.Read(p)
}

// readMessage reads the frames of one text message, answering pings
// and a close.
func (w *wsConn) readMessage() ([]byte, error) {
	var msg []byte
	for {
		var h [2]byte
		if _, err := io.ReadFull(w.br, h[:]); err != nil {
			return nil, err
		}
		fin, op, masked := h[0]&0x80 != 0, h[0]&0x0f, h[1]&0x80 != 0
		n := uint64(h[1] & 0x7f)
		switch n {
		case 126:
			var b [2]byte
			if _, err := io.ReadFull(w.br, b[:]); err != nil {
				return nil, err
			}
			n = uint64(binary.BigEndian.Uint16(b[:]))
		case 127:
			var b [8]byte
			if _, err := io.ReadFull(w.br, b[:]); err != nil {
				return nil, err
			}
			n = binary.BigEndian.Uint64(b[:])
		}
		if !masked {
			w.sendClose(1002)
			return nil, errors.New("websocket: an unmasked frame from a client")
		}
		if n > uint64(w.max) || uint64(len(msg))+n > uint64(w.max) {
			w.sendClose(1009)
			return nil, errTooBig
		}
		var mask [4]byte
		if _, err := io.ReadFull(w.br, mask[:]); err != nil {
			return nil, err
		}
		payload := make([]byte, n)
		if _, err := io.ReadFull(w.br, payload); err != nil {
			return nil, err
		}
		for i := range payload {
			payload[i] ^= mask[i%4]
		}
		switch op {
		case 0x0, 0x1:
			msg = append(msg, payload...)
			if fin {
				return msg, nil
			}
		case 0x2:
			w.sendClose(1003)
			return nil, errors.New("websocket: a binary message (RFC 7395 wants text)")
		case 0x8:
			w.sendClose(1000)
			return nil, io.EOF
		case 0x9:
			w.writeFrame(0xA, payload)
		case 0xA:
		default:
			w.sendClose(1002)
			return nil, fmt.Errorf("websocket: unknown opcode %d", op)
		}
	}
}

// inbound turns a message into the bytes of a TCP stream: <open/> into
// a stream header, <close/> into the stream's end.
func inbound(msg []byte) []byte {
	t := bytes.TrimSpace(msg)
	if !bytes.HasPrefix(t, []byte("<open")) && !bytes.HasPrefix(t, []byte("<close")) {
		return msg
	}
	d := xml.NewDecoder(bytes.NewReader(t))
	tok, err := d.Token()
	for err == nil {
		if _, ok := tok.(xml.ProcInst); !ok {
			break
		}
		tok, err = d.Token()
	}
	se, ok := tok.(xml.StartElement)
	if err != nil || !ok || se.Name.Space != nsFraming {
		return msg
	}
	if se.Name.Local == "close" {
		return []byte("</stream:stream>")
	}
	if se.Name.Local != "open" {
		return msg
	}
	out := []byte("<stream:stream xmlns='" + stream.NSClient + "' xmlns:stream='" + stream.NSStreams + "'")
	for _, a := range se.Attr {
		name := a.Name.Local
		if a.Name.Space == "http://www.w3.org/XML/1998/namespace" {
			name = "xml:" + name
		} else if a.Name.Space != "" || name == "xmlns" {
			continue
		}
		out = append(out, ' ')
		out = append(out, name...)
		out = append(out, "='"...)
		out = codec.EscapeAttr(out, []byte(a.Value))
		out = append(out, '\'')
	}
	return append(out, '>')
}

func (w *wsConn) Write(p []byte) (int, error) {
	w.wmu.Lock()
	defer w.wmu.Unlock()
	if w.closed {
		return 0, net.ErrClosed
	}
	w.out = append(w.out, p...)
	for {
		frame, rest, ok := nextUnit(w.out)
		if !ok {
			break
		}
		w.out = rest
		if frame == nil {
			continue
		}
		if err := w.writeFrameLocked(0x1, frame); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

var headerAttrs = []string{"id", "version", "xml:lang", "from"}

// nextUnit takes what the server wrote apart into WebSocket messages:
// the stream header becomes <open/>, its end <close/>, each top-level
// element one message (with the namespaces a message must declare).
func nextUnit(b []byte) (frame, rest []byte, ok bool) {
	i := 0
	for i < len(b) && (b[i] == ' ' || b[i] == '\n' || b[i] == '\r' || b[i] == '\t') {
		i++
	}
	b = b[i:]
	if len(b) == 0 {
		return nil, b, false
	}
	switch {
	case bytes.HasPrefix(b, []byte("<?")):
		end := bytes.Index(b, []byte("?>"))
		if end < 0 {
			return nil, b, false
		}
		return nil, b[end+2:], true
	case bytes.HasPrefix(b, []byte("<stream:stream")):
		end := bytes.IndexByte(b, '>')
		if end < 0 {
			return nil, b, false
		}
		head := string(b[:end])
		out := []byte("<open xmlns='" + nsFraming + "'")
		for _, a := range headerAttrs {
			if k := strings.Index(head, " "+a+"='"); k >= 0 {
				v := head[k+len(a)+3:]
				if e := strings.IndexByte(v, '\''); e >= 0 {
					out = append(out, " "+a+"='"+v[:e]+"'"...)
				}
			}
		}
		return append(out, "/>"...), b[end+1:], true
	case bytes.HasPrefix(b, []byte("</stream:stream>")):
		return []byte("<close xmlns='" + nsFraming + "'/>"), b[len("</stream:stream>"):], true
	case b[0] != '<':
		// Whitespace keepalives have no place in a message.
		k := bytes.IndexByte(b, '<')
		if k < 0 {
			return nil, nil, true
		}
		return nil, b[k:], true
	}
	depth, j := 0, 0
	for {
		k := bytes.IndexByte(b[j:], '<')
		if k < 0 {
			return nil, b, false
		}
		j += k
		end := bytes.IndexByte(b[j:], '>')
		if end < 0 {
			return nil, b, false
		}
		tag := b[j : j+end+1]
		switch {
		case bytes.HasPrefix(tag, []byte("</")):
			depth--
		case bytes.HasSuffix(tag, []byte("/>")):
		default:
			depth++
		}
		j += end + 1
		if depth == 0 {
			return declare(b[:j]), b[j:], true
		}
	}
}

// declare adds to a top-level element the namespace declarations a
// message of its own needs.
func declare(el []byte) []byte {
	nameEnd := bytes.IndexAny(el, " />")
	name := string(el[1:nameEnd])
	startEnd := bytes.IndexByte(el, '>')
	start := el[:startEnd]
	var add string
	switch name {
	case "stream:features", "stream:error":
		add = " xmlns:stream='" + stream.NSStreams + "'"
	case "message", "presence", "iq":
		if !bytes.Contains(start, []byte(" xmlns=")) {
			add = " xmlns='" + stream.NSClient + "'"
		}
	}
	if add == "" {
		return el
	}
	out := make([]byte, 0, len(el)+len(add))
	out = append(out, el[:nameEnd]...)
	out = append(out, add...)
	return append(out, el[nameEnd:]...)
}

func (w *wsConn) writeFrame(op byte, payload []byte) error {
	w.wmu.Lock()
	defer w.wmu.Unlock()
	return w.writeFrameLocked(op, payload)
}

func (w *wsConn) writeFrameLocked(op byte, payload []byte) error {
	if w.closed {
		return net.ErrClosed
	}
	h := []byte{0x80 | op}
	switch n := len(payload); {
	case n < 126:
		h = append(h, byte(n))
	case n <= 0xffff:
		h = append(h, 126, byte(n>>8), byte(n))
	default:
		h = append(h, 127)
		h = binary.BigEndian.AppendUint64(h, uint64(n))
	}
	_, err := w.Conn.Write(append(h, payload...))
	return err
}

func (w *wsConn) sendClose(code uint16) {
	w.wmu.Lock()
	defer w.wmu.Unlock()
	if w.closed {
		return
	}
	w.Conn.SetWriteDeadline(time.Now().Add(2 * time.Second))
	w.writeFrameLocked(0x8, binary.BigEndian.AppendUint16(nil, code))
	w.closed = true
}

func (w *wsConn) Close() error {
	w.sendClose(1000)
	return w.Conn.Close()
}
