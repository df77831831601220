package storage_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mimmigrate/mimmigrate/cetsnode/xmpp/storage"
	"github.com/mimmigrate/mimmigrate/internal/testenv"
	mimsql "github.com/mimmigrate/mimmigrate/sql"
)

// The service's reads and writes on both of ejabberd's PostgreSQL
// schemas (pg.sql and pg.new.sql with server_host): rosters with groups
// and versions, last activity, the offline spool with its limit, in a
// real database migrated by `db migrate`'s code.
func TestBothSchemas(t *testing.T) {
	for _, schema := range []string{"ejabberd", "ejabberd-multihost"} {
		t.Run(schema, func(t *testing.T) {
			url, drop, err := testenv.NewPostgresDB()
			if err != nil {
				t.Skipf("PostgreSQL is not available: %v", err)
			}
			t.Cleanup(drop)
			db := testenv.DB(t, url)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if _, err := mimsql.Migrate(ctx, db, schema); err != nil {
				t.Fatal(err)
			}
			st, err := storage.Open(ctx, db.Pool)
			if err != nil {
				t.Fatal(err)
			}
			if st.Multihost != (schema == "ejabberd-multihost") {
				t.Fatalf("Multihost %v", st.Multihost)
			}
			const h = "example.org"
			// Roster: put with groups, a subscription change keeps them,
			// delete removes the groups too.
			err = st.ChangeRoster(ctx, h, "alice", func(tx *storage.RosterTx) error {
				if _, found, err := tx.Item(ctx, "bob@example.org"); err != nil || found {
					return errors.Join(err, errors.New("found before it was put"))
				}
				if err := tx.Put(ctx, storage.RosterItem{JID: "bob@example.org", Name: "Bob", Subscription: "none", Ask: "out", Groups: []string{"b", "a"}}, true); err != nil {
					return err
				}
				if err := tx.Put(ctx, storage.RosterItem{JID: "bob@example.org", Name: "Bob", Subscription: "to", Ask: "none"}, false); err != nil {
					return err
				}
				if err := tx.Put(ctx, storage.RosterItem{JID: "carol@example.org", Subscription: "both", Ask: "in", AskMessage: "hi"}, true); err != nil {
					return err
				}
				return tx.SetVersion(ctx, "v1")
			})
			if err != nil {
				t.Fatal(err)
			}
			items, err := st.Roster(ctx, h, "alice")
			if err != nil || len(items) != 2 {
				t.Fatalf("%v %+v", err, items)
			}
			if b := items[0]; b.JID != "bob@example.org" || b.Name != "Bob" || b.Subscription != "to" || b.Ask != "none" || !slices.Equal(b.Groups, []string{"a", "b"}) {
				t.Errorf("bob %+v", b)
			}
			if c := items[1]; c.Subscription != "both" || c.Ask != "in" || c.AskMessage != "hi" || len(c.Groups) != 0 {
				t.Errorf("carol %+v", c)
			}
			if v, err := st.RosterVersion(ctx, h, "alice"); err != nil || v != "v1" {
				t.Errorf("version %q %v", v, err)
			}
			if other, _ := st.Roster(ctx, "other.org", "alice"); st.Multihost && len(other) != 0 {
				t.Errorf("another host's roster: %+v", other)
			}
			if err := st.ChangeRoster(ctx, h, "alice", func(tx *storage.RosterTx) error { return tx.Delete(ctx, "bob@example.org") }); err != nil {
				t.Fatal(err)
			}
			var groups int
			db.Pool.QueryRow(ctx, `SELECT count(*) FROM rostergroups WHERE username = 'alice'`).Scan(&groups)
			if items, _ := st.Roster(ctx, h, "alice"); len(items) != 1 || groups != 0 {
				t.Errorf("after delete: %+v, %d groups", items, groups)
			}
			// Last activity.
			if _, _, ok, err := st.Last(ctx, h, "alice"); ok || err != nil {
				t.Errorf("last before any: %v %v", ok, err)
			}
			st.SetLast(ctx, h, "alice", 1000, "away")
			if err := st.SetLast(ctx, h, "alice", 2000, "gone"); err != nil {
				t.Fatal(err)
			}
			if sec, state, ok, err := st.Last(ctx, h, "alice"); sec != 2000 || state != "gone" || !ok || err != nil {
				t.Errorf("last %d %q %v %v", sec, state, ok, err)
			}
			// Spool: the limit, the order, emptied by a pop.
			for i, x := range []string{"<message id='1'/>", "<message id='2'/>"} {
				if err := st.StoreOffline(ctx, h, "alice", x, 2); err != nil {
					t.Fatalf("message %d: %v", i, err)
				}
			}
			if err := st.StoreOffline(ctx, h, "alice", "<message id='3'/>", 2); !errors.Is(err, storage.ErrSpoolFull) {
				t.Errorf("over the limit: %v", err)
			}
			if n, _ := st.CountOffline(ctx, h, "alice"); n != 2 {
				t.Errorf("count %d", n)
			}
			msgs, err := st.PopOffline(ctx, h, "alice")
			if err != nil || !slices.Equal(msgs, []string{"<message id='1'/>", "<message id='2'/>"}) {
				t.Errorf("pop %q %v", msgs, err)
			}
			if n, _ := st.CountOffline(ctx, h, "alice"); n != 0 {
				t.Errorf("count after pop %d", n)
			}
			// Archive: preferences written twice (the second wins);
			// pages by id both ways, by peer, by time; a text search is
			// refused as ejabberd's SQL is on PostgreSQL.
			if _, ok, err := st.ArchivePrefs(ctx, h, "alice"); ok || err != nil {
				t.Errorf("prefs before any: %v %v", ok, err)
			}
			st.SetArchivePrefs(ctx, h, "alice", storage.ArchivePrefs{Default: "never", Always: "[]", Never: "[]"})
			want := storage.ArchivePrefs{Default: "roster", Always: `[{<<"bob">>,<<"example.org">>,<<>>}]`, Never: "[]"}
			if err := st.SetArchivePrefs(ctx, h, "alice", want); err != nil {
				t.Fatal(err)
			}
			if p, ok, err := st.ArchivePrefs(ctx, h, "alice"); p != want || !ok || err != nil {
				t.Errorf("prefs %+v %v %v", p, ok, err)
			}
			for i, peer := range []string{"bob@example.org/a", "carol@example.org/b", "bob@example.org/c"} {
				bare, _, _ := strings.Cut(peer, "/")
				if err := st.Archive(ctx, h, "alice", storage.ArchiveRow{ID: int64(1000 + i), Peer: peer, BarePeer: bare, XML: "<message/>", Kind: "chat"}); err != nil {
					t.Fatal(err)
				}
			}
			ids := func(q storage.ArchiveQuery) string {
				t.Helper()
				rows, count, err := st.QueryArchive(ctx, h, "alice", q)
				if err != nil {
					t.Fatal(err)
				}
				out := fmt.Sprint(count)
				for _, r := range rows {
					out += " " + r.ID
				}
				return out
			}
			for _, c := range []struct {
				q    storage.ArchiveQuery
				want string
			}{
				{storage.ArchiveQuery{Max: -1}, "3 1000 1001 1002"},
				{storage.ArchiveQuery{Max: 1}, "3 1000 1001"},
				{storage.ArchiveQuery{Max: 1, Direction: "after", ID: "1000"}, "3 1001 1002"},
				{storage.ArchiveQuery{Max: 1, Direction: "before", ID: ""}, "3 1001 1002"},
				{storage.ArchiveQuery{Max: 5, Direction: "before", ID: "1002"}, "3 1000 1001"},
				{storage.ArchiveQuery{Max: 5, Direction: "after", ID: "99999999999999999999999"}, "3"},
				{storage.ArchiveQuery{Max: 5, Direction: "after", ID: "x"}, "3 1000 1001 1002"},
				{storage.ArchiveQuery{Max: 5, With: "bob@example.org"}, "2 1000 1002"},
				{storage.ArchiveQuery{Max: 5, With: "bob@example.org/c", WithFull: true}, "1 1002"},
				{storage.ArchiveQuery{Max: 5, Start: 1001, HasStart: true, End: 1001, HasEnd: true}, "1 1001"},
			} {
				if got := ids(c.q); got != c.want {
					t.Errorf("%+v: %s, want %s", c.q, got, c.want)
				}
			}
			if _, _, err := st.QueryArchive(ctx, h, "alice", storage.ArchiveQuery{WithText: "x"}); !errors.Is(err, storage.ErrFullText) {
				t.Errorf("text search: %v", err)
			}
		})
	}
}
