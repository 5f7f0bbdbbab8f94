//go:build e2e

package e2e

import (
	"strings"
	"testing"
)

// Scenario 1: two containers on one weft network reach each other by address
// and by name; the network's bridge is weft's, named and tagged as promised.
func TestSameNetworkPing(t *testing.T) {
	h := sharedHost(t)
	id := h.CreateNetwork(t, "s1-net")
	h.Run(t, "s1-a", "--network", "s1-net")
	h.Run(t, "s1-b", "--network", "s1-net")

	subnet, gw := h.NetworkSubnet(t, "s1-net")
	a, b := h.ContainerIP(t, "s1-a", "s1-net"), h.ContainerIP(t, "s1-b", "s1-net")
	for _, ip := range []struct {
		name string
		addr string
		ok   bool
	}{{"s1-a", a.String(), subnet.Contains(a)}, {"s1-b", b.String(), subnet.Contains(b)}} {
		if !ip.ok {
			t.Errorf("%s got %s, outside the network's subnet %s", ip.name, ip.addr, subnet)
		}
	}
	if a == b || a == gw || b == gw {
		t.Errorf("addresses collide: s1-a %s, s1-b %s, gateway %s", a, b, gw)
	}

	br := "weft-" + id[:10]
	l, ok := h.Link(t, br)
	switch {
	case !ok:
		t.Errorf("no bridge %s for network %s", br, id)
	case l.Alias != "weft:"+id:
		t.Errorf("bridge %s has alias %q, want %q", br, l.Alias, "weft:"+id)
	case l.LinkInfo.Kind != "bridge":
		t.Errorf("%s is a %q link, want a bridge", br, l.LinkInfo.Kind)
	}

	h.AssertPing(t, "s1-a", b.String())
	h.AssertPing(t, "s1-b", a.String())
	h.AssertPing(t, "s1-a", "s1-b")
	h.AssertPing(t, "s1-b", "s1-a")
}

// Scenario 1 with Docker's own IPAM: -d weft works without --ipam-driver.
func TestSameNetworkPingDefaultIPAM(t *testing.T) {
	h := sharedHost(t)
	h.CreateNetworkRaw(t, "s1d-net", "-d", h.Driver(), "--subnet", "10.97.0.0/24")
	h.Run(t, "s1d-a", "--network", "s1d-net")
	h.Run(t, "s1d-b", "--network", "s1d-net")
	h.AssertPing(t, "s1d-a", h.ContainerIP(t, "s1d-b", "s1d-net").String())
	h.AssertPing(t, "s1d-b", "s1d-a")
}

// Scenario 2: containers on two weft networks cannot reach each other, nor a
// container on Docker's own bridge networks (the default one, docker0, and a
// user-defined one, br-…), in either direction.
func TestNetworksIsolated(t *testing.T) {
	h := sharedHost(t)
	h.CreateNetwork(t, "s2-net1")
	h.CreateNetwork(t, "s2-net2")
	h.Run(t, "s2-a", "--network", "s2-net1")
	h.Run(t, "s2-b", "--network", "s2-net2")
	h.Run(t, "s2-d", "--network", "bridge")
	h.CreateNetworkRaw(t, "s2-dbr", "-d", "bridge")
	h.Run(t, "s2-e", "--network", "s2-dbr")
	a := h.ContainerIP(t, "s2-a", "s2-net1").String()
	b := h.ContainerIP(t, "s2-b", "s2-net2").String()
	d := h.ContainerIP(t, "s2-d", "bridge").String()
	e := h.ContainerIP(t, "s2-e", "s2-dbr").String()
	_, gw1 := h.NetworkSubnet(t, "s2-net1")
	_, gw2 := h.NetworkSubnet(t, "s2-net2")

	// Positive controls: each container is up and has a way off its network,
	// so a failed ping below is the isolation, not a broken container.
	h.AssertPing(t, "s2-a", gw1.String())
	h.AssertPing(t, "s2-b", gw2.String())
	h.AssertPing(t, "s2-a", h.Outside.Addr)
	h.AssertPing(t, "s2-d", h.Outside.Addr)

	h.AssertNoPings(t,
		[2]string{"s2-a", b}, [2]string{"s2-b", a},
		[2]string{"s2-a", d}, [2]string{"s2-d", a},
		[2]string{"s2-b", d}, [2]string{"s2-d", b},
		// A user-defined Docker bridge network (br-…) too.
		[2]string{"s2-a", e}, [2]string{"s2-e", a},
	)
}

// Scenario 3: with enable_icc=false the containers of a network cannot reach
// each other (they still reach the gateway).
func TestICCDisabled(t *testing.T) {
	h := sharedHost(t)
	// Containers on one bridge talk at layer 2; only br_netfilter makes that
	// traffic visible to iptables, where ICC is enforced.
	if v, err := h.ns("cat", "/proc/sys/net/bridge/bridge-nf-call-iptables"); err != nil || strings.TrimSpace(v) != "1" {
		t.Skipf("missing kernel feature: br_netfilter (net.bridge.bridge-nf-call-iptables is %q, %v)", strings.TrimSpace(v), err)
	}
	h.CreateNetwork(t, "s3-net", "-o", "com.docker.network.bridge.enable_icc=false")
	h.Run(t, "s3-a", "--network", "s3-net")
	h.Run(t, "s3-b", "--network", "s3-net")
	_, gw := h.NetworkSubnet(t, "s3-net")
	h.AssertPing(t, "s3-a", gw.String())
	h.AssertPing(t, "s3-b", gw.String())
	h.AssertNoPings(t,
		[2]string{"s3-a", h.ContainerIP(t, "s3-b", "s3-net").String()},
		[2]string{"s3-b", h.ContainerIP(t, "s3-a", "s3-net").String()})

	// Control: the same pair on an ICC network can.
	h.CreateNetwork(t, "s3-icc")
	h.Run(t, "s3-c", "--network", "s3-icc")
	h.Run(t, "s3-d", "--network", "s3-icc")
	h.AssertPing(t, "s3-c", h.ContainerIP(t, "s3-d", "s3-icc").String())
}

// Scenario 4: an --internal network cannot reach the outside host; a normal
// network can, through masquerade (the outside host has no route back to the
// container subnet); with enable_ip_masquerade=false it cannot.
func TestExternalAccess(t *testing.T) {
	h := sharedHost(t)
	out := h.Outside.Addr

	h.CreateNetwork(t, "s4-ext")
	h.Run(t, "s4-ext", "--network", "s4-ext")
	h.AssertPing(t, "s4-ext", out)

	h.CreateNetwork(t, "s4-int", "--internal")
	h.Run(t, "s4-int-a", "--network", "s4-int")
	h.Run(t, "s4-int-b", "--network", "s4-int")
	h.AssertPing(t, "s4-int-a", h.ContainerIP(t, "s4-int-b", "s4-int").String()) // control
	h.AssertNoPings(t, [2]string{"s4-int-a", out}, [2]string{"s4-int-a", h.Outside.HostAddr})

	h.CreateNetwork(t, "s4-nomasq", "-o", "com.docker.network.bridge.enable_ip_masquerade=false")
	h.Run(t, "s4-nomasq", "--network", "s4-nomasq")
	_, gw := h.NetworkSubnet(t, "s4-nomasq")
	h.AssertPing(t, "s4-nomasq", gw.String()) // control
	h.AssertNoPing(t, "s4-nomasq", out)
}

// Scenario 5: docker network connect/disconnect of a running container adds
// and removes its interface, and connectivity follows.
func TestConnectDisconnect(t *testing.T) {
	h := sharedHost(t)
	h.CreateNetwork(t, "s5-net1")
	h.CreateNetwork(t, "s5-net2")
	h.Run(t, "s5-a", "--network", "s5-net1")
	h.Run(t, "s5-b", "--network", "s5-net2")
	b := h.ContainerIP(t, "s5-b", "s5-net2").String()
	h.AssertNoPing(t, "s5-a", b)
	before := h.Snapshot(t)

	h.Docker(t, "network", "connect", "s5-net2", "s5-a")
	a2 := h.ContainerIP(t, "s5-a", "s5-net2").String()
	if addrs := containerAddrs(t, h, "s5-a"); !strings.Contains(addrs, " "+a2+"/") {
		t.Errorf("after connect, s5-a has no interface with %s:\n%s", a2, addrs)
	}
	h.AssertPing(t, "s5-a", b)
	h.AssertPing(t, "s5-b", a2)
	h.AssertPing(t, "s5-b", "s5-a")

	h.Docker(t, "network", "disconnect", "s5-net2", "s5-a")
	if addrs := containerAddrs(t, h, "s5-a"); strings.Contains(addrs, " "+a2+"/") {
		t.Errorf("after disconnect, s5-a still has %s:\n%s", a2, addrs)
	}
	h.AssertNoPings(t, [2]string{"s5-a", b}, [2]string{"s5-b", a2})
	h.AssertNothingNew(t, before, "connect+disconnect")
	// The first network still works.
	_, gw1 := h.NetworkSubnet(t, "s5-net1")
	h.AssertPing(t, "s5-a", gw1.String())
}

// containerAddrs is `ip -o -4 addr` in the container.
func containerAddrs(t *testing.T, h *Host, ctr string) string {
	t.Helper()
	out, err := h.Exec(ctr, "ip", "-o", "-4", "addr", "show")
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Docker's bridge options carry over: a chosen bridge name and an MTU.
func TestBridgeNameAndMTU(t *testing.T) {
	h := sharedHost(t)
	id := h.CreateNetwork(t, "s-opt", "-o", "com.docker.network.bridge.name=e2ebr0",
		"-o", "com.docker.network.driver.mtu=1400")
	h.Run(t, "s-opt-a", "--network", "s-opt")
	h.Run(t, "s-opt-b", "--network", "s-opt")
	l, ok := h.Link(t, "e2ebr0")
	switch {
	case !ok:
		t.Fatalf("no bridge e2ebr0")
	case l.Alias != "weft:"+id:
		t.Errorf("bridge e2ebr0 has alias %q, want %q", l.Alias, "weft:"+id)
	}
	out, err := h.Exec("s-opt-a", "cat", "/sys/class/net/eth0/mtu")
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(out) != "1400" {
		t.Errorf("container eth0 MTU is %s, want 1400", strings.TrimSpace(out))
	}
	h.AssertPing(t, "s-opt-a", "s-opt-b")
	// Big packets pass at the network's MTU (1400 - 28 bytes of headers).
	if out, err := h.Exec("s-opt-a", "ping", "-c", "1", "-W", "2", "-s", "1372", h.ContainerIP(t, "s-opt-b", "s-opt").String()); err != nil {
		t.Errorf("ping with 1400-byte packets failed: %v\n%s", err, out)
	}
}
