package nstest_test

import (
	"net"
	"os/exec"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/weftnet/weft/test/nstest"
)

// TestLeakCheckerNamesEachKind: every kind of object the leak checker
// covers shows up, named, in the difference while it exists, and the
// namespace compares equal to its baseline again once it is removed.
func TestLeakCheckerNamesEachKind(t *testing.T) {
	nstest.RequirePrivileged(t)
	ns := nstest.NewNS(t)
	h := nstest.Netlink(t, ns)
	run := func(argv ...string) {
		t.Helper()
		err := nstest.Do(ns, func() error {
			out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
			if err != nil {
				return &runError{argv: argv, err: err, out: string(out)}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	// Listing creates tables in both back-ends; that is no difference.
	for _, cmd := range []string{"iptables-legacy", "iptables-nft", "ip6tables-legacy", "ip6tables-nft"} {
		if _, err := exec.LookPath(cmd); err == nil {
			run(cmd, "-t", "nat", "-L", "-n")
		}
	}
	base := nstest.Snap(t, ns)
	if d := nstest.Diff(base, nstest.Snap(t, ns)); d != "" {
		t.Fatalf("two snapshots of an unchanged namespace differ:\n%s", d)
	}

	la := netlink.NewLinkAttrs()
	la.Name = "leak0"
	if err := h.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: "leak1"}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"leak1", "leak0"} {
		l, err := h.LinkByName(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := h.LinkSetUp(l); err != nil {
			t.Fatal(err)
		}
	}
	l, err := h.LinkByName("leak0")
	if err != nil {
		t.Fatal(err)
	}
	_, ipn, _ := net.ParseCIDR("192.0.2.1/24")
	ipn.IP = net.ParseIP("192.0.2.1")
	if err := h.AddrAdd(l, &netlink.Addr{IPNet: ipn}); err != nil {
		t.Fatal(err)
	}
	_, dst, _ := net.ParseCIDR("198.51.100.0/24")
	if err := h.RouteAdd(&netlink.Route{Dst: dst, Gw: net.ParseIP("192.0.2.2")}); err != nil {
		t.Fatal(err)
	}
	want := []string{"+ link leak0 veth", "+ link leak1 veth", "+ addr leak0 192.0.2.1/24", "+ route table=254 type=1 198.51.100.0/24 via 192.0.2.2 dev leak0"}
	iptables := "iptables"
	for _, cmd := range []string{"iptables-nft", "iptables-legacy"} {
		if _, err := exec.LookPath(cmd); err == nil {
			iptables = cmd
		}
	}
	run(iptables, "-N", "LEAK-TEST")
	run(iptables, "-I", "FORWARD", "-o", "leak0", "-j", "LEAK-TEST")
	run(iptables, "-P", "FORWARD", "DROP")
	want = append(want, "filter chain LEAK-TEST", "filter -A FORWARD -o leak0 -j LEAK-TEST", "filter chain FORWARD policy DROP")
	ipset := false
	if _, err := exec.LookPath("ipset"); err == nil {
		ipset = true
		run("ipset", "create", "leaktest", "hash:ip")
		run("ipset", "add", "leaktest", "192.0.2.7")
		want = append(want, "+ ipset create leaktest hash:ip", "+ ipset add leaktest 192.0.2.7")
	}

	diff := nstest.Diff(base, nstest.Snap(t, ns))
	t.Logf("with one object of each kind:\n%s", diff)
	for _, w := range want {
		if !strings.Contains(diff, w) {
			t.Errorf("the difference does not name %q:\n%s", w, diff)
		}
	}
	if strings.Contains(diff, "\n- ") || strings.HasPrefix(diff, "- ") {
		t.Errorf("objects that were not removed show as gone:\n%s", diff)
	}

	run(iptables, "-P", "FORWARD", "ACCEPT")
	run(iptables, "-D", "FORWARD", "-o", "leak0", "-j", "LEAK-TEST")
	run(iptables, "-X", "LEAK-TEST")
	if ipset {
		run("ipset", "destroy", "leaktest")
	}
	if err := h.LinkDel(l); err != nil { // takes its peer, address and route along
		t.Fatal(err)
	}
	nstest.AssertUnchanged(t, ns, base, "after removing every object")
}

// TestCheckLeaksRunsLast: CheckLeaks' check runs after cleanups registered
// later, so what they remove is no leak.
func TestCheckLeaksRunsLast(t *testing.T) {
	nstest.RequirePrivileged(t)
	ns := nstest.NewNS(t)
	h := nstest.Netlink(t, ns)
	nstest.CheckLeaks(t, ns)
	la := netlink.NewLinkAttrs()
	la.Name = "fixture0"
	if err := h.LinkAdd(&netlink.Bridge{LinkAttrs: la}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		l, err := h.LinkByName("fixture0")
		if err == nil {
			err = h.LinkDel(l)
		}
		if err != nil {
			t.Error(err)
		}
	})
}

type runError struct {
	argv []string
	err  error
	out  string
}

func (e *runError) Error() string {
	return strings.Join(e.argv, " ") + ": " + e.err.Error() + ": " + strings.TrimSpace(e.out)
}
