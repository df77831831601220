package testenv

import (
	"encoding/json"
	"os"
	"os/exec"
	"sort"
	"testing"

	"github.com/mimmigrate/mimmigrate/erldist/term"
)

// RunEscript runs a test's escript with args and fails the test with its
// output if it exits non-zero.
func RunEscript(t testing.TB, script string, args ...string) {
	t.Helper()
	out, err := exec.Command(Escript(t), append([]string{script}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("escript %s %v: %v\n%s", script, args, err, out)
	}
}

// TermFile decodes a file written with term_to_binary.
func TermFile(t testing.TB, path string) term.Term {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	v, err := term.Decode(b)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return v
}

// TermListFile decodes a file holding term_to_binary of a list.
func TermListFile(t testing.TB, path string) []term.Term {
	t.Helper()
	v := TermFile(t, path)
	l, ok := term.Elems(v)
	if !ok {
		t.Fatalf("%s: not a list: %s", path, term.Format(v))
	}
	return l
}

// Canonical returns the sorted canonical encodings of ts, for comparing
// collections of terms regardless of order.
func Canonical(t testing.TB, ts []term.Term) []string {
	t.Helper()
	out := make([]string, len(ts))
	for i, x := range ts {
		k, err := term.CanonicalKey(x)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = k
	}
	sort.Strings(out)
	return out
}

// NullKeys lists the keys (as dotted paths, list positions as []) whose
// value is null in a JSON document: the project's JSON never has a null
// list, and tests check that only the documented scalars may be null.
func NullKeys(t testing.TB, doc []byte) []string {
	t.Helper()
	var v any
	if err := json.Unmarshal(doc, &v); err != nil {
		t.Fatalf("not JSON: %v", err)
	}
	seen := map[string]bool{}
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch x := v.(type) {
		case nil:
			seen[path] = true
		case map[string]any:
			for k, e := range x {
				walk(path+"."+k, e)
			}
		case []any:
			for _, e := range x {
				walk(path+"[]", e)
			}
		}
	}
	walk("", v)
	out := make([]string, 0, len(seen))
	for k := range seen {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
