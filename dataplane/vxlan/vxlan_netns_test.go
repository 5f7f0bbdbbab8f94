package vxlan

import (
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/weftnet/weft/dataplane"
	"github.com/weftnet/weft/test/nstest"
)

// newSingle is one host: the test namespace with an underlay NIC "ul0" (a
// veth whose peer "ulp" stays in the namespace) at 10.99.0.1/24 with MTU mtu.
// Its baseline (after the underlay) is checked when the test ends.
func newSingle(t *testing.T, mtu int, opts ...Option) *host {
	t.Helper()
	ns := nstest.Setup(t)
	h := newHost(t, "A", ns, vtepA, opts...)
	la := netlink.NewLinkAttrs()
	la.Name, la.MTU = "ul0", mtu
	if err := h.raw.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: "ulp"}); err != nil {
		t.Fatal(err)
	}
	if err := h.raw.LinkSetUp(h.link("ulp")); err != nil {
		t.Fatal(err)
	}
	configure(t, ns, "ul0", netip.PrefixFrom(vtepA, 24))
	nstest.CheckLeaks(t, ns)
	return h
}

// TestNetnsCreateDelete: a network's links are what the design says, a
// repeated create changes nothing, and two deletes bring the namespace back
// to its baseline.
func TestNetnsCreateDelete(t *testing.T) {
	h := newSingle(t, 1500)
	base := nstest.Snap(t, h.ns)
	n := network(idA, vni, func(n *dataplane.Network) { n.Vxlan.Port = 4790 })
	h.mustCreate(n)
	after := nstest.Snap(t, h.ns)
	h.mustCreate(n)
	nstest.RequireUnchanged(t, h.ns, after, "a second CreateNetwork")

	br := h.link(BridgeName(idA))
	vx, ok := h.link(LinkName(idA)).(*netlink.Vxlan)
	if !ok {
		t.Fatalf("%s is not a VXLAN link", LinkName(idA))
	}
	if br.Type() != "bridge" || br.Attrs().Alias != dataplane.VxlanAliasPrefix+idA || br.Attrs().Flags&net.FlagUp == 0 || br.Attrs().MTU != 1450 {
		t.Errorf("bridge: type %s alias %q up %v MTU %d", br.Type(), br.Attrs().Alias, br.Attrs().Flags&net.FlagUp != 0, br.Attrs().MTU)
	}
	switch {
	case vx.VxlanId != vni, vx.Port != 4790, !vx.SrcAddr.Equal(net.IP(vtepA.AsSlice())):
		t.Errorf("VXLAN link: VNI %d port %d local %s", vx.VxlanId, vx.Port, vx.SrcAddr)
	case vx.Learning, !vx.Proxy, vx.L2miss, vx.L3miss, vx.Group != nil && !vx.Group.IsUnspecified():
		t.Errorf("VXLAN link: learning %v proxy %v l2miss %v l3miss %v group %v", vx.Learning, vx.Proxy, vx.L2miss, vx.L3miss, vx.Group)
	case vx.MasterIndex != br.Attrs().Index, vx.Flags&net.FlagUp == 0, vx.MTU != 1450, vx.Alias != dataplane.VxlanAliasPrefix+idA:
		t.Errorf("VXLAN link: master %d (bridge %d) up %v MTU %d alias %q", vx.MasterIndex, br.Attrs().Index, vx.Flags&net.FlagUp != 0, vx.MTU, vx.Alias)
	}
	pi, err := h.raw.LinkGetProtinfo(vx)
	if err != nil {
		t.Fatal(err)
	}
	if pi.Learning {
		t.Error("the bridge learns MACs on its VXLAN port")
	}
	// No flooding: the VXLAN link has no FDB entry at all.
	if got := h.kernelPeers(idA); len(got) != 0 {
		t.Errorf("a new network holds peers %v", got)
	}

	// The default port, and an endpoint created twice, joined, deleted twice.
	n2 := network(idB, vni+1)
	h.mustCreate(n2)
	if vx2 := h.link(LinkName(idB)).(*netlink.Vxlan); vx2.Port != DefaultPort {
		t.Errorf("default port: %d, want %d", vx2.Port, DefaultPort)
	}
	ep := endpoint(n2, ep1, "10.50.0.11/24", "")
	for range 2 {
		if err := h.m.CreateEndpoint(h.ctx, n2, ep); err != nil {
			t.Fatal(err)
		}
	}
	hostEnd, cont := VethNames(ep1)
	if l := h.link(hostEnd); l.Attrs().MasterIndex != h.link(BridgeName(idB)).Attrs().Index || l.Attrs().Flags&net.FlagUp == 0 {
		t.Errorf("host end %s: master %d up %v", hostEnd, l.Attrs().MasterIndex, l.Attrs().Flags&net.FlagUp != 0)
	}
	if l := h.link(cont); l.Attrs().HardwareAddr.String() != ep.MAC.String() || l.Attrs().MTU != 1450 {
		t.Errorf("container end %s: MAC %s MTU %d", cont, l.Attrs().HardwareAddr, l.Attrs().MTU)
	}
	if st, err := h.m.EndpointState(h.ctx, n2, ep); err != nil || st != dataplane.EndpointDetached {
		t.Errorf("EndpointState = %v, %v; want detached", st, err)
	}
	internal := n2
	internal.Internal = true
	if info, err := h.m.Join(h.ctx, internal, ep); err != nil || !info.DisableGatewayService || info.SrcName != cont {
		t.Errorf("Join on an internal network = %+v, %v", info, err)
	}
	for range 2 {
		if err := h.m.DeleteEndpoint(h.ctx, n2, ep); err != nil {
			t.Fatal(err)
		}
	}
	if st, err := h.m.EndpointState(h.ctx, n2, ep); err != nil || st != dataplane.EndpointGone {
		t.Errorf("EndpointState after delete = %v, %v; want gone", st, err)
	}
	for range 2 {
		h.mustDelete(n2)
		h.mustDelete(n)
	}
	nstest.RequireUnchanged(t, h.ns, base, "after deleting every network")
	if err := h.m.SetPeers(h.ctx, idA, nil); !errors.Is(err, ErrUnknownNetwork) {
		t.Errorf("SetPeers on a deleted network: %v, want ErrUnknownNetwork", err)
	}
}

// TestNetnsMTU: the MTU is the underlay's less 50 unless set; larger than
// that is refused, and nothing is left behind.
func TestNetnsMTU(t *testing.T) {
	h := newSingle(t, 9000)
	base := nstest.Snap(t, h.ns)
	n := network(idA, vni)
	h.mustCreate(n)
	if mtu := h.link(LinkName(idA)).Attrs().MTU; mtu != 8950 {
		t.Fatalf("MTU over a 9000 underlay: %d, want 8950", mtu)
	}
	h.mustDelete(n)
	n.MTU = 1400
	h.mustCreate(n)
	for _, name := range []string{LinkName(idA), BridgeName(idA)} {
		if mtu := h.link(name).Attrs().MTU; mtu != 1400 {
			t.Fatalf("%s: MTU %d, want the set 1400", name, mtu)
		}
	}
	h.mustDelete(n)
	n.MTU = 8951
	mustFail(t, "an MTU above the underlay's less 50", h.m.CreateNetwork(h.ctx, n), "8951", "8950", "ul0", "com.docker.network.driver.mtu")
	nstest.RequireUnchanged(t, h.ns, base, "after a refused create")
}

// TestNetnsRefusals: a VNI another link holds on the same port, a port
// another program holds, a VTEP address the host does not have, and link
// names taken by someone else are refused with errors that say so, and
// nothing is left behind.
func TestNetnsRefusals(t *testing.T) {
	h := newSingle(t, 1500)
	base := nstest.Snap(t, h.ns)

	// A VXLAN link weft did not make holds VNI 42 on port 4789.
	la := netlink.NewLinkAttrs()
	la.Name = "vxforeign"
	if err := h.raw.LinkAdd(&netlink.Vxlan{LinkAttrs: la, VxlanId: vni, Port: port, SrcAddr: net.IP(vtepA.AsSlice())}); err != nil {
		t.Fatal(err)
	}
	withForeign := nstest.Snap(t, h.ns)
	err := h.m.CreateNetwork(h.ctx, network(idA, vni))
	mustFail(t, "a VNI a foreign link holds", err, "VNI 42", "4789", `"vxforeign"`, "-o vni=")
	if !errors.Is(err, ErrVNIInUse) {
		t.Errorf("error does not wrap ErrVNIInUse: %v", err)
	}
	nstest.RequireUnchanged(t, h.ns, withForeign, "after the refused create")
	// The same VNI on another port is another tunnel.
	other := network(idA, vni, func(n *dataplane.Network) { n.Vxlan.Port = 4791 })
	h.mustCreate(other)
	h.mustDelete(other)
	if err := h.raw.LinkDel(h.link("vxforeign")); err != nil {
		t.Fatal(err)
	}

	// Another weft network holds the VNI.
	h.mustCreate(network(idA, vni))
	err = h.m.CreateNetwork(h.ctx, network(idB, vni))
	mustFail(t, "a VNI another weft network holds", err, "weft vxlan network "+dataplane.ShortID(idA))
	h.gone(BridgeName(idB))
	h.gone(LinkName(idB))
	h.mustDelete(network(idA, vni))

	// A program holds the UDP port.
	var conn net.PacketConn
	if err := nstest.Do(h.ns, func() (err error) {
		conn, err = net.ListenPacket("udp4", "0.0.0.0:4792")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	err = h.m.CreateNetwork(h.ctx, network(idA, vni, func(n *dataplane.Network) { n.Vxlan.Port = 4792 }))
	mustFail(t, "a port a program holds", err, "UDP port 4792", "vxlan_port")
	if !errors.Is(err, ErrPortInUse) {
		t.Errorf("error does not wrap ErrPortInUse: %v", err)
	}
	_ = conn.Close()
	nstest.RequireUnchanged(t, h.ns, base, "after the refused create on a busy port")

	// A VTEP address this host does not have.
	stranger := New(h.nl, nil, WithVTEP(netip.MustParseAddr("10.98.0.1")), WithNamespace(h.ns))
	mustFail(t, "a VTEP address the host lacks", stranger.CreateNetwork(h.ctx, network(idA, vni)), "10.98.0.1", "WEFT_VTEP_ADDR")

	// Links with the network's names that are not weft's.
	if err := h.raw.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: LinkName(idA), TxQLen: -1, Alias: "mine"}}); err != nil {
		t.Fatal(err)
	}
	if err := h.raw.LinkSetAlias(h.link(LinkName(idA)), "mine"); err != nil {
		t.Fatal(err)
	}
	mustFail(t, "a foreign link with the VXLAN link's name", h.m.CreateNetwork(h.ctx, network(idA, vni)), LinkName(idA), "not created by weft")
	h.gone(BridgeName(idA))
	if err := h.raw.LinkDel(h.link(LinkName(idA))); err != nil {
		t.Fatal(err)
	}

	// Invalid networks are refused before anything happens.
	for _, bad := range []dataplane.Network{
		network(idA, 0), network(idA, MaxVNI+1), network("x", vni),
		network(idA, vni, func(n *dataplane.Network) { n.Mode = dataplane.Bridge }),
		network(idA, vni, func(n *dataplane.Network) { n.MTU = 20 }),
	} {
		if err := h.m.CreateNetwork(h.ctx, bad); err == nil {
			t.Errorf("CreateNetwork(%+v) succeeded", bad)
		}
	}
	nstest.RequireUnchanged(t, h.ns, base, "after the refusals")
}

// TestNetnsReconcile: Reconcile deletes this mode's links of unlisted
// networks and endpoints, keeps a listed network's links and peers, puts a
// deleted bridge back with its ports, and touches nothing that is not the
// vxlan mode's — not even the bridge and macvlan modes' links.
func TestNetnsReconcile(t *testing.T) {
	h := newSingle(t, 1500)
	base := nstest.Snap(t, h.ns)
	// Links of others: the bridge mode's bridge and veth, a VXLAN link of
	// the user's.
	bm := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: dataplane.DefaultBridgeName(idB), TxQLen: -1}}
	if err := h.raw.LinkAdd(bm); err != nil {
		t.Fatal(err)
	}
	if err := h.raw.LinkSetAlias(h.link(bm.Name), dataplane.OwnerAliasPrefix+idB); err != nil {
		t.Fatal(err)
	}
	if err := h.raw.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "whe3e3e3e3e3e3", TxQLen: -1}, PeerName: "wce3e3e3e3e3e3"}); err != nil {
		t.Fatal(err)
	}
	la := netlink.NewLinkAttrs()
	la.Name = "vxuser"
	if err := h.raw.LinkAdd(&netlink.Vxlan{LinkAttrs: la, VxlanId: 7, Port: port}); err != nil {
		t.Fatal(err)
	}
	foreign := nstest.Snap(t, h.ns)

	n1, n2 := network(idA, vni), network(idB, vni+1)
	h.mustCreate(n1)
	h.mustCreate(n2)
	e1, e2 := endpoint(n1, ep1, "10.50.0.11/24", ""), endpoint(n2, ep2, "10.50.0.12/24", "")
	for _, x := range []struct {
		n  dataplane.Network
		ep dataplane.Endpoint
	}{{n1, e1}, {n2, e2}} {
		if err := h.m.CreateEndpoint(h.ctx, x.n, x.ep); err != nil {
			t.Fatal(err)
		}
	}
	p1 := Peer{VTEP: vtepB, MAC: macFor(netip.MustParseAddr("10.50.0.21")), IPv4: netip.MustParseAddr("10.50.0.21")}
	p2 := Peer{VTEP: vtepB, MAC: macFor(netip.MustParseAddr("10.50.0.22")), IPv4: netip.MustParseAddr("10.50.0.22")}
	h.mustSetPeers(idA, p1)
	h.mustSetPeers(idB, p2)
	// A stale endpoint veth of this mode with no alias (a crash).
	if err := h.raw.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "wxhe3e3e3e3e3e3", TxQLen: -1}, PeerName: "wxce3e3e3e3e3e3"}); err != nil {
		t.Fatal(err)
	}

	for range 2 {
		if err := h.m.Reconcile(h.ctx, []dataplane.Network{n1}, []dataplane.Endpoint{e1}); err != nil {
			t.Fatal(err)
		}
	}
	h.gone(BridgeName(idB))
	h.gone(LinkName(idB))
	h.gone("wxhe2e2e2e2e2e2")
	h.gone("wxhe3e3e3e3e3e3")
	h.link("wxhe1e1e1e1e1e1")
	if got := h.kernelPeers(idA); !SamePeers(got, []Peer{p1}) {
		t.Fatalf("listed network's peers after Reconcile: %v, want %v", got, p1)
	}
	if _, err := h.m.KernelPeers(h.ctx, idB); !errors.Is(err, ErrUnknownNetwork) {
		t.Errorf("KernelPeers of an unlisted network: %v, want ErrUnknownNetwork", err)
	}

	// The bridge deleted behind weft's back: Reconcile puts it back with
	// the VXLAN link and the endpoint as ports, and the peers.
	if err := h.raw.LinkDel(h.link(BridgeName(idA))); err != nil {
		t.Fatal(err)
	}
	if err := h.m.Reconcile(h.ctx, []dataplane.Network{n1}, []dataplane.Endpoint{e1}); err != nil {
		t.Fatal(err)
	}
	br := h.link(BridgeName(idA))
	for _, name := range []string{LinkName(idA), "wxhe1e1e1e1e1e1"} {
		if l := h.link(name); l.Attrs().MasterIndex != br.Attrs().Index {
			t.Errorf("%s is not a port of the re-created bridge", name)
		}
	}
	if why, err := h.m.Check(h.ctx); why != "" || err != nil {
		t.Errorf("Check after Reconcile = %q, %v", why, err)
	}
	if got := h.kernelPeers(idA); !SamePeers(got, []Peer{p1}) {
		t.Fatalf("peers after the bridge came back: %v, want %v", got, p1)
	}

	// Nothing listed: everything of this mode goes, the others' stays.
	if err := h.m.Reconcile(h.ctx, nil, nil); err != nil {
		t.Fatal(err)
	}
	nstest.RequireUnchanged(t, h.ns, foreign, "after Reconcile with nothing listed")
	for _, name := range []string{bm.Name, "whe3e3e3e3e3e3", "vxuser"} {
		if err := h.raw.LinkDel(h.link(name)); err != nil {
			t.Fatal(err)
		}
	}
	nstest.RequireUnchanged(t, h.ns, base, "at the end")
}

// TestNetnsChecksumOffload: off turns transmit checksum offload off on the
// VXLAN link, on keeps it on, and either is corrected when changed.
func TestNetnsChecksumOffload(t *testing.T) {
	for _, o := range []Offload{OffloadOff, OffloadOn} {
		t.Run(string(o), func(t *testing.T) {
			h := newSingle(t, 1500, WithChecksumOffload(o))
			n := network(idA, vni)
			h.mustCreate(n)
			want := o == OffloadOn
			read := func() bool {
				var got bool
				if err := inNamespace(h.ns, func() (err error) { got, err = txChecksum(LinkName(idA), nil); return err }); err != nil {
					t.Fatal(err)
				}
				return got
			}
			if got := read(); got != want {
				t.Fatalf("transmit checksum offload %v, want %v", got, want)
			}
			flip := !want
			if err := inNamespace(h.ns, func() error { _, err := txChecksum(LinkName(idA), &flip); return err }); err != nil {
				t.Fatal(err)
			}
			if err := h.m.Repair(h.ctx); err != nil {
				t.Fatal(err)
			}
			if got := read(); got != want {
				t.Fatalf("after Repair: transmit checksum offload %v, want %v", got, want)
			}
			h.mustDelete(n)
		})
	}
}

// TestNetnsDefaultVTEP: without WithVTEP the VTEP is the default route's
// source (its preferred source if it has one); a change of VTEP address
// re-creates the VXLAN link at Reconcile, with its peers.
func TestNetnsDefaultVTEP(t *testing.T) {
	h := newSingle(t, 1500)
	second := netip.MustParseAddr("10.99.0.9")
	if err := h.raw.AddrAdd(h.link("ul0"), &netlink.Addr{IPNet: ipNet(netip.PrefixFrom(second, 24))}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.raw.AddrDel(h.link("ul0"), &netlink.Addr{IPNet: ipNet(netip.PrefixFrom(second, 24))}) })
	m := New(h.nl, nil, WithNamespace(h.ns))
	if _, err := m.VTEP(); err == nil || !strings.Contains(err.Error(), "WEFT_VTEP_ADDR") {
		t.Fatalf("VTEP without a default route: %v, want an error naming WEFT_VTEP_ADDR", err)
	}
	route := &netlink.Route{LinkIndex: h.link("ul0").Attrs().Index, Gw: net.ParseIP("10.99.0.254")}
	if err := h.raw.RouteAdd(route); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.raw.RouteDel(route) })
	if got, err := m.VTEP(); err != nil || got != vtepA {
		t.Fatalf("VTEP = %v, %v; want the first address of the default route's link, %s", got, err, vtepA)
	}
	route.Src = net.IP(second.AsSlice())
	if err := h.raw.RouteReplace(route); err != nil {
		t.Fatal(err)
	}
	if got, err := DefaultVTEP(h.nl); err != nil || got != second {
		t.Fatalf("DefaultVTEP = %v, %v; want the route's source %s", got, err, second)
	}

	// Created with the default (10.99.0.9), reconciled by a Mode whose
	// VTEP is 10.99.0.1: the link is made again, with its peers.
	n := network(idA, vni)
	if err := m.CreateNetwork(h.ctx, n); err != nil {
		t.Fatal(err)
	}
	p := Peer{VTEP: vtepB, MAC: macFor(netip.MustParseAddr("10.50.0.21")), IPv4: netip.MustParseAddr("10.50.0.21")}
	if err := m.SetPeers(h.ctx, idA, []Peer{p}); err != nil {
		t.Fatal(err)
	}
	if vx := h.link(LinkName(idA)).(*netlink.Vxlan); !vx.SrcAddr.Equal(net.IP(second.AsSlice())) {
		t.Fatalf("local %s, want the default %s", vx.SrcAddr, second)
	}
	moved := New(h.nl, nil, WithVTEP(vtepA), WithNamespace(h.ns))
	if err := moved.Reconcile(h.ctx, []dataplane.Network{n}, nil); err != nil {
		t.Fatal(err)
	}
	if vx := h.link(LinkName(idA)).(*netlink.Vxlan); !vx.SrcAddr.Equal(net.IP(vtepA.AsSlice())) || vx.MasterIndex != h.link(BridgeName(idA)).Attrs().Index {
		t.Fatalf("after the VTEP changed: local %s master %d", vx.SrcAddr, vx.MasterIndex)
	}
	// The new Mode was never told the peers: they are gone with the old
	// link, and its control plane's first SetPeers puts them back.
	if err := moved.SetPeers(h.ctx, idA, []Peer{p}); err != nil {
		t.Fatal(err)
	}
	if got, err := moved.KernelPeers(h.ctx, idA); err != nil || !SamePeers(got, []Peer{p}) {
		t.Fatalf("KernelPeers = %v, %v", got, err)
	}
	if err := moved.DeleteNetwork(h.ctx, n); err != nil {
		t.Fatal(err)
	}
}
