package c2s

import (
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/mimmigrate/mimmigrate/cetsnode/xmpp/config"
)

// fail2ban is ejabberd's mod_fail2ban: an address that fails to log in
// MaxFailures times is disconnected, and refused at its next streams,
// until BanLifetime after its last failure; a successful login clears
// its record.
type fail2ban struct {
	cfg config.Fail2ban
	mu  sync.Mutex
	by  map[netip.Addr]*failures
}

type failures struct {
	n       int
	unbanAt time.Time
}

// maxTracked bounds the table: past it, expired records are dropped, and
// if that is not enough the oldest ones.
const maxTracked = 100000

func newFail2ban(cfg config.Fail2ban) *fail2ban {
	return &fail2ban{cfg: cfg, by: map[netip.Addr]*failures{}}
}

// failed records a failure; it returns the ban's text when the address
// has now failed too often.
func (f *fail2ban) failed(ip netip.Addr, now time.Time) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.by[ip]
	if r == nil {
		if len(f.by) >= maxTracked {
			f.prune(now)
		}
		r = &failures{}
		f.by[ip] = r
	}
	r.n++
	r.unbanAt = now.Add(f.cfg.BanLifetime)
	if r.n >= f.cfg.MaxFailures {
		return banText(r.n, ip, r.unbanAt)
	}
	return ""
}

// banned returns the ban's text while the address is banned.
func (f *fail2ban) banned(ip netip.Addr, now time.Time) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.by[ip]
	if r == nil || r.n < f.cfg.MaxFailures {
		return ""
	}
	if now.After(r.unbanAt) {
		delete(f.by, ip)
		return ""
	}
	return banText(r.n, ip, r.unbanAt)
}

func (f *fail2ban) succeeded(ip netip.Addr) {
	f.mu.Lock()
	delete(f.by, ip)
	f.mu.Unlock()
}

func (f *fail2ban) prune(now time.Time) {
	var oldest netip.Addr
	var oldestAt time.Time
	for ip, r := range f.by {
		if now.After(r.unbanAt) {
			delete(f.by, ip)
			continue
		}
		if oldestAt.IsZero() || r.unbanAt.Before(oldestAt) {
			oldest, oldestAt = ip, r.unbanAt
		}
	}
	if len(f.by) >= maxTracked {
		delete(f.by, oldest)
	}
}

// banText is mod_fail2ban's message, word for word.
func banText(n int, ip netip.Addr, unbanAt time.Time) string {
	u := unbanAt.UTC()
	return fmt.Sprintf("Too many (%d) failed authentications from this IP address (%s). The address will be unblocked at %02d:%02d:%02d %02d.%02d.%04d UTC",
		n, ip, u.Hour(), u.Minute(), u.Second(), u.Day(), int(u.Month()), u.Year())
}
