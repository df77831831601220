// Package jid parses and normalises Jabber IDs exactly as ejabberd 23.01
// does (its jid module over the stringprep NIF): nodeprep, nameprep and
// resourceprep of RFC 3920 Appendix A and B on the RFC 3454 tables, with
// unassigned code points refused and each prepared part shorter than 1024
// bytes. Every username ejabberd stored resolves to the same account here.
package jid

import (
	"errors"
	"strings"
	"unicode/utf8"

	"github.com/xdg-go/stringprep"
)

// JID is a normalised address: the prepared forms of its parts.
type JID struct {
	Local, Domain, Resource string
}

// ErrInvalid is a string that is not a JID, or a part stringprep refuses.
var ErrInvalid = errors.New("invalid JID")

// maxPart is ejabberd's bound on a prepared part (jid:nodeprep & co.).
const maxPart = 1024

var common = []stringprep.Set{
	stringprep.TableC1_2, stringprep.TableC2_2, stringprep.TableC3, stringprep.TableC4, stringprep.TableC5,
	stringprep.TableC6, stringprep.TableC7, stringprep.TableC8, stringprep.TableC9, stringprep.TableA1,
}

var (
	nodeprep = stringprep.Profile{
		Mappings:  []stringprep.Mapping{stringprep.TableB1, stringprep.TableB2},
		Normalize: true,
		Prohibits: append([]stringprep.Set{stringprep.TableC1_1, stringprep.TableC2_1, nodeSpecials}, common...),
		CheckBiDi: true,
	}
	nameprep = stringprep.Profile{
		Mappings:  []stringprep.Mapping{stringprep.TableB1, stringprep.TableB2},
		Normalize: true,
		Prohibits: common,
		CheckBiDi: true,
	}
	resourceprep = stringprep.Profile{
		Mappings:  []stringprep.Mapping{stringprep.TableB1},
		Normalize: true,
		Prohibits: append([]stringprep.Set{stringprep.TableC2_1}, common...),
		CheckBiDi: true,
	}
	// nodeSpecials are the characters nodeprep prohibits besides the
	// tables: " & ' / : < > @
	nodeSpecials = stringprep.Set{{0x22, 0x22}, {0x26, 0x27}, {0x2F, 0x2F}, {0x3A, 0x3A}, {0x3C, 0x3C}, {0x3E, 0x3E}, {0x40, 0x40}}
)

// Nodeprep prepares a localpart; "" stays "".
func Nodeprep(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	if out, ok := asciiPrep(s, true); ok {
		return out, nil
	}
	return prep(nodeprep, s)
}

// Nameprep prepares a domain.
func Nameprep(s string) (string, error) {
	if out, ok := asciiPrep(s, true); ok && !strings.ContainsAny(out, "\"&'/:<>@ ") {
		return out, nil
	}
	return prep(nameprep, s)
}

// Resourceprep prepares a resource (it keeps case and spaces).
func Resourceprep(s string) (string, error) {
	if out, ok := asciiPrep(s, false); ok {
		return out, nil
	}
	return prep(resourceprep, s)
}

func prep(p stringprep.Profile, s string) (string, error) {
	if len(s) >= maxPart {
		return "", ErrInvalid
	}
	out, err := p.Prepare(s)
	if err != nil || len(out) >= maxPart {
		return "", ErrInvalid
	}
	return out, nil
}

// asciiPrep is the profiles on printable ASCII, which they only lower
// (fold) or keep: ok is false when s needs the full profile (non-ASCII,
// a control character, or for nodeprep one of its prohibited characters).
func asciiPrep(s string, fold bool) (string, bool) {
	if len(s) >= maxPart {
		return "", false
	}
	upper := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c < 0x20 || c >= 0x7F:
			return "", false
		case fold && strings.IndexByte("\"&'/:<>@ ", c) >= 0:
			return "", false
		case 'A' <= c && c <= 'Z':
			upper = true
		}
	}
	if fold && upper {
		return strings.ToLower(s), true
	}
	return s, true
}

// Parse reads local@domain/resource as ejabberd's jid:decode does, then
// prepares every part. The grammar is ejabberd's (xmpp's jid.rl): valid
// UTF-8; the resource is everything after the first '/', non-empty; the
// local part ends at the first '@' before it, is non-empty and has no
// space or " & ' / : < > @; the domain is dot-separated non-empty labels
// (a trailing dot allowed) with no space or '@'.
func Parse(s string) (JID, error) {
	if s == "" || !utf8.ValidString(s) {
		return JID{}, ErrInvalid
	}
	head, res := s, ""
	if i := strings.IndexByte(s, '/'); i >= 0 {
		head, res = s[:i], s[i+1:]
		if res == "" {
			return JID{}, ErrInvalid
		}
	}
	local, domain := "", head
	if i := strings.IndexByte(head, '@'); i >= 0 {
		local, domain = head[:i], head[i+1:]
		if local == "" || strings.ContainsAny(local, "\"&'/:<>@ \t\n\v\f\r") {
			return JID{}, ErrInvalid
		}
	}
	if !validDomain(domain) {
		return JID{}, ErrInvalid
	}
	return Make(local, domain, res)
}

func validDomain(d string) bool {
	if strings.ContainsAny(d, "@ \t\n\v\f\r") {
		return false
	}
	d = strings.TrimSuffix(d, ".")
	if d == "" {
		return false
	}
	for label := range strings.SplitSeq(d, ".") {
		if label == "" {
			return false
		}
	}
	return true
}

// Make prepares the parts of a JID (jid:make/3).
func Make(local, domain, resource string) (JID, error) {
	l, err := Nodeprep(local)
	if err != nil {
		return JID{}, err
	}
	d, err := Nameprep(domain)
	if err != nil || d == "" {
		return JID{}, ErrInvalid
	}
	r, err := Resourceprep(resource)
	if err != nil {
		return JID{}, err
	}
	return JID{Local: l, Domain: d, Resource: r}, nil
}

// Bare is the JID without its resource.
func (j JID) Bare() JID { return JID{Local: j.Local, Domain: j.Domain} }

// IsBare reports whether the JID has no resource.
func (j JID) IsBare() bool { return j.Resource == "" }

// String writes local@domain/resource.
func (j JID) String() string {
	var b strings.Builder
	b.Grow(len(j.Local) + len(j.Domain) + len(j.Resource) + 2)
	if j.Local != "" {
		b.WriteString(j.Local)
		b.WriteByte('@')
	}
	b.WriteString(j.Domain)
	if j.Resource != "" {
		b.WriteByte('/')
		b.WriteString(j.Resource)
	}
	return b.String()
}

// IsZero reports whether the JID is empty.
func (j JID) IsZero() bool { return j.Domain == "" }
