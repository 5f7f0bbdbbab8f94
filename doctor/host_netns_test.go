package doctor

import (
	"context"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/weftnet/weft/dataplane/fw"
	"github.com/weftnet/weft/plugin"
	"github.com/weftnet/weft/test/nstest"
)

// TestProbeLinkAgreesWithTheKernel: for each feature, ProbeLink says yes
// exactly when a link of that kind can be made (tried here directly, in the
// test's own namespace), and it leaves nothing behind in the namespace it
// is called from: its links live and die in a namespace of their own.
func TestProbeLinkAgreesWithTheKernel(t *testing.T) {
	ns := nstest.Setup(t)
	h := nstest.Netlink(t, ns)
	nstest.CheckLeaks(t, ns)
	attrs := func(name string, parent int) netlink.LinkAttrs {
		a := netlink.NewLinkAttrs()
		a.Name, a.ParentIndex = name, parent
		return a
	}
	// direct makes and removes a link of kind here, as the other privileged
	// tests do, to tell a missing kernel feature from a broken probe.
	direct := func(kind string) func() error {
		return func() error {
			if kind == "ipset" {
				_, _, err := h.IpsetProtocol()
				return err
			}
			parent := &netlink.Bridge{LinkAttrs: attrs("t-parent", 0)}
			if err := h.LinkAdd(parent); err != nil {
				return err
			}
			defer func() { _ = h.LinkDel(parent) }()
			var l netlink.Link
			switch kind {
			case "bridge":
				l = &netlink.Bridge{LinkAttrs: attrs("t-probe", 0)}
			case "veth":
				l = &netlink.Veth{LinkAttrs: attrs("t-probe", 0), PeerName: "t-peer"}
			case "macvlan":
				l = &netlink.Macvlan{LinkAttrs: attrs("t-probe", parent.Index), Mode: netlink.MACVLAN_MODE_BRIDGE}
			case "vlan":
				l = &netlink.Vlan{LinkAttrs: attrs("t-probe", parent.Index), VlanId: 7}
			case "vxlan":
				l = &netlink.Vxlan{LinkAttrs: attrs("t-probe", 0), VxlanId: 7, Port: 4789}
			}
			if err := h.LinkAdd(l); err != nil {
				return err
			}
			return h.LinkDel(l)
		}
	}
	for _, f := range Features() {
		t.Run(f.Kind, func(t *testing.T) {
			if f.Kind != "bridge" && f.Kind != "veth" {
				nstest.RequireKernelFeature(t, f.Name, direct(f.Kind))
			}
			if err := ProbeLink(f.Kind); err != nil {
				t.Fatalf("the kernel makes %s links, but the probe says: %v", f.Kind, err)
			}
		})
	}
}

// TestLinkExists reads the calling namespace.
func TestLinkExists(t *testing.T) {
	ns := nstest.Setup(t)
	h := nstest.Netlink(t, ns)
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "t-exists"}}
	if err := h.LinkAdd(br); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.LinkDel(br) })
	env := HostEnv(statusOptionsForTest())
	for name, want := range map[string]bool{"t-exists": true, "t-missing": false, "lo": true} {
		if got, err := env.LinkExists(name); err != nil || got != want {
			t.Errorf("LinkExists(%s) = %v, %v; want %v", name, got, err, want)
		}
	}
}

// linkEnv is a healthy fakeEnv whose link look-ups read the kernel.
type linkEnv struct {
	*fakeEnv
	host Env
}

func (e linkEnv) LinkExists(name string) (bool, error) { return e.host.LinkExists(name) }

// TestDriftFindsARemovedBridge: a bridge weft's state names, removed from
// the kernel, fails the links check with weft's fix; with it back the check
// passes.
func TestDriftFindsARemovedBridge(t *testing.T) {
	ns := nstest.Setup(t)
	h := nstest.Netlink(t, ns)
	st := &plugin.Status{Source: "plugin",
		Networks:  []plugin.NetworkStatus{{ID: "0123456789abcdef", Mode: "bridge", Bridge: "weft-0123456789"}},
		Endpoints: []plugin.EndpointStatus{{ID: "fedcba9876543210", Network: "0123456789abcdef"}}}
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "weft-0123456789"}}
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "whfedcba987654"}, PeerName: "wcfedcba987654"}
	for _, l := range []netlink.Link{br, veth} {
		if err := h.LinkAdd(l); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { _ = h.LinkDel(veth); _ = h.LinkDel(br) })
	env := linkEnv{&fakeEnv{probe: dockerNFT(fw.BackendNFT), ipForward: "1", status: st}, HostEnv(statusOptionsForTest())}
	if r := byName(Run(context.Background(), env, settings(t, nil)), "links"); r.Verdict != OK {
		t.Fatalf("with every link in place: %+v", r)
	}
	if err := h.LinkDel(br); err != nil {
		t.Fatal(err)
	}
	r := byName(Run(context.Background(), env, settings(t, nil)), "links")
	if r.Verdict != Fail || !strings.Contains(r.Detail, "weft-0123456789") || !strings.Contains(r.Fix, "re-creates the links") {
		t.Fatalf("with the bridge removed: %+v", r)
	}
}
