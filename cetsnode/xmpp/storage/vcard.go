package storage

import (
	"context"
	"errors"
	"strings"

	"github.com/jackc/pgx/v5"
)

// VCardSearch are the fields of a vCard ejabberd keeps for searching
// (vcard_search), as given; their lowercase is written beside them.
type VCardSearch struct {
	User                                       string // the username as the client wrote it
	FN, Family, Given, Middle, Nickname, BDay  string
	Country, Locality, Email, OrgName, OrgUnit string
}

// VCard reads a user's vCard (the XML as stored).
func (s *Store) VCard(ctx context.Context, host, user string) (string, bool, error) {
	var x string
	err := s.pool.QueryRow(ctx, `SELECT vcard FROM vcard WHERE username = $1`+s.hostCond(2), s.args(host, user)...).Scan(&x)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", false, nil
	}
	return x, err == nil, err
}

// SetVCard stores a user's vCard and its search fields in one
// transaction, as mod_vcard_sql does.
func (s *Store) SetVCard(ctx context.Context, host, user, xml string, f VCardSearch) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	cols, key := "username, vcard", "username"
	if s.Multihost {
		cols, key = "username, server_host, vcard", "server_host, username"
	}
	if _, err := tx.Exec(ctx, `INSERT INTO vcard (`+cols+`) VALUES ($1, `+pl(s, 0, 1)+`)
		ON CONFLICT (`+key+`) DO UPDATE SET vcard = EXCLUDED.vcard`, s.args(host, user, xml)...); err != nil {
		return err
	}
	lower := strings.ToLower
	vals := []any{f.User, f.FN, lower(f.FN), f.Family, lower(f.Family), f.Given, lower(f.Given), f.Middle, lower(f.Middle),
		f.Nickname, lower(f.Nickname), f.BDay, lower(f.BDay), f.Country, lower(f.Country), f.Locality, lower(f.Locality),
		f.Email, lower(f.Email), f.OrgName, lower(f.OrgName), f.OrgUnit, lower(f.OrgUnit)}
	names := "username, fn, lfn, family, lfamily, given, lgiven, middle, lmiddle, nickname, lnickname, bday, lbday, ctry, lctry, locality, llocality, email, lemail, orgname, lorgname, orgunit, lorgunit"
	cols, key = "lusername, "+names, "lusername"
	if s.Multihost {
		cols, key = "lusername, server_host, "+names, "server_host, lusername"
	}
	var set []string
	for _, n := range strings.Split(names, ", ") {
		set = append(set, n+" = EXCLUDED."+n)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO vcard_search (`+cols+`) VALUES ($1, `+pl(s, 0, len(vals))+`)
		ON CONFLICT (`+key+`) DO UPDATE SET `+strings.Join(set, ", "), s.args(host, user, vals...)...); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// PrivateData reads what a user stored in a namespace (XEP-0049).
func (s *Store) PrivateData(ctx context.Context, host, user, ns string) (string, bool, error) {
	var x string
	err := s.pool.QueryRow(ctx, `SELECT data FROM private_storage WHERE username = $1`+s.hostCond(2)+` AND namespace = `+s.n(0),
		s.args(host, user, ns)...).Scan(&x)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", false, nil
	}
	return x, err == nil, err
}

// SetPrivateData stores a user's private XML, one row per namespace, in
// one transaction.
func (s *Store) SetPrivateData(ctx context.Context, host, user string, data [][2]string) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	cols, key := "username, namespace, data", "username, namespace"
	if s.Multihost {
		cols, key = "username, server_host, namespace, data", "server_host, username, namespace"
	}
	for _, d := range data {
		if _, err := tx.Exec(ctx, `INSERT INTO private_storage (`+cols+`) VALUES ($1, `+pl(s, 0, 2)+`)
			ON CONFLICT (`+key+`) DO UPDATE SET data = EXCLUDED.data`, s.args(host, user, d[0], d[1])...); err != nil {
			return err
		}
	}
	return tx.Commit(ctx)
}
