package xmpp_test

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mimmigrate/mimmigrate/cetsnode/xmpp/stream"
	"github.com/mimmigrate/mimmigrate/internal/xmpptest"
)

var updateSeeds = flag.Bool("update-fuzz-seeds", false, "write the real clients' streams into stream/testdata/fuzz/FuzzReader")

// Real clients' streams, recorded between client and node (a
// TLS-terminating recorder in front of direct TLS): slixmpp, @xmpp/client
// and go-sendxmpp log in, fetch the roster, send presence and messages.
// The stream reader reads every one of them whole, each stanza the
// client sent; with -update-fuzz-seeds they become the seeds of
// stream.FuzzReader.
func TestRealClientStreams(t *testing.T) {
	needBed(t)
	n := bed.StartNode(t, "capt"+strings.ToLower(t.Name()[:4]), withRoster)
	users := bed.Kind("scram-sha-1")
	a, b := users[17], users[18] // user18 has user19 in its roster (both)
	recs := map[string]*xmpptest.Recorder{}
	for _, c := range []string{"slixmpp", "xmppjs", "go-sendxmpp"} {
		recs[c] = xmpptest.StartRecorder(t, n.DirectTLS, bed.CA)
	}
	login := func(acc xmpptest.Account, client string) xmpptest.Login {
		return xmpptest.Login{Account: acc, Addr: recs[client].Addr, DirectTLS: true, CA: bed.CA}
	}
	var wg sync.WaitGroup
	var js xmpptest.Result
	var jsErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		js, jsErr = xmpptest.XMPPJSChat(t.TempDir(), login(b, "xmppjs"), a.JID(), "hi from xmppjs", "hi from slixmpp", true)
	}()
	online := func() bool { return len(n.Node.Sessions.Bare(xmpptest.Host, b.User)) > 0 }
	for deadline := time.Now().Add(20 * time.Second); !online() && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	slix := xmpptest.StartChat(t, login(a, "slixmpp"))
	slix.Do("roster")
	slix.Expect(`^ROSTEREND 5$`, 10*time.Second)
	slix.Do("presence 1 chat")
	slix.Expect(`^MSG `+b.JID()+`/xmppjs chat hi from xmppjs$`, 15*time.Second)
	slix.Do("msg %s/xmppjs chat hi from slixmpp", b.JID())
	wg.Wait()
	check(t, "@xmpp/client", js, jsErr, true)
	r, err := xmpptest.GoSendXMPP(login(b, "go-sendxmpp"), a.JID(), "hi from go-sendxmpp")
	check(t, "go-sendxmpp", r, err, true)
	slix.Expect(`^MSG `+b.JID()+`/go-sendxmpp\S* chat hi from go-sendxmpp$`, 15*time.Second)
	slix.Do("ping localhost")
	slix.Expect(`^IQ ping-localhost `, 10*time.Second)
	slix.Do("quit")
	time.Sleep(time.Second)

	seedDir := filepath.Join("stream", "testdata", "fuzz", "FuzzReader")
	for client, rec := range recs {
		streams := rec.Streams()
		if len(streams) < 2 {
			t.Errorf("%s: %d streams recorded (want the one before SASL and the one after)", client, len(streams))
		}
		seen := map[string]int{}
		for i, s := range streams {
			names, err := readStream(s)
			if err != nil {
				t.Errorf("%s stream %d: %v\n%s", client, i, err, s)
			}
			for _, nm := range names {
				seen[nm]++
			}
			if *updateSeeds {
				file := filepath.Join(seedDir, fmt.Sprintf("client-%s-%d", client, i))
				if err := os.WriteFile(file, []byte("go test fuzz v1\nstring("+strconv.Quote(string(s))+")\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
		for _, want := range []string{"auth", "iq", "presence", "message"} {
			if seen[want] == 0 {
				t.Errorf("%s: no <%s/> read from its streams (read: %v)", client, want, seen)
			}
		}
	}
}

// readStream reads one recorded stream with the service's reader: the
// header, then every element, up to the client's end of stream or the
// end of the recording.
func readStream(s []byte) ([]string, error) {
	r := stream.NewReader(bufio.NewReader(bytes.NewReader(s)), stream.Limits{})
	if _, err := r.Header(); err != nil {
		return nil, fmt.Errorf("header: %w", err)
	}
	var names []string
	for {
		el, err := r.Next()
		if errors.Is(err, stream.ErrEnd) || errors.Is(err, io.EOF) {
			return names, nil
		}
		if err != nil {
			return names, err
		}
		names = append(names, el.Name)
	}
}
