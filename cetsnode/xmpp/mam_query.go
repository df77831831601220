package xmpp

import (
	"errors"
	"strconv"
	"time"

	"github.com/mimmigrate/mimmigrate/cetsnode/xmpp/jid"
	"github.com/mimmigrate/mimmigrate/cetsnode/xmpp/stanza"
	"github.com/mimmigrate/mimmigrate/cetsnode/xmpp/storage"
	"github.com/mimmigrate/mimmigrate/migrate/codec"
)

// A MAM query as ejabberd's codec and mam_query decode it: the RSM set,
// flip-page and the form, their errors, the selection they make, and the
// query written back in an error.

// mamRequest is a decoded query: what the codec keeps of it (to write
// it back in an error, as ejabberd does once it decoded it) and the
// selection it makes.
type mamRequest struct {
	ns, queryID string
	flip        bool
	rsm         *rsmSet
	form        *xform
	q           storage.ArchiveQuery
}

// rsmSet is a decoded RSM request (XEP-0059).
type rsmSet struct {
	max, index    *int64
	before, after *string
}

// xform is a decoded data form (XEP-0004) of a query.
type xform struct {
	typ    string
	fields []xfield
}

type xfield struct {
	v, typ, label string
	required      bool
	desc          *string
	values        []string
}

// parseMAMQuery decodes a query as ejabberd's codec does: what the codec
// cannot read is an error about the query as sent.
func parseMAMQuery(p *codec.Element) (*mamRequest, *stanza.Error) {
	ns := stanza.NS(p)
	r := &mamRequest{ns: ns, queryID: stanza.Attr(p, "queryid")}
	for _, k := range p.Kids {
		c, ok := k.(*codec.Element)
		if !ok {
			continue
		}
		cns := stanza.NS(c)
		if cns == "" {
			cns = ns
		}
		switch {
		case c.Name == "set" && cns == nsRSM && r.rsm == nil:
			set, err := parseRSM(c)
			if err != nil {
				return nil, err
			}
			r.rsm = set
		case c.Name == "flip-page" && cns == nsMAM2:
			r.flip = true
		case c.Name == "x" && cns == nsXData && r.form == nil:
			r.form = parseXForm(c)
		}
	}
	return r, nil
}

func parseRSM(set *codec.Element) (*rsmSet, *stanza.Error) {
	out := &rsmSet{}
	for _, k := range set.Kids {
		c, ok := k.(*codec.Element)
		if !ok || (stanza.NS(c) != "" && stanza.NS(c) != nsRSM) {
			continue
		}
		text := c.Text()
		switch c.Name {
		case "max", "index":
			if text == "" {
				continue
			}
			n, err := strconv.ParseInt(text, 10, 64)
			if err != nil || n < 0 {
				return nil, badRequest("Bad value of cdata in tag <%s/> qualified by namespace '%s'", c.Name, nsRSM)
			}
			if c.Name == "max" {
				out.max = &n
			} else {
				out.index = &n
			}
		case "after":
			if text == "" {
				return nil, badRequest("Missing cdata in tag <after/> qualified by namespace '%s'", nsRSM)
			}
			out.after = &text
		case "before":
			out.before = &text
		}
	}
	return out, nil
}

func parseXForm(x *codec.Element) *xform {
	f := &xform{typ: stanza.Attr(x, "type")}
	for _, k := range x.Kids {
		fe, ok := k.(*codec.Element)
		if !ok || fe.Name != "field" {
			continue
		}
		fd := xfield{v: stanza.Attr(fe, "var"), typ: stanza.Attr(fe, "type"), label: stanza.Attr(fe, "label")}
		for _, vk := range fe.Kids {
			ve, ok := vk.(*codec.Element)
			if !ok {
				continue
			}
			switch ve.Name {
			case "value":
				fd.values = append(fd.values, ve.Text())
			case "required":
				fd.required = true
			case "desc":
				d := ve.Text()
				fd.desc = &d
			}
		}
		f.fields = append(f.fields, fd)
	}
	return f
}

// element writes the query back as ejabberd's codec writes the decoded
// record: the RSM set, flip-page, then the form.
func (r *mamRequest) element() *codec.Element {
	q := &codec.Element{Name: "query"}
	if r.queryID != "" {
		q.Attrs = append(q.Attrs, [2]string{"queryid", r.queryID})
	}
	q.Attrs = append(q.Attrs, [2]string{"xmlns", r.ns})
	text := func(name, v string) *codec.Element {
		e := &codec.Element{Name: name}
		if v != "" {
			e.Kids = []any{v}
		}
		return e
	}
	if set := r.rsm; set != nil {
		se := &codec.Element{Name: "set", Attrs: [][2]string{{"xmlns", nsRSM}}}
		if set.index != nil {
			se.Kids = append(se.Kids, text("index", strconv.FormatInt(*set.index, 10)))
		}
		if set.max != nil {
			se.Kids = append(se.Kids, text("max", strconv.FormatInt(*set.max, 10)))
		}
		if set.before != nil {
			se.Kids = append(se.Kids, text("before", *set.before))
		}
		if set.after != nil {
			se.Kids = append(se.Kids, text("after", *set.after))
		}
		q.Kids = append(q.Kids, se)
	}
	if r.flip {
		fp := &codec.Element{Name: "flip-page"}
		if r.ns != nsMAM2 {
			fp.Attrs = [][2]string{{"xmlns", nsMAM2}}
		}
		q.Kids = append(q.Kids, fp)
	}
	if f := r.form; f != nil {
		q.Kids = append(q.Kids, f.element())
	}
	return q
}

// element writes a form as ejabberd's codec writes the decoded record.
func (f *xform) element() *codec.Element {
	text := func(name, v string) *codec.Element {
		e := &codec.Element{Name: name}
		if v != "" {
			e.Kids = []any{v}
		}
		return e
	}
	x := &codec.Element{Name: "x", Attrs: [][2]string{{"type", f.typ}, {"xmlns", nsXData}}}
	for _, fd := range f.fields {
		fe := &codec.Element{Name: "field"}
		for _, a := range [][2]string{{"var", fd.v}, {"type", fd.typ}, {"label", fd.label}} {
			if a[1] != "" {
				fe.Attrs = append(fe.Attrs, a)
			}
		}
		if fd.required {
			fe.Kids = append(fe.Kids, &codec.Element{Name: "required"})
		}
		if fd.desc != nil {
			fe.Kids = append(fe.Kids, text("desc", *fd.desc))
		}
		for _, v := range fd.values {
			fe.Kids = append(fe.Kids, text("value", v))
		}
		x.Kids = append(x.Kids, fe)
	}
	return x
}

// selection reads the form's fields (mam_query:decode, the form type
// taken as urn:xmpp:mam:1 whatever the client wrote) and the page, with
// mod_mam's page sizes.
func (r *mamRequest) selection() *stanza.Error {
	const formNS = nsMAM1
	q := &r.q
	if f := r.form; f != nil {
		for _, fd := range f.fields {
			v := fd.v
			switch v {
			case "FORM_TYPE":
				continue
			case "with", "start", "end", "withtext":
			default:
				return badRequest("Unknown field '%s' of type '%s'", v, formNS)
			}
			if len(fd.values) > 1 {
				return badRequest("Too many values for field '%s' of type '%s'", v, formNS)
			}
			val := ""
			if len(fd.values) == 1 {
				val = fd.values[0]
			}
			switch v {
			case "with":
				j, err := jid.Parse(val)
				if err != nil {
					return badRequest("Bad value of field '%s' of type '%s'", v, formNS)
				}
				q.With, q.WithFull = val, j.Resource != ""
			case "start", "end":
				t, err := parseXMPPTime(val)
				if err != nil {
					return badRequest("Bad value of field '%s' of type '%s'", v, formNS)
				}
				if v == "start" {
					q.Start, q.HasStart = t, true
				} else {
					q.End, q.HasEnd = t, true
				}
			case "withtext":
				q.WithText = val
			}
		}
	}
	q.Max = mamDefaultPage
	if set := r.rsm; set != nil {
		if set.index != nil {
			return stanza.NewError("feature-not-implemented", "Unsupported <index/> element")
		}
		if set.max != nil {
			q.Max = int(min(*set.max, mamMaxPage))
		}
		switch {
		case set.before != nil:
			q.Direction, q.ID = "before", *set.before
		case set.after != nil:
			q.Direction, q.ID = "after", *set.after
		}
	}
	return nil
}

// parseXMPPTime reads a XEP-0082 date-time (as xmpp_util:decode_timestamp)
// into microseconds.
func parseXMPPTime(s string) (int64, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02T15:04:05"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UnixMicro(), nil
		}
	}
	return 0, errors.New("not a date-time")
}
