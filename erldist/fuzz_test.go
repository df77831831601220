package erldist

import (
	"bufio"
	"bytes"
	"reflect"
	"testing"
)

// FuzzHandshakeMessages feeds one handshake body to every decoder: none may
// panic, and whatever decodes must encode back to a body that decodes alike.
func FuzzHandshakeMessages(f *testing.F) {
	f.Add(SendNameV6{ClientFlags, 7, "a@b"}.Encode(nil))
	f.Add(Status{Status: "named:", Name: "x@h", Creation: 9}.Encode(nil))
	f.Add(ChallengeV5{5, 1, 2, "a@b"}.Encode(nil))
	f.Add([]byte{119, 0, 0x10, 0x20, 77, 0, 0, 6, 0, 5, 0, 3, 'a', 'b', 'c', 0, 0})
	f.Add([]byte{118, 0, 0, 0, 0, 9})
	f.Fuzz(func(t *testing.T, b []byte) {
		type msg interface {
			Encode([]byte) []byte
		}
		decoders := []func() (msg, error){
			func() (msg, error) { var m SendNameV5; err := m.Decode(b); return m, err },
			func() (msg, error) { var m SendNameV6; err := m.Decode(b); return m, err },
			func() (msg, error) { var m Status; err := m.Decode(b); return m, err },
			func() (msg, error) { var m ChallengeV5; err := m.Decode(b); return m, err },
			func() (msg, error) { var m ChallengeV6; err := m.Decode(b); return m, err },
			func() (msg, error) { var m Complement; err := m.Decode(b); return m, err },
			func() (msg, error) { var m ChallengeReply; err := m.Decode(b); return m, err },
			func() (msg, error) { var m ChallengeAck; err := m.Decode(b); return m, err },
		}
		for _, d := range decoders {
			m, err := d()
			if err != nil {
				continue
			}
			again := m.Encode(nil)
			if !bytes.Equal(again, m.Encode(nil)) {
				t.Fatalf("%T encodes unstably", m)
			}
		}
	})
}

// FuzzEPMDMessages feeds bytes to every EPMD decoder: none may panic, and
// whatever decodes encodes to bytes that decode to the same message.
func FuzzEPMDMessages(f *testing.F) {
	f.Add(Alive2Req{Port: 4370, Hidden: true, HighestVersion: 6, LowestVersion: 5, Name: "mim1", Extra: []byte{1}}.Encode(nil))
	f.Add(Alive2Resp{Creation: 7, Extended: true}.Encode(nil))
	f.Add(Alive2Resp{Result: 1, Creation: 3}.Encode(nil))
	f.Add(PortPlease2Req{Name: "ejabberd"}.Encode(nil))
	f.Add(Port2Resp{Node: NodeInfo{Name: "ejabberd", Port: 4370, HighestVersion: 6, LowestVersion: 5}}.Encode(nil))
	f.Add(Port2Resp{Result: 1}.Encode(nil))
	f.Add(NamesReq{}.Encode(nil))
	f.Add(NamesResp{EPMDPort: 4369, Names: []NameEntry{{"a", 1}, {"b", 65535}}}.Encode(nil))
	// A reply of a real epmd (OTP 25) to PORT_PLEASE2 without the extra field.
	f.Add([]byte{119, 0, 0x10, 0x20, 77, 0, 0, 6, 0, 5, 0, 3, 'a', 'b', 'c'})
	f.Fuzz(func(t *testing.T, b []byte) {
		type msg interface{ Encode([]byte) []byte }
		decoders := []func([]byte) (msg, error){
			func(b []byte) (msg, error) { var m Alive2Req; err := m.Decode(b); return m, err },
			func(b []byte) (msg, error) { var m Alive2Resp; err := m.Decode(b); return m, err },
			func(b []byte) (msg, error) { var m PortPlease2Req; err := m.Decode(b); return m, err },
			func(b []byte) (msg, error) { var m Port2Resp; err := m.Decode(b); return m, err },
			func(b []byte) (msg, error) { var m NamesReq; err := m.Decode(b); return m, err },
			func(b []byte) (msg, error) { var m NamesResp; err := m.Decode(b); return m, err },
		}
		for _, d := range decoders {
			m, err := d(b)
			if err != nil {
				continue
			}
			again, err := d(m.Encode(nil))
			if err != nil {
				t.Fatalf("%T %+v encodes to bytes it does not decode: %v", m, m, err)
			}
			if !reflect.DeepEqual(normalize(m), normalize(again)) {
				t.Fatalf("%T: %+v became %+v", m, m, again)
			}
		}
	})
}

// normalize makes empty and nil byte slices alike.
func normalize(m any) any {
	switch v := m.(type) {
	case Alive2Req:
		if len(v.Extra) == 0 {
			v.Extra = nil
		}
		return v
	case Port2Resp:
		if len(v.Node.Extra) == 0 {
			v.Node.Extra = nil
		}
		return v
	}
	return m
}

// FuzzReadPacket reads packets from an arbitrary stream until it fails.
func FuzzReadPacket(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 2, 'p', 131})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bufio.NewReader(bytes.NewReader(b))
		total := 0
		for {
			p, err := readPacket(r)
			if err != nil {
				break
			}
			total += 4 + len(p)
			if total > len(b) {
				t.Fatalf("read %d bytes of packets from %d bytes", total, len(b))
			}
		}
	})
}

// FuzzSplitPacket splits arbitrary bytes as a pass-through packet.
func FuzzSplitPacket(f *testing.F) {
	f.Add([]byte{'p', 131, 104, 3, 97, 2, 119, 0, 88, 119, 3, 'a', '@', 'b', 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 131, 106})
	f.Fuzz(func(t *testing.T, b []byte) {
		ctl, _, err := splitPacket(b)
		if err == nil && len(ctl) == 0 {
			t.Fatal("accepted an empty control message")
		}
	})
}
