package ejabberd

import (
	"strconv"
	"strings"

	"github.com/mimmigrate/mimmigrate/erldist/term"
	"github.com/mimmigrate/mimmigrate/migrate/codec"
	"github.com/mimmigrate/mimmigrate/migrate/records"
	"github.com/mimmigrate/mimmigrate/migrate/schema"
)

func (m *mapper) srGroup(rec term.Tuple) ([]schema.Op, error) {
	if len(rec) != 3 {
		return nil, rejectf("sr_group record of %d fields", len(rec)-1)
	}
	group, host, err := records.HostPair(rec[1], "group", m.scope)
	if err != nil {
		return nil, err
	}
	return []schema.Op{m.rowH("sr_group", group, host, string(codec.AppendErlangText(nil, rec[2])))}, nil
}

func (m *mapper) srUser(rec term.Tuple) ([]schema.Op, error) {
	if len(rec) != 3 {
		return nil, rejectf("sr_user record of %d fields", len(rec)-1)
	}
	u, s, err := records.US(rec[1])
	if err != nil {
		return nil, err
	}
	group, host, err := records.HostPair(rec[2], "group", m.scope)
	if err != nil {
		return nil, err
	}
	jid := strings.ToLower(s)
	if u != "" {
		jid = strings.ToLower(u) + "@" + jid
	}
	return []schema.Op{m.rowH("sr_user", jid, host, group)}, nil
}

func (m *mapper) motd(rec term.Tuple) ([]schema.Op, error) {
	if len(rec) != 3 {
		return nil, rejectf("motd record of %d fields", len(rec)-1)
	}
	host, err := records.Text(rec[1], "server")
	if err != nil {
		return nil, err
	}
	if err := m.scope.Check(host); err != nil {
		return nil, err
	}
	x, err := records.XMLText(rec[2], "message")
	if err != nil {
		return nil, err
	}
	return []schema.Op{m.row("motd", "", host, x)}, nil
}

func (m *mapper) motdUsers(rec term.Tuple) ([]schema.Op, error) {
	user, host, err := records.ReadUserRecord(rec, 2, m.scope)
	if err != nil {
		return nil, err
	}
	if user == "" {
		return nil, rejectf("motd_users record without a user")
	}
	return []schema.Op{m.row("motd", user, host, "")}, nil
}

func (m *mapper) oauthToken(rec term.Tuple) ([]schema.Op, error) {
	if len(rec) != 5 {
		return nil, rejectf("oauth_token record of %d fields", len(rec)-1)
	}
	token, err := records.Text(rec[1], "token")
	if err != nil {
		return nil, err
	}
	u, s, err := records.US(rec[2])
	if err != nil {
		return nil, err
	}
	if err := m.scope.Check(s); err != nil {
		return nil, err
	}
	scopes, ok := term.Elems(rec[3])
	if !ok {
		return nil, rejectf("scope is not a list: %s", short(rec[3]))
	}
	parts := make([]string, 0, len(scopes))
	for _, sc := range scopes {
		p, err := records.Text(sc, "scope")
		if err != nil {
			return nil, err
		}
		parts = append(parts, p)
	}
	expire, ok := term.Int(rec[4])
	if !ok {
		return nil, rejectf("expire %s", short(rec[4]))
	}
	jid := s
	if u != "" {
		jid = u + "@" + s
	}
	return []schema.Op{schema.Row("oauth_token", token, jid, strings.Join(parts, " "), expire)}, nil
}

func (m *mapper) oauthClient(rec term.Tuple) ([]schema.Op, error) {
	if len(rec) != 5 {
		return nil, rejectf("oauth_client record of %d fields", len(rec)-1)
	}
	id, err1 := records.Text(rec[1], "client id")
	name, err2 := records.Text(rec[2], "client name")
	if err := records.FirstErr(err1, err2); err != nil {
		return nil, err
	}
	grant, ok := rec[3].(term.Atom)
	if !ok {
		return nil, rejectf("grant type %s", short(rec[3]))
	}
	return []schema.Op{schema.Row("oauth_client", id, name, string(grant), string(codec.AppendErlangText(nil, rec[4])))}, nil
}

func (m *mapper) mqttPub(rec term.Tuple) ([]schema.Op, error) {
	if len(rec) != 12 {
		return nil, rejectf("mqtt_pub record of %d fields", len(rec)-1)
	}
	topic, host, err := records.HostPair(rec[1], "topic", m.scope)
	if err != nil {
		return nil, err
	}
	user, err1 := records.Text(rec[2], "user")
	res, err2 := records.Text(rec[3], "resource")
	if err := records.FirstErr(err1, err2); err != nil {
		return nil, err
	}
	qos, ok := term.Int(rec[4])
	if !ok || qos < 0 || qos > 2 {
		return nil, rejectf("qos %s", short(rec[4]))
	}
	payload, err := codec.Iolist([]byte{}, rec[5]) // empty, not NULL: the column is NOT NULL
	if err != nil {
		return nil, rejectf("payload: %v", err)
	}
	expiry, ok := term.Int(rec[6])
	if !ok {
		return nil, rejectf("expiry %s", short(rec[6]))
	}
	var pfi int16
	switch {
	case term.IsAtom(rec[7], "binary"):
	case term.IsAtom(rec[7], "utf8"):
		pfi = 1
	default:
		return nil, rejectf("payload format %s", short(rec[7]))
	}
	respTopic, err1 := records.Text(rec[8], "response topic")
	corr, err2 := codec.Iolist([]byte{}, rec[9])
	ctype, err3 := records.Text(rec[10], "content type")
	if err := records.FirstErr(err1, err2, err3); err != nil {
		return nil, rejectf("%v", err)
	}
	props := []byte{}
	if l, ok := term.Elems(rec[11]); !ok || len(l) > 0 {
		if props, err = term.Encode(rec[11]); err != nil {
			return nil, rejectf("user properties: %v", err)
		}
	}
	return []schema.Op{m.row("mqtt_pub", user, host, res, topic, int16(qos), payload, pfi, ctype, respTopic, corr, props, expiry)}, nil
}

func (m *mapper) capsFeatures(rec term.Tuple) ([]schema.Op, error) {
	if len(rec) != 3 {
		return nil, rejectf("caps_features record of %d fields", len(rec)-1)
	}
	node, sub, err := records.Pair(rec[1], "node")
	if err != nil {
		return nil, err
	}
	if n, ok := term.Int(rec[2]); ok {
		return []schema.Op{schema.Row("caps_features", node, sub, strconv.FormatInt(n, 10))}, nil
	}
	feats, ok := term.Elems(rec[2])
	if !ok {
		return nil, rejectf("features %s", short(rec[2]))
	}
	rows := make([]schema.Op, 0, len(feats))
	for _, f := range feats {
		s, err := records.Text(f, "feature")
		if err != nil {
			return nil, err
		}
		rows = append(rows, schema.Row("caps_features", node, sub, s))
	}
	return rows, nil
}
