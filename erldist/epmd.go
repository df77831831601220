package erldist

import (
	"bufio"
	"context"
	"io"
	"net"
	"strconv"
	"time"
)

// DefaultEPMDPort is where epmd listens unless ERL_EPMD_PORT says otherwise.
const DefaultEPMDPort = 4369

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
		"check the epmd port (ERL_EPMD_PORT); epmd normally listens on 4369",
		nil, "%s does not answer like epmd (got %d bytes starting %q)", e.addr(), len(reply), head(reply)).withRemedy(RemedyEPMDPort, "")
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
	reply, err := e.exchange(ctx, NamesReq{}.Encode(nil))
	if err != nil {
		return nil, err
	}
	var resp NamesResp
	if err := resp.Decode(reply); err != nil {
		return nil, e.notEPMD(reply)
	}
	return resp.Names, nil
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
			nil, "epmd refused to register %q (result %d)", req.Name, resp.Result).withRemedy(RemedyNameTaken, req.Name)
	}
	c.SetDeadline(time.Time{})
	ok = true
	return &Registration{conn: c, Creation: resp.Creation, Extended: resp.Extended}, nil
}
