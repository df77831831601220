package erldist

import (
	"crypto/md5"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
)

// Handshake messages, each with symmetric Encode (appending the message body,
// without the 2-byte length prefix) and Decode (of a complete body).

// SendNameV5 is the old 'n' send_name (version 5).
type SendNameV5 struct {
	Version uint16
	Flags   uint32
	Name    string
}

func (m SendNameV5) Encode(dst []byte) []byte {
	dst = append(dst, 'n')
	dst = binary.BigEndian.AppendUint16(dst, m.Version)
	dst = binary.BigEndian.AppendUint32(dst, m.Flags)
	return append(dst, m.Name...)
}

func (m *SendNameV5) Decode(src []byte) error {
	if len(src) < 7 || src[0] != 'n' {
		return errors.New("not a version 5 send_name")
	}
	m.Version = binary.BigEndian.Uint16(src[1:])
	m.Flags = binary.BigEndian.Uint32(src[3:])
	m.Name = string(src[7:])
	return nil
}

// SendNameV6 is the 'N' send_name (version 6, OTP 23+).
type SendNameV6 struct {
	Flags    Flags
	Creation uint32
	Name     string
}

func (m SendNameV6) Encode(dst []byte) []byte {
	dst = append(dst, 'N')
	dst = binary.BigEndian.AppendUint64(dst, uint64(m.Flags))
	dst = binary.BigEndian.AppendUint32(dst, m.Creation)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(m.Name)))
	return append(dst, m.Name...)
}

func (m *SendNameV6) Decode(src []byte) error {
	if len(src) < 15 || src[0] != 'N' {
		return errors.New("not a version 6 send_name")
	}
	m.Flags = Flags(binary.BigEndian.Uint64(src[1:]))
	m.Creation = binary.BigEndian.Uint32(src[9:])
	n := int(binary.BigEndian.Uint16(src[13:]))
	if len(src) < 15+n {
		return errors.New("short version 6 send_name")
	}
	m.Name = string(src[15 : 15+n]) // anything after the name is ignored, as the protocol asks
	return nil
}

// Status is the 's' status message.
type Status struct {
	Status string
	// For "named:" (a reply to NAME_ME): the name and creation assigned.
	Name     string
	Creation uint32
}

const statusNamed = "named:"

func (m Status) Encode(dst []byte) []byte {
	dst = append(dst, 's')
	dst = append(dst, m.Status...)
	if m.Status == statusNamed {
		dst = binary.BigEndian.AppendUint16(dst, uint16(len(m.Name)))
		dst = append(dst, m.Name...)
		dst = binary.BigEndian.AppendUint32(dst, m.Creation)
	}
	return dst
}

func (m *Status) Decode(src []byte) error {
	if len(src) < 1 || src[0] != 's' {
		return errors.New("not a status message")
	}
	s := string(src[1:])
	if len(s) >= len(statusNamed) && s[:len(statusNamed)] == statusNamed {
		b := src[1+len(statusNamed):]
		if len(b) < 2 {
			return errors.New("short named: status")
		}
		n := int(binary.BigEndian.Uint16(b))
		if len(b) < 2+n+4 {
			return errors.New("short named: status")
		}
		m.Status, m.Name, m.Creation = statusNamed, string(b[2:2+n]), binary.BigEndian.Uint32(b[2+n:])
		return nil
	}
	m.Status = s
	return nil
}

// ChallengeV5 is the old 'n' challenge.
type ChallengeV5 struct {
	Version   uint16
	Flags     uint32
	Challenge uint32
	Name      string
}

func (m ChallengeV5) Encode(dst []byte) []byte {
	dst = append(dst, 'n')
	dst = binary.BigEndian.AppendUint16(dst, m.Version)
	dst = binary.BigEndian.AppendUint32(dst, m.Flags)
	dst = binary.BigEndian.AppendUint32(dst, m.Challenge)
	return append(dst, m.Name...)
}

func (m *ChallengeV5) Decode(src []byte) error {
	if len(src) < 11 || src[0] != 'n' {
		return errors.New("not a version 5 challenge")
	}
	m.Version = binary.BigEndian.Uint16(src[1:])
	m.Flags = binary.BigEndian.Uint32(src[3:])
	m.Challenge = binary.BigEndian.Uint32(src[7:])
	m.Name = string(src[11:])
	return nil
}

// ChallengeV6 is the 'N' challenge.
type ChallengeV6 struct {
	Flags     Flags
	Challenge uint32
	Creation  uint32
	Name      string
}

func (m ChallengeV6) Encode(dst []byte) []byte {
	dst = append(dst, 'N')
	dst = binary.BigEndian.AppendUint64(dst, uint64(m.Flags))
	dst = binary.BigEndian.AppendUint32(dst, m.Challenge)
	dst = binary.BigEndian.AppendUint32(dst, m.Creation)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(m.Name)))
	return append(dst, m.Name...)
}

func (m *ChallengeV6) Decode(src []byte) error {
	if len(src) < 19 || src[0] != 'N' {
		return errors.New("not a version 6 challenge")
	}
	m.Flags = Flags(binary.BigEndian.Uint64(src[1:]))
	m.Challenge = binary.BigEndian.Uint32(src[9:])
	m.Creation = binary.BigEndian.Uint32(src[13:])
	n := int(binary.BigEndian.Uint16(src[17:]))
	if len(src) < 19+n {
		return errors.New("short version 6 challenge")
	}
	m.Name = string(src[19 : 19+n])
	return nil
}

// Complement is the 'c' message a version-5 initiator sends after a version-6 challenge.
type Complement struct {
	FlagsHigh uint32
	Creation  uint32
}

func (m Complement) Encode(dst []byte) []byte {
	dst = append(dst, 'c')
	dst = binary.BigEndian.AppendUint32(dst, m.FlagsHigh)
	return binary.BigEndian.AppendUint32(dst, m.Creation)
}

func (m *Complement) Decode(src []byte) error {
	if len(src) != 9 || src[0] != 'c' {
		return errors.New("not a complement")
	}
	m.FlagsHigh = binary.BigEndian.Uint32(src[1:])
	m.Creation = binary.BigEndian.Uint32(src[5:])
	return nil
}

// ChallengeReply is the 'r' message: our challenge and our proof of the cookie.
type ChallengeReply struct {
	Challenge uint32
	Digest    [16]byte
}

func (m ChallengeReply) Encode(dst []byte) []byte {
	dst = append(dst, 'r')
	dst = binary.BigEndian.AppendUint32(dst, m.Challenge)
	return append(dst, m.Digest[:]...)
}

func (m *ChallengeReply) Decode(src []byte) error {
	if len(src) != 21 || src[0] != 'r' {
		return errors.New("not a challenge reply")
	}
	m.Challenge = binary.BigEndian.Uint32(src[1:])
	copy(m.Digest[:], src[5:])
	return nil
}

// ChallengeAck is the 'a' message: the peer's proof of the cookie.
type ChallengeAck struct {
	Digest [16]byte
}

func (m ChallengeAck) Encode(dst []byte) []byte {
	return append(append(dst, 'a'), m.Digest[:]...)
}

func (m *ChallengeAck) Decode(src []byte) error {
	if len(src) != 17 || src[0] != 'a' {
		return errors.New("not a challenge ack")
	}
	copy(m.Digest[:], src[1:])
	return nil
}

// digest is MD5(cookie ++ decimal text of the unsigned challenge).
func digest(cookie string, challenge uint32) [16]byte {
	return md5.Sum([]byte(cookie + strconv.FormatUint(uint64(challenge), 10)))
}

// describeHandshakeMsg names a handshake body for error messages.
func describeHandshakeMsg(b []byte) string {
	if len(b) == 0 {
		return "an empty message"
	}
	switch b[0] {
	case 's':
		return fmt.Sprintf("status %q", string(b[1:]))
	case 'n', 'N', 'r', 'a', 'c':
		return fmt.Sprintf("a %q message of %d bytes", b[0], len(b))
	}
	return fmt.Sprintf("%d bytes starting %q", len(b), head(b))
}
