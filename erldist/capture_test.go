package erldist

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/mimmigrate/mimmigrate/erldist/term"
	"github.com/mimmigrate/mimmigrate/internal/testenv"
)

// recorder is a TCP proxy that keeps what each side sent.
type recorder struct {
	mu       sync.Mutex
	toPeer   bytes.Buffer
	fromPeer bytes.Buffer
}

func (r *recorder) proxy(t *testing.T, target string) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		in, err := l.Accept()
		if err != nil {
			return
		}
		out, err := net.Dial("tcp", target)
		if err != nil {
			in.Close()
			return
		}
		copyRec := func(dst, src net.Conn, rec *bytes.Buffer) {
			buf := make([]byte, 4096)
			for {
				n, err := src.Read(buf)
				if n > 0 {
					r.mu.Lock()
					rec.Write(buf[:n])
					r.mu.Unlock()
					dst.Write(buf[:n])
				}
				if err != nil {
					dst.Close()
					return
				}
			}
		}
		go copyRec(out, in, &r.toPeer)
		copyRec(in, out, &r.fromPeer)
	}()
	return l.Addr().(*net.TCPAddr).Port
}

// splitCapture cuts one direction of a capture into its handshake messages
// (2-byte frames, count of them given) and the packets after (4-byte frames).
func splitCapture(b []byte, handshakeMsgs int) (hs, packets [][]byte, err error) {
	for i := 0; i < handshakeMsgs; i++ {
		if len(b) < 2 {
			return nil, nil, fmt.Errorf("capture ends in the handshake")
		}
		n := int(binary.BigEndian.Uint16(b))
		hs, b = append(hs, b[2:2+n]), b[2+n:]
	}
	r := bufio.NewReader(bytes.NewReader(b))
	for {
		p, err := readPacket(r)
		if err == io.EOF {
			return hs, packets, nil
		}
		if err != nil {
			return nil, nil, err
		}
		if p != nil {
			packets = append(packets, p)
		}
	}
}

// TestRealCapture records a session with a real node through a proxy and
// checks every frame with the decoders. With MIMMIGRATE_WRITE_SEEDS=1 it also
// refreshes the fuzz corpora in testdata/fuzz from the capture.
func TestRealCapture(t *testing.T) {
	n := testenv.StartErl(t, testenv.ErlOptions{})
	info, _, err := EPMD{Host: "localhost"}.PortPlease(context.Background(), n.Alive())
	if err != nil {
		t.Fatal(err)
	}
	var rec recorder
	port := rec.proxy(t, net.JoinHostPort("127.0.0.1", fmt.Sprint(info.Port)))
	cl := &Client{Cookie: n.Cookie, DistPort: port}
	c, err := cl.Dial(context.Background(), n.Name)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, call := range []struct {
		m, f term.Atom
		a    []term.Term
	}{
		{"erlang", "node", nil},
		{"mnesia", "system_info", []term.Term{term.Atom("is_running")}},
		{"net_adm", "ping", []term.Term{c.Self().Node}},
		{"erlang", "error", []term.Term{term.Atom("boom")}},
		{"erlang", "make_ref", nil},
		{"erlang", "process_info", []term.Term{term.Atom("rex") /* not a pid: badarg */}},
	} {
		c.Call(ctx, call.m, call.f, call.a...)
	}
	c.Close()
	time.Sleep(100 * time.Millisecond)

	rec.mu.Lock()
	defer rec.mu.Unlock()
	// Ours: send_name, challenge_reply. Theirs: status, challenge, ack.
	oursHS, oursPk, err := splitCapture(rec.toPeer.Bytes(), 2)
	if err != nil {
		t.Fatalf("our side: %v", err)
	}
	theirsHS, theirsPk, err := splitCapture(rec.fromPeer.Bytes(), 3)
	if err != nil {
		t.Fatalf("their side: %v", err)
	}
	var sn SendNameV6
	var st Status
	var ch ChallengeV6
	var rp ChallengeReply
	var ack ChallengeAck
	for _, d := range []struct {
		err  error
		what string
	}{
		{sn.Decode(oursHS[0]), "send_name"}, {rp.Decode(oursHS[1]), "challenge_reply"},
		{st.Decode(theirsHS[0]), "status"}, {ch.Decode(theirsHS[1]), "challenge"}, {ack.Decode(theirsHS[2]), "ack"},
	} {
		if d.err != nil {
			t.Errorf("%s: %v", d.what, d.err)
		}
	}
	if st.Status != "ok" || ch.Name != n.Name || ch.Flags&FlagPublished == 0 {
		t.Errorf("status %q, challenge from %q with flags %s", st.Status, ch.Name, ch.Flags)
	}
	if len(theirsPk) < 6 || len(oursPk) < 6 {
		t.Fatalf("packets: %d ours, %d theirs", len(oursPk), len(theirsPk))
	}
	for _, p := range append(append([][]byte{}, oursPk...), theirsPk...) {
		if _, _, err := splitPacket(p); err != nil {
			t.Errorf("packet %v: %v", p, err)
		}
	}
	if os.Getenv("MIMMIGRATE_WRITE_SEEDS") == "1" {
		writeSeeds(t, "FuzzHandshakeMessages", append(append([][]byte{}, oursHS...), theirsHS...))
		writeSeeds(t, "FuzzSplitPacket", append(append([][]byte{}, oursPk...), theirsPk...))
		writeSeeds(t, "FuzzReadPacket", [][]byte{rec.fromPeer.Bytes()[len(rec.fromPeer.Bytes())-len(frameAll(theirsPk)):], frameAll(oursPk)})
	}
}

func frameAll(ps [][]byte) []byte {
	var b []byte
	for _, p := range ps {
		b = binary.BigEndian.AppendUint32(b, uint32(len(p)))
		b = append(b, p...)
	}
	return b
}

func writeSeeds(t *testing.T, target string, seeds [][]byte) {
	dir := filepath.Join("testdata", "fuzz", target)
	os.MkdirAll(dir, 0o755)
	for i, s := range seeds {
		content := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", s)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("capture-%02d", i)), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
