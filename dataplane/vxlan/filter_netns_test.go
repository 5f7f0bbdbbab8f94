package vxlan

import (
	"encoding/binary"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/weftnet/weft/dataplane"
	"github.com/weftnet/weft/dataplane/fw"
	"github.com/weftnet/weft/dataplane/nl"
	"github.com/weftnet/weft/test/nstest"
)

// forge sends, from inside host h and from source address src, a VXLAN
// packet to dst:4789 carrying an Ethernet frame for c: IPv4/UDP from
// 10.50.0.99 to c's address, port 9999, payload msg.
func forge(t *testing.T, h *host, src, dst netip.Addr, c ctr, msg string) {
	t.Helper()
	payload := []byte(msg)
	udp := make([]byte, 8+len(payload))
	binary.BigEndian.PutUint16(udp[0:], 12345)
	binary.BigEndian.PutUint16(udp[2:], 9999)
	binary.BigEndian.PutUint16(udp[4:], uint16(len(udp)))
	copy(udp[8:], payload) // checksum 0: none, allowed over IPv4
	ip := make([]byte, 20)
	ip[0], ip[8], ip[9] = 0x45, 64, 17
	binary.BigEndian.PutUint16(ip[2:], uint16(20+len(udp)))
	binary.BigEndian.PutUint16(ip[6:], 0x4000)
	s4, d4 := netip.MustParseAddr("10.50.0.99").As4(), c.addr.As4()
	copy(ip[12:], s4[:])
	copy(ip[16:], d4[:])
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(ip[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(ip[10:], ^uint16(sum))
	frame := append(append(append([]byte{}, c.ep.MAC...), macFor(netip.MustParseAddr("10.50.0.99"))...), 0x08, 0x00)
	frame = append(append(frame, ip...), udp...)
	vx := []byte{0x08, 0, 0, 0, 0, 0, vni, 0}
	pkt := append(vx, frame...)
	err := doIn(h, func() error {
		conn, err := net.DialUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0)), net.UDPAddrFromAddrPort(netip.AddrPortFrom(dst, port)))
		if err != nil {
			return err
		}
		defer conn.Close()
		_, err = conn.Write(pkt)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// listen opens UDP 9999 on c's address, inside c.
func listen(t *testing.T, c ctr) net.PacketConn {
	t.Helper()
	var pc net.PacketConn
	if err := doIn(&host{ns: c.ns}, func() (err error) {
		pc, err = net.ListenPacket("udp4", netip.AddrPortFrom(c.addr, 9999).String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	return pc
}

// received reports whether pc gets msg within wait (other messages, from
// earlier tries, are skipped).
func received(pc net.PacketConn, msg string, wait time.Duration) bool {
	deadline := time.Now().Add(wait)
	buf := make([]byte, 2048)
	for {
		_ = pc.SetReadDeadline(deadline)
		n, _, err := pc.ReadFrom(buf)
		if err != nil {
			return false
		}
		if string(buf[:n]) == msg {
			return true
		}
	}
}

// mustArrive forges from src until c receives it (a fresh message each
// try), within a generous deadline.
func mustArrive(t *testing.T, b *host, src netip.Addr, c ctr, pc net.PacketConn) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; ; i++ {
		msg := "try-" + src.String() + "-" + time.Now().Format(time.RFC3339Nano)
		forge(t, b, src, vtepA, c, msg)
		if received(pc, msg, 300*time.Millisecond) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("a VXLAN packet from %s never reached %s", src, c.name)
		}
	}
}

// mustNotArrive forges from src three times and fails if c receives any.
func mustNotArrive(t *testing.T, b *host, src netip.Addr, c ctr, pc net.PacketConn) {
	t.Helper()
	for i := range 3 {
		msg := "blocked-" + src.String() + "-" + string(rune('a'+i))
		forge(t, b, src, vtepA, c, msg)
		if received(pc, msg, 500*time.Millisecond) {
			t.Fatalf("a VXLAN packet from %s reached %s, want it dropped", src, c.name)
		}
	}
}

// doIn runs fn inside h's namespace.
func doIn(h *host, fn func() error) error { return inNamespace(h.ns, fn) }

// TestNetnsKnownVTEPFilter: with a firewall, host A accepts encapsulated
// packets only from its peers' VTEPs and the VTEPs given to SetKnownVTEPs;
// a forged packet from another underlay address does not reach a container.
// Removing the filter's pieces behind weft's back shows in Check and Repair
// puts them back; the rules and sets go with the last network.
func TestNetnsKnownVTEPFilter(t *testing.T) {
	a, b := newHosts(t, 1500)
	f, err := fw.New(slog.New(slog.NewTextHandler(testWriter{t, "fw"}, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.nl.IpsetSupported(); err != nil {
		t.Skipf("missing kernel feature: ipset: %v", err)
	}
	// As on a Docker host: bridged traffic that no rule accepts is dropped.
	nstest.Run(t, "iptables", "-P", "FORWARD", "DROP")
	t.Cleanup(func() { nstest.Run(t, "iptables", "-P", "FORWARD", "ACCEPT") })
	a.m = New(a.nl, nil, WithVTEP(vtepA), WithNamespace(a.ns), WithFirewall(f))
	stranger := netip.MustParseAddr("10.99.0.66")
	if err := b.raw.AddrAdd(b.link("ul0"), &netlink.Addr{IPNet: ipNet(netip.PrefixFrom(stranger, 24))}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.raw.AddrDel(b.link("ul0"), &netlink.Addr{IPNet: ipNet(netip.PrefixFrom(stranger, 24))}) })

	n := network(idA, vni)
	for range 2 {
		a.mustCreate(n)
		b.mustCreate(n)
	}
	c1 := a.attach(n, endpoint(n, ep1, "10.50.0.11/24", ""))
	c2 := b.attach(n, endpoint(n, ep2, "10.50.0.12/24", ""))
	a.mustSetPeers(idA, c2.peer(vtepB))
	b.mustSetPeers(idA, c1.peer(vtepA))
	waitPing(t, c1, c2.addr, 56)
	if why, err := a.m.Check(a.ctx); why != "" || err != nil {
		t.Fatalf("Check = %q, %v", why, err)
	}

	// Without the FORWARD rule, the bridged traffic is dropped.
	if err := f.DeleteRule(fw.IPv4, Local().bridgedRule()); err != nil {
		t.Fatal(err)
	}
	noPing(t, c1, c2.addr)
	if why, _ := a.m.Check(a.ctx); why == "" {
		t.Fatal("Check did not notice the missing FORWARD rule")
	}
	if err := a.m.Repair(a.ctx); err != nil {
		t.Fatal(err)
	}
	waitPing(t, c1, c2.addr, 56)

	pc := listen(t, c1)
	mustArrive(t, b, vtepB, c1, pc)
	mustNotArrive(t, b, stranger, c1, pc)

	// A host the store knows is accepted, and no longer once it left.
	if err := a.m.SetKnownVTEPs(a.ctx, []netip.Addr{stranger}); err != nil {
		t.Fatal(err)
	}
	mustArrive(t, b, stranger, c1, pc)
	if err := a.m.SetKnownVTEPs(a.ctx, nil); err != nil {
		t.Fatal(err)
	}
	mustNotArrive(t, b, stranger, c1, pc)

	// The set member removed behind weft's back: Check names it, Repair
	// puts it back.
	if err := a.nl.SetDel(Local().set4, nl.SetMember{Net: netip.PrefixFrom(vtepB, 32)}); err != nil {
		t.Fatal(err)
	}
	mustNotArrive(t, b, vtepB, c1, pc)
	if why, _ := a.m.Check(a.ctx); why == "" {
		t.Fatal("Check did not notice the missing set member")
	}
	if err := a.m.Repair(a.ctx); err != nil {
		t.Fatal(err)
	}
	mustArrive(t, b, vtepB, c1, pc)
	// The rule deleted: Check names it, Repair puts it back.
	if err := f.DeleteRule(fw.IPv4, Local().filterRule(fw.IPv4, port)); err != nil {
		t.Fatal(err)
	}
	if why, _ := a.m.Check(a.ctx); why == "" {
		t.Fatal("Check did not notice the missing rule")
	}
	if err := a.m.Repair(a.ctx); err != nil {
		t.Fatal(err)
	}
	mustNotArrive(t, b, stranger, c1, pc)

	// A peer removed is no longer accepted.
	a.mustSetPeers(idA)
	mustNotArrive(t, b, vtepB, c1, pc)

	// A restarted weft's Reconcile keeps the filter; with no network left
	// it removes it.
	fresh := New(a.nl, nil, WithVTEP(vtepA), WithNamespace(a.ns), WithFirewall(f))
	if err := fresh.Reconcile(a.ctx, []dataplane.Network{n}, []dataplane.Endpoint{c1.ep}); err != nil {
		t.Fatal(err)
	}
	mustNotArrive(t, b, stranger, c1, pc)
	if err := fresh.DeleteEndpoint(a.ctx, n, c1.ep); err != nil {
		t.Fatal(err)
	}
	if err := fresh.Reconcile(a.ctx, nil, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := a.nl.SetMembers(Local().set4); !errors.Is(err, nl.ErrSetNotFound) {
		t.Fatalf("the VTEP set outlived the last network: %v", err)
	}
	if err := b.m.DeleteEndpoint(b.ctx, n, c2.ep); err != nil {
		t.Fatal(err)
	}
	b.mustDelete(n)
	// And DeleteNetwork of the last network removes it too.
	a.mustCreate(n)
	if _, err := a.nl.SetMembers(Local().set4); err != nil {
		t.Fatalf("no VTEP set after CreateNetwork: %v", err)
	}
	a.mustDelete(n)
	if _, err := a.nl.SetMembers(Local().set4); !errors.Is(err, nl.ErrSetNotFound) {
		t.Fatalf("the VTEP set outlived DeleteNetwork of the last network: %v", err)
	}
}
