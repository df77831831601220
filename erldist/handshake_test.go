package erldist

import (
	"bufio"
	"context"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// These peers inject what a real OTP 25 node cannot produce here: an R14-style
// version 5 challenge, nok, alive, a wrong ack. The same paths against real
// nodes are in erl_test.go.

const testCookie = "handshake-test-cookie"

// fakePeer accepts one connection on loopback and runs script on it.
func fakePeer(t *testing.T, script func(c *hsConn)) (port int) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		nc, err := l.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		nc.SetDeadline(time.Now().Add(10 * time.Second))
		script(&hsConn{nc: nc, r: bufio.NewReader(nc)})
	}()
	return l.Addr().(*net.TCPAddr).Port
}

func runClient(t *testing.T, port, version int, replace bool) (handshakeResult, error) {
	t.Helper()
	nc, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	h := clientHandshake{OurName: "mimmigrate-test@localhost", PeerName: "peer@localhost", Cookie: testCookie,
		Creation: 77, Flags: ClientFlags, Version: version, ReplaceIf: replace}
	return h.run(ctx, nc, bufio.NewReader(nc))
}

// serve runs our own accepting side, answering with status.
func serve(status string) func(c *hsConn) {
	return func(c *hsConn) {
		h := serverHandshake{OurName: "peer@localhost", Cookie: testCookie, Creation: 99,
			Flags: ClientFlags | FlagPublished, Status: func(string, uint32) string { return status }}
		h.run(context.Background(), c.nc, c.r)
	}
}

func TestHandshakeVersions(t *testing.T) {
	// Version 6 against our accepting side.
	res, err := runClient(t, fakePeer(t, serve("ok")), 6, false)
	if err != nil || res.PeerCreation != 99 || !res.Flags.Has(FlagV4NC|FlagUnlinkID) || !res.Hidden() {
		t.Fatalf("v6: %+v %v", res, err)
	}
	// Version 5 send_name, answered with a version 6 challenge: the client
	// must send the complement, which carries the high flags and creation.
	res, err = runClient(t, fakePeer(t, serve("ok")), 5, false)
	if err != nil || !res.Flags.Has(FlagV4NC) || res.Version != 5 {
		t.Fatalf("v5 with complement: %+v %v", res, err)
	}
	// An R14/R16 peer: version 5 challenge with 32-bit flags only.
	port := fakePeer(t, func(c *hsConn) {
		msg, _ := c.read()
		var sn SendNameV5
		if err := sn.Decode(msg); err != nil || sn.Version != 5 || sn.Name != "mimmigrate-test@localhost" {
			t.Errorf("send_name: %+v %v", sn, err)
		}
		if Flags(sn.Flags)&FlagHandshake23 == 0 {
			t.Error("version 5 send_name lacks HANDSHAKE_23")
		}
		c.write(Status{Status: "ok"}.Encode(nil))
		old := FlagExtendedReferences | FlagExtendedPidsPorts | FlagDistMonitor | FlagFunTags | FlagNewFunTags
		c.write(ChallengeV5{Version: 5, Flags: uint32(old), Challenge: 4242, Name: "peer@localhost"}.Encode(nil))
		msg, _ = c.read()
		var r ChallengeReply
		if err := r.Decode(msg); err != nil || r.Digest != digest(testCookie, 4242) {
			t.Errorf("challenge reply: %v", err)
			return
		}
		c.write(ChallengeAck{Digest: digest(testCookie, r.Challenge)}.Encode(nil))
	})
	res, err = runClient(t, port, 5, false)
	if err != nil {
		t.Fatalf("R14-style peer: %v", err)
	}
	if res.Flags.Has(FlagUTF8Atoms) || res.Flags.Has(FlagBigCreation) {
		t.Errorf("negotiated %s with an R14 peer", res.Flags)
	}
}

func TestHandshakeStatuses(t *testing.T) {
	for status, want := range map[string]Kind{
		"nok": KindSimultaneous, "not_allowed": KindNotAllowed, "bogus": KindProtocol,
	} {
		_, err := runClient(t, fakePeer(t, serve(status)), 6, false)
		if KindOf(err) != want {
			t.Errorf("status %s: got %v (kind %d), want kind %d", status, err, KindOf(err), want)
		}
	}
	if _, err := runClient(t, fakePeer(t, serve("ok_simultaneous")), 6, false); err != nil {
		t.Errorf("ok_simultaneous: %v", err)
	}
	// alive: answering true takes over and completes; false gives up.
	if _, err := runClient(t, fakePeer(t, serve("alive")), 6, true); err != nil {
		t.Errorf("alive/true: %v", err)
	}
	if _, err := runClient(t, fakePeer(t, serve("alive")), 6, false); KindOf(err) != KindNameInUse {
		t.Errorf("alive/false: %v", err)
	}
}

func TestHandshakeFaults(t *testing.T) {
	challengeThen := func(after func(c *hsConn, r ChallengeReply)) func(c *hsConn) {
		return func(c *hsConn) {
			c.read()
			c.write(Status{Status: "ok"}.Encode(nil))
			c.write(ChallengeV6{Flags: ClientFlags, Challenge: 1, Creation: 5, Name: "peer@localhost"}.Encode(nil))
			msg, _ := c.read()
			var r ChallengeReply
			r.Decode(msg)
			after(c, r)
		}
	}
	cases := map[string]struct {
		script func(c *hsConn)
		want   Kind
		hint   string
	}{
		"closes after send_name": {func(c *hsConn) { c.read() }, KindClosedAfterSendName, "older than 23"},
		"TLS": {func(c *hsConn) {
			c.read()
			c.nc.Write([]byte{0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28})
		}, KindNotDistribution, "TLS"},
		"garbage": {func(c *hsConn) {
			c.read()
			c.nc.Write([]byte("\x00\x05HTTP/"))
		}, KindNotDistribution, ""},
		"silent":       {func(c *hsConn) { c.read(); time.Sleep(5 * time.Second) }, KindTimeout, ""},
		"wrong cookie": {challengeThen(func(c *hsConn, r ChallengeReply) {}), KindBadCookie, "cookie"},
		"bad ack": {challengeThen(func(c *hsConn, r ChallengeReply) {
			c.write(ChallengeAck{Digest: digest("other", r.Challenge)}.Encode(nil))
		}), KindPeerAuth, ""},
		"not_allowed instead of ack": {challengeThen(func(c *hsConn, r ChallengeReply) {
			c.write(Status{Status: "not_allowed"}.Encode(nil))
		}), KindNotAllowed, "flags"},
		"another node's name": {func(c *hsConn) {
			c.read()
			c.write(Status{Status: "ok"}.Encode(nil))
			c.write(ChallengeV6{Flags: ClientFlags, Challenge: 1, Creation: 5, Name: "other@localhost"}.Encode(nil))
		}, KindNameMismatch, "other@localhost"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			_, err := runClient(t, fakePeer(t, tc.script), 6, false)
			if KindOf(err) != tc.want {
				t.Fatalf("got %v (kind %d), want kind %d", err, KindOf(err), tc.want)
			}
			if strings.Contains(HintOf(err), "--") {
				t.Errorf("hint %q names a command-line flag: erldist's hints are neutral", HintOf(err))
			}
			if !strings.Contains(HintOf(err), tc.hint) {
				t.Errorf("hint %q lacks %q", HintOf(err), tc.hint)
			}
			if time.Since(start) > 4*time.Second {
				t.Errorf("took %s", time.Since(start))
			}
			if strings.Contains(err.Error(), testCookie) {
				t.Error("error shows the cookie")
			}
		})
	}
}

func TestHandshakeMessagesRoundTrip(t *testing.T) {
	type codec interface{ Encode([]byte) []byte }
	check := func(m codec, decode func([]byte) (codec, error)) {
		b := m.Encode(nil)
		got, err := decode(b)
		if err != nil {
			t.Errorf("%T: %v", m, err)
			return
		}
		if string(got.Encode(nil)) != string(b) {
			t.Errorf("%T: round trip %v -> %v", m, b, got.Encode(nil))
		}
	}
	check(SendNameV5{5, 0x1234, "a@b"}, func(b []byte) (codec, error) { var m SendNameV5; return m, m.Decode(b) })
	check(SendNameV6{ClientFlags, 7, "a@b"}, func(b []byte) (codec, error) { var m SendNameV6; err := m.Decode(b); return m, err })
	check(Status{Status: "ok"}, func(b []byte) (codec, error) { var m Status; err := m.Decode(b); return m, err })
	check(Status{Status: "named:", Name: "x@h", Creation: 9}, func(b []byte) (codec, error) { var m Status; err := m.Decode(b); return m, err })
	check(ChallengeV5{5, 1, 2, "a@b"}, func(b []byte) (codec, error) { var m ChallengeV5; err := m.Decode(b); return m, err })
	check(ChallengeV6{ClientFlags, 2, 3, "a@b"}, func(b []byte) (codec, error) { var m ChallengeV6; err := m.Decode(b); return m, err })
	check(Complement{1, 2}, func(b []byte) (codec, error) { var m Complement; err := m.Decode(b); return m, err })
	check(ChallengeReply{9, digest("c", 1)}, func(b []byte) (codec, error) { var m ChallengeReply; err := m.Decode(b); return m, err })
	check(ChallengeAck{digest("c", 2)}, func(b []byte) (codec, error) { var m ChallengeAck; err := m.Decode(b); return m, err })
	// The digest is MD5(cookie ++ decimal challenge), challenge unsigned.
	if d := digest("abc", 4294967295); d != digest("abc", 0xffffffff) || d == digest("4294967295", 0) {
		t.Error("digest")
	}
}
