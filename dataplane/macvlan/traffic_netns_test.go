package macvlan

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/weftnet/weft/dataplane"
	"github.com/weftnet/weft/test/nstest"
)

// Real packets. The test namespace plays the Docker host; its NIC "eth0" is
// wired to a LAN: a switch namespace holding bridge "lan". On the LAN sit a
// router (192.0.2.1, the macvlan network's --gateway, routing to an "outside"
// network 198.51.100.0/24 without NAT) and the host itself (192.0.2.2 on
// eth0). Containers are namespaces holding endpoint links, configured the way
// dockerd would configure them.

// lan is the switch namespace and its bridge.
type lan struct {
	e     *env
	sw    netns.NsHandle
	swh   *netlink.Handle
	br    netlink.Link
	ports int
}

// newLAN builds the switch and wires the host's eth0 to it (port "swp0").
func (e *env) newLAN() *lan {
	e.t.Helper()
	l := &lan{e: e, sw: nstest.NewNS(e.t)}
	l.swh = nstest.Netlink(e.t, l.sw)
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "lan", TxQLen: -1}}
	if err := l.swh.LinkAdd(br); err != nil {
		e.t.Fatal(err)
	}
	l.br = br
	l.up(l.swh, "lan")
	la := netlink.NewLinkAttrs()
	la.Name = "eth0"
	if err := e.raw.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: "swp0"}); err != nil {
		e.t.Fatal(err)
	}
	if err := e.raw.LinkSetNsFd(e.link("swp0"), int(l.sw)); err != nil {
		e.t.Fatal(err)
	}
	l.attach("swp0")
	l.up(e.raw, "eth0")
	l.ports = 1
	return l
}

func (l *lan) up(h *netlink.Handle, name string) {
	l.e.t.Helper()
	link, err := h.LinkByName(name)
	if err != nil {
		l.e.t.Fatal(err)
	}
	if err := h.LinkSetUp(link); err != nil {
		l.e.t.Fatal(err)
	}
}

// attach makes the switch's link port a port of the bridge, up.
func (l *lan) attach(port string) {
	l.e.t.Helper()
	p, err := l.swh.LinkByName(port)
	if err != nil {
		l.e.t.Fatal(err)
	}
	if err := l.swh.LinkSetMaster(p, l.br); err != nil {
		l.e.t.Fatal(err)
	}
	l.up(l.swh, port)
}

// machine adds a namespace on the LAN with interface "lan0" at cidr and a
// default route via gw (if valid).
func (l *lan) machine(name, cidr string, gw netip.Addr) ctr {
	l.e.t.Helper()
	ns := nstest.NewNS(l.e.t)
	port := fmt.Sprintf("swp%d", l.ports)
	l.ports++
	la := netlink.NewLinkAttrs()
	la.Name = port
	if err := l.swh.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: "lan0"}); err != nil {
		l.e.t.Fatal(err)
	}
	peer, err := l.swh.LinkByName("lan0")
	if err != nil {
		l.e.t.Fatal(err)
	}
	if err := l.swh.LinkSetNsFd(peer, int(ns)); err != nil {
		l.e.t.Fatal(err)
	}
	l.attach(port)
	p := netip.MustParsePrefix(cidr)
	configure(l.e.t, ns, "lan0", p, gw)
	return ctr{name: name, ns: ns, addr: p.Addr()}
}

// router adds the LAN's router at 192.0.2.1 and, behind it, a machine at
// 198.51.100.2. The router forwards without NAT.
func (l *lan) router() (router, outside ctr) {
	l.e.t.Helper()
	router = l.machine("router", "192.0.2.1/24", netip.Addr{})
	mustSysctl(l.e.t, router.ns, "net/ipv4/ip_forward", "1")
	rh := nstest.Netlink(l.e.t, router.ns)
	la := netlink.NewLinkAttrs()
	la.Name = "out0"
	if err := rh.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: "ext0"}); err != nil {
		l.e.t.Fatal(err)
	}
	ext, err := rh.LinkByName("ext0")
	if err != nil {
		l.e.t.Fatal(err)
	}
	outside = ctr{name: "outside", ns: nstest.NewNS(l.e.t), addr: netip.MustParseAddr("198.51.100.2")}
	if err := rh.LinkSetNsFd(ext, int(outside.ns)); err != nil {
		l.e.t.Fatal(err)
	}
	configure(l.e.t, router.ns, "out0", netip.MustParsePrefix("198.51.100.1/24"), netip.Addr{})
	configure(l.e.t, outside.ns, "ext0", netip.MustParsePrefix("198.51.100.2/24"), netip.MustParseAddr("198.51.100.1"))
	return router, outside
}

// host gives the test namespace's eth0 the host's LAN address 192.0.2.2.
func (l *lan) host() ctr {
	l.e.t.Helper()
	if err := l.e.raw.AddrAdd(l.e.link("eth0"), &netlink.Addr{IPNet: ipNet(netip.MustParsePrefix("192.0.2.2/24"))}); err != nil {
		l.e.t.Fatal(err)
	}
	return ctr{name: "host", ns: l.e.ns, addr: netip.MustParseAddr("192.0.2.2")}
}

// TestNetnsTrafficBridgeMode: containers on a bridge-mode network reach each
// other, an existing server on the LAN (both ways) and, through the LAN's
// router, the outside with their own addresses. They do not reach their own
// host through the parent (the macvlan limit doc.go documents) until the
// host has the documented shim.
func TestNetnsTrafficBridgeMode(t *testing.T) {
	e := newEnv(t)
	l := e.newLAN()
	host := l.host()
	router, outside := l.router()
	n := testNet(idA, "eth0", 2)
	e.mustCreate(n)
	c1 := e.attach(n, ep1, "192.0.2.10/24")
	c2 := e.attach(n, ep2, "192.0.2.11/24")

	c1Peers, c2Peers := serve(t, c1, 80), serve(t, c2, 80)
	routerPeers, outPeers, hostPeers := serve(t, router, 80), serve(t, outside, 80), serve(t, host, 80)

	mustReach(t, c1, c2, c2Peers, "192.0.2.10")
	mustReach(t, c2, c1, c1Peers, "192.0.2.11")
	mustReach(t, c1, router, routerPeers, "192.0.2.10")
	mustReach(t, router, c1, c1Peers, "192.0.2.1")
	// The gateway from Join is the LAN's router; no NAT anywhere.
	mustReach(t, c2, outside, outPeers, "192.0.2.11")
	mustReach(t, outside, c2, c2Peers, "198.51.100.2")

	// The macvlan limit: no path between the containers and their host.
	mustNotReach(t, c1, host)
	mustNotReach(t, host, c1)
	select {
	case p := <-hostPeers:
		t.Fatalf("the host accepted a connection from %s", p)
	default:
	}

	// The workaround doc.go documents: a host-side macvlan shim on the
	// same parent, with a free LAN address and a route to the containers.
	la := netlink.NewLinkAttrs()
	la.Name, la.ParentIndex = "weft-shim", e.link("eth0").Attrs().Index
	if err := e.raw.LinkAdd(&netlink.Macvlan{LinkAttrs: la, Mode: netlink.MACVLAN_MODE_BRIDGE}); err != nil {
		t.Fatal(err)
	}
	shim := e.link("weft-shim")
	if err := e.raw.AddrAdd(shim, &netlink.Addr{IPNet: ipNet(netip.MustParsePrefix("192.0.2.250/32"))}); err != nil {
		t.Fatal(err)
	}
	if err := e.raw.LinkSetUp(shim); err != nil {
		t.Fatal(err)
	}
	if err := e.raw.RouteAdd(&netlink.Route{LinkIndex: shim.Attrs().Index, Dst: ipNet(netip.MustParsePrefix("192.0.2.8/29")), Scope: netlink.SCOPE_LINK}); err != nil {
		t.Fatal(err)
	}
	hostShim := ctr{name: "host (shim)", ns: e.ns, addr: netip.MustParseAddr("192.0.2.250")}
	shimPeers := serve(t, hostShim, 80)
	mustReach(t, c1, hostShim, shimPeers, "192.0.2.10")
	mustReach(t, host, c1, c1Peers, "192.0.2.250")
}

// TestNetnsTrafficPrivateAndVEPA: private-mode containers never reach each
// other; VEPA containers reach each other only through a switch that sends
// frames back out of the port they came in on (hairpin). Both reach the LAN.
func TestNetnsTrafficPrivateAndVEPA(t *testing.T) {
	for _, mode := range []string{ModePrivate, ModeVEPA} {
		t.Run(mode, func(t *testing.T) {
			e := newEnv(t)
			l := e.newLAN()
			router, _ := l.router()
			n := testNet(idA, "eth0", 2, withMode(mode))
			e.mustCreate(n)
			c1 := e.attach(n, ep1, "192.0.2.10/24")
			c2 := e.attach(n, ep2, "192.0.2.11/24")
			c2Peers, routerPeers := serve(t, c2, 80), serve(t, router, 80)

			mustReach(t, c1, router, routerPeers, "192.0.2.10")
			mustNotReach(t, c1, c2)
			port, err := l.swh.LinkByName("swp0")
			if err != nil {
				t.Fatal(err)
			}
			if err := l.swh.LinkSetHairpin(port, true); err != nil {
				t.Fatal(err)
			}
			if mode == ModePrivate {
				mustNotReach(t, c1, c2)
				return
			}
			mustReach(t, c1, c2, c2Peers, "192.0.2.10")
		})
	}
}

// TestNetnsTrafficIsolated: containers of an isolated network reach each
// other and nothing else, not even a container on the LAN with an address in
// the same subnet.
func TestNetnsTrafficIsolated(t *testing.T) {
	e := newEnv(t)
	l := e.newLAN()
	router, _ := l.router()
	onLAN := testNet(idA, "eth0", 2)
	iso := testNet(idB, "", 2, func(n *dataplane.Network) { n.IPv4[0].Gateway = netip.Addr{} })
	e.mustCreate(onLAN)
	e.mustCreate(iso)
	lanCtr := e.attach(onLAN, ep1, "192.0.2.10/24")
	i1 := e.attach(iso, ep2, "192.0.2.20/24")
	i2 := e.attach(iso, ep3, "192.0.2.21/24")
	i2Peers := serve(t, i2, 80)
	serve(t, router, 80)
	serve(t, lanCtr, 80)

	mustReach(t, i1, i2, i2Peers, "192.0.2.20")
	mustNotReach(t, i1, router)
	mustNotReach(t, i1, lanCtr)
	mustNotReach(t, lanCtr, i1)
}
