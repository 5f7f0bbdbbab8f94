package testhost

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Switch is a test LAN's switch: a Linux bridge in a named network
// namespace of its own, into which machines (other named namespaces) are
// plugged with veth pairs. The namespace has no link to the machine's own
// network. Traffic between the machines is bridged there, so it passes that
// namespace's (empty, ACCEPT) FORWARD chain, never a machine's.
//
// The e2e suite's LANs (test/e2e/macvlan_lan_test.go) and the benchmark
// harness's underlay (test/bench/multihost.go) are built with it.
type Switch struct {
	NetNS  string // the switch's named network namespace (the caller's PREFIX-...)
	Bridge string // the bridge's name in NetNS
	MTU    int    // the bridge's and every port's MTU
}

// NewSwitch creates namespace netns (with loopback up) holding bridge br at
// mtu, up, with addr (an address with its prefix length, e.g.
// 192.0.2.254/24; "" for none) on it. On an error the caller removes what
// was made with Remove.
func NewSwitch(netns, br string, mtu int, addr string) (*Switch, error) {
	s := &Switch{NetNS: netns, Bridge: br, MTU: mtu}
	if err := AddNetNS(netns); err != nil {
		return s, err
	}
	steps := [][]string{
		{"ip", "-n", netns, "link", "add", br, "mtu", fmt.Sprint(mtu), "type", "bridge"},
	}
	if addr != "" {
		steps = append(steps, []string{"ip", "-n", netns, "addr", "add", addr, "dev", br})
	}
	steps = append(steps, []string{"ip", "-n", netns, "link", "set", br, "up"})
	for _, st := range steps {
		if _, err := RunT(30*time.Second, st...); err != nil {
			return s, fmt.Errorf("creating switch %s in %s: %w", br, netns, err)
		}
	}
	return s, nil
}

// Attach plugs namespace hostNS into the switch: a veth pair whose end port
// is a port of the bridge and whose other end, peer, is in hostNS, both up
// and at the switch's MTU. Deleting peer (DetachPeer) deletes the pair.
func (s *Switch) Attach(port, hostNS, peer string) error {
	mtu := fmt.Sprint(s.MTU)
	for _, st := range [][]string{
		{"ip", "-n", s.NetNS, "link", "add", port, "mtu", mtu, "type", "veth", "peer", "name", peer, "mtu", mtu, "netns", hostNS},
		{"ip", "-n", s.NetNS, "link", "set", port, "master", s.Bridge, "up"},
		{"ip", "-n", hostNS, "link", "set", peer, "up"},
	} {
		if _, err := RunT(30*time.Second, st...); err != nil {
			return fmt.Errorf("attaching %s to switch %s: %w", hostNS, s.NetNS, err)
		}
	}
	return nil
}

// DetachPeer deletes the veth pair whose end peer is in hostNS (at once: a
// peer left to die with a namespace vanishes asynchronously, and a later
// link of the same name could find it still there). A pair already gone is
// no error.
func DetachPeer(hostNS, peer string) error {
	if _, err := RunT(30*time.Second, "ip", "-n", hostNS, "link", "del", peer); err != nil &&
		!strings.Contains(err.Error(), "Cannot find device") && !strings.Contains(err.Error(), "No such file") {
		return err
	}
	return nil
}

// Remove kills whatever runs in the switch's namespace and deletes it.
func (s *Switch) Remove() error {
	return errors.Join(KillNetNS(s.NetNS), DeleteNetNS(s.NetNS))
}
