package mongooseim

import (
	"encoding/hex"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// NormalizeSearch does what MongooseIM's normalize_search_text does: the
// same regular expressions run by real Erlang are the reference.
func TestNormalizeSearchMatchesErlang(t *testing.T) {
	if _, err := exec.LookPath("erl"); err != nil {
		t.Skip("erl is not installed: it is the reference")
	}
	texts := []string{
		"My cat, was eaten by: my dog?!? Why...?!?",
		"  Hello,   World!  ",
		"quote ' double \" back \\ slash; tab\there\nnewline <&> é ☕ 😀 𝄞 end",
		"ÀÉÎ ÕÜ straße İstanbul ΣΑΣ",
		"a=b<c>d;e?f", "under_score and-dash 42 ١٢٣",
		"", "...", "x", "日本語のテキスト、句読点。",
	}
	var b strings.Builder
	b.WriteString("Norm = fun(Text) -> S = string:lowercase(unicode:characters_to_list(Text)), O = [{return, list}, global, unicode, ucp], " +
		"R0 = re:replace(S, \"[, .:;-?!]+\", \" \", O), R1 = re:replace(R0, \"([^\\\\w ]+)|(^\\\\s+)|(\\\\s+$)\", \"\", O), " +
		"R2 = re:replace(R1, \"\\s+\", \" \", O), unicode:characters_to_binary(R2) end, ")
	b.WriteString("[io:format(\"~s~n\", [binary:encode_hex(Norm(T))]) || T <- [")
	for i, s := range texts {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("<<")
		for j, c := range []byte(s) {
			if j > 0 {
				b.WriteByte(',')
			}
			b.WriteString(strconv.Itoa(int(c)))
		}
		b.WriteString(">>")
	}
	b.WriteString("]], halt().")
	out, err := exec.Command("erl", "-noshell", "-eval", b.String()).CombinedOutput()
	if err != nil {
		t.Fatalf("erl: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != len(texts) {
		t.Fatalf("erl printed %d lines for %d texts:\n%s", len(lines), len(texts), out)
	}
	for i, s := range texts {
		want, err := hex.DecodeString(strings.TrimSpace(lines[i]))
		if err != nil {
			t.Fatal(err)
		}
		if got := NormalizeSearch(s); got != string(want) {
			t.Errorf("NormalizeSearch(%q) = %q, Erlang %q", s, got, want)
		}
	}
}

// jidMini follows mod_mam_utils:jid_to_opt_binary case by case.
func TestJidMini(t *testing.T) {
	for _, c := range []struct {
		j    [3]string
		want string
	}{
		{[3]string{"", "room", ""}, ":"},
		{[3]string{"alice", "room", ""}, ""},
		{[3]string{"alice", "room", "computer"}, "/computer"},
		{[3]string{"bob", "room", ""}, "bob"},
		{[3]string{"", "room", "r"}, ":/r"},
		{[3]string{"bob", "room", "mobile"}, "bob/mobile"},
		{[3]string{"bob", "street", ""}, "street:bob"},
		{[3]string{"bob", "street", "mobile"}, "street@bob/mobile"},
	} {
		if got := jidMini("alice", "room", c.j); got != c.want {
			t.Errorf("jidMini(alice@room, %v) = %q, want %q", c.j, got, c.want)
		}
	}
}
