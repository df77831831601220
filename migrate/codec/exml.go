package codec

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"sort"

	"github.com/mimmigrate/mimmigrate/erldist/term"
)

// ExmlTerm encodes a stanza as MongooseIM 6.x keeps it in mam_message
// (mam_message_compressed_eterm): term_to_binary(Packet, [compressed]) of
// an exml 4 record, {xmlel, Name, #{Attr => Value}, Children} with
// {xmlcdata, Text, escaped} text.
func ExmlTerm(e *Element) ([]byte, error) {
	plain, err := term.Encode(exmlOf(e))
	if err != nil {
		return nil, err
	}
	body := plain[1:]
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	zw.Write(body)
	zw.Close()
	if z.Len()+6 >= len(plain) {
		return plain, nil // as Erlang: compressed only when smaller
	}
	out := make([]byte, 6, 6+z.Len())
	out[0], out[1] = 131, 80
	binary.BigEndian.PutUint32(out[2:], uint32(len(body)))
	return append(out, z.Bytes()...), nil
}

func exmlOf(e *Element) term.Term {
	attrs := make(term.Map, 0, len(e.Attrs))
	idx := map[string]int{}
	for _, a := range e.Attrs {
		if i, ok := idx[a[0]]; ok {
			attrs[i].Value = term.Binary(a[1])
			continue
		}
		idx[a[0]] = len(attrs)
		attrs = append(attrs, term.MapPair{Key: term.Binary(a[0]), Value: term.Binary(a[1])})
	}
	sort.Slice(attrs, func(i, j int) bool {
		return string(attrs[i].Key.(term.Binary)) < string(attrs[j].Key.(term.Binary))
	})
	kids := make(term.List, 0, len(e.Kids))
	for _, k := range e.Kids {
		switch k := k.(type) {
		case *Element:
			kids = append(kids, exmlOf(k))
		case string:
			kids = append(kids, term.Tuple{term.Atom("xmlcdata"), term.Binary(k), term.Atom("escaped")})
		}
	}
	return term.Tuple{term.Atom("xmlel"), term.Binary(e.Name), attrs, kids}
}
