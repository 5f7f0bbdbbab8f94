//go:build e2e

package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/weftnet/weft/test/testhost"
)

// LAN is a test "LAN" for the macvlan tests: a network namespace
// PREFIX-lan-TAG (WEFT_E2E_PREFIX) holding a Linux bridge (the LAN's switch, lanSwitch) whose
// own address plays a machine already on the LAN — its router and a server.
// A test host joins the LAN through a veth pair: one end is a port of the
// switch, the other end, in the host's namespace, is the macvlan parent (it
// plays the host's NIC). Several hosts may join one LAN.
//
// The switch lives in a namespace of its own, not in a test host's: its
// bridged traffic then passes the (empty, ACCEPT) FORWARD chain of that
// namespace, not the host's, where dockerd sets the policy to DROP and
// br_netfilter is on. The host's own firewall is never involved: a macvlan
// interface's traffic does not pass the host's IP stack. The namespace has no
// link to the machine's own network.
type LAN struct {
	NetNS  string
	Prefix netip.Prefix // the LAN's subnet
	Router netip.Addr   // the router/server, on the switch
	// Beyond is an address behind the router (on its loopback), reachable
	// only through a default route via Router, or "" if none.
	Beyond netip.Addr
	MTU    int

	ports int
}

// lanSwitch is the bridge in a LAN's namespace; lanBeyond is the address
// newLAN puts behind the router when asked to (TEST-NET-3: the suite's
// outside host uses TEST-NET-1).
const (
	lanSwitch = "lan0"
	lanBeyond = "203.0.113.1"
)

// newLAN creates a LAN with the router at router (an address with the LAN's
// prefix length, e.g. 198.51.100.1/24), switch and ports at mtu, and, if
// beyond, lanBeyond behind the router. It is removed when the test ends (after
// the networks and containers the test creates later).
func newLAN(t *testing.T, tag string, router netip.Prefix, mtu int, beyond bool) *LAN {
	t.Helper()
	l := &LAN{NetNS: nsPrefix + "lan-" + tag, Prefix: router.Masked(), Router: router.Addr(), MTU: mtu}
	// A crashed earlier run of this test may have left it (the suite's
	// start-up cleanup removes its prefix's namespaces too).
	_ = testhost.KillNetNS(l.NetNS)
	_ = testhost.DeleteNetNS(l.NetNS)
	t.Cleanup(func() {
		if cfg.keep {
			return
		}
		if err := errors.Join(testhost.KillNetNS(l.NetNS), testhost.DeleteNetNS(l.NetNS)); err != nil {
			t.Errorf("removing LAN %s: %v", l.NetNS, err)
		}
	})
	if _, err := testhost.NewSwitch(l.NetNS, lanSwitch, mtu, router.String()); err != nil {
		t.Fatalf("creating LAN %s: %v", l.NetNS, err)
	}
	if beyond {
		l.Beyond = netip.MustParseAddr(lanBeyond)
		if _, err := testhost.RunT(30*time.Second, "ip", "-n", l.NetNS, "addr", "add", lanBeyond+"/32", "dev", "lo"); err != nil {
			t.Fatalf("creating LAN %s: %v", l.NetNS, err)
		}
	}
	return l
}

// Attach joins host h to the LAN: a veth pair with one end on the switch and
// the other, called parent, in h's namespace, up, at the LAN's MTU. The
// parent is deleted when the test ends (after the networks using it).
func (l *LAN) Attach(t *testing.T, h *Host, parent string) {
	t.Helper()
	port := fmt.Sprintf("port%d", l.ports)
	l.ports++
	t.Cleanup(func() {
		if cfg.keep {
			return
		}
		// Deleting one end of a veth deletes the other at once; a
		// parent left to die with the LAN namespace would vanish
		// asynchronously, and a later test creating the same name
		// could find it still there.
		if err := testhost.DetachPeer(h.NetNS, parent); err != nil {
			t.Errorf("removing LAN port %s of host %s: %v", parent, h.Name, err)
		}
	})
	sw := testhost.Switch{NetNS: l.NetNS, Bridge: lanSwitch, MTU: l.MTU}
	if err := sw.Attach(port, h.NetNS, parent); err != nil {
		t.Fatalf("attaching host %s to LAN %s: %v", h.Name, l.NetNS, err)
	}
}

// ns runs a command in the LAN's namespace.
func (l *LAN) ns(argv ...string) (string, error) {
	return testhost.RunT(30*time.Second, append([]string{"nsenter", "--net=/var/run/netns/" + l.NetNS, "--"}, argv...)...)
}

// AssertPing fails the test unless the LAN's router/server can ping target
// (retrying a few times, like Host.AssertPing).
func (l *LAN) AssertPing(t testing.TB, target string) {
	t.Helper()
	var out string
	var err error
	for i := 0; i < 5; i++ {
		if out, err = l.ns("busybox", "ping", "-c", "1", "-W", "1", target); err == nil {
			return
		}
	}
	t.Errorf("the LAN's server %s cannot ping %s: %v\n%s", l.Router, target, err, out)
}

// AssertNoPing fails the test if the LAN's router/server can ping target.
func (l *LAN) AssertNoPing(t testing.TB, target string) {
	t.Helper()
	if out, err := l.ns("busybox", "ping", "-c", "2", "-W", "1", target); err == nil {
		t.Errorf("the LAN's server %s can ping %s, but must not:\n%s", l.Router, target, out)
	}
}

// NeighMAC is the MAC address the LAN's server has learnt for ip, or "".
func (l *LAN) NeighMAC(t testing.TB, ip string) string {
	t.Helper()
	out, err := l.ns("ip", "-j", "neigh", "show", "dev", lanSwitch)
	if err != nil {
		t.Fatal(err)
	}
	var ns []struct {
		Dst    string `json:"dst"`
		LLAddr string `json:"lladdr"`
	}
	if err := json.Unmarshal([]byte(out), &ns); err != nil {
		t.Fatalf("parsing ip -j neigh: %v\n%s", err, out)
	}
	for _, n := range ns {
		if n.Dst == ip {
			return n.LLAddr
		}
	}
	return ""
}

// kernelHas8021Q reports whether this kernel can create 802.1Q VLAN links,
// by trying it on a throwaway veth in the LAN's namespace.
func (l *LAN) kernelHas8021Q(t testing.TB) bool {
	t.Helper()
	if _, err := testhost.RunT(30*time.Second, "ip", "-n", l.NetNS, "link", "add", "probe0", "type", "veth", "peer", "name", "probe1"); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if _, err := testhost.RunT(30*time.Second, "ip", "-n", l.NetNS, "link", "del", "probe0"); err != nil {
			t.Error(err)
		}
	}()
	_, err := testhost.RunT(30*time.Second, "ip", "-n", l.NetNS, "link", "add", "link", "probe0", "name", "probe0.7", "type", "vlan", "id", "7")
	return err == nil
}

// ipLink is one row of `ip -d -j link show`, with what the macvlan tests
// look at.
type ipLink struct {
	Name     string `json:"ifname"`
	Alias    string `json:"ifalias"`
	Address  string `json:"address"`
	MTU      int    `json:"mtu"`
	Lower    string `json:"link"` // the parent of a macvlan or VLAN link in the same namespace
	LinkInfo struct {
		Kind string                     `json:"info_kind"`
		Data map[string]json.RawMessage `json:"info_data"`
	} `json:"linkinfo"`
}

// data returns info_data's key as a string ("" if absent).
func (l ipLink) data(key string) string {
	raw, ok := l.LinkInfo.Data[key]
	if !ok {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	return string(raw)
}

func (l ipLink) String() string {
	s := fmt.Sprintf("link %s (%s", l.Name, l.LinkInfo.Kind)
	if l.Alias != "" {
		s += ", alias " + l.Alias
	}
	if l.Lower != "" {
		s += ", on " + l.Lower
	}
	return s + ")"
}

func parseIPLinks(out string) ([]ipLink, error) {
	var ls []ipLink
	if err := json.Unmarshal([]byte(out), &ls); err != nil {
		return nil, fmt.Errorf("parsing ip -d -j link: %w\n%s", err, out)
	}
	return ls, nil
}

// hostLinks lists every link of h's namespace.
func hostLinks(h *Host) ([]ipLink, error) {
	out, err := h.ns("ip", "-d", "-j", "link", "show")
	if err != nil {
		return nil, err
	}
	return parseIPLinks(out)
}

// HostLink returns h's link called name, or false.
func hostLink(t testing.TB, h *Host, name string) (ipLink, bool) {
	t.Helper()
	ls, err := hostLinks(h)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range ls {
		if l.Name == name {
			return l, true
		}
	}
	return ipLink{}, false
}

// hostLinkNames is the sorted names of every link of h's namespace.
func hostLinkNames(t testing.TB, h *Host) []string {
	t.Helper()
	ls, err := hostLinks(h)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range ls {
		names = append(names, l.Name)
	}
	slices.Sort(names)
	return names
}

// containerLink is the link dev inside container ctr, read with the
// machine's iproute2 in the container's network namespace.
func containerLink(t testing.TB, h *Host, ctr, dev string) ipLink {
	t.Helper()
	pid := h.Docker(t, "inspect", "-f", "{{.State.Pid}}", ctr)
	out, err := testhost.RunT(30*time.Second, "nsenter", "--target", pid, "--net", "--", "ip", "-d", "-j", "link", "show", "dev", dev)
	if err != nil {
		t.Fatal(err)
	}
	ls, err := parseIPLinks(out)
	if err != nil || len(ls) != 1 {
		t.Fatalf("container %s: %s: %v", ctr, dev, err)
	}
	return ls[0]
}

// macvlanObjects is every link of h that weft's macvlan mode makes
// (dataplane/macvlan's doc: endpoint links wv<12>, isolated parents wm-<10>
// with alias weft-macvlan:<network>, VLAN sub-interfaces aliased weft:vlan).
// The harness's generic weft-object check does not know the first two by
// name.
func macvlanObjects(h *Host) ([]string, error) {
	ls, err := hostLinks(h)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, l := range ls {
		if (strings.HasPrefix(l.Name, "wv") && l.LinkInfo.Kind == "macvlan") || strings.HasPrefix(l.Name, "wm-") ||
			strings.HasPrefix(l.Alias, "weft-macvlan:") || l.Alias == "weft:vlan" {
			out = append(out, l.String())
		}
	}
	slices.Sort(out)
	return out, nil
}

// assertNoNewMacvlanObjects fails the test if h has macvlan objects that are
// not in before, retrying for a few seconds (a container's namespace, and the
// endpoint link in it, goes asynchronously).
func assertNoNewMacvlanObjects(t testing.TB, h *Host, before []string, what string) {
	t.Helper()
	var extra []string
	err := testhost.Poll(5*time.Second, func() error {
		now, err := macvlanObjects(h)
		if err != nil {
			return err
		}
		if extra = missingFrom(now, before); len(extra) > 0 {
			return fmt.Errorf("%d new macvlan objects", len(extra))
		}
		return nil
	})
	if err != nil {
		t.Errorf("%s left macvlan objects behind on host %s:\n  %s", what, h.Name, strings.Join(extra, "\n  "))
	}
}

// watchMacvlanObjects registers, for the test, a check that it left no
// macvlan object on h. Call it before the test creates networks, so the check
// runs after their removal.
func watchMacvlanObjects(t *testing.T, h *Host) {
	t.Helper()
	before, err := macvlanObjects(h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { assertNoNewMacvlanObjects(t, h, before, t.Name()) })
}

// macvlanHost is sharedHost plus the macvlan leftover check.
func macvlanHost(t *testing.T) *Host {
	t.Helper()
	h := sharedHost(t)
	watchMacvlanObjects(t, h)
	return h
}
