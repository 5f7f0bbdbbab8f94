//go:build e2e

package e2e

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/weftnet/weft/test/nstest"
	"github.com/weftnet/weft/test/testhost"
)

// IPv6 on weft bridge networks: dual-stack networks with a given subnet or
// one from weft's default IPv6 pools, container-to-container IPv6 by address
// and by name, isolation and ICC for IPv6 (also on IPv4-only networks), the
// router advertisement guard, egress and published ports over IPv6.
//
// The outside host gets IPv6 addresses on its link for these tests
// (2001:db8:e2e::/64, documentation space); the host's IPv6 forwarding is
// turned on where a test needs it, as an administrator would (dockerd 20.10
// turns it on only for its own IPv6 networks; weft cannot write sysctls).

const (
	hostLink6    = "2001:db8:e2e::1"
	outsideLink6 = "2001:db8:e2e::2"
)

// ContainerIPv6 is the container's global IPv6 address on network net.
func (h *Host) ContainerIPv6(t testing.TB, ctr, net string) netip.Addr {
	t.Helper()
	s := h.Docker(t, "inspect", "-f", fmt.Sprintf(`{{with index .NetworkSettings.Networks %q}}{{.GlobalIPv6Address}}{{end}}`, net), ctr)
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is6() {
		t.Fatalf("container %s has no IPv6 address on %s (inspect said %q)", ctr, net, s)
	}
	return a
}

// NetworkSubnet6 returns the IPv6 subnet of a network.
func (h *Host) NetworkSubnet6(t testing.TB, net string) netip.Prefix {
	t.Helper()
	s := h.Docker(t, "network", "inspect", "-f", `{{range .IPAM.Config}}{{.Subnet}}{{"\n"}}{{end}}`, net)
	for _, line := range strings.Fields(s) {
		if p, err := netip.ParsePrefix(line); err == nil && p.Addr().Is6() {
			return p
		}
	}
	t.Fatalf("network %s has no IPv6 subnet (inspect said %q)", net, s)
	return netip.Prefix{}
}

// Gateway6 is the IPv6 gateway weft gave container ctr on network net
// (dockerd 20.10 does not show IPAM-assigned IPv6 gateways in network
// inspect).
func (h *Host) Gateway6(t testing.TB, ctr, net string) netip.Addr {
	t.Helper()
	s := h.Docker(t, "inspect", "-f", fmt.Sprintf(`{{with index .NetworkSettings.Networks %q}}{{.IPv6Gateway}}{{end}}`, net), ctr)
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is6() {
		t.Fatalf("container %s has no IPv6 gateway on %s (inspect said %q)", ctr, net, s)
	}
	return a
}

// AssertPing6 fails unless ctr can ping6 target, retrying for a few seconds.
func (h *Host) AssertPing6(t testing.TB, ctr, target string) {
	t.Helper()
	var out string
	var err error
	for i := 0; i < 5; i++ {
		if out, err = h.Exec(ctr, "ping6", "-c", "1", "-W", "1", target); err == nil {
			return
		}
	}
	t.Errorf("%s cannot ping6 %s: %v\n%s", ctr, target, err, out)
}

// AssertNoPing6 fails if ctr can ping6 target, trying three times (a first
// failure can be neighbour discovery still at work, not the firewall).
func (h *Host) AssertNoPing6(t testing.TB, ctr, target string) {
	t.Helper()
	for i := 0; i < 3; i++ {
		if out, err := h.Exec(ctr, "ping6", "-c", "2", "-W", "1", target); err == nil {
			t.Errorf("%s can ping6 %s, but must not:\n%s", ctr, target, out)
			return
		}
	}
}

// outsideIPv6 gives the host–outside link IPv6 addresses (no duplicate
// address detection), removed when the test ends.
func (h *Host) outsideIPv6(t testing.TB) {
	t.Helper()
	h.NS(t, "ip", "-6", "addr", "add", hostLink6+"/64", "dev", outsideHostLink, "nodad")
	t.Cleanup(func() { _, _ = h.ns("ip", "-6", "addr", "del", hostLink6+"/64", "dev", outsideHostLink) })
	if _, err := testhost.RunT(10*time.Second, "ip", "-n", h.Outside.NetNS, "-6", "addr", "add", outsideLink6+"/64", "dev", outsidePeerLink, "nodad"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = testhost.RunT(10*time.Second, "ip", "-n", h.Outside.NetNS, "-6", "addr", "del", outsideLink6+"/64", "dev", outsidePeerLink)
	})
}

// setSysctl sets a sysctl of the host's namespace for the test's duration.
func (h *Host) setSysctl(t testing.TB, key, value string) {
	t.Helper()
	path := "/proc/sys/" + strings.ReplaceAll(key, ".", "/")
	old := strings.TrimSpace(h.NS(t, "cat", path))
	h.NS(t, "sh", "-c", "echo "+value+" > "+path)
	t.Cleanup(func() { _, _ = h.ns("sh", "-c", "echo "+old+" > "+path) })
}

// TestIPv6DualStack: a dual-stack network with a given IPv6 subnet; the
// gateway is on the bridge; containers ping6 each other by address and by
// name, and talk TCP over IPv6.
func TestIPv6DualStack(t *testing.T) {
	h := sharedHost(t)
	id := h.CreateNetwork(t, "v1-net", "--ipv6", "--subnet", "fdee:6e2e:1::/64")
	subnet := h.NetworkSubnet6(t, "v1-net")
	if subnet.String() != "fdee:6e2e:1::/64" {
		t.Fatalf("IPv6 subnet %s", subnet)
	}
	if _, v4gw := h.NetworkSubnet(t, "v1-net"); !v4gw.IsValid() {
		t.Error("the dual-stack network has no IPv4 gateway")
	}
	start := time.Now()
	h.RunServer(t, "v1-a", []string{"tcp:80"}, "--network", "v1-net")
	h.RunServer(t, "v1-b", []string{"tcp:80"}, "--network", "v1-net")
	a, b := h.ContainerIPv6(t, "v1-a", "v1-net"), h.ContainerIPv6(t, "v1-b", "v1-net")
	gw := h.Gateway6(t, "v1-a", "v1-net")
	if !subnet.Contains(a) || !subnet.Contains(b) || !subnet.Contains(gw) || a == b || a == gw {
		t.Fatalf("IPv6 addresses %s and %s, gateway %s (subnet %s)", a, b, gw, subnet)
	}
	if addrs := h.NS(t, "ip", "-6", "-o", "addr", "show", "dev", "weft-"+id[:10]); !strings.Contains(addrs, gw.String()+"/64") {
		t.Errorf("the bridge lacks the IPv6 gateway %s:\n%s", gw, addrs)
	}
	h.AssertPing6(t, "v1-a", b.String())
	t.Logf("first IPv6 ping between containers %s after the first docker run", time.Since(start).Round(time.Millisecond))
	h.AssertPing6(t, "v1-b", a.String())
	h.AssertPing6(t, "v1-a", "v1-b")
	h.AssertPing6(t, "v1-b", "v1-a")
	h.AssertPing6(t, "v1-a", gw.String())
	h.AssertExecAnswer(t, "v1-a", "tcp", net.JoinHostPort(b.String(), "80"), "v1-b "+a.String())
	// dockerd adds container addresses without duplicate address detection
	// (IFA_F_NODAD, "flags 02"): nothing waits for DAD on attach. (The
	// kernel's own link-local address does go through it.)
	out, _ := h.Exec("v1-a", "ip", "-6", "-o", "addr", "show", "dev", "eth0", "scope", "global")
	if !strings.Contains(out, a.String()+"/64") || strings.Contains(out, "tentative") || !strings.Contains(out, "flags 02") {
		t.Errorf("the container's address is not a NODAD address:\n%s", out)
	}
}

// TestIPv6DefaultPool: --ipv6 without an IPv6 subnet takes a pool from weft's
// default IPv6 pools (WEFT_DEFAULT_POOLS, fd5e:f7ee:5000::/40 in /64s).
func TestIPv6DefaultPool(t *testing.T) {
	h := sharedHost(t)
	h.CreateNetwork(t, "v2-net", "--ipv6")
	subnet := h.NetworkSubnet6(t, "v2-net")
	if base := netip.MustParsePrefix("fd5e:f7ee:5000::/40"); subnet.Bits() != 64 || !base.Contains(subnet.Addr()) {
		t.Fatalf("IPv6 subnet %s, want a /64 of %s", subnet, base)
	}
	h.Run(t, "v2-a", "--network", "v2-net")
	h.Run(t, "v2-b", "--network", "v2-net")
	h.AssertPing6(t, "v2-a", h.Gateway6(t, "v2-a", "v2-net").String())
	if a := h.ContainerIPv6(t, "v2-a", "v2-net"); !subnet.Contains(a) {
		t.Errorf("v2-a got %s, outside %s", a, subnet)
	}
	h.AssertPing6(t, "v2-a", h.ContainerIPv6(t, "v2-b", "v2-net").String())
	h.AssertPing6(t, "v2-b", "v2-a")
}

// TestIPv6Isolation: IPv6 is no way around isolation or enable_icc=false,
// on IPv6 networks and on IPv4-only ones (over link-local addresses).
func TestIPv6Isolation(t *testing.T) {
	h := sharedHost(t)
	h.CreateNetwork(t, "v3-n1", "--ipv6", "--subnet", "fdee:6e2e:31::/64")
	h.CreateNetwork(t, "v3-n2", "--ipv6", "--subnet", "fdee:6e2e:32::/64")
	h.CreateNetwork(t, "v3-noicc", "--ipv6", "--subnet", "fdee:6e2e:33::/64", "-o", "com.docker.network.bridge.enable_icc=false")
	h.Run(t, "v3-a", "--network", "v3-n1")
	h.Run(t, "v3-b", "--network", "v3-n2")
	h.Run(t, "v3-c", "--network", "v3-noicc")
	h.Run(t, "v3-d", "--network", "v3-noicc")
	gw1, gw3 := h.Gateway6(t, "v3-a", "v3-n1"), h.Gateway6(t, "v3-c", "v3-noicc")
	// Controls: each container's IPv6 works, beyond the host too (so the
	// host forwards IPv6, and a failure between networks is isolation).
	h.outsideIPv6(t)
	h.setSysctl(t, "net.ipv6.conf.all.forwarding", "1")
	h.AssertPing6(t, "v3-a", outsideLink6)
	h.AssertPing6(t, "v3-b", outsideLink6)
	h.AssertPing6(t, "v3-a", gw1.String())
	h.AssertPing6(t, "v3-c", gw3.String())
	h.AssertPing6(t, "v3-d", gw3.String())
	h.AssertNoPing6(t, "v3-a", h.ContainerIPv6(t, "v3-b", "v3-n2").String())
	h.AssertNoPing6(t, "v3-b", h.ContainerIPv6(t, "v3-a", "v3-n1").String())
	h.AssertNoPing6(t, "v3-c", h.ContainerIPv6(t, "v3-d", "v3-noicc").String())

	// IPv4-only networks: dockerd turns IPv6 off in such containers
	// (20.10: disable_ipv6=1 for all; 29: for the interface, and
	// --sysctl cannot undo it), but a privileged container may turn it on
	// again and then has a link-local address; that must not get it past
	// enable_icc=false. The test turns it on from outside, the same way on
	// every engine.
	h.CreateNetwork(t, "v3-v4icc")
	h.CreateNetwork(t, "v3-v4noicc", "-o", "com.docker.network.bridge.enable_icc=false")
	for _, c := range []string{"v3-e", "v3-f"} {
		h.Run(t, c, "--network", "v3-v4icc")
		turnOnIPv6(t, h, c)
	}
	for _, c := range []string{"v3-g", "v3-h"} {
		h.Run(t, c, "--network", "v3-v4noicc")
		turnOnIPv6(t, h, c)
	}
	// Both ends' addresses must be usable (not tentative), or a ping fails
	// for that reason alone.
	e, f, g, hh := linkLocal(t, h, "v3-e"), linkLocal(t, h, "v3-f"), linkLocal(t, h, "v3-g"), linkLocal(t, h, "v3-h")
	if e == "" || f == "" || g == "" || hh == "" {
		for _, c := range []string{"v3-e", "v3-f", "v3-g", "v3-h"} {
			out, _ := h.Exec(c, "sh", "-c", "grep . /proc/sys/net/ipv6/conf/*/disable_ipv6; ip -6 addr")
			t.Logf("%s:\n%s", c, out)
		}
		t.Fatal("containers on IPv4-only networks have no IPv6 link-local address")
	}
	h.AssertPing6(t, "v3-e", f+"%eth0") // control
	h.AssertPing6(t, "v3-f", e+"%eth0")
	h.AssertNoPing6(t, "v3-g", hh+"%eth0")
	h.AssertNoPing6(t, "v3-h", g+"%eth0")
}

// turnOnIPv6 undoes what dockerd does to a container on an IPv4-only
// network: IPv6 off, for all interfaces and for eth0 (as a container with
// CAP_NET_ADMIN and a writable /proc/sys could do itself).
func turnOnIPv6(t testing.TB, h *Host, ctr string) {
	t.Helper()
	pid := h.Docker(t, "inspect", "-f", "{{.State.Pid}}", ctr)
	if out, err := testhost.RunT(30*time.Second, "nsenter", "--target", pid, "--net", "--", "sh", "-c",
		"echo 0 > /proc/sys/net/ipv6/conf/all/disable_ipv6 && echo 0 > /proc/sys/net/ipv6/conf/eth0/disable_ipv6"); err != nil {
		t.Fatalf("turning IPv6 on in %s: %v\n%s", ctr, err, out)
	}
}

// linkLocal is ctr's eth0 link-local address ("" if none).
func linkLocal(t *testing.T, h *Host, ctr string) string {
	t.Helper()
	var out string
	// The address appears when eth0 comes up, tentative for a second.
	for i := 0; i < 30; i++ {
		out, _ = h.Exec(ctr, "ip", "-6", "-o", "addr", "show", "dev", "eth0", "scope", "link")
		if strings.Contains(out, "fe80::") && !strings.Contains(out, "tentative") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, f := range strings.Fields(out) {
		if strings.HasPrefix(f, "fe80::") {
			return strings.Split(f, "/")[0]
		}
	}
	return ""
}

// TestIPv6RouterAdvertisementGuard: a router advertisement a container sends
// reaches neither the other containers of its network nor the host; other
// ICMPv6 to all nodes does (the control).
func TestIPv6RouterAdvertisementGuard(t *testing.T) {
	h := sharedHost(t)
	h.CreateNetwork(t, "v4-net", "--ipv6", "--subnet", "fdee:6e2e:4::/64")
	h.RunServer(t, "v4-a", []string{"tcp:80"}, "--network", "v4-net")
	h.RunServer(t, "v4-b", []string{"tcp:80"}, "--network", "v4-net")
	h.AssertPing6(t, "v4-a", "v4-b")

	// The host listens in its own namespace, v4-b in its container.
	hostNS := h.fromHost(t).ns
	hostSeen := make(chan string, 1)
	go func() {
		var seen []string
		_ = nstest.Do(hostNS, func() error {
			pc, err := net.ListenPacket("ip6:ipv6-icmp", "::")
			if err != nil {
				return err
			}
			defer pc.Close()
			_ = pc.SetReadDeadline(time.Now().Add(4 * time.Second))
			buf := make([]byte, 1500)
			for {
				n, _, err := pc.ReadFrom(buf)
				if err != nil {
					return nil
				}
				if n > 0 {
					seen = append(seen, fmt.Sprint(buf[0]))
				}
			}
		})
		hostSeen <- " " + strings.Join(seen, " ") + " "
	}()
	ctrSeen := make(chan string, 1)
	go func() {
		out, err := h.Exec("v4-b", "/echosrv", "watch-icmp6", "4")
		if err != nil {
			out = "error: " + err.Error()
		}
		ctrSeen <- " " + strings.TrimSpace(out) + " "
	}()
	time.Sleep(time.Second)
	for _, typ := range []string{"128", "134", "128"} {
		if out, err := h.Exec("v4-a", "/echosrv", "send-icmp6", typ, "eth0"); err != nil {
			t.Fatalf("sending ICMPv6 type %s: %v\n%s", typ, err, out)
		}
	}
	for who, ch := range map[string]chan string{"the host": hostSeen, "another container": ctrSeen} {
		seen := <-ch
		if !strings.Contains(seen, " 128 ") {
			t.Errorf("%s did not see the control (ICMPv6 types seen:%s)", who, seen)
		}
		if strings.Contains(seen, " 134 ") {
			t.Errorf("%s received a container's router advertisement (ICMPv6 types seen:%s)", who, seen)
		}
	}
}

// TestIPv6EgressAndPublish: containers reach an IPv6 host beyond the host
// through masquerade (the outside host has no route to the container
// subnet), and a port published on an IPv6 network is reachable over IPv6
// from outside and from the host's ::1.
func TestIPv6EgressAndPublish(t *testing.T) {
	h := sharedHost(t)
	h.outsideIPv6(t)
	// Without IPv6 forwarding on the host when the port is published
	// (dockerd 20.10 leaves it off for plugin networks; the suite turns it
	// on for Docker 29's nftables back-end, so it is set here), the proxy
	// answers: the container sees its gateway.
	h.setSysctl(t, "net.ipv6.conf.all.forwarding", "0")
	h.CreateNetwork(t, "v5-net", "--ipv6", "--subnet", "fdee:6e2e:5::/64")
	h.RunServer(t, "v5-a", []string{"tcp:80", "udp:53"}, "--network", "v5-net", "-p", "18500:80", "-p", "18501:53/udp")
	gw := h.Gateway6(t, "v5-a", "v5-net")
	host, out := h.fromHost(t), h.fromOutside(t)

	AssertAnswer(t, out, "tcp", hostPort(hostLink6, 18500), "v5-a "+gw.String())
	AssertAnswer(t, out, "udp", hostPort(hostLink6, 18501), "v5-a "+gw.String())
	AssertAnswer(t, host, "tcp", hostPort("::1", 18500), "v5-a "+gw.String())
	AssertAnswer(t, out, "tcp", hostPort(h.Outside.HostAddr, 18500), "v5-a "+h.Outside.Addr)
	h.AssertNoPing6(t, "v5-a", outsideLink6)

	// With forwarding: egress is masqueraded. A port published after that
	// is DNAT'd, and the container sees the real client.
	h.setSysctl(t, "net.ipv6.conf.all.forwarding", "1")
	h.AssertPing6(t, "v5-a", outsideLink6)
	h.RunServer(t, "v5-b", []string{"tcp:80"}, "--network", "v5-net", "-p", "18502:80")
	AssertAnswer(t, out, "tcp", hostPort(hostLink6, 18502), "v5-b "+outsideLink6)
	AssertAnswer(t, host, "tcp", hostPort("::1", 18502), "v5-b "+gw.String())
	// The container port itself is not open to hosts that route to it.
	if _, err := testhost.RunT(10*time.Second, "ip", "-n", h.Outside.NetNS, "-6", "route", "add", "fdee:6e2e:5::/64", "via", hostLink6); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = testhost.RunT(10*time.Second, "ip", "-n", h.Outside.NetNS, "-6", "route", "del", "fdee:6e2e:5::/64")
	})
	AssertNoAnswer(t, out, "tcp", hostPort(h.ContainerIPv6(t, "v5-b", "v5-net").String(), 80))
}

// TestIPv6GatewayModeRouted: com.docker.network.bridge.gateway_mode_ipv6=routed
// turns IPv6 masquerade off: the outside host, which has no route back to
// the container subnet, does not answer; with a route it does, and sees the
// container's own address.
func TestIPv6GatewayModeRouted(t *testing.T) {
	h := sharedHost(t)
	h.outsideIPv6(t)
	h.setSysctl(t, "net.ipv6.conf.all.forwarding", "1")
	h.CreateNetwork(t, "v6-net", "--ipv6", "--subnet", "fdee:6e2e:6::/64", "-o", "com.docker.network.bridge.gateway_mode_ipv6=routed")
	h.Run(t, "v6-a", "--network", "v6-net")
	gw := h.Gateway6(t, "v6-a", "v6-net")
	h.AssertPing6(t, "v6-a", gw.String())
	h.AssertNoPing6(t, "v6-a", outsideLink6)
	if _, err := testhost.RunT(10*time.Second, "ip", "-n", h.Outside.NetNS, "-6", "route", "add", "fdee:6e2e:6::/64", "via", hostLink6); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = testhost.RunT(10*time.Second, "ip", "-n", h.Outside.NetNS, "-6", "route", "del", "fdee:6e2e:6::/64")
	})
	h.AssertPing6(t, "v6-a", outsideLink6)
}
