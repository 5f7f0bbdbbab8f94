package bridge

import (
	"net"
	"net/netip"
	"testing"

	"github.com/weftnet/weft/dataplane"
	"github.com/weftnet/weft/test/nstest"
)

func TestNetnsEndpointExists(t *testing.T) {
	e := newEnv(t)
	n := netSpec(idA, 1)
	e.mustCreate(n)
	ep := dataplane.Endpoint{ID: ep1, NetworkID: n.ID, IPv4: netip.MustParsePrefix("10.1.0.5/24"), MAC: net.HardwareAddr{2, 0x42, 10, 1, 0, 5}}
	if ok, err := e.m.EndpointExists(e.ctx, n, ep); err != nil || ok {
		t.Fatalf("before CreateEndpoint: exists=%v err=%v", ok, err)
	}
	c := e.attach(n, ep1, "10.1.0.5/24")
	if ok, err := e.m.EndpointExists(e.ctx, n, ep); err != nil || !ok {
		t.Fatalf("container end moved into its namespace: exists=%v err=%v", ok, err)
	}
	// The container's namespace going away deletes the pair; deleting the
	// container end inside it has the same effect on the host end.
	ch := nstest.Netlink(t, c.ns)
	l, err := ch.LinkByName(c.name)
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.LinkDel(l); err != nil {
		t.Fatal(err)
	}
	if ok, err := e.m.EndpointExists(e.ctx, n, ep); err != nil || ok {
		t.Fatalf("after the container's end is gone: exists=%v err=%v", ok, err)
	}
}
