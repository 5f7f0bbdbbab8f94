//go:build e2e

package e2e

import (
	"fmt"
	"strings"
	"time"

	"github.com/weftnet/weft/test/testhost"
)

// Outside is a host "beyond" a test host: its own network namespace, joined
// to the host's namespace by a veth pair on TEST-NET-1. It has no route to any
// container subnet, so a container's packets get an answer from it only when
// they were masqueraded to the host's address.
type Outside struct {
	NetNS    string
	Addr     string // the outside host's address, 192.0.2.2
	HostAddr string // the test host's address on the link, 192.0.2.1
}

// Link names: the host-side end lives in the test host's namespace, so it
// must not look like a weft link (weft-*, wh*, wc*).
const (
	outsideHostLink = "e2e-out"
	outsidePeerLink = "e2e-host"
)

func newOutside(h *Host) (*Outside, error) {
	o := &Outside{NetNS: h.NetNS + "-out", Addr: "192.0.2.2", HostAddr: "192.0.2.1"}
	steps := [][]string{
		{"ip", "netns", "add", o.NetNS},
		{"ip", "-n", o.NetNS, "link", "set", "lo", "up"},
		{"ip", "-n", h.NetNS, "link", "add", outsideHostLink, "type", "veth", "peer", "name", outsidePeerLink, "netns", o.NetNS},
		{"ip", "-n", h.NetNS, "addr", "add", o.HostAddr + "/24", "dev", outsideHostLink},
		{"ip", "-n", h.NetNS, "link", "set", outsideHostLink, "up"},
		{"ip", "-n", o.NetNS, "addr", "add", o.Addr + "/24", "dev", outsidePeerLink},
		{"ip", "-n", o.NetNS, "link", "set", outsidePeerLink, "up"},
	}
	for _, s := range steps {
		if _, err := testhost.RunT(30*time.Second, s...); err != nil {
			return o, fmt.Errorf("creating the outside host: %w", err)
		}
	}
	// The whole point: no way back to a container subnet but masquerade.
	routes, err := testhost.RunT(10*time.Second, "ip", "-n", o.NetNS, "-4", "route", "show")
	if err != nil {
		return o, err
	}
	for _, r := range strings.Split(strings.TrimSpace(routes), "\n") {
		if !strings.HasPrefix(r, "192.0.2.0/24 ") {
			return o, fmt.Errorf("outside host has an unexpected route %q", r)
		}
	}
	return o, nil
}

func (o *Outside) close() error {
	if err := testhost.KillNetNS(o.NetNS); err != nil {
		return err
	}
	return testhost.DeleteNetNS(o.NetNS)
}
