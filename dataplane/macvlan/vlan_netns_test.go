package macvlan

import (
	"errors"
	"net"
	"syscall"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/weftnet/weft/dataplane"
	"github.com/weftnet/weft/dataplane/nl"
	"github.com/weftnet/weft/test/nstest"
)

// vlanSupport reports whether the kernel of e's namespace can make 802.1Q
// sub-interfaces, by making (and deleting) one on a scratch veth.
func (e *env) vlanSupport() error {
	e.t.Helper()
	la := netlink.NewLinkAttrs()
	la.Name = "vprobe0"
	if err := e.raw.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: "vprobe1"}); err != nil {
		e.t.Fatal(err)
	}
	defer func() {
		if err := e.nl.DeleteLinkByName("vprobe0"); err != nil {
			e.t.Error(err)
		}
	}()
	vla := netlink.NewLinkAttrs()
	vla.Name, vla.ParentIndex = "vprobe0.9", e.link("vprobe0").Attrs().Index
	return e.raw.LinkAdd(&netlink.Vlan{LinkAttrs: vla, VlanId: 9})
}

// TestNetnsVLANParent: parent=eth0.100 makes the sub-interface, shares it
// between networks and deletes it with the last; one weft did not make is
// never deleted. On a kernel without 802.1Q, the product's error is checked
// and the rest is skipped.
func TestNetnsVLANParent(t *testing.T) {
	e := newEnv(t)
	e.parent("eth0", 1500)
	base := e.snapshot()
	support := e.vlanSupport()
	if support != nil {
		if !errors.Is(support, syscall.EOPNOTSUPP) {
			t.Fatalf("probing 802.1Q support: unexpected error %v", support)
		}
		err := e.m.CreateNetwork(e.ctx, testNet(idA, "eth0.100", 2))
		mustFail(t, "a VLAN parent without 802.1Q support", err,
			`"eth0.100"`, "no 802.1Q VLAN support", "use an existing VLAN interface as parent")
		if !errors.Is(err, ErrVLANUnsupported) || !errors.Is(err, nl.ErrLinkKindUnsupported) {
			t.Errorf("error %v does not wrap ErrVLANUnsupported and nl.ErrLinkKindUnsupported", err)
		}
		e.assertSame(base, "the refused network left")
	}
	nstest.RequireKernelFeature(t, "802.1Q VLAN", func() error { return support })

	a := testNet(idA, "eth0.100", 2)
	b := testNet(idB, "eth0.100", 3)
	for range 2 {
		e.mustCreate(a)
	}
	l := e.link("eth0.100")
	v, ok := l.(*netlink.Vlan)
	if !ok || v.VlanId != 100 || v.ParentIndex != e.link("eth0").Attrs().Index || v.Alias != VLANAlias || v.Flags&net.FlagUp == 0 {
		t.Fatalf("sub-interface: %s %+v", l.Type(), l.Attrs())
	}
	e.mustCreate(b)
	ep := endpoint(a, ep1, "192.0.2.10/24")
	if err := e.m.CreateEndpoint(e.ctx, a, ep); err != nil {
		t.Fatal(err)
	}
	if e.link(EndpointLinkName(ep1)).Attrs().ParentIndex != l.Attrs().Index {
		t.Fatal("the endpoint is not on the sub-interface")
	}
	if err := e.m.DeleteEndpoint(e.ctx, a, ep); err != nil {
		t.Fatal(err)
	}
	e.mustDelete(a)
	e.link("eth0.100") // b still uses it
	// Reconcile re-creates it for b when it is gone.
	if err := e.nl.DeleteLinkByName("eth0.100"); err != nil {
		t.Fatal(err)
	}
	if err := e.m.Reconcile(e.ctx, []dataplane.Network{b}, nil); err != nil {
		t.Fatal(err)
	}
	e.link("eth0.100")
	e.mustDelete(b)
	e.gone("eth0.100")
	e.assertSame(base, "after delete")

	// The user's own VLAN interface: used, never deleted, not even by
	// Reconcile; another with the same VLAN ID is refused, naming it.
	vla := netlink.NewLinkAttrs()
	vla.Name, vla.ParentIndex = "vlan200", e.link("eth0").Attrs().Index
	if err := e.raw.LinkAdd(&netlink.Vlan{LinkAttrs: vla, VlanId: 200}); err != nil {
		t.Fatal(err)
	}
	withUser := e.snapshot()
	mustFail(t, "a second sub-interface for VLAN 200", e.m.CreateNetwork(e.ctx, testNet(idA, "eth0.200", 2)), `"vlan200"`, "parent=vlan200")
	u := testNet(idA, "vlan200", 2)
	e.mustCreate(u)
	if err := e.m.Reconcile(e.ctx, nil, nil); err != nil {
		t.Fatal(err)
	}
	e.mustDelete(u)
	e.assertSame(withUser, "the user's VLAN interface was touched")
}
