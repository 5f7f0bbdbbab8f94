package bridge

import (
	"net"
	"net/netip"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/weftnet/weft/dataplane"
	"github.com/weftnet/weft/test/nstest"
)

// Real packets between namespaces. The test namespace plays the Docker host
// (FORWARD policy DROP, br_netfilter on); "containers" are further namespaces
// holding the container ends, configured the way dockerd would.

func TestNetnsTrafficICC(t *testing.T) {
	for _, o := range firewalls {
		for _, icc := range []bool{true, false} {
			name := "icc-on"
			if !icc {
				name = "icc-off"
			}
			t.Run(o.String()+"/"+name, func(t *testing.T) { testTrafficICC(t, o, icc) })
		}
	}
}

func testTrafficICC(t *testing.T, o envOpts, icc bool) {
	{
		{
			e := newEnvWith(t, o)
			n := netSpec(idA, 1, func(n *dataplane.Network) { n.Bridge.EnableICC = icc })
			e.mustCreate(n)
			c1 := e.attach(n, ep1, "10.1.0.2/24")
			c2 := e.attach(n, ep2, "10.1.0.3/24")
			peers := serve(t, c2, 80)
			if icc {
				mustReach(t, c1, c2, peers, c1.addr.String())
				return
			}
			mustNotReach(t, c1, c2)
			e.bypassWeft()
			mustReach(t, c1, c2, peers, c1.addr.String())
		}
	}
}

// TestNetnsTrafficEgressInternalIsolation builds one host with an "outside"
// machine on an uplink, three weft networks (two normal, one internal) and a
// Docker-style docker0 bridge whose permissive rules come after weft's jump,
// as dockerd's do.
func TestNetnsTrafficEgressInternalIsolation(t *testing.T) {
	for _, o := range firewalls {
		t.Run(o.String(), func(t *testing.T) { testTrafficEgressInternalIsolation(t, o) })
	}
}

func testTrafficEgressInternalIsolation(t *testing.T, o envOpts) {
	e := newEnvWith(t, o)
	writeSysctl(t, "net/ipv4/ip_forward", "1")

	// The outside world: 198.51.100.2 behind uplink0 (198.51.100.1).
	la := netlink.NewLinkAttrs()
	la.Name = "uplink0"
	if err := e.raw.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: "outside0"}); err != nil {
		t.Fatal(err)
	}
	up, _ := e.raw.LinkByName("uplink0")
	if err := e.raw.AddrAdd(up, &netlink.Addr{IPNet: ipNet("198.51.100.1/24")}); err != nil {
		t.Fatal(err)
	}
	if err := e.raw.LinkSetUp(up); err != nil {
		t.Fatal(err)
	}
	outside := e.container("outside0", netip.MustParsePrefix("198.51.100.2/24"), netip.Addr{})
	// The outside knows its way back to Docker's subnet only (weft
	// networks are masqueraded, so it never needs theirs), plus, to prove
	// that inbound is blocked by the firewall rather than by routing, to
	// weft's.
	oh := nstest.Netlink(t, outside.ns)
	for _, dst := range []string{"172.17.0.0/16", "10.1.0.0/24", "10.2.0.0/24"} {
		if err := oh.RouteAdd(&netlink.Route{Dst: ipNet(dst), Gw: net.ParseIP("198.51.100.1")}); err != nil {
			t.Fatal(err)
		}
	}

	// docker0 with one container, and dockerd-like accept rules after weft.
	docker0 := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "docker0", TxQLen: -1}}
	if err := e.raw.LinkAdd(docker0); err != nil {
		t.Fatal(err)
	}
	if err := e.raw.AddrAdd(docker0, &netlink.Addr{IPNet: ipNet("172.17.0.1/16")}); err != nil {
		t.Fatal(err)
	}
	if err := e.raw.LinkSetUp(docker0); err != nil {
		t.Fatal(err)
	}
	la = netlink.NewLinkAttrs()
	la.Name, la.MasterIndex = "vethd0", docker0.Attrs().Index
	if err := e.raw.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: "dockerc0"}); err != nil {
		t.Fatal(err)
	}
	vd, _ := e.raw.LinkByName("vethd0")
	if err := e.raw.LinkSetMaster(vd, docker0); err != nil {
		t.Fatal(err)
	}
	if err := e.raw.LinkSetUp(vd); err != nil {
		t.Fatal(err)
	}
	dockerCtr := e.container("dockerc0", netip.MustParsePrefix("172.17.0.2/16"), netip.MustParseAddr("172.17.0.1"))

	n1 := netSpec(idA, 1)
	n2 := netSpec(idB, 2, func(n *dataplane.Network) { n.Internal = true })
	n3 := netSpec(idC, 3)
	for _, n := range []dataplane.Network{n1, n2, n3} {
		e.mustCreate(n)
	}
	for _, rule := range [][]string{
		{"-A", "FORWARD", "-o", "docker0", "-j", "ACCEPT"},
		{"-A", "FORWARD", "-i", "docker0", "-j", "ACCEPT"},
	} {
		nstest.Run(t, e.ipt, rule...)
	}

	c1 := e.attach(n1, ep1, "10.1.0.2/24")
	// An internal network's Join gives no gateway; the container tries the
	// bridge address anyway.
	c2 := e.attach(n2, ep2, "10.2.0.2/24", "10.2.0.1")
	c2b := e.attach(n2, ep4, "10.2.0.3/24", "10.2.0.1")
	c3 := e.attach(n3, ep3, "10.3.0.2/24")

	outPeers := serve(t, outside, 80)
	c1Peers := serve(t, c1, 80)
	c2Peers := serve(t, c2, 80)
	serve(t, c3, 80)
	serve(t, dockerCtr, 80)

	t.Run("egress is masqueraded", func(t *testing.T) {
		mustReach(t, c1, outside, outPeers, "198.51.100.1")
	})
	t.Run("docker0 works (test setup sanity)", func(t *testing.T) {
		mustReach(t, dockerCtr, outside, outPeers, "172.17.0.2")
	})
	t.Run("internal network has no egress", func(t *testing.T) {
		mustNotReach(t, c2, outside)
	})
	t.Run("internal network accepts nothing from outside", func(t *testing.T) {
		mustNotReach(t, outside, c2)
	})
	t.Run("internal network keeps ICC", func(t *testing.T) {
		mustReach(t, c2b, c2, c2Peers, c2b.addr.String())
	})
	t.Run("no new inbound connections", func(t *testing.T) {
		mustNotReach(t, outside, c1)
	})
	t.Run("weft networks are isolated", func(t *testing.T) {
		mustNotReach(t, c1, c3)
		mustNotReach(t, c3, c1)
		mustNotReach(t, c1, c2)
		mustNotReach(t, c2, c1)
	})
	t.Run("weft and docker0 are isolated", func(t *testing.T) {
		mustNotReach(t, c1, dockerCtr)
		mustNotReach(t, dockerCtr, c1)
	})
	// Sanity: c1 still reaches the outside after all that.
	mustReach(t, c1, outside, outPeers, "198.51.100.1")
	select {
	case p := <-c1Peers:
		t.Fatalf("c1 accepted a connection from %s", p)
	default:
	}

	// Control: with weft's rules out of the way, every blocked path works,
	// so it was weft's firewall that blocked them, not the test's routing.
	e.bypassWeft()
	c3Peers := serve(t, c3, 81)
	dockerPeers := serve(t, dockerCtr, 81)
	c2Peers81 := serve(t, c2, 81)
	outPeers81 := serve(t, outside, 81)
	c1Peers81 := serve(t, c1, 81)
	for _, p := range []struct {
		from, to ctr
		peers    <-chan string
	}{
		{c1, c3, c3Peers}, {c1, dockerCtr, dockerPeers}, {dockerCtr, c1, c1Peers81},
		{c1, c2, c2Peers81}, {c2, outside, outPeers81}, {outside, c1, c1Peers81},
	} {
		mustReachPort(t, p.from, p.to, 81, p.peers)
	}
}

// bypassWeft takes weft's chains out of FORWARD and accepts everything.
func (e *env) bypassWeft() {
	e.t.Helper()
	nstest.Run(e.t, e.ipt, "-D", "FORWARD", "-j", ChainForward)
	nstest.Run(e.t, e.ipt, "-P", "FORWARD", "ACCEPT")
}

func mustReachPort(t *testing.T, from, to ctr, port int, peers <-chan string) {
	t.Helper()
	if err := connect(from, to, port, okTimeout); err != nil {
		t.Fatalf("control %s → %s:%d: %v", from.name, to.name, port, err)
	}
	<-peers
}

func ipNet(cidr string) *net.IPNet {
	p := netip.MustParsePrefix(cidr)
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}
