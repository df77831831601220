package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// mongooseChecks exports the same data into MongooseIM's schema, from the
// spool directory into PostgreSQL and into a psql file, and checks the
// rows against what ejabberd itself exported into pg.new.sql (oracleMulti):
// the same users (SCRAM moved into pass_details), rosters, vCards, private
// storage, privacy lists, registered nicks, offline messages and rooms;
// every MAM message is decoded by real Erlang (binary_to_term) and its body
// compared with ejabberd's own archive row.
func mongooseChecks(t *testing.T, spool, oracleMulti string) {
	db := schemaDB(t, "mongooseim")
	rejects := filepath.Join(t.TempDir(), "rejects.jsonl")
	out, stderr, code := runCLI(t, "", "export", "--from", "dir:"+spool, "--to", db, "--schema", "mongooseim", "--rejects", rejects)
	t.Logf("export into mongooseim:\n%s", out)
	// Tables MongooseIM has no SQL table for are rejects: the export is partial.
	if code != exitPartial {
		t.Fatalf("export into mongooseim: %d\n%s\n%s", code, out, stderr)
	}
	f, err := os.Open(rejects)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<24)
	rejected := map[string]int{}
	for sc.Scan() {
		var r struct{ Table, Reason string }
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(r.Reason, "no table for it in the mongooseim schema") && !strings.Contains(r.Reason, "NUL") {
			t.Errorf("unexpected reject of %s: %s", r.Table, r.Reason)
		}
		rejected[r.Table]++
	}
	f.Close()
	for _, tbl := range []string{"sr_group", "motd"} {
		if rejected[tbl] == 0 {
			t.Errorf("%s not listed in the rejects: %v", tbl, rejected)
		}
	}
	verifyPartial := func(args ...string) {
		t.Helper()
		out, stderr, code := runCLI(t, "", append([]string{"verify"}, args...)...)
		if code != 0 || !strings.Contains(out, "every row matches") {
			t.Errorf("verify %v: %d\n%s\n%s", args, code, out, stderr)
		}
	}
	verifyPartial("--from", "dir:"+spool, "--to", db, "--schema", "mongooseim")

	q := func(dbURL, sql string) []string {
		t.Helper()
		out, err := psqlOut(dbURL, "-At", "-F", "\x1f", "-c", sql)
		if err != nil {
			t.Fatalf("%s: %v\n%s", sql, err, out)
		}
		lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
		if len(lines) == 1 && lines[0] == "" {
			lines = nil
		}
		sort.Strings(lines)
		return lines
	}
	same := func(what, want, got string) {
		t.Helper()
		w, g := q(oracleMulti, want), q(db, got)
		if len(w) == 0 {
			t.Errorf("%s: the oracle has no rows", what)
		}
		if strings.Join(w, "\n") != strings.Join(g, "\n") {
			t.Errorf("%s: %d rows from ejabberd, %d in mongooseim; first differences:\n%s", what, len(w), len(g), firstDiff(w, g))
		}
	}
	// ejabberd's export writes MySQL-style escapes into text (the oracle
	// normalisation of the ejabberd tests): compare rows free of backslashes.
	same("users, plain", `SELECT server_host, username, password FROM users WHERE serverkey = '' AND `+clean("password"),
		`SELECT server, username, password FROM users WHERE pass_details IS NULL AND `+clean("password"))
	same("users, SCRAM", `SELECT server_host, username, '==MULTI_SCRAM==,' || iterationcount || ',' ||
		CASE WHEN password LIKE 'sha256:%' THEN '==SHA256==' || salt || '|' || substr(password, 8)
		     WHEN password LIKE 'sha512:%' THEN '==SHA512==' || salt || '|' || substr(password, 8)
		     ELSE '===SHA1===' || salt || '|' || password END || '|' || serverkey FROM users WHERE serverkey <> ''`,
		`SELECT server, username, pass_details FROM users WHERE pass_details IS NOT NULL AND password = ''`)
	same("last", `SELECT server_host, username, seconds, state FROM last WHERE `+clean("state"),
		`SELECT server, username, seconds, state FROM last WHERE `+clean("state"))
	same("rosterusers", `SELECT server_host, username, jid, nick, subscription, ask, askmessage FROM rosterusers WHERE `+clean("nick"),
		`SELECT server, username, jid, nick, subscription, ask, askmessage FROM rosterusers WHERE `+clean("nick"))
	same("rostergroups", `SELECT DISTINCT server_host, username, jid, grp FROM rostergroups WHERE grp <> '' AND `+clean("grp"),
		`SELECT server, username, jid, grp FROM rostergroups WHERE `+clean("grp"))
	same("roster_version", `SELECT server_host, username, version FROM roster_version WHERE `+clean("version"),
		`SELECT server, username, version FROM roster_version WHERE `+clean("version"))
	same("vcard", `SELECT server_host, username, md5(vcard) FROM vcard WHERE `+clean("vcard"),
		`SELECT server, username, md5(vcard) FROM vcard WHERE `+clean("vcard"))
	same("vcard_search", `SELECT server_host, lusername, fn, lfn, email, orgunit FROM vcard_search WHERE `+clean("fn"),
		`SELECT server, lusername, fn, lfn, email, orgunit FROM vcard_search WHERE `+clean("fn"))
	same("private_storage", `SELECT server_host, username, namespace, md5(data) FROM private_storage WHERE `+clean("data"),
		`SELECT server, username, namespace, md5(data) FROM private_storage WHERE `+clean("data"))
	same("privacy lists", `SELECT l.server_host, l.username, l.name, d.t, d.value, d.action, d.ord, d.match_all, d.match_iq,
		d.match_message, d.match_presence_in, d.match_presence_out FROM privacy_list l JOIN privacy_list_data d ON d.id = l.id WHERE `+clean("d.value")+` AND `+clean("l.name"),
		`SELECT l.server, l.username, l.name, d.t, d.value, d.action, d.ord, d.match_all, d.match_iq,
		d.match_message, d.match_presence_in, d.match_presence_out FROM privacy_list l JOIN privacy_list_data d ON d.id = l.id WHERE `+clean("d.value")+` AND `+clean("l.name"))
	same("privacy defaults", `SELECT server_host, username, name FROM privacy_default_list`, `SELECT server, username, name FROM privacy_default_list`)
	same("muc_registered", `SELECT host, split_part(jid, '@', 1), split_part(jid, '@', 2), nick FROM muc_registered`,
		`SELECT muc_host, luser, lserver, nick FROM muc_registered`)
	same("offline messages per user", `SELECT server_host, username, count(*) FROM spool GROUP BY 1, 2`,
		`SELECT server, username, count(*) FROM offline_message GROUP BY 1, 2`)
	same("rooms", `SELECT host, name FROM muc_room`, `SELECT muc_host, room_name FROM muc_rooms`)
	same("room titles", `SELECT host, name, substring(opts from 'title,<<\\"([^"\\]*)\\">>') FROM muc_room WHERE name <> 'hardroom'`,
		`SELECT muc_host, room_name, coalesce(options->>'title', '') FROM muc_rooms WHERE room_name <> 'hardroom'`)
	same("chat archive per owner", `SELECT server_host, username, count(*) FROM archive WHERE kind = 'chat' GROUP BY 1, 2`,
		`SELECT s.server, s.user_name, count(*) FROM mam_message m JOIN mam_server_user s ON s.id = m.user_id GROUP BY 1, 2`)
	// (ejabberd's export writes each groupchat row twice: count distinct times)
	same("room archive per room", `SELECT split_part(username, '@', 2), split_part(username, '@', 1), count(DISTINCT timestamp) FROM archive WHERE kind = 'groupchat' GROUP BY 1, 2`,
		`SELECT s.server, s.user_name, count(*) FROM mam_muc_message m JOIN mam_server_user s ON s.id = m.room_id GROUP BY 1, 2`)
	same("archive preferences", `SELECT server_host, username, upper(substr(def, 1, 1)) FROM archive_prefs`,
		`SELECT u.server, u.user_name, c.behaviour FROM mam_config c JOIN mam_server_user u ON u.id = c.user_id WHERE c.remote_jid = ''`)
	// pubsub: nodes, the options MongooseIM knows, affiliations, items
	// (payload inside <item>…</item>, times as µs).
	same("pubsub nodes", `SELECT host, node, plugin FROM pubsub_node`, `SELECT p_key, name, type FROM pubsub_nodes`)
	same("pubsub node owners", `SELECT n.host, n.node, s.jid FROM pubsub_state s JOIN pubsub_node n USING (nodeid) WHERE s.affiliation = 'o'`,
		`SELECT p_key, name, json_array_elements_text(owners) FROM pubsub_nodes`)
	same("pubsub node options", `SELECT n.host, n.node, o.name, o.val FROM pubsub_node_option o JOIN pubsub_node n USING (nodeid)
		WHERE o.val ~ '^[a-z0-9_]+$' AND o.name <> 'itemreply'`,
		`SELECT p_key, name, key, value FROM pubsub_nodes, json_each_text(options) WHERE value ~ '^[a-z0-9_]+$'`)
	same("pubsub affiliations", `SELECT n.host, n.node, s.jid, s.affiliation FROM pubsub_state s JOIN pubsub_node n USING (nodeid) WHERE s.affiliation <> 'n'`,
		`SELECT n.p_key, n.name, a.luser || '@' || a.lserver, CASE a.aff WHEN 1 THEN 'o' WHEN 2 THEN 'p' WHEN 3 THEN 'u' WHEN 4 THEN 'm' WHEN 5 THEN 'c' END
		FROM pubsub_affiliations a JOIN pubsub_nodes n USING (nidx)`)
	if w, g := q(oracleMulti, `SELECT count(*) FROM pubsub_state WHERE subscriptions <> ''`), q(db, `SELECT count(DISTINCT (nidx, luser, lserver, lresource)) FROM pubsub_subscriptions`); strings.Join(w, "") != strings.Join(g, "") {
		t.Errorf("pubsub states with subscriptions: ejabberd %v, mongooseim %v", w, g)
	}
	usecNow := func(c string) string {
		return `lpad((` + c + ` / 1000000000000)::text, 6, '0') || ':' || lpad((` + c + ` / 1000000 % 1000000)::text, 6, '0') || ':' || lpad((` + c + ` % 1000000)::text, 6, '0')`
	}
	same("pubsub items", `SELECT n.host, n.node, i.itemid, i.publisher, i.creation, i.modification, md5(i.payload) FROM pubsub_item i JOIN pubsub_node n USING (nodeid) WHERE `+clean("i.payload"),
		`SELECT n.p_key, n.name, i.itemid, i.publisher, `+usecNow("i.created_at")+`, `+usecNow("i.modified_at")+`,
		md5(substr(i.payload, 7, length(i.payload) - 13)) FROM pubsub_items i JOIN pubsub_nodes n USING (nidx) WHERE `+clean("i.payload"))
	if got := q(db, `SELECT count(*) FROM pubsub_items WHERE payload NOT LIKE '<item>%</item>' OR created_luser = ''`); len(got) != 1 || got[0] != "0" {
		t.Errorf("pubsub items not wrapped in <item> or without creator: %v", got)
	}
	if got := q(db, `SELECT count(*) FROM pubsub_nodes WHERE options::jsonb ? 'itemreply'`); len(got) != 1 || got[0] != "0" {
		t.Errorf("pubsub nodes keep an option MongooseIM does not know: %v", got)
	}

	// The hard room's title, full of escapes, is JSON PostgreSQL reads back whole.
	if got := q(db, `SELECT position(chr(10) in options->>'title') > 0 AND position(chr(34) in options->>'title') > 0 AND position(chr(92) in options->>'title') > 0 FROM muc_rooms WHERE room_name = 'hardroom'`); len(got) != 1 || got[0] != "t" {
		t.Errorf("hardroom title: %v", got)
	}
	// The hard room's affiliations: one of each kind.
	if got := q(db, `SELECT a.aff FROM muc_room_aff a JOIN muc_rooms r ON r.id = a.room_id WHERE r.room_name = 'hardroom' ORDER BY 1`); len(got) < 4 {
		t.Errorf("hardroom affiliations: %v", got)
	}

	// Every MAM message, decoded by Erlang: its body is ejabberd's txt.
	want := q(oracleMulti, `SELECT username, timestamp, encode(convert_to(txt, 'UTF8'), 'hex') FROM archive WHERE kind = 'chat' AND `+clean("txt"))
	rows := q(db, `SELECT u.user_name, m.id >> 8, encode(m.message, 'hex') FROM mam_message m JOIN mam_server_user u ON u.id = m.user_id`)
	bodies := erlangBodies(t, rows)
	var got []string
	oracleKeys := map[string]bool{}
	for _, w := range want {
		p := strings.SplitN(w, "\x1f", 3)
		oracleKeys[p[0]+"\x1f"+p[1]] = true
	}
	for _, b := range bodies {
		p := strings.SplitN(b, "\x1f", 3)
		if oracleKeys[p[0]+"\x1f"+p[1]] {
			got = append(got, b)
		}
	}
	sort.Strings(got)
	if len(want) == 0 || strings.Join(want, "\n") != strings.Join(got, "\n") {
		t.Errorf("MAM bodies decoded by Erlang: %d from ejabberd, %d matched; first differences:\n%s", len(want), len(got), firstDiff(want, got))
	}

	// The psql file loads into an empty MongooseIM schema with the same rows.
	file := filepath.Join(t.TempDir(), "mongooseim.sql")
	if out, stderr, code := runCLI(t, "", "export", "--from", "dir:"+spool, "--to", file, "--schema", "mongooseim",
		"--rejects", filepath.Join(t.TempDir(), "r.jsonl")); code != exitPartial {
		t.Fatalf("export into a file: %d\n%s\n%s", code, out, stderr)
	}
	loaded := schemaDB(t, "mongooseim")
	psql(t, loaded, "-1", "-f", file)
	verifyPartial("--from", "dir:"+spool, "--to", loaded, "--schema", "mongooseim")

	// kill -9 in the middle of the archive, then the same command again:
	// every row exactly once, archive ids and all.
	bin := buildBinary(t)
	killed := schemaDB(t, "mongooseim")
	var only []string
	for _, tbl := range []string{"archive_msg", "archive_prefs", "muc_room", "pubsub_node", "pubsub_state", "pubsub_item", "privacy", "offline_msg"} {
		only = append(only, "-t", tbl)
	}
	args := append([]string{"export", "--from", "dir:" + spool, "--to", killed, "--schema", "mongooseim", "--chunk", "1", "--workers", "1",
		"--rejects", filepath.Join(t.TempDir(), "r.jsonl")}, only...)
	killMidTable(t, bin, killed, "archive_msg", args)
	if out, stderr, code := runCLI(t, "", args...); code != 0 {
		t.Fatalf("resumed export into mongooseim: %d\n%s\n%s", code, out, stderr)
	}
	verifyPartial(append([]string{"--from", "dir:" + spool, "--to", killed, "--schema", "mongooseim"}, only...)...)
	for _, tbl := range []string{"mam_server_user", "mam_message", "mam_muc_message", "mam_config", "muc_rooms", "muc_room_aff",
		"pubsub_nodes", "pubsub_affiliations", "pubsub_items", "privacy_list", "privacy_list_data", "offline_message"} {
		w, g := q(db, "SELECT count(*) FROM "+tbl), q(killed, "SELECT count(*) FROM "+tbl)
		if strings.Join(w, "") != strings.Join(g, "") {
			t.Errorf("%s after kill -9 and resume: %v rows, %v in one go", tbl, g, w)
		}
	}
	same2 := func(sql string) {
		t.Helper()
		if w, g := q(db, sql), q(killed, sql); strings.Join(w, "\n") != strings.Join(g, "\n") {
			t.Errorf("after kill -9 and resume: %s differs:\n%s", sql, firstDiff(w, g))
		}
	}
	same2(`SELECT u.server, u.user_name, m.id, md5(m.message) FROM mam_message m JOIN mam_server_user u ON u.id = m.user_id`)
	same2(`SELECT n.p_key, n.name, i.itemid, md5(i.payload) FROM pubsub_items i JOIN pubsub_nodes n USING (nidx)`)
}

// erlangBodies decodes each row's hex term with real Erlang
// (binary_to_term), checks it is an exml 4 element, and returns
// owner, id, body text.
func erlangBodies(t *testing.T, rows []string) []string {
	t.Helper()
	in := filepath.Join(t.TempDir(), "mam.txt")
	var b strings.Builder
	for _, r := range rows {
		b.WriteString(r)
		b.WriteByte('\n')
	}
	if err := os.WriteFile(in, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	script := fmt.Sprintf(`
{ok, Data} = file:read_file(%q),
Lines = [L || L <- binary:split(Data, <<"\n">>, [global]), L =/= <<>>],
Check = fun Check({xmlel, N, A, C}) when is_binary(N), is_map(A), is_list(C) ->
                true = lists:all(fun({K, V}) -> is_binary(K) andalso is_binary(V) end, maps:to_list(A)),
                lists:foreach(Check, C);
            Check({xmlcdata, B, escaped}) when is_binary(B) -> ok
        end,
Out = [begin
    [U, Id, Hex] = binary:split(L, <<31>>, [global]),
    El = binary_to_term(binary:decode_hex(Hex)),
    Check(El),
    {xmlel, <<"message">>, _, Kids} = El,
    Body = case [C || {xmlel, <<"body">>, _, C} <- Kids] of
        [BC | _] -> iolist_to_binary([T || {xmlcdata, T, _} <- BC]);
        [] -> <<>>
    end,
    [U, 31, Id, 31, string:lowercase(binary:encode_hex(Body)), 10]
 end || L <- Lines],
ok = file:write_file(%q, Out),
halt().`, in, in+".out")
	cmd := exec.Command("erl", "-noshell", "-eval", script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("erl decoding MAM messages: %v\n%s", err, out)
	}
	data, err := os.ReadFile(in + ".out")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) != len(rows) {
		t.Fatalf("erl decoded %d of %d messages", len(lines), len(rows))
	}
	return lines
}

// clean is an SQL condition: col holds none of the characters ejabberd's
// export escapes MySQL-style (so that its text equals the original).
func clean(col string) string {
	var parts []string
	for _, c := range []int{92, 34, 9, 10, 13, 8} {
		parts = append(parts, fmt.Sprintf("position(chr(%d) in %s) = 0", c, col))
	}
	return "(" + strings.Join(parts, " AND ") + ")"
}

func firstDiff(want, got []string) string {
	w, g := map[string]bool{}, map[string]bool{}
	for _, s := range want {
		w[s] = true
	}
	for _, s := range got {
		g[s] = true
	}
	var out []string
	for _, s := range want {
		if !g[s] && len(out) < 5 {
			out = append(out, "  only ejabberd: "+strings.ReplaceAll(s, "\x1f", " | "))
		}
	}
	for _, s := range got {
		if !w[s] && len(out) < 10 {
			out = append(out, "  only mongooseim: "+strings.ReplaceAll(s, "\x1f", " | "))
		}
	}
	return strings.Join(out, "\n")
}
