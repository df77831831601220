package xmpp_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/mimmigrate/mimmigrate/internal/testenv"
	"github.com/mimmigrate/mimmigrate/internal/xmpptest"
)

// The differential tests play one conversation against ejabberd 23.01
// and against a Go node and compare what every session received.

// dialer opens a bound session of an account with a resource.
type dialer func(xmpptest.Account, string) *xmpptest.Raw

// dialEjabberd binds sessions on a private ejabberd (PLAIN, no TLS: the
// bed's ejabberd allows it on loopback).
func dialEjabberd(t *testing.T, e *testenv.Ejabberd) dialer {
	addr := fmt.Sprintf("127.0.0.1:%d", e.C2SPort)
	return func(acc xmpptest.Account, res string) *xmpptest.Raw {
		t.Helper()
		r, err := xmpptest.DialRaw(addr, false, bed.CA)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(r.Close)
		if err := r.Plain(acc.User, acc.Password); err != nil {
			t.Fatal(err)
		}
		if _, err := r.Bind(res); err != nil {
			t.Fatal(err)
		}
		return r
	}
}

// dialNode binds sessions on a Go node (STARTTLS, PLAIN).
func dialNode(t *testing.T, n *xmpptest.Node) dialer {
	return func(acc xmpptest.Account, res string) *xmpptest.Raw {
		t.Helper()
		r, _, err := xmpptest.Session(n.StartTLS, bed.CA, acc, res)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(r.Close)
		return r
	}
}

// sameAsEjabberd reports every step where the Go node's conversation
// differs from ejabberd's.
func sameAsEjabberd(t *testing.T, ej, ours []string) {
	t.Helper()
	for i := range ej {
		if i >= len(ours) || ej[i] != ours[i] {
			got := "(nothing)"
			if i < len(ours) {
				got = ours[i]
			}
			t.Errorf("ejabberd: %s\nours:     %s", ej[i], got)
		}
	}
}

// covers checks that ejabberd's conversation has each of wants (else the
// test tests less than it says) and returns it whole.
func covers(t *testing.T, ej []string, wants ...string) string {
	t.Helper()
	all := strings.Join(ej, "\n")
	for _, want := range wants {
		if !strings.Contains(all, want) {
			t.Errorf("the conversation has no %q: it tests less than it says", want)
		}
	}
	return all
}
