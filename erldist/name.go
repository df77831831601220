package erldist

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/user"
	"strings"
)

// SplitNode splits "name@host", checking both parts are there.
func SplitNode(node string) (alive, host string, err error) {
	i := strings.IndexByte(node, '@')
	if i <= 0 || i == len(node)-1 || strings.Count(node, "@") != 1 {
		return "", "", newError(KindBadName, node,
			"a node name looks like ejabberd@host (see `epmd -names` on that host, or the node's vm.args / ejabberdctl.cfg)",
			nil, "%q is not a node name", node)
	}
	return node[:i], node[i+1:], nil
}

// LongName reports whether a node name's host part is a long (dotted) name or
// an IP address, as -name uses; otherwise it is a -sname short name.
func LongName(host string) bool {
	return strings.Contains(host, ".") || strings.Contains(host, ":")
}

// ClientNamePool is how many client names mimmigrate may use towards one node.
// Every distinct name becomes a permanent atom on the target (ejabberdctl's
// random names filled atom tables: processone/ejabberd#2977), so the names are
// fixed; the extra ones let a few mimmigrate runs work at the same time.
const ClientNamePool = 4

// DefaultClientNames returns the stable names mimmigrate uses to reach a node
// on targetHost: mimmigrate-<user>@<host>, then -2, -3, -4. The host part has
// the form the target uses (short or long), since nodes of the two forms do
// not talk to each other.
func DefaultClientNames(ctx context.Context, targetHost string) []string {
	host := localHost(ctx, targetHost)
	base := "mimmigrate-" + sanitize(currentUser())
	names := []string{base + "@" + host}
	for i := 2; i <= ClientNamePool; i++ {
		names = append(names, fmt.Sprintf("%s-%d@%s", base, i, host))
	}
	return names
}

func currentUser() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return "user"
}

func sanitize(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			b[i] = '_'
		}
	}
	return string(b)
}

func localHost(ctx context.Context, targetHost string) string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		h = "localhost"
	}
	if !LongName(targetHost) {
		return strings.SplitN(h, ".", 2)[0]
	}
	if strings.Contains(h, ".") {
		return h
	}
	// A long name needs a dotted host or an address: use the local address
	// that faces the target (a UDP "dial" sends nothing).
	var d net.Dialer
	if c, err := d.DialContext(ctx, "udp", net.JoinHostPort(targetHost, "4369")); err == nil {
		defer c.Close()
		if a, ok := c.LocalAddr().(*net.UDPAddr); ok {
			return a.IP.String()
		}
	}
	return "127.0.0.1"
}
