package nl_test

import (
	"errors"
	"net"
	"syscall"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/weftnet/weft/dataplane/nl"
	"github.com/weftnet/weft/test/nstest"
)

// veth makes a veth pair name/name+"p" in h's namespace, both up, and returns
// name.
func veth(t *testing.T, h *nl.Handle, name string) netlink.Link {
	t.Helper()
	if _, err := h.EnsureVethPair(nl.VethPair{Name: name, PeerName: name + "p", Alias: "test"}); err != nil {
		t.Fatal(err)
	}
	l, err := h.LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestEnsureMacvlan(t *testing.T) {
	h := handle(t)
	parent := veth(t, h, "par0")
	other := veth(t, h, "par1")
	mac := net.HardwareAddr{0x02, 0x42, 0xc0, 0, 2, 10}
	m := nl.Macvlan{Name: "mvtest0", ParentIndex: parent.Attrs().Index, Mode: netlink.MACVLAN_MODE_BRIDGE, MTU: 1400, MAC: mac, Alias: "weft:test"}
	for i, wantCreated := range []bool{true, false} {
		created, err := h.EnsureMacvlan(m)
		if err != nil {
			t.Fatal(err)
		}
		if created != wantCreated {
			t.Fatalf("call %d: created = %v", i, created)
		}
		l, err := h.LinkByName("mvtest0")
		if err != nil {
			t.Fatal(err)
		}
		a := l.Attrs()
		if mv, ok := l.(*netlink.Macvlan); !ok || mv.Mode != m.Mode || a.MTU != 1400 || a.Alias != m.Alias ||
			a.HardwareAddr.String() != mac.String() || a.ParentIndex != m.ParentIndex || a.Flags&net.FlagUp != 0 {
			t.Fatalf("macvlan = %s %+v", l.Type(), a)
		}
	}
	// Corrected: MTU and MAC.
	m.MTU, m.MAC = 1300, net.HardwareAddr{0x02, 0x42, 0xc0, 0, 2, 11}
	if _, err := h.EnsureMacvlan(m); err != nil {
		t.Fatal(err)
	}
	if l, _ := h.LinkByName("mvtest0"); l.Attrs().MTU != 1300 || l.Attrs().HardwareAddr.String() != m.MAC.String() {
		t.Fatalf("not corrected: %+v", l.Attrs())
	}
	// Not corrected, refused: another owner, parent or mode.
	for _, bad := range []nl.Macvlan{
		{Name: m.Name, ParentIndex: m.ParentIndex, Mode: m.Mode, Alias: "weft:other"},
		{Name: m.Name, ParentIndex: other.Attrs().Index, Mode: m.Mode, Alias: m.Alias},
		{Name: m.Name, ParentIndex: m.ParentIndex, Mode: netlink.MACVLAN_MODE_PRIVATE, Alias: m.Alias},
		{Name: "par1", ParentIndex: m.ParentIndex, Mode: m.Mode, Alias: "test"},
	} {
		if _, err := h.EnsureMacvlan(bad); !errors.Is(err, nl.ErrLinkConflict) {
			t.Errorf("EnsureMacvlan(%+v) = %v, want ErrLinkConflict", bad, err)
		}
	}
	// A refusal of the kernel is classifiable: an MTU above the parent's.
	_, err := h.EnsureMacvlan(nl.Macvlan{Name: "mvtest1", ParentIndex: parent.Attrs().Index, Mode: m.Mode, MTU: 9000, Alias: "x"})
	if !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("MTU above the parent's: %v, want EINVAL", err)
	}
	if _, err := h.LinkByName("mvtest1"); !errors.Is(err, nl.ErrLinkNotFound) {
		t.Fatalf("refused macvlan left behind: %v", err)
	}
}

func TestEnsureVlan(t *testing.T) {
	h := handle(t)
	parent := veth(t, h, "par0")
	v := nl.Vlan{Name: "par0.100", ParentIndex: parent.Attrs().Index, ID: 100, Alias: "weft:vlan"}
	_, created, err := h.EnsureVlan(v)
	if err != nil {
		var uk *nl.UnsupportedKindError
		if !errors.Is(err, nl.ErrLinkKindUnsupported) || !errors.As(err, &uk) || uk.Kind != "vlan" || !errors.Is(err, syscall.EOPNOTSUPP) {
			t.Fatalf("EnsureVlan = %v, want success or ErrLinkKindUnsupported for kind vlan", err)
		}
		if _, lerr := h.LinkByName(v.Name); !errors.Is(lerr, nl.ErrLinkNotFound) {
			t.Fatalf("refused VLAN interface left behind: %v", lerr)
		}
	}
	nstest.RequireKernelFeature(t, "802.1Q VLAN", func() error { return err })
	if !created {
		t.Fatal("created = false on the first call")
	}
	l, created, err := h.EnsureVlan(v)
	if err != nil || created {
		t.Fatalf("second call: created %v, %v", created, err)
	}
	if vl, ok := l.(*netlink.Vlan); !ok || vl.VlanId != 100 || vl.Alias != v.Alias || vl.Flags&net.FlagUp == 0 {
		t.Fatalf("VLAN interface = %s %+v", l.Type(), l.Attrs())
	}
	if _, _, err := h.EnsureVlan(nl.Vlan{Name: v.Name, ParentIndex: v.ParentIndex, ID: 200, Alias: v.Alias}); !errors.Is(err, nl.ErrLinkConflict) {
		t.Fatalf("another VLAN ID under the same name: %v, want ErrLinkConflict", err)
	}
}
