package bridge

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/weftnet/weft/dataplane"
	"github.com/weftnet/weft/test/nstest"
)

// Published ports with real packets. The test namespace is the Docker host;
// "outside" is another machine on an uplink (198.51.100.0/24 and
// 2001:db8:1::/64); containers are namespaces on a weft bridge.

// portsEnv is an env with an outside host and the proxy dialing from the
// host namespace (its goroutines do not run in the test's namespace).
type portsEnv struct {
	*env
	outside ctr
}

const (
	hostUplink4    = "198.51.100.1"
	outsideUplink4 = "198.51.100.2"
	hostUplink6    = "2001:db8:1::1"
	outsideUplink6 = "2001:db8:1::2"
)

func newPortsEnv(t *testing.T) *portsEnv {
	t.Helper()
	e := newEnv(t)
	writeSysctl(t, "net/ipv4/ip_forward", "1")
	e.m.dial = func(ctx context.Context, network, address string) (c net.Conn, err error) {
		err = nstest.Do(e.ns, func() error {
			c, err = (&net.Dialer{}).DialContext(ctx, network, address)
			return err
		})
		return c, err
	}
	la := netlink.NewLinkAttrs()
	la.Name = "uplink0"
	if err := e.raw.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: "outside0"}); err != nil {
		t.Fatal(err)
	}
	up, _ := e.raw.LinkByName("uplink0")
	for _, a := range []string{hostUplink4 + "/24", hostUplink6 + "/64"} {
		if err := e.raw.AddrAdd(up, &netlink.Addr{IPNet: ipNet(a), Flags: syscall.IFA_F_NODAD}); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.raw.LinkSetUp(up); err != nil {
		t.Fatal(err)
	}
	out := e.container("outside0", netip.MustParsePrefix(outsideUplink4+"/24"), netip.Addr{})
	addAddr6(t, out, "outside0", outsideUplink6+"/64", "")
	// A route to the container subnets, to prove that only DNAT'd
	// connections get in, not the ones routed straight to a container.
	oh := nstest.Netlink(t, out.ns)
	for _, dst := range []string{"10.1.0.0/24", "10.2.0.0/24"} {
		if err := oh.RouteAdd(&netlink.Route{Dst: ipNet(dst), Gw: net.ParseIP(hostUplink4)}); err != nil {
			t.Fatal(err)
		}
	}
	return &portsEnv{env: e, outside: out}
}

// addAddr6 gives c's link an IPv6 address without duplicate address
// detection (as dockerd does) and, if gw is set, a default route.
func addAddr6(t *testing.T, c ctr, link, cidr, gw string) {
	t.Helper()
	h := nstest.Netlink(t, c.ns)
	l, err := h.LinkByName(link)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.AddrAdd(l, &netlink.Addr{IPNet: ipNet(cidr), Flags: syscall.IFA_F_NODAD}); err != nil {
		t.Fatal(err)
	}
	if gw != "" {
		if err := h.RouteAdd(&netlink.Route{LinkIndex: l.Attrs().Index, Dst: ipNet("::/0"), Gw: net.ParseIP(gw)}); err != nil {
			t.Fatal(err)
		}
	}
}

// waitAddrUsable waits until no address on link (in the test namespace) is
// still tentative (duplicate address detection running), and returns how
// long that took.
func (e *env) waitAddrUsable(link string) time.Duration {
	e.t.Helper()
	start := time.Now()
	for {
		l, err := e.raw.LinkByName(link)
		if err != nil {
			e.t.Fatal(err)
		}
		addrs, err := e.raw.AddrList(l, netlink.FAMILY_V6)
		if err != nil {
			e.t.Fatal(err)
		}
		tentative := false
		for _, a := range addrs {
			if a.Flags&syscall.IFA_F_TENTATIVE != 0 {
				tentative = true
			}
		}
		if !tentative {
			return time.Since(start)
		}
		if time.Since(start) > 10*time.Second {
			e.t.Fatalf("addresses of %s still tentative after 10s: %v", link, addrs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// dialIn connects from inside ns (nil: the test namespace) and returns what
// the server sends first (its "hello" line), or an error.
func dialIn(ns *netns.NsHandle, network, addr string, timeout time.Duration) (string, error) {
	var line string
	do := func() error {
		c, err := net.DialTimeout(network, addr, timeout)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(timeout))
		if network == "udp" {
			if _, err := c.Write([]byte("ping")); err != nil {
				return err
			}
			buf := make([]byte, 200)
			n, err := c.Read(buf)
			line = string(buf[:n])
			return err
		}
		line, err = bufio.NewReader(c).ReadString('\n')
		line = strings.TrimSpace(line)
		return err
	}
	if ns == nil {
		return line, do()
	}
	return line, nstest.Do(*ns, do)
}

// helloServer serves TCP on c's address:port: it writes "hello <client
// address>\n" to every connection and closes it.
func helloServer(t *testing.T, c ctr, addr netip.Addr, port uint16) {
	t.Helper()
	var ln net.Listener
	if err := nstest.Do(c.ns, func() (err error) {
		ln, err = net.Listen("tcp", netip.AddrPortFrom(addr, port).String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			host, _, _ := net.SplitHostPort(conn.RemoteAddr().String())
			_, _ = io.WriteString(conn, "hello "+host+"\n")
			_ = conn.Close()
		}
	}()
}

// udpHelloServer answers every datagram with "hello <client address>".
func udpHelloServer(t *testing.T, c ctr, addr netip.Addr, port uint16) {
	t.Helper()
	var pc net.PacketConn
	if err := nstest.Do(c.ns, func() (err error) {
		pc, err = net.ListenPacket("udp", netip.AddrPortFrom(addr, port).String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	go func() {
		buf := make([]byte, 200)
		for {
			_, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			host, _, _ := net.SplitHostPort(from.String())
			_, _ = pc.WriteTo([]byte("hello "+host), from)
		}
	}()
}

func (p *portsEnv) mustGet(what string, ns *netns.NsHandle, network, addr, want string) {
	p.t.Helper()
	got, err := dialIn(ns, network, addr, okTimeout)
	if err != nil {
		p.t.Errorf("%s: %s %s: %v, want %q", what, network, addr, err, want)
		return
	}
	if want != "" && got != want {
		p.t.Errorf("%s: %s %s answered %q, want %q", what, network, addr, got, want)
	}
}

func (p *portsEnv) mustFail(what string, ns *netns.NsHandle, network, addr string) {
	p.t.Helper()
	if got, err := dialIn(ns, network, addr, blockedTimeout); err == nil {
		p.t.Errorf("%s: %s %s answered %q, want no answer", what, network, addr, got)
	}
}

func hp(host string, port int) string { return net.JoinHostPort(host, fmt.Sprint(port)) }

func TestNetnsPublishIPv4(t *testing.T) {
	p := newPortsEnv(t)
	n := netSpec(idA, 1)
	p.mustCreate(n)
	c1 := p.attach(n, ep1, "10.1.0.2/24")
	c2 := p.attach(n, ep2, "10.1.0.3/24")
	helloServer(t, c1, c1.addr, 80)
	udpHelloServer(t, c1, c1.addr, 53)
	base := p.snapshot()

	ep := dataplane.Endpoint{ID: ep1, NetworkID: n.ID, IPv4: netip.MustParsePrefix("10.1.0.2/24")}
	bindings := []dataplane.PortBinding{
		{Proto: dataplane.TCP, Port: 80, HostPort: 8080, HostPortEnd: 8080},
		{Proto: dataplane.UDP, Port: 53, HostPort: 5353, HostPortEnd: 5353},
		{Proto: dataplane.TCP, Port: 80, HostPort: 8081, HostPortEnd: 8081, HostIP: netip.MustParseAddr("127.0.0.1")},
		{Proto: dataplane.TCP, Port: 80, HostPort: 0},
	}
	pub, err := p.m.Publish(p.ctx, n, ep, bindings)
	if err != nil {
		t.Fatal(err)
	}
	eph := int(pub[len(pub)-1].HostPort)
	out := &p.outside.ns
	gw := "10.1.0.1"

	// From another machine: DNAT, the container sees the real client.
	p.mustGet("outside", out, "tcp", hp(hostUplink4, 8080), "hello "+outsideUplink4)
	p.mustGet("outside, ephemeral port", out, "tcp", hp(hostUplink4, eph), "hello "+outsideUplink4)
	p.mustGet("outside, UDP", out, "udp", hp(hostUplink4, 5353), "hello "+outsideUplink4)
	// From the host itself: its address is DNAT'd in OUTPUT, loopback goes
	// through the proxy.
	p.mustGet("host, own address", nil, "tcp", hp(hostUplink4, 8080), "hello "+hostUplink4)
	p.mustGet("host, loopback", nil, "tcp", hp("127.0.0.1", 8080), "hello "+gw)
	p.mustGet("host, loopback, UDP", nil, "udp", hp("127.0.0.1", 5353), "hello "+gw)
	p.mustGet("host, loopback-only port", nil, "tcp", hp("127.0.0.1", 8081), "hello "+gw)
	// Containers, the publishing one included (hairpin), through the proxy.
	p.mustGet("hairpin", &c1.ns, "tcp", hp(hostUplink4, 8080), "hello "+gw)
	p.mustGet("other container", &c2.ns, "tcp", hp(hostUplink4, 8080), "hello "+gw)
	p.mustGet("other container, gateway address", &c2.ns, "tcp", hp(gw, 8080), "hello "+gw)
	// UDP answers come from the address the client sent to, though the
	// route back to a container starts at the bridge's address.
	p.mustGet("hairpin, UDP", &c1.ns, "udp", hp(hostUplink4, 5353), "hello "+gw)
	p.mustGet("other container, UDP", &c2.ns, "udp", hp(hostUplink4, 5353), "hello "+gw)
	// Not from outside: the loopback-only port, and the container port
	// routed to directly.
	p.mustFail("outside, loopback-only port", out, "tcp", hp(hostUplink4, 8081))
	p.mustFail("outside, straight to the container", out, "tcp", hp("10.1.0.2", 80))

	// Held: another program cannot take the port.
	if ln, err := net.Listen("tcp4", ":8080"); err == nil {
		_ = ln.Close()
		t.Error("another program could listen on published port 8080")
	}
	// ... and a port another program holds cannot be published.
	ln, err := net.Listen("tcp4", "0.0.0.0:9090")
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.m.Publish(p.ctx, n, dataplane.Endpoint{ID: ep2, NetworkID: n.ID, IPv4: netip.MustParsePrefix("10.1.0.3/24")},
		[]dataplane.PortBinding{{Proto: dataplane.TCP, Port: 80, HostPort: 9090, HostPortEnd: 9090}})
	if !errors.Is(err, dataplane.ErrPortInUse) {
		t.Errorf("publishing a port another program holds: %v", err)
	}
	_ = ln.Close()

	for range 2 {
		if err := p.m.Unpublish(p.ctx, n, ep, pub); err != nil {
			t.Fatal(err)
		}
	}
	p.assertSame(base, "after Unpublish")
	p.mustFail("outside after unpublish", out, "tcp", hp(hostUplink4, 8080))
	ln, err = net.Listen("tcp4", ":8080")
	if err != nil {
		t.Fatalf("port 8080 still held after Unpublish: %v", err)
	}
	_ = ln.Close()
}

func TestNetnsPublishIPv6(t *testing.T) {
	p := newPortsEnv(t)
	n := netSpec(idA, 1, withIPv6)
	p.mustCreate(n)
	c1 := p.attach(n, ep1, "10.1.0.2/24")
	addAddr6(t, c1, "wc"+ep1[:12], "fd00:1::2/64", "fd00:1::1")
	c1v6 := netip.MustParseAddr("fd00:1::2")
	// The bridge's gateway address goes through duplicate address detection
	// once the first port is up (nl.EnsureAddr does not ask for NODAD).
	t.Logf("bridge IPv6 gateway usable after %s", p.waitAddrUsable(n.Bridge.Name))
	helloServer(t, c1, c1v6, 80)
	helloServer(t, c1, c1.addr, 80)

	ep := dataplane.Endpoint{ID: ep1, NetworkID: n.ID, IPv4: netip.MustParsePrefix("10.1.0.2/24"), IPv6: netip.MustParsePrefix("fd00:1::2/64")}
	out := &p.outside.ns
	base := p.snapshot()
	// Not subtests: they would run outside the test namespace.
	for _, fwd := range []bool{true, false} {
		v := "0"
		if fwd {
			v = "1"
		}
		writeSysctl(t, "net/ipv6/conf/all/forwarding", v)
		pub, err := p.m.Publish(p.ctx, n, ep, []dataplane.PortBinding{{Proto: dataplane.TCP, Port: 80, HostPort: 8080, HostPortEnd: 8080}})
		if err != nil {
			t.Fatal(err)
		}
		if len(pub) != 2 {
			t.Fatalf("published %v, want IPv4 and IPv6", pub)
		}
		// Forwarding: DNAT, the container sees the real client; without: the
		// proxy answers.
		want := "hello " + outsideUplink6
		if !fwd {
			want = "hello fd00:1::1"
		}
		what := fmt.Sprintf("forwarding=%v: ", fwd)
		p.mustGet(what+"outside over IPv6", out, "tcp", hp(hostUplink6, 8080), want)
		p.mustGet(what+"outside over IPv4", out, "tcp", hp(hostUplink4, 8080), "hello "+outsideUplink4)
		p.mustGet(what+"host, ::1", nil, "tcp", hp("::1", 8080), "hello fd00:1::1")
		p.mustGet(what+"hairpin over IPv6", &c1.ns, "tcp", hp(hostUplink6, 8080), "hello fd00:1::1")
		p.mustFail(what+"outside, straight to the container", out, "tcp", hp("fd00:1::2", 80))
		if err := p.m.Unpublish(p.ctx, n, ep, pub); err != nil {
			t.Fatal(err)
		}
		p.assertSame(base, what+"after Unpublish")
	}
}

// TestNetnsPublishIPv6ToIPv4Container: an IPv4-only container published on
// all addresses answers on the host's IPv6 addresses too, through the proxy.
func TestNetnsPublishIPv6ToIPv4Container(t *testing.T) {
	p := newPortsEnv(t)
	n := netSpec(idA, 1)
	p.mustCreate(n)
	base := p.snapshot()
	c1 := p.attach(n, ep1, "10.1.0.2/24")
	helloServer(t, c1, c1.addr, 80)
	ep := dataplane.Endpoint{ID: ep1, NetworkID: n.ID, IPv4: netip.MustParsePrefix("10.1.0.2/24")}
	if _, err := p.m.Publish(p.ctx, n, ep, []dataplane.PortBinding{{Proto: dataplane.TCP, Port: 80, HostPort: 8080, HostPortEnd: 8080}}); err != nil {
		t.Fatal(err)
	}
	p.mustGet("outside over IPv6", &p.outside.ns, "tcp", hp(hostUplink6, 8080), "hello 10.1.0.1")
	p.mustGet("host, ::1", nil, "tcp", hp("::1", 8080), "hello 10.1.0.1")
	if err := p.m.DeleteEndpoint(p.ctx, n, ep); err != nil {
		t.Fatal(err)
	}
	// DeleteEndpoint took the published ports with it.
	if got := p.m.publishedBy(ep1); len(got) != 0 {
		t.Fatalf("after DeleteEndpoint: %v", got)
	}
	p.mustFail("outside after DeleteEndpoint", &p.outside.ns, "tcp", hp(hostUplink4, 8080))
	p.assertSame(base, "after DeleteEndpoint")
}

// TestNetnsReconcilePortsAfterRestart: a new Mode (weft restarted) re-opens
// the published ports from the record alone.
func TestNetnsReconcilePortsAfterRestart(t *testing.T) {
	p := newPortsEnv(t)
	n := netSpec(idA, 1)
	p.mustCreate(n)
	c1 := p.attach(n, ep1, "10.1.0.2/24")
	helloServer(t, c1, c1.addr, 80)
	ep := dataplane.Endpoint{ID: ep1, NetworkID: n.ID, IPv4: netip.MustParsePrefix("10.1.0.2/24")}
	unpublished := p.snapshot()
	pub, err := p.m.Publish(p.ctx, n, ep, []dataplane.PortBinding{{Proto: dataplane.TCP, Port: 80, HostPort: 8080, HostPortEnd: 8080, NoIPv6: true}})
	if err != nil {
		t.Fatal(err)
	}
	withPorts := p.snapshot()
	p.mustCheck("after publishing")
	// "Crash": the proxies die with the process, the rules stay.
	for _, hp := range p.m.ports {
		_ = hp.proxy.Close()
	}
	p.mustFail("loopback while weft is down", nil, "tcp", hp("127.0.0.1", 8080))
	p.mustGet("outside while weft is down (DNAT)", &p.outside.ns, "tcp", hp(hostUplink4, 8080), "hello "+outsideUplink4)

	m2 := drained(p.t, New(p.nl, p.fw, p.m.log, sameDesign(p.m)...))
	m2.dial = p.m.dial
	if err := m2.Reconcile(p.ctx, []dataplane.Network{n}, []dataplane.Endpoint{ep}); err != nil {
		t.Fatal(err)
	}
	if err := m2.ReconcilePorts(p.ctx, []dataplane.EndpointPorts{{Network: n, Endpoint: ep, Ports: pub}}); err != nil {
		t.Fatal(err)
	}
	p.assertSame(withPorts, "reconcile changed the kernel state")
	p.mustGet("loopback after restart", nil, "tcp", hp("127.0.0.1", 8080), "hello 10.1.0.1")
	// The record is gone (revoked while weft was down): everything goes.
	if err := m2.ReconcilePorts(p.ctx, nil); err != nil {
		t.Fatal(err)
	}
	if s := nstest.IptablesSave(t, "iptables-save"); strings.Contains(s, "DNAT --to-destination") || strings.Contains(s, "--ctstate DNAT") {
		t.Fatalf("published-port rules left:\n%s", s)
	}
	p.mustFail("loopback after the ports went", nil, "tcp", hp("127.0.0.1", 8080))
	p.assertSame(unpublished, "after reconciling no published port")
}

// TestNetnsIPv6Guard: a container's router advertisement reaches neither the
// other containers nor the host; other ICMPv6 does (the control). And on an
// IPv4-only network with enable_icc=false, IPv6 between containers is
// blocked like IPv4.
func TestNetnsIPv6Guard(t *testing.T) {
	e := newEnv(t)
	n := netSpec(idA, 1, withIPv6)
	e.mustCreate(n)
	c1 := e.attach(n, ep1, "10.1.0.2/24")
	c2 := e.attach(n, ep2, "10.1.0.3/24")
	l1, l2 := "wc"+ep1[:12], "wc"+ep2[:12]
	addAddr6(t, c1, l1, "fd00:1::2/64", "")
	addAddr6(t, c2, l2, "fd00:1::3/64", "")
	e.waitAddrUsable(n.Bridge.Name)

	host := listenICMP6(t, nil)
	other := listenICMP6(t, &c2.ns)
	send := func(typ byte) {
		t.Helper()
		if err := nstest.Do(c1.ns, func() error { return sendICMP6(typ, l1) }); err != nil {
			t.Fatal(err)
		}
	}
	send(128) // echo request to ff02::1: the control
	send(134) // router advertisement
	send(128)
	time.Sleep(500 * time.Millisecond)
	for name, got := range map[string]func() []byte{"the host": host, "another container": other} {
		types := got()
		if !containsByte(types, 128) {
			t.Errorf("%s did not see the control (ICMPv6 types seen: %v)", name, types)
		}
		if containsByte(types, 134) {
			t.Errorf("%s received a container's router advertisement (ICMPv6 types seen: %v)", name, types)
		}
	}

	// IPv4-only network, enable_icc=false: a self-made IPv6 address does not
	// get a container past ICC. Control: the same with enable_icc=true.
	// dockerd 20.10 leaves ip6tables alone (FORWARD policy ACCEPT) unless
	// configured with "ip6tables": true; only weft's rules can block.
	nstest.Run(t, "ip6tables", "-P", "FORWARD", "ACCEPT")
	for _, icc := range []bool{false, true} {
		id, octet := idB, byte(2)
		if icc {
			id, octet = idC, 3
		}
		nb := netSpec(id, octet, func(n *dataplane.Network) { n.Bridge.EnableICC = icc })
		e.mustCreate(nb)
		ea, eb := "a"+ep3[1:], "b"+ep3[1:]
		if icc {
			ea, eb = "c"+ep3[1:], "d"+ep3[1:]
		}
		ca := e.attach(nb, ea, fmt.Sprintf("10.%d.0.2/24", octet))
		cb := e.attach(nb, eb, fmt.Sprintf("10.%d.0.3/24", octet))
		addAddr6(t, ca, "wc"+ea[:12], "fd99::2/64", "")
		addAddr6(t, cb, "wc"+eb[:12], "fd99::3/64", "")
		helloServer(t, cb, netip.MustParseAddr("fd99::3"), 80)
		_, err := dialIn(&ca.ns, "tcp", "[fd99::3]:80", okTimeout)
		switch {
		case icc && err != nil:
			t.Errorf("control: IPv6 on an ICC network failed: %v", err)
		case !icc && err == nil:
			t.Error("IPv6 crossed an IPv4-only network with enable_icc=false")
		}
	}
}

func containsByte(b []byte, x byte) bool {
	for _, c := range b {
		if c == x {
			return true
		}
	}
	return false
}

// listenICMP6 records the ICMPv6 types a raw socket in ns (nil: the test
// namespace) receives; the returned func reports them.
func listenICMP6(t *testing.T, ns *netns.NsHandle) func() []byte {
	t.Helper()
	var pc net.PacketConn
	open := func() (err error) {
		pc, err = net.ListenPacket("ip6:ipv6-icmp", "::")
		return err
	}
	var err error
	if ns == nil {
		err = open()
	} else {
		err = nstest.Do(*ns, open)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	seen := make(chan byte, 256)
	go func() {
		buf := make([]byte, 1500)
		for {
			n, _, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if n > 0 {
				select {
				case seen <- buf[0]:
				default:
				}
			}
		}
	}()
	return func() []byte {
		var out []byte
		for {
			select {
			case b := <-seen:
				out = append(out, b)
			default:
				return out
			}
		}
	}
}

// sendICMP6 sends an ICMPv6 message of type typ to all nodes (ff02::1) on
// link, with hop limit 255 as router advertisements carry.
func sendICMP6(typ byte, link string) error {
	pc, err := net.ListenPacket("ip6:ipv6-icmp", "::")
	if err != nil {
		return err
	}
	defer pc.Close()
	raw, err := pc.(*net.IPConn).SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IPV6, syscall.IPV6_MULTICAST_HOPS, 255)
	}); err != nil {
		return err
	}
	if serr != nil {
		return serr
	}
	msg := make([]byte, 16)
	msg[0] = typ
	if typ == 134 {
		msg[4] = 64                                // cur hop limit
		binary.BigEndian.PutUint16(msg[6:8], 1800) // router lifetime
	} else {
		binary.BigEndian.PutUint16(msg[4:6], 1) // echo identifier
	}
	_, err = pc.WriteTo(msg, &net.IPAddr{IP: net.ParseIP("ff02::1"), Zone: link})
	return err
}

// TestNetnsPortRulesRepaired: a flush of the nat table takes published
// ports' DNAT away; Check notices and Repair puts it back from the ports
// weft holds, so the port answers from outside again.
func TestNetnsPortRulesRepaired(t *testing.T) {
	p := newPortsEnv(t)
	n := netSpec(idA, 1)
	p.mustCreate(n)
	c1 := p.attach(n, ep1, "10.1.0.2/24")
	helloServer(t, c1, c1.addr, 80)
	ep := dataplane.Endpoint{ID: ep1, NetworkID: n.ID, IPv4: netip.MustParsePrefix("10.1.0.2/24")}
	if _, err := p.m.Publish(p.ctx, n, ep, []dataplane.PortBinding{{Proto: dataplane.TCP, Port: 80, HostPort: 8080, HostPortEnd: 8080, NoIPv6: true}}); err != nil {
		t.Fatal(err)
	}
	p.mustGet("outside (DNAT)", &p.outside.ns, "tcp", hp(hostUplink4, 8080), "hello "+outsideUplink4)
	want := p.snapshot()
	nstest.Run(t, p.ipt, "-t", "nat", "-F", ChainDNAT)
	why, err := p.m.Check(p.ctx)
	if err != nil || why == "" {
		t.Fatalf("after flushing WEFT-DNAT: Check = %q, %v; want the port's rule missing", why, err)
	}
	t.Logf("Check found %q", why)
	if err := p.m.Repair(p.ctx); err != nil {
		t.Fatal(err)
	}
	p.mustCheck("after Repair")
	p.assertSame(want, "Repair after a flush of WEFT-DNAT")
	p.mustGet("outside after Repair", &p.outside.ns, "tcp", hp(hostUplink4, 8080), "hello "+outsideUplink4)
}
