package macvlan

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/weftnet/weft/dataplane"
	"github.com/weftnet/weft/dataplane/nl"
	"github.com/weftnet/weft/test/nstest"
)

// env is a throwaway "host" namespace with a macvlan Mode acting in it.
type env struct {
	t   *testing.T
	ns  netns.NsHandle
	nl  *nl.Handle
	raw *netlink.Handle
	m   *Mode
	ctx context.Context
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ns := nstest.Setup(t)
	h, err := nl.New(ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return &env{t: t, ns: ns, nl: h, raw: nstest.Netlink(t, ns), m: New(h, log), ctx: context.Background()}
}

// testWriter sends log lines to t.Log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// snapshot is the namespace as the shared leak checker sees it (links,
// addresses, routes, the rules of both iptables back-ends, ipsets; see
// nstest.Snapshot), for comparisons with a baseline.
func (e *env) snapshot() nstest.Snapshot {
	e.t.Helper()
	return nstest.Snap(e.t, e.ns)
}

// assertSame stops the test, naming every object that appeared or went,
// unless the namespace is (back) as it was in base.
func (e *env) assertSame(base nstest.Snapshot, what string) {
	e.t.Helper()
	nstest.RequireUnchanged(e.t, e.ns, base, what)
}

// parent adds a veth pair name/name+"p" (up, MTU mtu) to play a host NIC.
func (e *env) parent(name string, mtu int) netlink.Link {
	e.t.Helper()
	la := netlink.NewLinkAttrs()
	la.Name, la.MTU = name, mtu
	if err := e.raw.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: name + "p"}); err != nil {
		e.t.Fatal(err)
	}
	for _, n := range []string{name, name + "p"} {
		l, err := e.raw.LinkByName(n)
		if err != nil {
			e.t.Fatal(err)
		}
		if err := e.raw.LinkSetUp(l); err != nil {
			e.t.Fatal(err)
		}
	}
	l, err := e.raw.LinkByName(name)
	if err != nil {
		e.t.Fatal(err)
	}
	return l
}

func (e *env) mustCreate(n dataplane.Network) {
	e.t.Helper()
	if err := e.m.CreateNetwork(e.ctx, n); err != nil {
		e.t.Fatalf("CreateNetwork: %v", err)
	}
}

func (e *env) mustDelete(n dataplane.Network) {
	e.t.Helper()
	if err := e.m.DeleteNetwork(e.ctx, n); err != nil {
		e.t.Fatalf("DeleteNetwork: %v", err)
	}
}

// link returns the link called name, failing the test if it is missing.
func (e *env) link(name string) netlink.Link {
	e.t.Helper()
	l, err := e.raw.LinkByName(name)
	if err != nil {
		e.t.Fatalf("link %s: %v", name, err)
	}
	return l
}

// gone fails the test unless no link is called name.
func (e *env) gone(name string) {
	e.t.Helper()
	if l, err := e.raw.LinkByName(name); err == nil {
		e.t.Fatalf("link %s (%s, alias %q) still exists", name, l.Type(), l.Attrs().Alias)
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

// endpoint is ep on n with address cidr and a MAC derived from it.
func endpoint(n dataplane.Network, id, cidr string) dataplane.Endpoint {
	p := netip.MustParsePrefix(cidr)
	mac := net.HardwareAddr{0x02, 0x42, 0, 0, 0, 0}
	if p.Addr().Is4() {
		a := p.Addr().As4()
		copy(mac[2:], a[:])
	}
	ep := dataplane.Endpoint{ID: id, NetworkID: n.ID, MAC: mac}
	if p.Addr().Is4() {
		ep.IPv4 = p
	} else {
		ep.IPv6 = p
	}
	return ep
}

// ctr is a "container" (or a LAN machine): a namespace and its address.
type ctr struct {
	name string
	ns   netns.NsHandle
	addr netip.Addr
}

// attach creates ep on n, joins it, and moves the link into a new namespace
// configured the way dockerd would (address, up, default route via the
// gateway Join returned).
func (e *env) attach(n dataplane.Network, epID, cidr string) ctr {
	e.t.Helper()
	ep := endpoint(n, epID, cidr)
	if err := e.m.CreateEndpoint(e.ctx, n, ep); err != nil {
		e.t.Fatalf("CreateEndpoint: %v", err)
	}
	info, err := e.m.Join(e.ctx, n, ep)
	if err != nil {
		e.t.Fatalf("Join: %v", err)
	}
	return e.moveInto(info.SrcName, "c-"+cidr, nstest.NewNS(e.t), netip.MustParsePrefix(cidr), info.Gateway)
}

// moveInto moves link from the test namespace into ns and configures it there.
func (e *env) moveInto(link, name string, ns netns.NsHandle, p netip.Prefix, gw netip.Addr) ctr {
	e.t.Helper()
	l := e.link(link)
	if err := e.raw.LinkSetNsFd(l, int(ns)); err != nil {
		e.t.Fatal(err)
	}
	configure(e.t, ns, link, p, gw)
	return ctr{name: name, ns: ns, addr: p.Addr()}
}

// configure gives link (in ns) address p, sets it up, and adds a default
// route via gw if valid.
func configure(t *testing.T, ns netns.NsHandle, link string, p netip.Prefix, gw netip.Addr) {
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
	if gw.IsValid() {
		if err := h.RouteAdd(&netlink.Route{LinkIndex: l.Attrs().Index, Gw: gw.AsSlice()}); err != nil {
			t.Fatal(err)
		}
	}
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// serve listens on c's address:port inside c and reports each client's
// address on the returned channel.
func serve(t *testing.T, c ctr, port int) <-chan string {
	t.Helper()
	var ln net.Listener
	err := nstest.Do(c.ns, func() (err error) {
		ln, err = net.Listen("tcp", netip.AddrPortFrom(c.addr, uint16(port)).String())
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	peers := make(chan string, 16)
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			host, _, _ := net.SplitHostPort(conn.RemoteAddr().String())
			_ = conn.Close()
			select {
			case peers <- host:
			default:
			}
		}
	}()
	return peers
}

// connect opens a TCP connection from inside from to addr:port.
func connect(from ctr, to netip.Addr, port int, timeout time.Duration) error {
	return nstest.Do(from.ns, func() error {
		conn, err := net.DialTimeout("tcp", netip.AddrPortFrom(to, uint16(port)).String(), timeout)
		if err != nil {
			return err
		}
		return conn.Close()
	})
}

const (
	okTimeout      = 5 * time.Second
	blockedTimeout = 700 * time.Millisecond
)

// mustReach fails unless from can connect to to's port 80 and to sees the
// client as wantPeer (if set).
func mustReach(t *testing.T, from, to ctr, peers <-chan string, wantPeer string) {
	t.Helper()
	if err := connect(from, to.addr, 80, okTimeout); err != nil {
		t.Fatalf("%s → %s: %v, want a connection", from.name, to.name, err)
	}
	select {
	case got := <-peers:
		if wantPeer != "" && got != wantPeer {
			t.Fatalf("%s → %s: server saw client %s, want %s", from.name, to.name, got, wantPeer)
		}
	case <-time.After(okTimeout):
		t.Fatalf("%s → %s: server saw no connection", from.name, to.name)
	}
}

// mustNotReach fails if from can connect to to's port 80.
func mustNotReach(t *testing.T, from, to ctr) {
	t.Helper()
	if err := connect(from, to.addr, 80, blockedTimeout); err == nil {
		t.Fatalf("%s → %s connected, want it blocked", from.name, to.name)
	}
}

// sysctl reads (value == "") or writes a sysctl of ns, e.g.
// "net/ipv6/conf/eth0/disable_ipv6".
func sysctl(ns netns.NsHandle, path, value string) (string, error) {
	var got string
	err := nstest.Do(ns, func() error {
		p := "/proc/sys/" + path
		if value != "" {
			return os.WriteFile(p, []byte(value), 0o644)
		}
		b, err := os.ReadFile(p)
		got = strings.TrimSpace(string(b))
		return err
	})
	return got, err
}

func mustSysctl(t *testing.T, ns netns.NsHandle, path, value string) string {
	t.Helper()
	got, err := sysctl(ns, path, value)
	if err != nil {
		t.Fatal(err)
	}
	return got
}
