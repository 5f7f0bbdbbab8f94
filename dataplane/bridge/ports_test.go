package bridge

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/weftnet/weft/dataplane"
	"github.com/weftnet/weft/dataplane/fw"
)

// fakeSockets stands in for the kernel's port table: binds conflict as they
// do in the kernel (same protocol, family and port, and the same address or
// either one unspecified); port 0 takes the next free port from 40000.
type fakeSockets struct {
	open map[portKey]bool
	next uint16
	// busy are ports "another program" holds.
	busy map[portKey]bool
	// opened counts successful binds.
	opened int
}

func newFakeSockets() *fakeSockets {
	return &fakeSockets{open: map[portKey]bool{}, busy: map[portKey]bool{}, next: 40000}
}

func (s *fakeSockets) conflicts(k portKey) bool {
	for _, m := range []map[portKey]bool{s.open, s.busy} {
		for o := range m {
			if o.proto == k.proto && o.host.Port() == k.host.Port() && o.host.Addr().Is4() == k.host.Addr().Is4() &&
				(o.host.Addr() == k.host.Addr() || o.host.Addr().IsUnspecified() || k.host.Addr().IsUnspecified()) {
				return true
			}
		}
	}
	return false
}

func (s *fakeSockets) listen(proto dataplane.Proto, host, _ netip.AddrPort) (proxy, error) {
	if host.Port() == 0 {
		for {
			s.next++
			if !s.conflicts(portKey{proto, netip.AddrPortFrom(host.Addr(), s.next)}) {
				break
			}
		}
		host = netip.AddrPortFrom(host.Addr(), s.next)
	}
	k := portKey{proto, host}
	if s.conflicts(k) {
		return nil, &net.OpError{Op: "listen", Net: string(proto), Err: syscall.EADDRINUSE}
	}
	s.open[k] = true
	s.opened++
	return &fakeProxy{s: s, k: k}, nil
}

type fakeProxy struct {
	s       *fakeSockets
	k       portKey
	started bool
}

func (p *fakeProxy) start()            { p.started = true }
func (p *fakeProxy) boundPort() uint16 { return p.k.host.Port() }
func (p *fakeProxy) Close() error {
	if !p.s.open[p.k] {
		return errors.New("fake: closed twice")
	}
	delete(p.s.open, p.k)
	return nil
}

// portsMode is a firewall-only Mode (fakes for both families) with fake
// sockets, one network (10.1.0.0/24, fd00:1::/64 if v6) and its rules.
func portsMode(t *testing.T, mut ...func(*dataplane.Network)) (*Mode, *fw.Fake, *fw.Fake, *fakeSockets, dataplane.Network) {
	t.Helper()
	m, v4, v6 := newFirewallMode(t, true)
	s := newFakeSockets()
	m.listen = s.listen
	m.forwarding = func(fw.Family) bool { return true }
	n := testNet(idA, 1, mut...)
	applyNetwork(t, m, n)
	return m, v4, v6, s, n
}

func endpoint(id, v4, v6 string) dataplane.Endpoint {
	ep := dataplane.Endpoint{ID: id, NetworkID: idA, MAC: net.HardwareAddr{2, 0x42, 0, 0, 0, 1}}
	if v4 != "" {
		ep.IPv4 = netip.MustParsePrefix(v4)
	}
	if v6 != "" {
		ep.IPv6 = netip.MustParsePrefix(v6)
	}
	return ep
}

const (
	epB = "e2e3e4e5e6e7e8e9eaebecedeeeff0e1e2e3e4e5e6e7e8e9eaebecedeeeff0e1"
)

func tcp(port, hostPort uint16, hostIP ...string) dataplane.PortBinding {
	b := dataplane.PortBinding{Proto: dataplane.TCP, Port: port, HostPort: hostPort, HostPortEnd: hostPort}
	if len(hostIP) > 0 {
		b.HostIP = netip.MustParseAddr(hostIP[0])
	}
	return b
}

func strs[T fmt.Stringer](xs []T) string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = x.String()
	}
	slices.Sort(out)
	return strings.Join(out, " ")
}

// TestPortRulesGolden pins the rules of every kind of published port.
func TestPortRulesGolden(t *testing.T) {
	n := testNet(idA, 1)
	var b strings.Builder
	for _, tc := range []struct {
		p   string
		fwd bool
	}{
		{"0.0.0.0:8080->10.1.0.2:80/tcp", true},
		{"192.0.2.10:53->10.1.0.2:53/udp", true},
		{"0.0.0.0:3868->10.1.0.2:3868/sctp", true},
		{"[::]:8080->[fd00:1::2]:80/tcp", true},
		{"[2001:db8::10]:8443->[fd00:1::2]:443/tcp", true},
		{"127.0.0.1:8080->10.1.0.2:80/tcp", true},           // loopback: proxy only
		{"[::1]:8080->[fd00:1::2]:80/tcp", true},            // loopback: proxy only
		{"[::]:8080->10.1.0.2:80/tcp", true},                // IPv6 host, IPv4 container: proxy only
		{"0.0.0.0:8080->10.1.0.2:80/tcp", false},            // host does not forward: proxy only
		{"[2001:db8::10]:8443->[fd00:1::2]:443/tcp", false}, // likewise
	} {
		p := parsePublished(t, tc.p)
		fmt.Fprintf(&b, "# %s (forwarding %v)\n", p, tc.fwd)
		for _, r := range portRules(n, p, tc.fwd) {
			b.WriteString(r.String() + "\n")
		}
	}
	golden(t, "ports-rules.golden", b.String())
}

// parsePublished reads "host:port->container:port/proto".
func parsePublished(t *testing.T, s string) dataplane.PublishedPort {
	t.Helper()
	l, r, _ := strings.Cut(s, "->")
	r, proto, _ := strings.Cut(r, "/")
	h, c := netip.MustParseAddrPort(l), netip.MustParseAddrPort(r)
	return dataplane.PublishedPort{Proto: dataplane.Proto(proto), HostIP: h.Addr(), HostPort: h.Port(), ContainerIP: c.Addr(), ContainerPort: c.Port()}
}

func TestPublishTargets(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		mut  func(*dataplane.Network)
		ep   dataplane.Endpoint
		b    dataplane.PortBinding
		want string
	}{
		{"all addresses, IPv4 container", nil, endpoint(epA, "10.1.0.2/24", ""), tcp(80, 8080),
			"0.0.0.0:8080->10.1.0.2:80/tcp [::]:8080->10.1.0.2:80/tcp"},
		{"all addresses, dual-stack container", withIPv6, endpoint(epA, "10.1.0.2/24", "fd00:1::2/64"), tcp(80, 8080),
			"0.0.0.0:8080->10.1.0.2:80/tcp [::]:8080->[fd00:1::2]:80/tcp"},
		{"host_binding_ipv4", func(n *dataplane.Network) { n.Bridge.HostBindingIPv4 = netip.MustParseAddr("192.0.2.10") },
			endpoint(epA, "10.1.0.2/24", ""), tcp(80, 8080), "192.0.2.10:8080->10.1.0.2:80/tcp"},
		{"HostIP beats host_binding_ipv4", func(n *dataplane.Network) { n.Bridge.HostBindingIPv4 = netip.MustParseAddr("192.0.2.10") },
			endpoint(epA, "10.1.0.2/24", ""), tcp(80, 8080, "127.0.0.1"), "127.0.0.1:8080->10.1.0.2:80/tcp"},
		{"IPv6 HostIP", withIPv6, endpoint(epA, "10.1.0.2/24", "fd00:1::2/64"), tcp(80, 8080, "::1"), "[::1]:8080->[fd00:1::2]:80/tcp"},
		{"no_proxy_6to4", nil, endpoint(epA, "10.1.0.2/24", ""), func() dataplane.PortBinding { b := tcp(80, 8080); b.NoIPv6 = true; return b }(),
			"0.0.0.0:8080->10.1.0.2:80/tcp"},
		{"ephemeral: one port for both families", nil, endpoint(epA, "10.1.0.2/24", ""), tcp(80, 0),
			"0.0.0.0:40001->10.1.0.2:80/tcp [::]:40001->10.1.0.2:80/tcp"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var muts []func(*dataplane.Network)
			if tc.mut != nil {
				muts = append(muts, tc.mut)
			}
			m, _, _, _, n := portsMode(t, muts...)
			got, err := m.Publish(ctx, n, tc.ep, []dataplane.PortBinding{tc.b})
			if err != nil {
				t.Fatal(err)
			}
			if s := strs(got); s != tc.want {
				t.Fatalf("published %s, want %s", s, tc.want)
			}
		})
	}
}

// TestPublishUnpublishExact: Unpublish returns the firewall and the sockets
// to exactly their state before Publish, and each published port adds its
// own two rules and nothing else (O(1), no chain rewritten).
func TestPublishUnpublishExact(t *testing.T) {
	ctx := context.Background()
	m, v4, v6, s, n := portsMode(t, withIPv6)
	ep := endpoint(epA, "10.1.0.2/24", "fd00:1::2/64")
	base4, base6 := v4.Dump(), v6.Dump()
	mut4, mut6 := v4.Mutations, v6.Mutations
	udp := dataplane.PortBinding{Proto: dataplane.UDP, Port: 53, HostPort: 5353, HostPortEnd: 5353}
	pub, err := m.Publish(ctx, n, ep, []dataplane.PortBinding{tcp(80, 8080), udp, tcp(80, 8081, "127.0.0.1")})
	if err != nil {
		t.Fatal(err)
	}
	if len(pub) != 5 || len(s.open) != 5 {
		t.Fatalf("published %s (%d sockets), want 5", strs(pub), len(s.open))
	}
	// 2 IPv4 ports with rules, 2 IPv6 ports with rules, loopback none.
	if d4, d6 := v4.Mutations-mut4, v6.Mutations-mut6; d4 != 4 || d6 != 4 {
		t.Fatalf("publishing made %d IPv4 and %d IPv6 rule changes, want 4 and 4", d4, d6)
	}
	golden(t, "ports-published.golden", "# iptables\n"+v4.Dump()+"# ip6tables\n"+v6.Dump())
	for _, k := range slices.Collect(func(yield func(portKey) bool) {
		for k := range s.open {
			if !yield(k) {
				return
			}
		}
	}) {
		if hp := m.ports[k]; hp == nil || !hp.proxy.(*fakeProxy).started {
			t.Errorf("socket %v is not a started proxy", k)
		}
	}

	// The same container port twice (-p 8080:80 -p 80): two host ports.
	twice, err := m.Publish(ctx, n, endpoint(epB, "10.1.0.3/24", ""), []dataplane.PortBinding{tcp(80, 9080), tcp(80, 0)})
	if err != nil {
		t.Fatal(err)
	}
	if want := "0.0.0.0:40001->10.1.0.3:80/tcp 0.0.0.0:9080->10.1.0.3:80/tcp [::]:40001->10.1.0.3:80/tcp [::]:9080->10.1.0.3:80/tcp"; strs(twice) != want {
		t.Fatalf("-p 9080:80 -p 80 published %s, want %s", strs(twice), want)
	}
	if err := m.Unpublish(ctx, n, endpoint(epB, "10.1.0.3/24", ""), twice); err != nil {
		t.Fatal(err)
	}
	s.opened -= 4

	// A repeat changes nothing.
	mut4, mut6 = v4.Mutations, v6.Mutations
	again, err := m.Publish(ctx, n, ep, []dataplane.PortBinding{tcp(80, 8080), udp, tcp(80, 8081, "127.0.0.1")})
	if err != nil || strs(again) != strs(pub) || v4.Mutations != mut4 || v6.Mutations != mut6 || s.opened != 5 {
		t.Fatalf("repeat: %s, %v (mutations %d/%d, sockets %d)", strs(again), err, v4.Mutations-mut4, v6.Mutations-mut6, s.opened)
	}

	for range 2 {
		if err := m.Unpublish(ctx, n, ep, pub); err != nil {
			t.Fatal(err)
		}
	}
	if v4.Dump() != base4 || v6.Dump() != base6 {
		t.Fatalf("after Unpublish:\n%s%s\nwant:\n%s%s", v4.Dump(), v6.Dump(), base4, base6)
	}
	if len(s.open) != 0 || len(m.ports) != 0 {
		t.Fatalf("sockets %v, table %v left", s.open, m.ports)
	}
}

// TestPublishSharedContainerPort: two host ports to one container port, and
// the same host port on two host addresses, have rules of their own, so
// unpublishing one leaves the other intact.
func TestPublishSharedContainerPort(t *testing.T) {
	ctx := context.Background()
	m, v4, _, _, n := portsMode(t)
	ep := endpoint(epA, "10.1.0.2/24", "")
	a, err := m.Publish(ctx, n, ep, []dataplane.PortBinding{tcp(80, 8080, "192.0.2.10")})
	if err != nil {
		t.Fatal(err)
	}
	mid := v4.Dump()
	b, err := m.Publish(ctx, n, ep, []dataplane.PortBinding{tcp(80, 8080, "192.0.2.11"), tcp(80, 8081, "192.0.2.10")})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Unpublish(ctx, n, ep, b); err != nil {
		t.Fatal(err)
	}
	if v4.Dump() != mid {
		t.Fatalf("unpublishing the second set touched the first:\n%s\nwant:\n%s", v4.Dump(), mid)
	}
	_ = a
}

func TestPublishConflicts(t *testing.T) {
	ctx := context.Background()
	m, v4, _, s, n := portsMode(t)
	ep1, ep2 := endpoint(epA, "10.1.0.2/24", ""), endpoint(epB, "10.1.0.3/24", "")
	if _, err := m.Publish(ctx, n, ep1, []dataplane.PortBinding{tcp(80, 8080)}); err != nil {
		t.Fatal(err)
	}
	before := v4.Dump()
	opened := len(s.open)

	check := func(name string, b dataplane.PortBinding, want string) {
		t.Helper()
		_, err := m.Publish(ctx, n, ep2, []dataplane.PortBinding{b})
		if !errors.Is(err, dataplane.ErrPortInUse) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want ErrPortInUse mentioning %q", name, err, want)
		}
		if v4.Dump() != before || len(s.open) != opened {
			t.Errorf("%s: a failed Publish left rules or sockets behind", name)
		}
	}
	check("same port, all addresses", tcp(80, 8080), "already published for another container (endpoint e1e2e3e4e5e6")
	check("same port, one address", tcp(81, 8080, "192.0.2.10"), "already published for another container")
	s.busy[portKey{dataplane.TCP, netip.MustParseAddrPort("0.0.0.0:9090")}] = true
	check("another program", tcp(80, 9090), "already in use by another program on this host")
	s.busy[portKey{dataplane.TCP, netip.MustParseAddrPort("0.0.0.0:9091")}] = true
	check("whole range taken", dataplane.PortBinding{Proto: dataplane.TCP, Port: 80, HostPort: 9090, HostPortEnd: 9091}, "every host port from 9090 to 9091 (tcp) is already in use")

	// A range takes the first free port; UDP does not conflict with TCP.
	got, err := m.Publish(ctx, n, ep2, []dataplane.PortBinding{
		{Proto: dataplane.TCP, Port: 80, HostPort: 9090, HostPortEnd: 9095, NoIPv6: true},
		{Proto: dataplane.UDP, Port: 80, HostPort: 8080, HostPortEnd: 8080, NoIPv6: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := "0.0.0.0:8080->10.1.0.3:80/udp 0.0.0.0:9092->10.1.0.3:80/tcp"; strs(got) != want {
		t.Fatalf("published %s, want %s", strs(got), want)
	}
	// The IPv6 side of a wildcard binding taken by another program fails the
	// whole binding; an ephemeral request then moves on to another port.
	s.busy[portKey{dataplane.TCP, netip.MustParseAddrPort("[::]:40003")}] = true
	s.next = 40002
	got, err = m.Publish(ctx, n, ep2, []dataplane.PortBinding{tcp(90, 0)})
	if err != nil {
		t.Fatal(err)
	}
	if want := "0.0.0.0:40004->10.1.0.3:90/tcp [::]:40004->10.1.0.3:90/tcp"; strs(got) != want {
		t.Fatalf("ephemeral: %s, want %s", strs(got), want)
	}
}

func TestPublishFailureLeavesNothing(t *testing.T) {
	ctx := context.Background()
	m, v4, v6, s, n := portsMode(t, withIPv6)
	ep := endpoint(epA, "10.1.0.2/24", "fd00:1::2/64")
	base4, base6 := v4.Dump(), v6.Dump()
	v6.Fail = func(op, table, chain string, _ []string) error {
		if op == "append" && chain == ChainPorts {
			return errors.New("kernel says no")
		}
		return nil
	}
	_, err := m.Publish(ctx, n, ep, []dataplane.PortBinding{tcp(80, 8081, "127.0.0.1"), tcp(80, 8080)})
	if err == nil || !strings.Contains(err.Error(), "kernel says no") {
		t.Fatalf("Publish: %v", err)
	}
	if v4.Dump() != base4 || v6.Dump() != base6 || len(s.open) != 0 || len(m.ports) != 0 {
		t.Fatalf("a failed Publish left rules or sockets:\n%s%s\nsockets %v", v4.Dump(), v6.Dump(), s.open)
	}
}

func TestPublishRefusals(t *testing.T) {
	ctx := context.Background()
	m, _, _, _, n := portsMode(t)
	ep := endpoint(epA, "10.1.0.2/24", "")
	for _, tc := range []struct {
		n    dataplane.Network
		b    dataplane.PortBinding
		want string
	}{
		{n, dataplane.PortBinding{Proto: "icmp", Port: 1}, "use tcp, udp or sctp"},
		{n, dataplane.PortBinding{Proto: dataplane.TCP}, "no container port"},
		{n, dataplane.PortBinding{Proto: dataplane.TCP, Port: 80, HostPort: 9, HostPortEnd: 8}, "ends before it starts"},
		{testNet(idA, 1, func(n *dataplane.Network) { n.Internal = true }), tcp(80, 8080), "internal"},
	} {
		if _, err := m.Publish(ctx, tc.n, ep, []dataplane.PortBinding{tc.b}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error mentioning %q", tc.b, err, tc.want)
		}
	}
}

// TestReconcilePorts: a restarted weft (new Mode, same kernel rules, no
// sockets) re-opens the recorded ports on the same host ports without
// touching their rules, and removes published-port rules nothing records.
func TestReconcilePorts(t *testing.T) {
	ctx := context.Background()
	m, v4, v6, _, n := portsMode(t, withIPv6)
	ep := endpoint(epA, "10.1.0.2/24", "fd00:1::2/64")
	pub, err := m.Publish(ctx, n, ep, []dataplane.PortBinding{tcp(80, 0), tcp(81, 8081, "127.0.0.1")})
	if err != nil {
		t.Fatal(err)
	}
	gone, err := m.Publish(ctx, n, endpoint(epB, "10.1.0.3/24", ""), []dataplane.PortBinding{tcp(80, 9000)})
	if err != nil {
		t.Fatal(err)
	}
	foreign := []string{"-p", "tcp", "-m", "tcp", "--dport", "7", "-j", "DNAT", "--to-destination", "10.9.9.9:7"}
	if err := v4.Append(fw.NAT, ChainDNAT, foreign...); err != nil {
		t.Fatal(err)
	}
	want4, want6 := v4.Dump(), v6.Dump()
	for _, p := range gone { // what must go
		for _, r := range portRules(n, p, true) {
			want4 = strings.Replace(want4, "-A "+r.Chain+" "+fw.Join(r.Spec)+"\n", "", 1)
		}
	}

	// "Restart": a new Mode over the same firewall, its sockets closed.
	restarted := New(nil, fw.NewWithTables(nil, v4, v6), nil)
	s2 := newFakeSockets()
	restarted.listen = s2.listen
	restarted.forwarding = func(fw.Family) bool { return true }
	for range 2 {
		if err := restarted.ReconcilePorts(ctx, []dataplane.EndpointPorts{{Network: n, Endpoint: ep, Ports: pub}}); err != nil {
			t.Fatal(err)
		}
	}
	if strs(restarted.publishedBy(ep.ID)) != strs(pub) || len(s2.open) != len(pub) {
		t.Fatalf("after reconcile: %s on %d sockets, want %s", strs(restarted.publishedBy(ep.ID)), len(s2.open), strs(pub))
	}
	if v4.Dump() != want4 || v6.Dump() != want6 {
		t.Fatalf("firewall after reconcile:\n%s%s\nwant:\n%s%s", v4.Dump(), v6.Dump(), want4, want6)
	}

	// A port someone else took meanwhile is reported; its rules stay.
	s3 := newFakeSockets()
	s3.busy[portKey{dataplane.TCP, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), 8081)}] = true
	third := New(nil, fw.NewWithTables(nil, v4, v6), nil)
	third.listen = s3.listen
	third.forwarding = func(fw.Family) bool { return true }
	err = third.ReconcilePorts(ctx, []dataplane.EndpointPorts{{Network: n, Endpoint: ep, Ports: pub}})
	if err == nil || !strings.Contains(err.Error(), "re-opening published port 127.0.0.1:8081") {
		t.Fatalf("ReconcilePorts with a taken port: %v", err)
	}
	if v4.Dump() != want4 {
		t.Fatal("rules changed because a socket could not be re-opened")
	}

	// Nothing recorded: every published-port rule goes, nothing else.
	if err := restarted.ReconcilePorts(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if len(s2.open) != 0 {
		t.Fatalf("sockets left: %v", s2.open)
	}
	for _, f := range []*fw.Fake{v4, v6} {
		d := f.Dump()
		if strings.Contains(d, "-j DNAT --to-destination 10.1.0") || strings.Contains(d, "--ctstate DNAT") || strings.Contains(d, "[fd00:1::2]") {
			t.Fatalf("published-port rules left:\n%s", d)
		}
		if !strings.Contains(d, "-A WEFT-DNAT -i weft-a1b2c3d4e5") {
			t.Fatalf("the network's RETURN went too:\n%s", d)
		}
	}
	if !strings.Contains(v4.Dump(), fw.Join(foreign)) {
		t.Fatal("an untagged rule in WEFT-DNAT was removed")
	}
}

// TestReconcileKeepsPortRules: the network-level Reconcile leaves the rules
// of published ports of known networks to ReconcilePorts.
func TestReconcileKeepsPortRules(t *testing.T) {
	ctx := context.Background()
	m, v4, v6, _, n := portsMode(t, withIPv6)
	if _, err := m.Publish(ctx, n, endpoint(epA, "10.1.0.2/24", "fd00:1::2/64"), []dataplane.PortBinding{tcp(80, 8080)}); err != nil {
		t.Fatal(err)
	}
	want4, want6 := v4.Dump(), v6.Dump()
	known := map[string]bool{strings.TrimPrefix(fw.Tag(n.ID), fw.TagPrefix): true}
	for _, fam := range []fw.Family{fw.IPv4, fw.IPv6} {
		want := map[string]bool{}
		for _, r := range networkRules(n, fam, m.dockerBridges) {
			want[r.String()] = true
		}
		if err := m.sweepRules(fam, known, nil, want); err != nil {
			t.Fatal(err)
		}
	}
	if v4.Dump() != want4 || v6.Dump() != want6 {
		t.Fatalf("sweep removed published-port rules:\n%s%s", v4.Dump(), v6.Dump())
	}
}

func TestUnpublishEndpoint(t *testing.T) {
	ctx := context.Background()
	m, v4, _, s, n := portsMode(t)
	base := v4.Dump()
	ep := endpoint(epA, "10.1.0.2/24", "")
	if _, err := m.Publish(ctx, n, ep, []dataplane.PortBinding{tcp(80, 8080), tcp(443, 8443)}); err != nil {
		t.Fatal(err)
	}
	other := endpoint(epB, "10.1.0.3/24", "")
	if _, err := m.Publish(ctx, n, other, []dataplane.PortBinding{tcp(80, 9080)}); err != nil {
		t.Fatal(err)
	}
	if err := m.unpublishEndpointLocked(n, ep.ID); err != nil {
		t.Fatal(err)
	}
	if got := strs(m.publishedBy(ep.ID)); got != "" {
		t.Fatalf("left %s", got)
	}
	if len(s.open) != 2 { // other's two sockets
		t.Fatalf("sockets %v", s.open)
	}
	if err := m.unpublishEndpointLocked(n, other.ID); err != nil {
		t.Fatal(err)
	}
	if v4.Dump() != base {
		t.Fatalf("rules left:\n%s", v4.Dump())
	}
}

// TestIPv4OnlyNetworkHasIPv6Rules: with ip6tables, an IPv4-only network gets
// the IPv6 filter rules too (ICC, isolation, router advertisement guard).
func TestIPv4OnlyNetworkHasIPv6Rules(t *testing.T) {
	m, _, v6 := newFirewallMode(t, true)
	applyNetwork(t, m, testNet(idA, 1, func(n *dataplane.Network) { n.Bridge.EnableICC = false }))
	golden(t, "rules-ipv4-only-ip6tables.golden", v6.Dump())
}

func TestGatewayModeRouted(t *testing.T) {
	m, v4, v6 := newFirewallMode(t, true)
	applyNetwork(t, m, testNet(idA, 1, withIPv6, func(n *dataplane.Network) { n.Bridge.GatewayModeIPv6 = dataplane.GatewayModeRouted }))
	if strings.Contains(v6.Dump(), "MASQUERADE") {
		t.Errorf("routed IPv6 is masqueraded:\n%s", v6.Dump())
	}
	if !strings.Contains(v4.Dump(), "MASQUERADE") {
		t.Errorf("IPv4 lost its masquerade:\n%s", v4.Dump())
	}
}
