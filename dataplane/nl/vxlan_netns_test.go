package nl_test

import (
	"errors"
	"net"
	"net/netip"
	"syscall"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/weftnet/weft/dataplane/nl"
)

// TestEnsureVxlan: created once, verified and corrected after; another
// owner's or other settings are ErrLinkConflict; a VNI another link holds on
// the port is EEXIST; nothing is left of a refused link.
func TestEnsureVxlan(t *testing.T) {
	h := handle(t)
	br, _, err := h.EnsureBridge("vxbr0", 1450, "weft:test")
	if err != nil {
		t.Fatal(err)
	}
	v := nl.Vxlan{Name: "vxt0", VNI: 42, Port: 4789, Local: netip.MustParseAddr("192.0.2.1"), Proxy: true, MTU: 1450, MasterIndex: br.Attrs().Index, Alias: "weft:test"}
	for i, want := range []bool{true, false} {
		l, created, err := h.EnsureVxlan(v)
		if err != nil || created != want {
			t.Fatalf("call %d: created %v, %v", i, created, err)
		}
		vx := l.(*netlink.Vxlan)
		if vx.VxlanId != 42 || vx.Port != 4789 || vx.Learning || !vx.Proxy || vx.MTU != 1450 || vx.MasterIndex != br.Attrs().Index || vx.Flags&net.FlagUp == 0 || vx.Alias != v.Alias {
			t.Fatalf("call %d: %+v", i, vx)
		}
	}
	other := v
	other.VNI = 43
	if _, _, err := h.EnsureVxlan(other); !errors.Is(err, nl.ErrLinkConflict) {
		t.Fatalf("other VNI under the same name: %v, want ErrLinkConflict", err)
	}
	other = v
	other.Alias = "weft:other"
	if _, _, err := h.EnsureVxlan(other); !errors.Is(err, nl.ErrLinkConflict) {
		t.Fatalf("other owner: %v, want ErrLinkConflict", err)
	}
	clash := v
	clash.Name = "vxt1"
	if _, _, err := h.EnsureVxlan(clash); !errors.Is(err, syscall.EEXIST) {
		t.Fatalf("same VNI and port: %v, want EEXIST", err)
	}
	if _, err := h.LinkByName("vxt1"); !errors.Is(err, nl.ErrLinkNotFound) {
		t.Fatalf("refused link left behind: %v", err)
	}

	// Neighbour and FDB entries: set twice, listed, deleted twice.
	l, _ := h.LinkByName("vxt0")
	mac := net.HardwareAddr{0x02, 0x42, 10, 0, 0, 2}
	entries := []*netlink.Neigh{
		{LinkIndex: l.Attrs().Index, Family: netlink.FAMILY_V4, State: netlink.NUD_PERMANENT, IP: net.ParseIP("10.0.0.2"), HardwareAddr: mac},
		{LinkIndex: l.Attrs().Index, Family: syscall.AF_BRIDGE, State: netlink.NUD_PERMANENT, Flags: netlink.NTF_SELF, IP: net.ParseIP("192.0.2.2"), HardwareAddr: mac},
	}
	for range 2 {
		for _, e := range entries {
			if err := h.NeighSet(e); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, fam := range []int{netlink.FAMILY_V4, syscall.AF_BRIDGE} {
		ns, err := h.NeighList(l.Attrs().Index, fam)
		if err != nil || len(ns) == 0 {
			t.Fatalf("NeighList(%d) = %v, %v", fam, ns, err)
		}
	}
	for range 2 {
		for _, e := range entries {
			if err := h.NeighDel(e); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := h.SetLearning(l, false); err != nil {
		t.Fatal(err)
	}
}
