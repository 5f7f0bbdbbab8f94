package vxlan

import (
	"net"
	"net/netip"
	"syscall"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/weftnet/weft/dataplane"
)

func dualStack(n *dataplane.Network) {
	n.EnableIPv6 = true
	n.IPv6 = []dataplane.Subnet{{Pool: netip.MustParsePrefix("fd00:50::/64")}}
}

// TestNetnsTwoHostsTraffic: containers on two hosts reach each other across
// the VXLAN (IPv4 and IPv6, full-size packets) once each host has the
// other's endpoint as peer, and not before or after; entries deleted behind
// weft's back show in KernelPeers and Check and come back with SetPeers and
// Repair; repeats change nothing; everything goes at the end.
func TestNetnsTwoHostsTraffic(t *testing.T) {
	a, b := newHosts(t, 1500)
	n := network(idA, vni, dualStack)
	for range 2 {
		a.mustCreate(n)
		b.mustCreate(n)
	}
	for _, h := range []*host{a, b} {
		for _, name := range []string{BridgeName(idA), LinkName(idA)} {
			if mtu := h.link(name).Attrs().MTU; mtu != 1450 {
				t.Fatalf("%s: %s has MTU %d, want 1450 (underlay 1500 - 50)", h.name, name, mtu)
			}
		}
	}
	c1 := a.attach(n, endpoint(n, ep1, "10.50.0.11/24", "fd00:50::11/64"))
	c2 := b.attach(n, endpoint(n, ep2, "10.50.0.12/24", "fd00:50::12/64"))
	if hostEnd, _ := VethNames(ep1); a.link(hostEnd).Attrs().MTU != 1450 {
		t.Fatalf("host veth MTU %d, want 1450", a.link(hostEnd).Attrs().MTU)
	}

	noPing(t, c1, c2.addr)

	for range 2 {
		a.mustSetPeers(idA, c2.peer(vtepB))
		b.mustSetPeers(idA, c1.peer(vtepA))
	}
	waitPing(t, c1, c2.addr, 56)
	waitPing(t, c2, c1.addr, 56)
	waitPing(t, c1, c2.ep.IPv6.Addr(), 56)
	// The largest packet the MTU allows: 1450 - 20 (IP) - 8 (ICMP).
	waitPing(t, c1, c2.addr, 1422)
	waitPing(t, c2, c1.ep.IPv6.Addr(), 1450-40-8)

	if got, want := a.kernelPeers(idA), []Peer{c2.peer(vtepB)}; !SamePeers(got, want) {
		t.Fatalf("A: KernelPeers = %v, want %v", got, want)
	}
	if why, err := a.m.Check(a.ctx); err != nil || why != "" {
		t.Fatalf("A: Check = %q, %v; want nothing missing", why, err)
	}

	// Behind weft's back: each kind of entry deleted in turn shows in
	// KernelPeers and Check, and SetPeers (or Repair) puts it back.
	vx := a.link(LinkName(idA))
	idx := vx.Attrs().Index
	deletions := []struct {
		what string
		n    netlink.Neigh
	}{
		{"the FDB entry", netlink.Neigh{LinkIndex: idx, Family: syscall.AF_BRIDGE, State: netlink.NUD_PERMANENT, Flags: netlink.NTF_SELF, HardwareAddr: c2.ep.MAC, IP: net.IP(vtepB.AsSlice())}},
		{"the bridge's static entry", netlink.Neigh{LinkIndex: idx, Family: syscall.AF_BRIDGE, State: netlink.NUD_NOARP, Flags: netlink.NTF_MASTER, HardwareAddr: c2.ep.MAC}},
		{"the IPv4 neighbour entry", netlink.Neigh{LinkIndex: idx, Family: netlink.FAMILY_V4, IP: net.IP(c2.addr.AsSlice())}},
		{"the IPv6 neighbour entry", netlink.Neigh{LinkIndex: idx, Family: netlink.FAMILY_V6, IP: net.IP(c2.ep.IPv6.Addr().AsSlice())}},
	}
	for i, d := range deletions {
		if err := a.raw.NeighDel(&d.n); err != nil {
			t.Fatalf("deleting %s: %v", d.what, err)
		}
		if got := a.kernelPeers(idA); SamePeers(got, []Peer{c2.peer(vtepB)}) {
			t.Fatalf("after deleting %s, KernelPeers still shows %v", d.what, got)
		}
		why, err := a.m.Check(a.ctx)
		if err != nil || why == "" {
			t.Fatalf("after deleting %s, Check = %q, %v; want it named", d.what, why, err)
		}
		t.Logf("after deleting %s: Check: %s", d.what, why)
		if i%2 == 0 {
			a.mustSetPeers(idA, c2.peer(vtepB))
		} else if err := a.m.Repair(a.ctx); err != nil {
			t.Fatal(err)
		}
		if got := a.kernelPeers(idA); !SamePeers(got, []Peer{c2.peer(vtepB)}) {
			t.Fatalf("after restoring %s: KernelPeers = %v", d.what, got)
		}
		waitPing(t, c1, c2.addr, 56)
	}

	// Stale permanent entries on the link (an old peer) are removed.
	stale := netip.MustParseAddr("10.50.0.99")
	staleMAC := macFor(stale)
	for _, e := range []netlink.Neigh{
		{LinkIndex: idx, Family: netlink.FAMILY_V4, State: netlink.NUD_PERMANENT, IP: net.IP(stale.AsSlice()), HardwareAddr: staleMAC},
		{LinkIndex: idx, Family: syscall.AF_BRIDGE, State: netlink.NUD_PERMANENT, Flags: netlink.NTF_SELF, IP: net.IP(netip.MustParseAddr("10.99.0.77").AsSlice()), HardwareAddr: staleMAC},
		{LinkIndex: idx, Family: syscall.AF_BRIDGE, State: netlink.NUD_PERMANENT, Flags: netlink.NTF_SELF, IP: net.IP(netip.MustParseAddr("10.99.0.77").AsSlice()), HardwareAddr: net.HardwareAddr{0, 0, 0, 0, 0, 0}},
	} {
		if err := a.raw.NeighAppend(&e); err != nil {
			t.Fatalf("planting %+v: %v", e, err)
		}
	}
	if got := a.kernelPeers(idA); SamePeers(got, []Peer{c2.peer(vtepB)}) || len(got) < 3 {
		t.Fatalf("KernelPeers with planted entries = %v, want the peer, the planted MAC and the all-zero one", got)
	}
	a.mustSetPeers(idA, c2.peer(vtepB))
	if got := a.kernelPeers(idA); !SamePeers(got, []Peer{c2.peer(vtepB)}) {
		t.Fatalf("stale entries not removed: KernelPeers = %v", got)
	}

	// A peer that moves to another host only changes its FDB entry.
	moved := c2.peer(netip.MustParseAddr("10.99.0.3"))
	a.mustSetPeers(idA, moved)
	if got := a.kernelPeers(idA); !SamePeers(got, []Peer{moved}) {
		t.Fatalf("after the move: KernelPeers = %v, want %v", got, moved)
	}
	noPing(t, c1, c2.addr)

	// Peers removed: traffic stops; back: it flows again.
	a.mustSetPeers(idA)
	b.mustSetPeers(idA)
	for _, h := range []*host{a, b} {
		if got := h.kernelPeers(idA); len(got) != 0 {
			t.Fatalf("%s: KernelPeers after removing all = %v", h.name, got)
		}
	}
	noPing(t, c1, c2.addr)
	a.mustSetPeers(idA, c2.peer(vtepB))
	b.mustSetPeers(idA, c1.peer(vtepA))
	waitPing(t, c1, c2.addr, 56)

	// Reconcile keeps a listed network's peers (a restarted weft's too,
	// before its control plane has called SetPeers).
	if err := a.m.Reconcile(a.ctx, []dataplane.Network{n}, []dataplane.Endpoint{c1.ep}); err != nil {
		t.Fatal(err)
	}
	fresh := New(a.nl, nil, WithVTEP(vtepA), WithNamespace(a.ns))
	if err := fresh.Reconcile(a.ctx, []dataplane.Network{n}, []dataplane.Endpoint{c1.ep}); err != nil {
		t.Fatal(err)
	}
	if got, err := fresh.KernelPeers(a.ctx, idA); err != nil || !SamePeers(got, []Peer{c2.peer(vtepB)}) {
		t.Fatalf("after Reconcile by a new Mode: KernelPeers = %v, %v", got, err)
	}
	waitPing(t, c1, c2.addr, 56)

	// The whole VXLAN link deleted behind weft's back: Check names it,
	// Repair re-creates it with its peers.
	if err := a.raw.LinkDel(a.link(LinkName(idA))); err != nil {
		t.Fatal(err)
	}
	if why, _ := a.m.Check(a.ctx); why == "" {
		t.Fatal("Check did not notice the missing VXLAN link")
	}
	if err := a.m.Repair(a.ctx); err != nil {
		t.Fatal(err)
	}
	if why, err := a.m.Check(a.ctx); why != "" || err != nil {
		t.Fatalf("after Repair: Check = %q, %v", why, err)
	}
	waitPing(t, c1, c2.addr, 56)

	// The end: endpoints, then networks, twice each.
	for range 2 {
		for _, x := range []struct {
			h *host
			c ctr
		}{{a, c1}, {b, c2}} {
			if err := x.h.m.DeleteEndpoint(x.h.ctx, n, x.c.ep); err != nil {
				t.Fatal(err)
			}
		}
	}
	for range 2 {
		a.mustDelete(n)
		b.mustDelete(n)
	}
	for _, h := range []*host{a, b} {
		h.gone(BridgeName(idA))
		h.gone(LinkName(idA))
	}
}

// TestNetnsIPv6Underlay: over an IPv6 underlay the MTU is the underlay's less
// 70, and containers reach each other.
func TestNetnsIPv6Underlay(t *testing.T) {
	a, b := newHosts(t, 1500)
	a6, b6 := netip.MustParseAddr("fd99::1"), netip.MustParseAddr("fd99::2")
	for _, x := range []struct {
		h    *host
		addr netip.Addr
	}{{a, a6}, {b, b6}} {
		l := x.h.link("ul0")
		if err := x.h.raw.AddrAdd(l, &netlink.Addr{IPNet: ipNet(netip.PrefixFrom(x.addr, 64)), Flags: 0x02 /* NODAD */}); err != nil {
			t.Fatal(err)
		}
		x.h.m = New(x.h.nl, nil, WithVTEP(x.addr), WithNamespace(x.h.ns))
	}
	t.Cleanup(func() {
		for _, x := range []struct {
			h    *host
			addr netip.Addr
		}{{a, a6}, {b, b6}} {
			_ = x.h.raw.AddrDel(x.h.link("ul0"), &netlink.Addr{IPNet: ipNet(netip.PrefixFrom(x.addr, 64))})
		}
	})
	n := network(idA, vni)
	a.mustCreate(n)
	b.mustCreate(n)
	vx, ok := a.link(LinkName(idA)).(*netlink.Vxlan)
	if !ok || vx.MTU != 1430 || !vx.SrcAddr.Equal(net.IP(a6.AsSlice())) {
		t.Fatalf("VXLAN link over IPv6: %+v, want MTU 1430 and local %s", vx, a6)
	}
	c1 := a.attach(n, endpoint(n, ep1, "10.50.0.11/24", ""))
	c2 := b.attach(n, endpoint(n, ep2, "10.50.0.12/24", ""))
	if err := a.m.SetPeers(a.ctx, idA, []Peer{c2.peer(vtepB)}); err == nil {
		t.Fatal("SetPeers accepted an IPv4 VTEP for an IPv6 tunnel")
	}
	a.mustSetPeers(idA, c2.peer(b6))
	b.mustSetPeers(idA, c1.peer(a6))
	waitPing(t, c1, c2.addr, 1430-28)
	for _, x := range []struct {
		h *host
		c ctr
	}{{a, c1}, {b, c2}} {
		if err := x.h.m.DeleteEndpoint(x.h.ctx, n, x.c.ep); err != nil {
			t.Fatal(err)
		}
		x.h.mustDelete(n)
	}
}
