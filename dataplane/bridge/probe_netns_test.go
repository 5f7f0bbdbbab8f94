package bridge

import (
	"net"
	"net/netip"
	"testing"

	"github.com/weftnet/weft/dataplane"
	"github.com/weftnet/weft/test/nstest"
)

func TestNetnsEndpointState(t *testing.T) {
	e := newEnv(t)
	n := netSpec(idA, 1)
	e.mustCreate(n)
	base := e.snapshot()
	ep := dataplane.Endpoint{ID: ep1, NetworkID: n.ID, IPv4: netip.MustParsePrefix("10.1.0.5/24"), MAC: net.HardwareAddr{2, 0x42, 10, 1, 0, 5}}
	if st, err := e.m.EndpointState(e.ctx, n, ep); err != nil || st != dataplane.EndpointGone {
		t.Fatalf("before CreateEndpoint: state=%v err=%v, want gone", st, err)
	}
	if err := e.m.CreateEndpoint(e.ctx, n, ep); err != nil {
		t.Fatal(err)
	}
	if st, err := e.m.EndpointState(e.ctx, n, ep); err != nil || st != dataplane.EndpointDetached {
		t.Fatalf("after CreateEndpoint, before the move: state=%v err=%v, want detached", st, err)
	}
	if err := e.m.DeleteEndpoint(e.ctx, n, ep); err != nil {
		t.Fatal(err)
	}
	c := e.attach(n, ep1, "10.1.0.5/24")
	if st, err := e.m.EndpointState(e.ctx, n, ep); err != nil || st != dataplane.EndpointInUse {
		t.Fatalf("container end moved into its namespace: state=%v err=%v, want in use", st, err)
	}
	// Docker moves the container end back out when the container leaves
	// (weft hears nothing of it if it is down then).
	ch := nstest.Netlink(t, c.ns)
	l, err := ch.LinkByName(c.name)
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.LinkSetNsFd(l, int(e.ns)); err != nil {
		t.Fatal(err)
	}
	if st, err := e.m.EndpointState(e.ctx, n, ep); err != nil || st != dataplane.EndpointDetached {
		t.Fatalf("container end moved back to the host: state=%v err=%v, want detached", st, err)
	}
	if l, err = e.raw.LinkByName(c.name); err != nil {
		t.Fatal(err)
	}
	if err := e.raw.LinkSetNsFd(l, int(c.ns)); err != nil {
		t.Fatal(err)
	}
	// The container's namespace going away deletes the pair; deleting the
	// container end inside it has the same effect on the host end.
	if l, err = ch.LinkByName(c.name); err != nil {
		t.Fatal(err)
	}
	if err := ch.LinkDel(l); err != nil {
		t.Fatal(err)
	}
	if st, err := e.m.EndpointState(e.ctx, n, ep); err != nil || st != dataplane.EndpointGone {
		t.Fatalf("after the container's end is gone: state=%v err=%v, want gone", st, err)
	}
	e.assertSame(base, "after the container's end is gone")
}
