package xmpptest

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mimmigrate/mimmigrate/internal/testenv"
)

// Account is a migrated account and the password ejabberd was given.
type Account struct {
	User, Password string
	// Kind says how ejabberd stored it: scram-sha-1 (set through its
	// API), scram-sha-256, plain (a password in clear, as old
	// installations keep), unicode (SCRAM-SHA-1 of a non-ASCII password).
	Kind string
}

// JID is the account's bare JID.
func (a Account) JID() string { return a.User + "@" + Host }

// Host is the XMPP domain of the bed.
const Host = "localhost"

// Bed is ejabberd's data exported into PostgreSQL, ready for Go nodes.
type Bed struct {
	Dir      string
	CA       *CA
	Ejabberd *testenv.Ejabberd
	DBURL    string
	Bin      string // the mimmigrate binary
	Accounts []Account
	drop     func()
}

// Account returns the first account of a kind (a test that asks for a
// kind the bed does not make fails).
func (b *Bed) Account(t testing.TB, kind string) Account {
	t.Helper()
	for _, a := range b.Accounts {
		if a.Kind == kind {
			return a
		}
	}
	t.Fatalf("the bed has no account of kind %q", kind)
	return Account{}
}

// Unavailable says why the bed cannot be made here, or "".
func Unavailable() string {
	if why := testenv.EjabberdAvailable(); why != "" {
		return why
	}
	if _, err := exec.LookPath("psql"); err != nil {
		return "PostgreSQL is not installed (apt-get install postgresql)"
	}
	return ""
}

// BedOptions shape the bed.
type BedOptions struct {
	Users, APIUsers int    // default 60 and 20
	Schema          string // ejabberd (default) or ejabberd-multihost
}

// StartBed starts a private ejabberd for Host, lets it create accounts
// (and rosters, vCards, …), adds the accounts of every stored kind, and
// exports everything into a new database with mimmigrate.
func StartBed(opt BedOptions) (b *Bed, err error) {
	if opt.Users == 0 {
		opt.Users, opt.APIUsers = 60, 20
	}
	if opt.Schema == "" {
		opt.Schema = "ejabberd"
	}
	dir, err := os.MkdirTemp("", "mimmigrate-xmppbed-")
	if err != nil {
		return nil, err
	}
	b = &Bed{Dir: dir}
	defer func() {
		if err != nil {
			b.Close()
		}
	}()
	if b.CA, err = NewCA(dir); err != nil {
		return nil, err
	}
	b.Bin = filepath.Join(dir, "mimmigrate")
	if out, err := exec.Command("go", "build", "-o", b.Bin, "github.com/mimmigrate/mimmigrate/cmd/mimmigrate").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build: %v\n%s", err, out)
	}
	b.Ejabberd, err = testenv.StartEjabberd(testenv.EjabberdOptions{Prefix: "xbed", Host: Host, WebSocket: true})
	if err != nil {
		return nil, err
	}
	if _, err := b.Ejabberd.Populate(testenv.PopulateOptions{Users: opt.Users, APIUsers: opt.APIUsers, Rooms: 2}); err != nil {
		return nil, err
	}
	for i := 1; i <= opt.APIUsers; i++ {
		u := fmt.Sprintf("user%d", i)
		b.Accounts = append(b.Accounts, Account{User: u, Password: "pw-" + u, Kind: "scram-sha-1"})
	}
	// Every 20th user past the API users keeps a password in clear.
	for i := opt.APIUsers + 20; i <= opt.Users; i += 20 {
		u := fmt.Sprintf("user%d", i)
		b.Accounts = append(b.Accounts, Account{User: u, Password: "pw-" + u, Kind: "plain"})
	}
	special := []Account{{User: "sha256user", Password: "pw-sha256", Kind: "scram-sha-256"},
		{User: "unicode", Password: "пароль-✓", Kind: "unicode"}}
	expr := fmt.Sprintf(`begin
		H = <<"%[1]s">>,
		Pw = <<"%[2]s"/utf8>>,
		Salt = crypto:strong_rand_bytes(16),
		SP = scram:salted_password(sha256, <<"%[3]s">>, Salt, 4096),
		ok = mnesia:dirty_write({passwd, {<<"%[4]s">>, H}, {scram,
			base64:encode(scram:stored_key(sha256, scram:client_key(sha256, SP))),
			base64:encode(scram:server_key(sha256, SP)), base64:encode(Salt), sha256, 4096}}),
		ok = ejabberd_auth:try_register(<<"%[5]s">>, H, Pw),
		ok end`, Host, special[1].Password, special[0].Password, special[0].User, special[1].User)
	if out, err := b.Ejabberd.Eval(expr); err != nil || !strings.Contains(out, "ok") {
		return nil, fmt.Errorf("special accounts: %v %s", err, out)
	}
	b.Accounts = append(b.Accounts, special...)
	// PEP as modern clients left it: published by ejabberd's own
	// mod_pubsub, so that the export carries it as migrated data.
	for _, u := range PEPUsers {
		if out, err := b.Ejabberd.Eval(seedPEP(u)); err != nil || !strings.Contains(out, "ok") {
			return nil, fmt.Errorf("PEP data of %s: %v %s", u, err, out)
		}
	}

	var drop func()
	if b.DBURL, drop, err = testenv.NewPostgresDB(); err != nil {
		return nil, err
	}
	b.drop = drop
	cookie := filepath.Join(dir, "cookie")
	if err := os.WriteFile(cookie, []byte(b.Ejabberd.Cookie), 0o600); err != nil {
		return nil, err
	}
	for _, args := range [][]string{
		{"db", "migrate", "--db", b.DBURL, "--schema", opt.Schema},
		{"export", "--cookie-file", cookie, "--from", "node:" + b.Ejabberd.Name, "--to", b.DBURL, "--schema", opt.Schema,
			"--rejects", filepath.Join(dir, "rejects.jsonl")},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		out, err := exec.CommandContext(ctx, b.Bin, args...).CombinedOutput()
		cancel()
		if err != nil {
			return nil, fmt.Errorf("mimmigrate %s: %v\n%s", args[0], err, out)
		}
	}
	return b, nil
}

// Close stops ejabberd and drops the database.
func (b *Bed) Close() {
	if b.Ejabberd != nil {
		b.Ejabberd.Destroy()
	}
	if b.drop != nil {
		b.drop()
	}
	os.RemoveAll(b.Dir)
}

// ErrSkip is returned by helpers when a client is not installed.
var ErrSkip = errors.New("not installed")

// Kind lists the accounts of a kind.
func (b *Bed) Kind(kind string) []Account {
	var out []Account
	for _, a := range b.Accounts {
		if a.Kind == kind {
			out = append(out, a)
		}
	}
	return out
}

// StartSQLEjabberd starts ejabberd 23.01 for Host on the bed's database
// (auth and every module in SQL): the rollback path, reading what the Go
// nodes wrote. It is destroyed when the test ends.
func (b *Bed) StartSQLEjabberd(t testing.TB) *testenv.Ejabberd {
	t.Helper()
	return b.StartSQLEjabberdWith(t, "")
}

// StartSQLEjabberdWith is StartSQLEjabberd with more modules than the
// private nodes' default ones (lines of the modules section, as
// "  mod_carboncopy: {}\n").
func (b *Bed) StartSQLEjabberdWith(t testing.TB, modules string) *testenv.Ejabberd {
	t.Helper()
	return b.StartSQLEjabberdModules(t, testenv.DefaultModules+modules)
}

// StartSQLEjabberdModules is StartSQLEjabberd with a modules section of
// its own (all of it, "modules:\n  mod_…").
func (b *Bed) StartSQLEjabberdModules(t testing.TB, modules string) *testenv.Ejabberd {
	t.Helper()
	u, err := url.Parse(b.DBURL)
	if err != nil {
		t.Fatal(err)
	}
	user := "postgres"
	if u.User != nil && u.User.Username() != "" {
		user = u.User.Username()
	}
	cfg := fmt.Sprintf("\nsql_type: pgsql\nsql_server: %q\nsql_port: %s\nsql_database: %q\nsql_username: %q\nsql_password: \"\"\nsql_pool_size: 2\nnew_sql_schema: false\n",
		u.Hostname(), u.Port(), strings.TrimPrefix(u.Path, "/"), user)
	e, err := testenv.StartEjabberd(testenv.EjabberdOptions{Prefix: "xsql", Host: Host, SQL: true, ExtraConfig: cfg, Modules: modules})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Destroy)
	return e
}

// PEPUsers have PEP nodes in the bed (see SeededPEP); user1 also has an
// archive, a vCard, legacy bookmarks and a blocked JID (the cutover day
// test's user).
var PEPUsers = []string{"user1", "user56", "user58"}

// OMEMODevice is the OMEMO device id of every PEP user of the bed.
const OMEMODevice = "31415"

// SeededPEP are the PEP nodes each of PEPUsers has, with the one item
// each holds (the item id, then the payload): an OMEMO device list and
// bundle (open), an avatar (data and metadata), a nickname, and
// XEP-0402 bookmarks (whitelist, as clients publish them).
var SeededPEP = []struct{ Node, ID, Payload, Access string }{
	{"eu.siacs.conversations.axolotl.devicelist", "current",
		"<list xmlns='eu.siacs.conversations.axolotl'><device id='" + OMEMODevice + "'/><device id='2718'/></list>", "open"},
	{"eu.siacs.conversations.axolotl.bundles:" + OMEMODevice, "current",
		"<bundle xmlns='eu.siacs.conversations.axolotl'><signedPreKeyPublic signedPreKeyId='1'>BQyV3p6cNy5gmvdPZGI0cLOSqmhzKRoSGkT2xDGv8gg4</signedPreKeyPublic>" +
			"<signedPreKeySignature>1VDU3yzWyt7K8i1MHbqL5gdVkT6qvJTgZbDg5cVHKLNm5d9ixYmIsqHcKv4qGGGkGu4EMshzv3z1qAxvBjnmBQ==</signedPreKeySignature>" +
			"<identityKey>BaNnXDBUBbzJ2y3oJfbCmCUn0qNxQSSO85GJdT2UfmZW</identityKey><prekeys><preKeyPublic preKeyId='1'>BVx0n4/ci4gg8W4oLrAVJ0VTu9EjG3+jbM5DxB5SHJ9z</preKeyPublic>" +
			"<preKeyPublic preKeyId='2'>BTdRkb2a4Sm0eHqyHaRM1ebvVjSKmeWHC51ffJMgVa4Q</preKeyPublic></prekeys></bundle>", "open"},
	{"urn:xmpp:avatar:data", "9a8e2b8d1ca0d8ed2bd4c27c3f2b94b1e4b5e5d7",
		"<data xmlns='urn:xmpp:avatar:data'>iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==</data>", "presence"},
	{"urn:xmpp:avatar:metadata", "9a8e2b8d1ca0d8ed2bd4c27c3f2b94b1e4b5e5d7",
		"<metadata xmlns='urn:xmpp:avatar:metadata'><info bytes='70' height='1' id='9a8e2b8d1ca0d8ed2bd4c27c3f2b94b1e4b5e5d7' type='image/png' width='1'/></metadata>", "presence"},
	{"http://jabber.org/protocol/nick", "current", "<nick xmlns='http://jabber.org/protocol/nick'>Migrated Nick</nick>", "presence"},
	{"urn:xmpp:bookmarks:1", "room2@conference.localhost",
		"<conference xmlns='urn:xmpp:bookmarks:1' autojoin='true' name='Room 2'><nick>pep</nick></conference>", "whitelist"},
}

// seedPEP is the Erlang expression that publishes SeededPEP for a user.
func seedPEP(user string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "begin H = <<\"%s\">>, U = <<\"%s\">>, J = jid:make(U, H, <<\"seed\">>), ", Host, user)
	for _, n := range SeededPEP {
		fmt.Fprintf(&b, "{result, _} = mod_pubsub:publish_item({U, H, <<>>}, H, <<\"%s\">>, J, <<\"%s\">>, [fxml_stream:parse_element(<<\"%s\">>)], [{access_model, %s}], all), ",
			n.Node, n.ID, n.Payload, n.Access)
	}
	b.WriteString("ok end")
	return b.String()
}
