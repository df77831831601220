package schema

import (
	"fmt"
	"sort"
	"strings"
)

// Reject is a record that cannot be stored: it goes to the rejects file
// with the reason.
type Reject struct{ Reason string }

func (e *Reject) Error() string { return e.Reason }

// Rejectf makes a Reject.
func Rejectf(format string, args ...any) error {
	return &Reject{Reason: fmt.Sprintf(format, args...)}
}

// Skip is a record of a virtual host that is not exported.
type Skip struct{ Host string }

func (e *Skip) Error() string { return "virtual host " + e.Host + " is not exported" }

// Scope is what an export covers: the virtual hosts exported, the ones
// the source serves, and which virtual host each MUC or pubsub service
// belongs to.
type Scope struct {
	// Hosts are the virtual hosts exported; empty means every host.
	Hosts map[string]bool
	// Known are the virtual hosts the source serves.
	Known map[string]bool
	// Services maps a service host (conference.example.org) to its
	// virtual host.
	Services map[string]string
}

// NewScope builds a scope from the hosts exported (none: all), the hosts
// the source serves and the service mapping.
func NewScope(hosts, known []string, services map[string]string) *Scope {
	s := &Scope{Known: map[string]bool{}, Services: services}
	if len(hosts) > 0 {
		s.Hosts = map[string]bool{}
		for _, h := range hosts {
			s.Hosts[h] = true
		}
	}
	for _, h := range append(append([]string(nil), known...), hosts...) {
		s.Known[h] = true
	}
	return s
}

// Wanted reports whether a virtual host is exported.
func (s *Scope) Wanted(host string) bool { return len(s.Hosts) == 0 || s.Hosts[host] }

// Check returns a *Skip for a virtual host that is not exported.
func (s *Scope) Check(host string) error {
	if s.Wanted(host) {
		return nil
	}
	return &Skip{Host: host}
}

// ServiceHost finds the virtual host of a service (MUC, pubsub): the
// mapping given, else the known virtual host it is a subdomain of (the
// longest), else the only virtual host there is.
func (s *Scope) ServiceHost(service string) (string, error) {
	if v, ok := s.Services[service]; ok {
		return v, nil
	}
	best := ""
	for h := range s.Known {
		if (service == h || strings.HasSuffix(service, "."+h)) && len(h) > len(best) {
			best = h
		}
	}
	if best != "" {
		return best, nil
	}
	if len(s.Known) == 1 {
		for h := range s.Known {
			return h, nil
		}
	}
	return "", Rejectf("service %s belongs to no known virtual host: name it with --service %s=VHOST", service, service)
}

// KnownHosts lists the known virtual hosts, sorted.
func (s *Scope) KnownHosts() []string {
	out := make([]string, 0, len(s.Known))
	for h := range s.Known {
		out = append(out, h)
	}
	sort.Strings(out)
	return out
}
