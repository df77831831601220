package records

import (
	"slices"

	"github.com/mimmigrate/mimmigrate/erldist/term"
	"github.com/mimmigrate/mimmigrate/migrate/schema"
)

// Passwd is a passwd record: a plain password, SCRAM, or MongooseIM's
// Mnesia SCRAM map.
type Passwd struct {
	User, Server string
	Plain        string
	Scram        *Scram   // nil for a plain password
	ScramMap     term.Map // MongooseIM's #{iteration_count => …, sha => …}
}

// Scram is a SCRAM credential: the 5-tuple of ejabberd 2.1.7 – 20.11
// (SHA-1), or the 6-tuple with the hash of 20.12 and later.
type Scram struct {
	Hash                       string // sha, sha256 or sha512
	StoredKey, ServerKey, Salt string // base64, as stored
	Iterations                 int32
}

// ReadPasswd reads {passwd, {User, Server}, Password}.
func ReadPasswd(rec term.Tuple, scope *schema.Scope) (Passwd, error) {
	var p Passwd
	var err error
	if p.User, p.Server, err = ReadUserRecord(rec, 2, scope); err != nil {
		return p, err
	}
	if pw, err := Text(rec[2], "password"); err == nil {
		p.Plain = pw
		return p, nil
	}
	if mp, ok := rec[2].(term.Map); ok {
		p.ScramMap = mp
		return p, nil
	}
	sc, ok := rec[2].(term.Tuple)
	if !ok || len(sc) < 5 || len(sc) > 6 || !term.IsAtom(sc[0], "scram") {
		return p, notPassword(rec[2])
	}
	s := &Scram{Hash: "sha"}
	var err1, err2, err3 error
	s.StoredKey, err1 = Text(sc[1], "StoredKey")
	s.ServerKey, err2 = Text(sc[2], "ServerKey")
	s.Salt, err3 = Text(sc[3], "Salt")
	if err := FirstErr(err1, err2, err3); err != nil {
		return p, err
	}
	icTerm := sc[4]
	if len(sc) == 6 {
		hash, _ := sc[4].(term.Atom)
		switch hash {
		case "sha", "sha256", "sha512":
			s.Hash = string(hash)
		default:
			return p, rejectf("scram hash %s is not sha, sha256 or sha512", short(sc[4]))
		}
		icTerm = sc[5]
	}
	ic, ok := term.Int(icTerm)
	if !ok || ic <= 0 || ic > 1<<31-1 {
		return p, rejectf("scram iteration count %s", short(icTerm))
	}
	s.Iterations = int32(ic)
	p.Scram = s
	return p, nil
}

func notPassword(t term.Term) error {
	return rejectf("password is neither text nor a scram record: %s", short(t))
}

// NotPassword is the reject of a password a schema cannot store.
func NotPassword(t term.Term) error { return notPassword(t) }

// LastActivity is {last_activity, {User, Server}, Seconds, Status}.
type LastActivity struct {
	User, Server string
	Seconds      int64
	Status       string
}

// ReadLastActivity reads a last_activity record.
func ReadLastActivity(rec term.Tuple, scope *schema.Scope) (LastActivity, error) {
	var l LastActivity
	var err error
	if l.User, l.Server, err = ReadUserRecord(rec, 3, scope); err != nil {
		return l, err
	}
	var ok bool
	if l.Seconds, ok = term.Int(rec[2]); !ok {
		return l, rejectf("timestamp is not an integer: %s", short(rec[2]))
	}
	l.Status, err = Text(rec[3], "status")
	return l, err
}

// SubscriptionCode and AskCode are the letters the SQL schemas store for
// a roster item's subscription and pending request.
var (
	SubscriptionCode = map[term.Atom]string{"both": "B", "to": "T", "from": "F", "none": "N"}
	AskCode          = map[term.Atom]string{"subscribe": "S", "unsubscribe": "U", "both": "B", "out": "O", "in": "I", "none": "N"}
)

// RosterItem is a roster record: {roster, {U, S, LJID}, {U, S}, LJID,
// Name, Subscription, Ask, Groups, AskMessage, Xs}.
type RosterItem struct {
	User, Server string
	JID          string // the contact, as jid:encode writes it
	Nick         string
	Subscription string // SubscriptionCode
	Ask          string // AskCode
	AskMessage   string
	Groups       []string
}

// ReadRoster reads a roster item. An item being removed (subscription
// remove) is not a roster item: it is rejected.
func ReadRoster(rec term.Tuple, scope *schema.Scope) (RosterItem, error) {
	var r RosterItem
	var err error
	if r.User, r.Server, err = readUserAt(rec, 2, scope, 9); err != nil {
		return r, err
	}
	if r.JID, err = LJIDText(rec[3]); err != nil {
		return r, err
	}
	if r.Nick, err = Text(rec[4], "name"); err != nil {
		return r, err
	}
	sub, ok := rec[5].(term.Atom)
	if r.Subscription = SubscriptionCode[sub]; !ok || r.Subscription == "" {
		return r, rejectf("subscription %s", short(rec[5]))
	}
	ask, ok := rec[6].(term.Atom)
	if r.Ask = AskCode[ask]; !ok || r.Ask == "" {
		return r, rejectf("ask %s", short(rec[6]))
	}
	if r.AskMessage, err = Text(rec[8], "askmessage"); err != nil {
		return r, err
	}
	groups, ok := term.Elems(rec[7])
	if !ok {
		return r, rejectf("groups are not a list: %s", short(rec[7]))
	}
	for _, g := range groups {
		name, err := Text(g, "group")
		if err != nil {
			return r, err
		}
		r.Groups = append(r.Groups, name)
	}
	return r, nil
}

// ReadUserRecord reads a record of n fields keyed by {User, Server}.
func ReadUserRecord(rec term.Tuple, n int, scope *schema.Scope) (user, server string, err error) {
	return readUserAt(rec, 1, scope, n)
}

// readUserAt reads a record of one of the sizes given (in fields) whose
// field at holds {User, Server} of an exported virtual host.
func readUserAt(rec term.Tuple, at int, scope *schema.Scope, fields ...int) (user, server string, err error) {
	if !slices.Contains(fields, len(rec)-1) {
		return "", "", rejectf("%s record of %d fields, want %d", short(rec[0]), len(rec)-1, fields[0])
	}
	if user, server, err = US(rec[at]); err != nil {
		return "", "", err
	}
	return user, server, scope.Check(server)
}

// keyedRecord checks a record's size (in fields) and that its key is a
// tuple of keyLen elements, and returns the key.
func keyedRecord(rec term.Tuple, fields, keyLen int, shape string) (term.Tuple, error) {
	if len(rec) != fields+1 {
		return nil, rejectf("%s record of %d fields", short(rec[0]), len(rec)-1)
	}
	k, ok := rec[1].(term.Tuple)
	if !ok || len(k) != keyLen {
		return nil, rejectf("%s: %s", shape, short(rec[1]))
	}
	return k, nil
}

// ReadUserText reads a {Table, {User, Server}, Text} record
// (roster_version).
func ReadUserText(rec term.Tuple, scope *schema.Scope, what string) (user, server, text string, err error) {
	if user, server, err = ReadUserRecord(rec, 2, scope); err != nil {
		return "", "", "", err
	}
	text, err = Text(rec[2], what)
	return user, server, text, err
}

// ReadUserXML reads a {Table, {User, Server}, XML} record (vcard), the
// XML as fxml writes it.
func ReadUserXML(rec term.Tuple, scope *schema.Scope, what string) (user, server, xml string, err error) {
	if user, server, err = ReadUserRecord(rec, 2, scope); err != nil {
		return "", "", "", err
	}
	xml, err = XMLText(rec[2], what)
	return user, server, xml, err
}

// VCardSearch is {vcard_search, {User, LServer}, LUser, FN, LFN, …}: the
// user as typed, then 22 search fields.
type VCardSearch struct {
	User, LUser, Server string
	Fields              [22]string
}

// ReadVCardSearch reads a vcard_search record.
func ReadVCardSearch(rec term.Tuple, scope *schema.Scope) (VCardSearch, error) {
	var v VCardSearch
	var err error
	if v.User, v.Server, err = readUserAt(rec, 2, scope, 25); err != nil {
		return v, err
	}
	if v.LUser, err = Text(rec[3], "luser"); err != nil {
		return v, err
	}
	for i := range v.Fields {
		if v.Fields[i], err = Text(rec[4+i], "vcard_search field"); err != nil {
			return v, err
		}
	}
	return v, nil
}

// Values are the record's columns in both schemas' order: the user as
// typed, the lowercased user, the server, the 22 fields.
func (v VCardSearch) Values() []any {
	vals := make([]any, 0, 25)
	vals = append(vals, v.User, v.LUser, v.Server)
	for _, f := range v.Fields {
		vals = append(vals, f)
	}
	return vals
}

// PrivateStorage is {private_storage, {User, Server, Namespace}, XML}.
type PrivateStorage struct {
	User, Server, Namespace string
	XML                     string
}

// ReadPrivate reads a private_storage record.
func ReadPrivate(rec term.Tuple, scope *schema.Scope) (PrivateStorage, error) {
	var p PrivateStorage
	k, err := keyedRecord(rec, 2, 3, "key is not {User, Server, Namespace}")
	if err != nil {
		return p, err
	}
	if p.User, p.Server, err = US(term.Tuple{k[0], k[1]}); err != nil {
		return p, err
	}
	if err := scope.Check(p.Server); err != nil {
		return p, err
	}
	if p.Namespace, err = Text(k[2], "namespace"); err != nil {
		return p, err
	}
	p.XML, err = XMLText(rec[2], "data")
	return p, err
}

// Privacy is a user's privacy lists: {privacy, {U, S}, Default, Lists}.
type Privacy struct {
	User, Server string
	Default      *string // nil: no default list
	Lists        []PrivacyList
}

// PrivacyList is one named list.
type PrivacyList struct {
	Name  string
	Items []PrivacyItem
}

// PrivacyItem is one rule, in the SQL schemas' codes.
type PrivacyItem struct {
	Type   string // n (none), j (jid), g (group), s (subscription)
	Value  string
	Action string // a (allow) or d (deny)
	Order  int64
	// Match: all, iq, message, presence_in, presence_out.
	Match [5]bool
}

var privacyType = map[term.Atom]string{"none": "n", "jid": "j", "group": "g", "subscription": "s"}

// ReadPrivacy reads a privacy record.
func ReadPrivacy(rec term.Tuple, scope *schema.Scope) (Privacy, error) {
	var p Privacy
	var err error
	if p.User, p.Server, err = ReadUserRecord(rec, 3, scope); err != nil {
		return p, err
	}
	if !term.IsAtom(rec[2], "none") {
		def, err := Text(rec[2], "default list")
		if err != nil {
			return p, err
		}
		p.Default = &def
	}
	lists, ok := term.Elems(rec[3])
	if !ok {
		return p, rejectf("lists are not a list: %s", short(rec[3]))
	}
	for _, l := range lists {
		nl, ok := l.(term.Tuple)
		if !ok || len(nl) != 2 {
			return p, rejectf("privacy list is not {Name, Items}: %s", short(l))
		}
		var list PrivacyList
		if list.Name, err = Text(nl[0], "list name"); err != nil {
			return p, err
		}
		items, ok := term.Elems(nl[1])
		if !ok {
			return p, rejectf("items of list %q are not a list", list.Name)
		}
		for _, it := range items {
			item, err := readPrivacyItem(it)
			if err != nil {
				return p, err
			}
			list.Items = append(list.Items, item)
		}
		p.Lists = append(p.Lists, list)
	}
	return p, nil
}

// readPrivacyItem reads {listitem, Type, Value, Action, Order, MatchAll,
// MatchIQ, MatchMessage, MatchPresenceIn, MatchPresenceOut}.
func readPrivacyItem(it term.Term) (PrivacyItem, error) {
	var p PrivacyItem
	li, ok := term.IsRecord(it, "listitem", 10)
	if !ok {
		return p, rejectf("privacy item is not a listitem: %s", short(it))
	}
	typ, _ := li[1].(term.Atom)
	if p.Type = privacyType[typ]; p.Type == "" {
		return p, rejectf("privacy item type %s", short(li[1]))
	}
	var err error
	switch typ {
	case "jid":
		p.Value, err = LJIDText(li[2])
	case "group":
		p.Value, err = Text(li[2], "group")
	case "subscription":
		a, _ := li[2].(term.Atom)
		if _, ok := SubscriptionCode[a]; !ok {
			err = rejectf("privacy subscription %s", short(li[2]))
		}
		p.Value = string(a)
	}
	if err != nil {
		return p, err
	}
	switch {
	case term.IsAtom(li[3], "allow"):
		p.Action = "a"
	case term.IsAtom(li[3], "deny"):
		p.Action = "d"
	default:
		return p, rejectf("privacy action %s", short(li[3]))
	}
	if p.Order, ok = term.Int(li[4]); !ok || p.Order < 0 {
		return p, rejectf("privacy order %s", short(li[4]))
	}
	for i := range p.Match {
		if p.Match[i], ok = term.Bool(li[5+i]); !ok {
			return p, rejectf("privacy match flag %s", short(li[5+i]))
		}
	}
	return p, nil
}

// Ops are a user's privacy lists as rows: the default list, a list row
// per list with consecutive ids from first, an item row per item. row
// makes a row of the user's for a table (the schema's owner columns, then
// rest). Verify names a list by its owner and name (Canon), not its id.
func (p Privacy) Ops(first int64, row func(table string, rest ...any) schema.Op) []schema.Op {
	var ops []schema.Op
	if p.Default != nil {
		ops = append(ops, row("privacy_default_list", *p.Default))
	}
	id := first
	for _, l := range p.Lists {
		list := row("privacy_list", l.Name, id)
		owner := append([]any(nil), list.Values[:len(list.Values)-1]...) // the owner and the list's name
		list.Canon = owner
		ops = append(ops, list)
		for _, it := range l.Items {
			vals := []any{id, it.Type, it.Value, it.Action, it.Order}
			for _, b := range it.Match {
				vals = append(vals, b)
			}
			item := schema.Row("privacy_list_data", vals...)
			item.Canon = append(append([]any(nil), owner...), vals[1:]...)
			ops = append(ops, item)
		}
		id++
	}
	return ops
}
