package vxlan

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/weftnet/weft/dataplane"
	"github.com/weftnet/weft/dataplane/nl"
	"github.com/weftnet/weft/test/nstest"
)

// Two "hosts" are two network namespaces joined by a veth pair, the
// underlay: host A is the test's own namespace (nstest.Setup), host B a
// second one. Each has a vxlan Mode acting in it, with the underlay address
// as VTEP. "Containers" are further namespaces holding an endpoint's
// container end, configured the way dockerd would configure it.

const (
	idA  = "aaaaaaaaaaaa1111111111111111111111111111111111111111111111111111"
	idB  = "bbbbbbbbbbbb2222222222222222222222222222222222222222222222222222"
	ep1  = "e1e1e1e1e1e1000000000000000000000000000000000000000000000000000a"
	ep2  = "e2e2e2e2e2e2000000000000000000000000000000000000000000000000000b"
	ep3  = "e3e3e3e3e3e3000000000000000000000000000000000000000000000000000c"
	vni  = 42
	port = 4789
)

var (
	vtepA = netip.MustParseAddr("10.99.0.1")
	vtepB = netip.MustParseAddr("10.99.0.2")
)

// host is one test host.
type host struct {
	t    *testing.T
	name string
	ns   netns.NsHandle
	nl   *nl.Handle
	raw  *netlink.Handle
	m    *Mode
	vtep netip.Addr
	ctx  context.Context
}

func newHost(t *testing.T, name string, ns netns.NsHandle, vtep netip.Addr, opts ...Option) *host {
	t.Helper()
	h, err := nl.New(ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	log := slog.New(slog.NewTextHandler(testWriter{t, name}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	opts = append([]Option{WithVTEP(vtep), WithNamespace(ns)}, opts...)
	return &host{t: t, name: name, ns: ns, nl: h, raw: nstest.Netlink(t, ns), m: New(h, log, opts...), vtep: vtep, ctx: context.Background()}
}

// testWriter sends log lines to t.Log.
type testWriter struct {
	t    *testing.T
	name string
}

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(w.name + ": " + strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// newHosts builds hosts A and B on a veth underlay with MTU mtu and
// registers the leak check of both namespaces (after the underlay, so the
// check is against it).
func newHosts(t *testing.T, mtu int, opts ...Option) (a, b *host) {
	t.Helper()
	nsA := nstest.Setup(t)
	nsB := nstest.NewNS(t)
	a = newHost(t, "A", nsA, vtepA, opts...)
	b = newHost(t, "B", nsB, vtepB, opts...)
	la := netlink.NewLinkAttrs()
	la.Name, la.MTU = "ul0", mtu
	if err := a.raw.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: "ulb"}); err != nil {
		t.Fatal(err)
	}
	if err := a.raw.LinkSetNsFd(a.link("ulb"), int(nsB)); err != nil {
		t.Fatal(err)
	}
	if err := b.raw.LinkSetName(b.link("ulb"), "ul0"); err != nil {
		t.Fatal(err)
	}
	configure(t, nsA, "ul0", netip.PrefixFrom(vtepA, 24))
	configure(t, nsB, "ul0", netip.PrefixFrom(vtepB, 24))
	nstest.CheckLeaks(t, nsA)
	nstest.CheckLeaks(t, nsB)
	return a, b
}

// network is a vxlan network with id on 10.50.0.0/24 with the given VNI.
func network(id string, vni uint32, opts ...func(*dataplane.Network)) dataplane.Network {
	n := dataplane.Network{
		ID: id, Mode: dataplane.Vxlan,
		IPv4:  []dataplane.Subnet{{Pool: netip.MustParsePrefix("10.50.0.0/24")}},
		Vxlan: dataplane.VxlanOptions{VNI: vni},
	}
	for _, o := range opts {
		o(&n)
	}
	return n
}

func (h *host) mustCreate(n dataplane.Network) {
	h.t.Helper()
	if err := h.m.CreateNetwork(h.ctx, n); err != nil {
		h.t.Fatalf("%s: CreateNetwork: %v", h.name, err)
	}
}

func (h *host) mustDelete(n dataplane.Network) {
	h.t.Helper()
	if err := h.m.DeleteNetwork(h.ctx, n); err != nil {
		h.t.Fatalf("%s: DeleteNetwork: %v", h.name, err)
	}
}

func (h *host) mustSetPeers(id string, peers ...Peer) {
	h.t.Helper()
	if err := h.m.SetPeers(h.ctx, id, peers); err != nil {
		h.t.Fatalf("%s: SetPeers: %v", h.name, err)
	}
}

func (h *host) kernelPeers(id string) []Peer {
	h.t.Helper()
	ps, err := h.m.KernelPeers(h.ctx, id)
	if err != nil {
		h.t.Fatalf("%s: KernelPeers: %v", h.name, err)
	}
	return ps
}

// link returns the link called name, failing the test if it is missing.
func (h *host) link(name string) netlink.Link {
	h.t.Helper()
	l, err := h.raw.LinkByName(name)
	if err != nil {
		h.t.Fatalf("%s: link %s: %v", h.name, name, err)
	}
	return l
}

// gone fails the test unless no link is called name.
func (h *host) gone(name string) {
	h.t.Helper()
	if l, err := h.raw.LinkByName(name); err == nil {
		h.t.Fatalf("%s: link %s (%s, alias %q) still exists", h.name, name, l.Type(), l.Attrs().Alias)
	}
}

// ctr is a "container": a namespace, its endpoint and its address.
type ctr struct {
	name string
	ns   netns.NsHandle
	ep   dataplane.Endpoint
	addr netip.Addr
}

// peer is c as a remote endpoint of a host whose VTEP is vtep.
func (c ctr) peer(vtep netip.Addr) Peer {
	return Peer{VTEP: vtep, MAC: c.ep.MAC, IPv4: c.ep.IPv4.Addr(), IPv6: c.ep.IPv6.Addr()}
}

// macFor derives a MAC from an IPv4 address as Docker does (02:42:a.b.c.d).
func macFor(a netip.Addr) net.HardwareAddr {
	b := a.As4()
	return net.HardwareAddr{0x02, 0x42, b[0], b[1], b[2], b[3]}
}

// endpoint is epID on n with address cidr (IPv4) and, if v6 is set, that.
func endpoint(n dataplane.Network, epID, cidr, v6 string) dataplane.Endpoint {
	p := netip.MustParsePrefix(cidr)
	ep := dataplane.Endpoint{ID: epID, NetworkID: n.ID, IPv4: p, MAC: macFor(p.Addr())}
	if v6 != "" {
		ep.IPv6 = netip.MustParsePrefix(v6)
	}
	return ep
}

// attach creates ep on n on h, joins it, and moves the container end into a
// new namespace configured as dockerd would (addresses, up; no gateway).
func (h *host) attach(n dataplane.Network, ep dataplane.Endpoint) ctr {
	h.t.Helper()
	for range 2 {
		if err := h.m.CreateEndpoint(h.ctx, n, ep); err != nil {
			h.t.Fatalf("%s: CreateEndpoint: %v", h.name, err)
		}
	}
	info, err := h.m.Join(h.ctx, n, ep)
	if err != nil {
		h.t.Fatalf("%s: Join: %v", h.name, err)
	}
	if info.Gateway.IsValid() || info.GatewayIPv6.IsValid() || len(info.Routes) > 0 || info.DisableGatewayService != n.Internal || info.DstPrefix != "eth" {
		h.t.Fatalf("%s: Join = %+v, want no gateway, no routes, DisableGatewayService=%v", h.name, info, n.Internal)
	}
	ns := nstest.NewNS(h.t)
	if err := h.raw.LinkSetNsFd(h.link(info.SrcName), int(ns)); err != nil {
		h.t.Fatal(err)
	}
	configure(h.t, ns, info.SrcName, ep.IPv4)
	if ep.IPv6.IsValid() {
		cl := nstest.Netlink(h.t, ns)
		l, err := cl.LinkByName(info.SrcName)
		if err != nil {
			h.t.Fatal(err)
		}
		if err := cl.AddrAdd(l, &netlink.Addr{IPNet: ipNet(ep.IPv6), Flags: 0x02 /* IFA_F_NODAD, as dockerd */}); err != nil {
			h.t.Fatal(err)
		}
	}
	return ctr{name: h.name + "/" + ep.IPv4.Addr().String(), ns: ns, ep: ep, addr: ep.IPv4.Addr()}
}

// configure gives link (in ns) address p and sets it up.
func configure(t *testing.T, ns netns.NsHandle, link string, p netip.Prefix) {
	t.Helper()
	h := nstest.Netlink(t, ns)
	l, err := h.LinkByName(link)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.AddrAdd(l, &netlink.Addr{IPNet: ipNet(p)}); err != nil {
		t.Fatal(err)
	}
	if err := h.LinkSetUp(l); err != nil {
		t.Fatal(err)
	}
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// ping sends one echo request (busybox's ping: Debian's busybox-static,
// which scripts/test.sh installs) from inside from to addr, with size bytes
// of payload, and reports whether a reply came within a second.
func ping(from netns.NsHandle, addr netip.Addr, size int) error {
	bin, err := exec.LookPath("busybox")
	if err != nil {
		return fmt.Errorf("busybox (package busybox-static) is needed for ping: %w", err)
	}
	args := []string{"ping", "-c", "1", "-W", "1", "-s", fmt.Sprint(size)}
	if addr.Is6() {
		args = append(args, "-6")
	}
	args = append(args, addr.String())
	return nstest.Do(from, func() error {
		out, err := exec.Command(bin, args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("ping %s: %v: %s", addr, err, strings.TrimSpace(string(out)))
		}
		return nil
	})
}

// waitPing pings until a reply comes or the deadline (generous: a loaded
// 2-core machine) passes.
func waitPing(t *testing.T, from ctr, to netip.Addr, size int) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := ping(from.ns, to, size)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s → %s (%d bytes): no reply: %v", from.name, to, size, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// noPing fails if from gets replies from to on three tries.
func noPing(t *testing.T, from ctr, to netip.Addr) {
	t.Helper()
	for range 3 {
		if err := ping(from.ns, to, 56); err == nil {
			t.Fatalf("%s → %s: a reply came, want none", from.name, to)
		}
	}
}

// mustFail fails the test unless err is non-nil and mentions every want.
func mustFail(t *testing.T, what string, err error, want ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s succeeded, want an error mentioning %q", what, want)
	}
	t.Logf("%s: %v", what, err)
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("%s: error %q does not mention %q", what, err, w)
		}
	}
}
