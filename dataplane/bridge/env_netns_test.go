package bridge

import (
	"context"
	"io"
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
	"github.com/weftnet/weft/dataplane/fw"
	"github.com/weftnet/weft/dataplane/nl"
	"github.com/weftnet/weft/test/nstest"
)

// env is a throwaway "host" namespace with a bridge Mode acting in it. The
// test goroutine is inside the namespace, so iptables calls (which exec the
// iptables binary from this thread) act there too.
type env struct {
	t   *testing.T
	ns  netns.NsHandle
	nl  *nl.Handle
	raw *netlink.Handle
	fw  *fw.Firewall
	m   *Mode
	ctx context.Context
	// ipt is the iptables program of the env's back-end, for the test's
	// own rules.
	ipt string
}

// envOpts choose the firewall of an env.
type envOpts struct {
	// sets selects the set design (device groups and ipsets, sets.go);
	// false keeps one set of rules per network.
	sets bool
	// legacy selects iptables' legacy back-end (default: nft).
	legacy bool
	// tables, if set, replace the real IPv4 Tables.
	tables fw.Tables
}

func (o envOpts) String() string {
	design, backend := "rules", "nft"
	if o.sets {
		design = "sets"
	}
	if o.legacy {
		backend = "legacy"
	}
	return design + "-" + backend
}

// firewalls are the designs and back-ends traffic tests run with: the set
// design on both back-ends (device-group matches are restricted to certain
// hooks on legacy), and the rule design (kernels without ipset).
var firewalls = []envOpts{{sets: true}, {sets: true, legacy: true}, {}}

// newEnv sets up the namespace like a Docker host: FORWARD policy DROP, as
// dockerd leaves it, with the set design (weft's default) on the nft
// back-end. tables, if
// given, replace the real IPv4 Tables.
func newEnv(t *testing.T, tables ...fw.Tables) *env {
	t.Helper()
	o := envOpts{sets: true}
	if len(tables) > 0 {
		o.tables = tables[0]
	}
	return newEnvWith(t, o)
}

// newEnvWith is newEnv with the firewall chosen by o.
func newEnvWith(t *testing.T, o envOpts) *env {
	t.Helper()
	ns := nstest.Setup(t)
	h, err := nl.New(ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	v4bin, v6bin := "iptables", "ip6tables"
	if o.legacy {
		v4bin, v6bin = "iptables-legacy", "ip6tables-legacy"
	}
	// Like dockerd: FORWARD policy DROP, and the nat tables exist. (With
	// iptables-nft, a table comes into being on first use and stays, empty,
	// when the last rule goes; a Docker host always has them.)
	for _, bin := range []string{v4bin, v6bin} {
		nstest.Run(t, bin, "-P", "FORWARD", "DROP")
		nstest.Run(t, bin, "-t", "nat", "-P", "POSTROUTING", "ACCEPT")
	}
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var f *fw.Firewall
	if o.tables != nil {
		v6, err := fw.Open(fw.IPv6, v6bin)
		if err != nil {
			t.Fatal(err)
		}
		f = fw.NewWithTables(log, o.tables, v6)
	} else if f, err = fw.New(log, fw.Binaries(v4bin, v6bin)); err != nil {
		t.Fatal(err)
	}
	if !f.Has(fw.IPv6) {
		t.Fatal("ip6tables unusable in the test namespace")
	}
	var opts []Option
	if o.sets {
		nstest.RequireKernelFeature(t, "ipset", h.IpsetSupported)
		opts = append(opts, WithSets(h))
	}
	return &env{t: t, ns: ns, nl: h, raw: nstest.Netlink(t, ns), fw: f, m: drained(t, New(h, f, log, opts...)), ctx: context.Background(), ipt: v4bin}
}

// drained has m's background veth deletions finish before the test ends
// (and before the namespace and handle it uses go, whose cleanups were
// registered earlier and so run later).
func drained(t *testing.T, m *Mode) *Mode {
	t.Cleanup(func() {
		if err := m.Drain(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return m
}

// sameDesign are the options that give a new Mode m's firewall design (a
// "restarted" weft).
func sameDesign(m *Mode) []Option {
	if m.sets != nil {
		return []Option{WithSets(m.sets)}
	}
	return nil
}

// testWriter sends log lines to t.Log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

var _ io.Writer = testWriter{}

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

// plantDocker adds what dockerd would have: a DOCKER-USER chain jumped to
// from FORWARD and a MASQUERADE rule for docker0, so tests see that weft
// leaves them alone and puts its own jump above them.
func (e *env) plantDocker() {
	e.t.Helper()
	for _, args := range [][]string{
		{"-N", "DOCKER-USER"},
		{"-A", "DOCKER-USER", "-j", "RETURN"},
		{"-A", "FORWARD", "-j", "DOCKER-USER"},
		{"-t", "nat", "-A", "POSTROUTING", "-s", "172.17.0.0/16", "!", "-o", "docker0", "-j", "MASQUERADE"},
	} {
		nstest.Run(e.t, e.ipt, args...)
	}
}

// netSpec is a bridge network with Docker's defaults (icc and masquerade on)
// on 10.<octet>.0.0/24, gateway .1.
func netSpec(id string, octet byte, mut ...func(*dataplane.Network)) dataplane.Network {
	return testNet(id, octet, mut...)
}

func (e *env) mustCreate(n dataplane.Network) {
	e.t.Helper()
	if err := e.m.CreateNetwork(e.ctx, n); err != nil {
		e.t.Fatalf("CreateNetwork: %v", err)
	}
}

// ctr is a "container": a namespace with one interface configured the way
// dockerd would configure it after Join.
type ctr struct {
	name string
	ns   netns.NsHandle
	addr netip.Addr
}

// attach creates ep on n, joins it, moves the container end into a new
// namespace and configures it there (address, up, default route via the
// gateway Join returned, or via gw if given, as an internal network's
// container might try).
func (e *env) attach(n dataplane.Network, epID, cidr string, gw ...string) ctr {
	e.t.Helper()
	p := netip.MustParsePrefix(cidr)
	a4 := p.Addr().As4()
	ep := dataplane.Endpoint{ID: epID, NetworkID: n.ID, IPv4: p, MAC: net.HardwareAddr{0x02, 0x42, a4[0], a4[1], a4[2], a4[3]}}
	if err := e.m.CreateEndpoint(e.ctx, n, ep); err != nil {
		e.t.Fatalf("CreateEndpoint: %v", err)
	}
	info, err := e.m.Join(e.ctx, n, ep)
	if err != nil {
		e.t.Fatalf("Join: %v", err)
	}
	route := info.Gateway
	if len(gw) > 0 {
		route = netip.MustParseAddr(gw[0])
	}
	return e.container(info.SrcName, p, route)
}

// container moves link into a new namespace and configures it.
func (e *env) container(link string, p netip.Prefix, gw netip.Addr) ctr {
	e.t.Helper()
	c := ctr{name: link, ns: nstest.NewNS(e.t), addr: p.Addr()}
	l, err := e.raw.LinkByName(link)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.raw.LinkSetNsFd(l, int(c.ns)); err != nil {
		e.t.Fatal(err)
	}
	ch := nstest.Netlink(e.t, c.ns)
	if l, err = ch.LinkByName(link); err != nil {
		e.t.Fatal(err)
	}
	ipn := &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
	if err := ch.AddrAdd(l, &netlink.Addr{IPNet: ipn}); err != nil {
		e.t.Fatal(err)
	}
	if err := ch.LinkSetUp(l); err != nil {
		e.t.Fatal(err)
	}
	if gw.IsValid() {
		if err := ch.RouteAdd(&netlink.Route{LinkIndex: l.Attrs().Index, Gw: gw.AsSlice()}); err != nil {
			e.t.Fatal(err)
		}
	}
	return c
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

// connect opens a TCP connection from inside from to to:port.
func connect(from, to ctr, port int, timeout time.Duration) error {
	return nstest.Do(from.ns, func() error {
		conn, err := net.DialTimeout("tcp", netip.AddrPortFrom(to.addr, uint16(port)).String(), timeout)
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

// mustReach fails unless from can connect to to (and, if wantPeer is set,
// to sees the client as wantPeer).
func mustReach(t *testing.T, from, to ctr, peers <-chan string, wantPeer string) {
	t.Helper()
	if err := connect(from, to, 80, okTimeout); err != nil {
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

// mustNotReach fails if from can connect to to.
func mustNotReach(t *testing.T, from, to ctr) {
	t.Helper()
	if err := connect(from, to, 80, blockedTimeout); err == nil {
		t.Fatalf("%s → %s connected, want it blocked", from.name, to.name)
	}
}

// writeSysctl writes a sysctl of the calling thread's namespace.
func writeSysctl(t *testing.T, path, value string) {
	t.Helper()
	if err := os.WriteFile("/proc/sys/"+path, []byte(value), 0o644); err != nil {
		t.Fatal(err)
	}
}
