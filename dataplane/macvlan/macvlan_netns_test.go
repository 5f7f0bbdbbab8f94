package macvlan

import (
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/weftnet/weft/dataplane"
	"github.com/weftnet/weft/test/nstest"
)

// TestNetnsModes creates, re-creates and deletes a network and an endpoint in
// each macvlan mode on an existing parent, back to the baseline.
func TestNetnsModes(t *testing.T) {
	want := map[string]netlink.MacvlanMode{
		ModeBridge: netlink.MACVLAN_MODE_BRIDGE, ModePrivate: netlink.MACVLAN_MODE_PRIVATE,
		ModeVEPA: netlink.MACVLAN_MODE_VEPA, ModePassthru: netlink.MACVLAN_MODE_PASSTHRU,
	}
	for _, mode := range Modes() {
		t.Run(mode, func(t *testing.T) {
			e := newEnv(t)
			parent := e.parent("eth0", 1500)
			base := e.snapshot()

			n := testNet(idA, "eth0", 2, withMode(mode), withIPv6)
			for range 2 {
				e.mustCreate(n)
			}
			e.assertSame(base, "CreateNetwork changed an existing parent")

			ep := endpoint(n, ep1, "192.0.2.10/24")
			ep.IPv6 = netip.MustParsePrefix("fd00:2::10/64")
			for range 2 {
				if err := e.m.CreateEndpoint(e.ctx, n, ep); err != nil {
					t.Fatal(err)
				}
			}
			l := e.link(EndpointLinkName(ep1))
			mv, ok := l.(*netlink.Macvlan)
			if !ok {
				t.Fatalf("endpoint link is a %s", l.Type())
			}
			a := l.Attrs()
			if mv.Mode != want[mode] || a.ParentIndex != parent.Attrs().Index || a.MTU != 1500 ||
				a.HardwareAddr.String() != ep.MAC.String() || a.Alias != "weft:"+idA || a.Flags&net.FlagUp != 0 {
				t.Fatalf("endpoint link: mode %v parent %d mtu %d mac %s alias %q up %v",
					mv.Mode, a.ParentIndex, a.MTU, a.HardwareAddr, a.Alias, a.Flags&net.FlagUp != 0)
			}

			info, err := e.m.Join(e.ctx, n, ep)
			if err != nil {
				t.Fatal(err)
			}
			if info.SrcName != EndpointLinkName(ep1) || info.DstPrefix != "eth" ||
				info.Gateway != netip.MustParseAddr("192.0.2.1") || info.GatewayIPv6 != netip.MustParseAddr("fd00:2::1") ||
				info.DisableGatewayService || len(info.Routes) != 0 {
				t.Fatalf("Join = %+v", info)
			}
			if err := e.m.Leave(e.ctx, n, ep); err != nil {
				t.Fatal(err)
			}

			for range 2 {
				if err := e.m.DeleteEndpoint(e.ctx, n, ep); err != nil {
					t.Fatal(err)
				}
			}
			for range 2 {
				e.mustDelete(n)
			}
			// For passthru, this also checks that the parent got its own
			// MAC address back.
			e.assertSame(base, "after delete")
			if _, err := e.m.Join(e.ctx, n, ep); err == nil || !strings.Contains(err.Error(), EndpointLinkName(ep1)) {
				t.Fatalf("Join of a deleted endpoint: %v", err)
			}
		})
	}
}

// TestNetnsEndpointMovedAway: Docker moves the link into the container; if
// the container's namespace dies with it, DeleteEndpoint has nothing to do.
func TestNetnsEndpointMovedAway(t *testing.T) {
	e := newEnv(t)
	e.parent("eth0", 1500)
	n := testNet(idA, "eth0", 2)
	e.mustCreate(n)
	base := e.snapshot()
	c := e.attach(n, ep1, "192.0.2.10/24")
	e.assertSame(base, "the endpoint link stayed in the host namespace")
	// DeleteEndpoint while the link is in the container: nothing to do,
	// and nothing in the container is touched.
	if err := e.m.DeleteEndpoint(e.ctx, n, endpoint(n, ep1, "192.0.2.10/24")); err != nil {
		t.Fatal(err)
	}
	if _, err := nstest.Netlink(t, c.ns).LinkByName(EndpointLinkName(ep1)); err != nil {
		t.Fatalf("the container's interface is gone: %v", err)
	}
}

func TestNetnsMTU(t *testing.T) {
	e := newEnv(t)
	e.parent("eth0", 1400)
	base := e.snapshot()

	n := testNet(idA, "eth0", 2)
	e.mustCreate(n)
	if err := e.m.CreateEndpoint(e.ctx, n, endpoint(n, ep1, "192.0.2.10/24")); err != nil {
		t.Fatal(err)
	}
	if mtu := e.link(EndpointLinkName(ep1)).Attrs().MTU; mtu != 1400 {
		t.Fatalf("endpoint MTU = %d, want the parent's 1400", mtu)
	}

	small := testNet(idB, "eth0", 3, func(n *dataplane.Network) { n.MTU = 1300 })
	e.mustCreate(small)
	if err := e.m.CreateEndpoint(e.ctx, small, endpoint(small, ep2, "198.51.3.10/24")); err != nil {
		t.Fatal(err)
	}
	if mtu := e.link(EndpointLinkName(ep2)).Attrs().MTU; mtu != 1300 {
		t.Fatalf("endpoint MTU = %d, want 1300", mtu)
	}

	big := testNet(idC, "eth0", 4, func(n *dataplane.Network) { n.MTU = 1500 })
	err := e.m.CreateNetwork(e.ctx, big)
	mustFail(t, "an MTU above the parent's", err, "MTU 1500", "MTU 1400", `"eth0"`, "com.docker.network.driver.mtu=1400")

	// The parent's MTU shrank after the network was made.
	if err := e.raw.LinkSetMTU(e.link("eth0"), 1200); err != nil {
		t.Fatal(err)
	}
	before := e.snapshot()
	err = e.m.CreateEndpoint(e.ctx, small, endpoint(small, ep3, "198.51.3.11/24"))
	mustFail(t, "an endpoint MTU above the parent's", err, "MTU 1300", "MTU 1200")
	e.assertSame(before, "a refused endpoint left")

	for _, x := range []struct {
		n  dataplane.Network
		ep string
	}{{n, ep1}, {small, ep2}} {
		if err := e.m.DeleteEndpoint(e.ctx, x.n, dataplane.Endpoint{ID: x.ep}); err != nil {
			t.Fatal(err)
		}
		e.mustDelete(x.n)
	}
	if err := e.raw.LinkSetMTU(e.link("eth0"), 1400); err != nil {
		t.Fatal(err)
	}
	e.assertSame(base, "after delete")
}

func TestNetnsPassthruTakesOneEndpoint(t *testing.T) {
	e := newEnv(t)
	e.parent("eth0", 1500)
	n := testNet(idA, "eth0", 2, withMode(ModePassthru))
	e.mustCreate(n)
	if err := e.m.CreateEndpoint(e.ctx, n, endpoint(n, ep1, "192.0.2.10/24")); err != nil {
		t.Fatal(err)
	}
	before := e.snapshot()
	err := e.m.CreateEndpoint(e.ctx, n, endpoint(n, ep2, "192.0.2.11/24"))
	mustFail(t, "a second passthru endpoint", err, "passthru", `"eth0"`, "one container at a time")
	e.assertSame(before, "the refused endpoint left")
	// Still refused once the first is in its container.
	c := nstest.NewNS(t)
	if err := e.raw.LinkSetNsFd(e.link(EndpointLinkName(ep1)), int(c)); err != nil {
		t.Fatal(err)
	}
	err = e.m.CreateEndpoint(e.ctx, n, endpoint(n, ep2, "192.0.2.11/24"))
	mustFail(t, "a second passthru endpoint", err, "passthru", "one container at a time")

	// Another network on a passthru parent is refused up front.
	err = e.m.CreateNetwork(e.ctx, testNet(idB, "eth0", 3))
	mustFail(t, "a network on a passthru parent", err, "passthru", dataplane.ShortID(idA))
}

func TestNetnsIsolatedNetwork(t *testing.T) {
	e := newEnv(t)
	base := e.snapshot()
	n := testNet(idA, "", 2, func(n *dataplane.Network) { n.MTU = 9000 })
	for range 2 {
		e.mustCreate(n)
	}
	br := e.link(IsolatedParentName(idA))
	a := br.Attrs()
	if br.Type() != "bridge" || a.Alias != "weft-macvlan:"+idA || a.MTU != 9000 || a.Flags&net.FlagUp == 0 {
		t.Fatalf("isolated parent: type %s alias %q mtu %d up %v", br.Type(), a.Alias, a.MTU, a.Flags&net.FlagUp != 0)
	}
	ep := endpoint(n, ep1, "192.0.2.10/24")
	for range 2 {
		if err := e.m.CreateEndpoint(e.ctx, n, ep); err != nil {
			t.Fatal(err)
		}
	}
	if l := e.link(EndpointLinkName(ep1)); l.Attrs().ParentIndex != a.Index || l.Attrs().MTU != 9000 {
		t.Fatalf("endpoint on parent %d with MTU %d", l.Attrs().ParentIndex, l.Attrs().MTU)
	}
	info, err := e.m.Join(e.ctx, n, ep)
	if err != nil {
		t.Fatal(err)
	}
	if info.Gateway.IsValid() || info.GatewayIPv6.IsValid() || !info.DisableGatewayService {
		t.Fatalf("isolated Join = %+v, want no gateway and no gateway service", info)
	}
	// Another network cannot use an isolated network's parent.
	err = e.m.CreateNetwork(e.ctx, testNet(idB, IsolatedParentName(idA), 3))
	mustFail(t, "an isolated parent as parent", err, IsolatedParentName(idA), "isolated weft network "+dataplane.ShortID(idA))

	// Deleting the network takes the endpoint link with the bridge.
	for range 2 {
		e.mustDelete(n)
	}
	e.assertSame(base, "after delete")
	if err := e.m.CreateEndpoint(e.ctx, n, ep); err == nil || !strings.Contains(err.Error(), "restart the weft plugin") {
		t.Fatalf("endpoint on a deleted isolated network: %v", err)
	}
}

func TestNetnsJoinInternal(t *testing.T) {
	e := newEnv(t)
	e.parent("eth0", 1500)
	n := testNet(idA, "eth0", 2, withIPv6, func(n *dataplane.Network) { n.Internal = true })
	e.mustCreate(n)
	ep := endpoint(n, ep1, "192.0.2.10/24")
	if err := e.m.CreateEndpoint(e.ctx, n, ep); err != nil {
		t.Fatal(err)
	}
	info, err := e.m.Join(e.ctx, n, ep)
	if err != nil {
		t.Fatal(err)
	}
	if info.Gateway.IsValid() || info.GatewayIPv6.IsValid() || info.DisableGatewayService {
		t.Fatalf("internal Join = %+v, want no gateways (Docker itself adds no docker_gwbridge)", info)
	}
}

// TestNetnsRefusals: every refused request names the problem and leaves
// the host as it was.
func TestNetnsRefusals(t *testing.T) {
	e := newEnv(t)
	e.parent("eth0", 1500)
	weftBridge := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "weftbr0", TxQLen: -1}}
	if err := e.raw.LinkAdd(weftBridge); err != nil {
		t.Fatal(err)
	}
	if err := e.raw.LinkSetAlias(weftBridge, "weft:"+idB); err != nil {
		t.Fatal(err)
	}
	userBridge := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "br-user", TxQLen: -1}}
	if err := e.raw.LinkAdd(userBridge); err != nil {
		t.Fatal(err)
	}
	known := testNet(idC, "eth0", 2)
	e.mustCreate(known)
	base := e.snapshot()

	for _, tc := range []struct {
		name string
		n    dataplane.Network
		want []string
	}{
		{"missing parent", testNet(idA, "eth9", 3), []string{`"eth9"`, "does not exist", "<interface>.<VLAN ID>", "leave parent out"}},
		{"missing VLAN base", testNet(idA, "eth9.100", 3), []string{`"eth9.100"`, "VLAN 100", `"eth9"`, "does not exist"}},
		{"weft bridge as parent", testNet(idA, "weftbr0", 3), []string{`"weftbr0"`, "bridge of weft network " + dataplane.ShortID(idB)}},
		{"VLAN on a weft bridge", testNet(idA, "weftbr0.7", 3), []string{"bridge of weft network"}},
		{"loopback parent", testNet(idA, "lo", 3), []string{`"lo"`, "loopback", "not an Ethernet one"}},
		{"overlapping subnet", testNet(idA, "eth0", 2), []string{"overlaps subnet 192.0.2.0/24", "weft network " + dataplane.ShortID(idC), `"eth0"`}},
		{"bad mode", testNet(idA, "eth0", 3, withMode("l3")), []string{"macvlan_mode"}},
		{"VLAN ID out of range", testNet(idA, "eth0.4095", 3), []string{"between 1 and 4094"}},
	} {
		err := e.m.CreateNetwork(e.ctx, tc.n)
		mustFail(t, tc.name, err, tc.want...)
	}
	// A bridge that is not weft's is a fine parent (and is left alone).
	user := testNet(idA, "br-user", 3)
	e.mustCreate(user)
	e.mustDelete(user)
	e.assertSame(base, "refused requests changed the host")

	// A foreign link with an endpoint's name is refused and left alone.
	la := netlink.NewLinkAttrs()
	la.Name = EndpointLinkName(ep1)
	if err := e.raw.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: "squatter1"}); err != nil {
		t.Fatal(err)
	}
	before := e.snapshot()
	err := e.m.CreateEndpoint(e.ctx, known, endpoint(known, ep1, "192.0.2.10/24"))
	mustFail(t, "an endpoint whose name is taken", err, EndpointLinkName(ep1), "veth")
	if err := e.m.DeleteEndpoint(e.ctx, known, dataplane.Endpoint{ID: ep1}); err != nil {
		t.Fatal(err)
	}
	e.assertSame(before, "a foreign link was touched")
}

// TestNetnsAdoptsInterruptedEndpoint: an endpoint link without alias is what
// a weft that died between creating it and setting the alias left behind.
func TestNetnsAdoptsInterruptedEndpoint(t *testing.T) {
	e := newEnv(t)
	parent := e.parent("eth0", 1500)
	n := testNet(idA, "eth0", 2)
	e.mustCreate(n)
	la := netlink.NewLinkAttrs()
	la.Name, la.ParentIndex = EndpointLinkName(ep1), parent.Attrs().Index
	if err := e.raw.LinkAdd(&netlink.Macvlan{LinkAttrs: la, Mode: netlink.MACVLAN_MODE_BRIDGE}); err != nil {
		t.Fatal(err)
	}
	ep := endpoint(n, ep1, "192.0.2.10/24")
	if err := e.m.CreateEndpoint(e.ctx, n, ep); err != nil {
		t.Fatal(err)
	}
	if a := e.link(EndpointLinkName(ep1)).Attrs(); a.Alias != "weft:"+idA || a.HardwareAddr.String() != ep.MAC.String() {
		t.Fatalf("adopted link: alias %q mac %s", a.Alias, a.HardwareAddr)
	}
}

func TestNetnsReconcile(t *testing.T) {
	e := newEnv(t)
	parent := e.parent("eth0", 1500)
	// Foreign objects: a macvlan on the parent, a bridge with a weft-like
	// name and someone else's alias, a macvlan with an endpoint-like name
	// and someone else's alias.
	for _, l := range []netlink.Link{
		&netlink.Macvlan{LinkAttrs: netlink.LinkAttrs{Name: "mvforeign", ParentIndex: parent.Attrs().Index, TxQLen: -1}, Mode: netlink.MACVLAN_MODE_BRIDGE},
		&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "wm-0000000000", TxQLen: -1, Alias: "someone"}},
		&netlink.Macvlan{LinkAttrs: netlink.LinkAttrs{Name: "wv000000000000", ParentIndex: parent.Attrs().Index, TxQLen: -1}, Mode: netlink.MACVLAN_MODE_BRIDGE},
	} {
		if err := e.raw.LinkAdd(l); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"wm-0000000000", "wv000000000000"} {
		if err := e.raw.LinkSetAlias(e.link(name), "someone"); err != nil {
			t.Fatal(err)
		}
	}
	foreignOnly := e.snapshot()

	a := testNet(idA, "eth0", 2)
	b := testNet(idB, "", 3)
	c := testNet(idC, "", 4)
	epA1, epA2 := endpoint(a, ep1, "192.0.2.10/24"), endpoint(a, ep2, "192.0.2.11/24")
	epB := endpoint(b, ep3, "198.51.3.10/24")
	for _, n := range []dataplane.Network{a, b, c} {
		e.mustCreate(n)
	}
	for _, x := range []struct {
		n  dataplane.Network
		ep dataplane.Endpoint
	}{{a, epA1}, {a, epA2}, {b, epB}} {
		if err := e.m.CreateEndpoint(e.ctx, x.n, x.ep); err != nil {
			t.Fatal(err)
		}
	}
	// Damage: c's isolated parent vanishes.
	if err := e.nl.DeleteLinkByName(IsolatedParentName(idC)); err != nil {
		t.Fatal(err)
	}

	// Known: a (with epA1 only) and c. Gone: epA2, b (and epB with it).
	for range 2 {
		if err := e.m.Reconcile(e.ctx, []dataplane.Network{a, c}, []dataplane.Endpoint{epA1}); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"mvforeign", "wm-0000000000", "wv000000000000", "eth0", EndpointLinkName(ep1), IsolatedParentName(idC)} {
		e.link(name)
	}
	for _, name := range []string{EndpointLinkName(ep2), EndpointLinkName(ep3), IsolatedParentName(idB)} {
		e.gone(name)
	}
	if al := e.link(IsolatedParentName(idC)).Attrs().Alias; al != "weft-macvlan:"+idC {
		t.Errorf("re-created isolated parent has alias %q", al)
	}
	// Reconcile set the known networks: a new network clashing with a is
	// refused, one clashing with the forgotten b is not.
	mustFail(t, "a network overlapping a known one", e.m.CreateNetwork(e.ctx, testNet(idB, "eth0", 2)), "overlaps")

	// Nothing known: everything weft made goes, the rest stays.
	if err := e.m.Reconcile(e.ctx, nil, nil); err != nil {
		t.Fatal(err)
	}
	e.assertSame(foreignOnly, "after reconciling nothing")
}

// TestNetnsReconcileKeepsInvalidNetworks: a listed network that fails
// validation is reported, and its links stay.
func TestNetnsReconcileKeepsInvalidNetworks(t *testing.T) {
	e := newEnv(t)
	n := testNet(idA, "", 2)
	e.mustCreate(n)
	ep := endpoint(n, ep1, "192.0.2.10/24")
	if err := e.m.CreateEndpoint(e.ctx, n, ep); err != nil {
		t.Fatal(err)
	}
	before := e.snapshot()
	bad := n
	bad.Macvlan.Mode = "l2"
	err := e.m.Reconcile(e.ctx, []dataplane.Network{bad}, []dataplane.Endpoint{ep})
	mustFail(t, "reconciling an invalid network", err, "left as it is", "macvlan_mode")
	e.assertSame(before, "Reconcile touched an invalid network's links")
}
