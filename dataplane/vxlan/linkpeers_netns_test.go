package vxlan

import (
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"

	"github.com/vishvananda/netlink"
)

// TestNetnsLinkPeers: LinkPeers, weft doctor's reading of a VXLAN link,
// sees what SetPeers wrote and the local VTEP; a forwarding entry deleted
// behind weft's back (bridge fdb del) makes DiffPeers name the peer, the
// Mode's Check finds it, and Repair puts it back.
func TestNetnsLinkPeers(t *testing.T) {
	h := newSingle(t, 1500)
	n := network(idA, vni)
	h.mustCreate(n)
	t.Cleanup(func() { h.mustDelete(n) })
	ip := netip.MustParseAddr("10.50.0.21")
	p := Peer{VTEP: vtepB, MAC: macFor(ip), IPv4: ip}
	h.mustSetPeers(idA, p)

	if _, _, found, err := LinkPeers(h.nl, "wxv-nothere"); found || err != nil {
		t.Fatalf("LinkPeers of a missing link: found %v, %v", found, err)
	}
	local, got, found, err := LinkPeers(h.nl, LinkName(idA))
	if err != nil || !found || local != vtepA || !SamePeers(got, []Peer{p}) {
		t.Fatalf("LinkPeers = %s %v %v %v, want %s [%s]", local, got, found, err, vtepA, p)
	}
	if d := DiffPeers(got, []Peer{p}); d != "" {
		t.Fatalf("DiffPeers of equal sets: %q", d)
	}

	// bridge fdb del <mac> dev wxv-... dst <vtep> self
	vx := h.link(LinkName(idA))
	if err := h.raw.NeighDel(&netlink.Neigh{LinkIndex: vx.Attrs().Index, Family: syscall.AF_BRIDGE, Flags: netlink.NTF_SELF,
		State: netlink.NUD_PERMANENT, HardwareAddr: p.MAC, IP: net.IP(vtepB.AsSlice())}); err != nil {
		t.Fatal(err)
	}
	_, got, _, err = LinkPeers(h.nl, LinkName(idA))
	if err != nil {
		t.Fatal(err)
	}
	if d := DiffPeers(got, []Peer{p}); !strings.Contains(d, p.MAC.String()) || !strings.Contains(d, vtepB.String()) {
		t.Fatalf("DiffPeers after the FDB entry went: %q, want it to name %s via %s", d, p.MAC, vtepB)
	}
	if why, err := h.m.Check(h.ctx); err != nil || why == "" {
		t.Fatalf("Check after the FDB entry went: %q, %v", why, err)
	}
	if err := h.m.Repair(h.ctx); err != nil {
		t.Fatal(err)
	}
	if _, got, _, err = LinkPeers(h.nl, LinkName(idA)); err != nil || DiffPeers(got, []Peer{p}) != "" {
		t.Fatalf("after Repair: %v %v", got, err)
	}
}
