//go:build e2e

package e2e

import (
	"bufio"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/weftnet/weft/test/nstest"
	"github.com/weftnet/weft/test/testhost"
)

// The reliability suite's security checks ("nothing gets in"). Each negative
// check has a positive control in the same test, so that it cannot pass
// because the probe itself is broken.
//
// Covered elsewhere, and not repeated here:
//
//   - isolation between two weft networks (and from Docker's bridges):
//     IPv4 in TestNetworksIsolated (connectivity_test.go), IPv6 in
//     TestIPv6Isolation (ipv6_test.go);
//   - enable_icc=false: IPv4 in TestICCDisabled, IPv6 (global and
//     link-local addresses) in TestIPv6Isolation;
//   - --internal, IPv4, a container without a route of its own cannot reach
//     the outside host: TestExternalAccess;
//   - an unpublished container port is closed to an outside host that
//     routes IPv6 to the container subnet: TestIPv6EgressAndPublish.
//
// New here: --internal for IPv4 and IPv6 against a container that sets its
// own default route and an outside host that routes to the network
// (TestSecurityInternal); loopback-only published ports
// (TestSecurityLoopbackPublish); the plugin socket's permissions
// (TestSecurityPluginSocket); weft's TCP and UDP sockets
// (TestSecurityListeners).

// TestSecurityInternal: an --internal dual-stack network lets nothing out
// and nothing in, over IPv4 and IPv6, even when a container (with
// NET_ADMIN) gives itself a default route through the bridge and the
// outside host routes the network's subnets to this host, so that the
// firewall is all that stands in the way. And a normal network lets in
// nothing that was not DNAT'd, over IPv4 (IPv6: TestIPv6EgressAndPublish).
//
// The checks count ICMP echo requests where they would arrive (the
// receiving namespace's Icmp InEchos / Icmp6InEchos), so a lost reply
// cannot pass for a blocked request. Controls: the internal containers
// reach each other; a container of a normal network reaches the outside
// host over both families (so the host forwards, and the outside host's
// counters work); the host reaches the internal containers (their
// counters work).
func TestSecurityInternal(t *testing.T) {
	h := sharedHost(t)
	h.outsideIPv6(t)
	h.setSysctl(t, "net.ipv6.conf.all.forwarding", "1")
	intID := h.CreateNetwork(t, "sec-int", "--internal", "--ipv6", "--subnet", "fdee:6e2e:71::/64")
	h.CreateNetwork(t, "sec-ext", "--ipv6", "--subnet", "fdee:6e2e:72::/64")
	h.Run(t, "sec-int-a", "--network", "sec-int", "--cap-add", "NET_ADMIN")
	h.Run(t, "sec-int-b", "--network", "sec-int")
	h.Run(t, "sec-ext-a", "--network", "sec-ext")

	int4, gw4 := h.NetworkSubnet(t, "sec-int")
	ext4, _ := h.NetworkSubnet(t, "sec-ext")
	int6 := h.NetworkSubnet6(t, "sec-int")
	gw6 := bridgeAddr6(t, h, "weft-"+intID[:10])
	a4, a6 := h.ContainerIP(t, "sec-int-a", "sec-int"), h.ContainerIPv6(t, "sec-int-a", "sec-int")
	b4, b6 := h.ContainerIP(t, "sec-int-b", "sec-int"), h.ContainerIPv6(t, "sec-int-b", "sec-int")
	e4 := h.ContainerIP(t, "sec-ext-a", "sec-ext")
	out4, out6 := netip.MustParseAddr(h.Outside.Addr), netip.MustParseAddr(outsideLink6)

	// Controls: inside the internal network, both families work; the
	// normal network's container reaches the outside host over both (this
	// also leaves the outside host's neighbour entries for the host
	// resolved, so that its probes below go out at once).
	h.AssertPing(t, "sec-int-a", b4.String())
	h.AssertPing6(t, "sec-int-a", b6.String())
	h.AssertPing6(t, "sec-int-b", a6.String())
	h.AssertPing(t, "sec-ext-a", h.Outside.Addr)
	h.AssertPing6(t, "sec-ext-a", outsideLink6)

	// The internal container routes everything to the bridge, as a
	// container with NET_ADMIN may; the outside host routes the internal and
	// the normal network to this host.
	for _, argv := range [][]string{
		{"ip", "route", "add", "default", "via", gw4.String()},
		{"ip", "-6", "route", "add", "default", "via", gw6.String()},
	} {
		if out, err := h.Exec("sec-int-a", argv...); err != nil {
			t.Fatalf("in sec-int-a, %s: %v\n%s", strings.Join(argv, " "), err, out)
		}
	}
	for _, r := range []struct{ subnet, via string }{
		{int4.String(), h.Outside.HostAddr},
		{ext4.String(), h.Outside.HostAddr},
		{int6.String(), hostLink6},
	} {
		h.outsideRoute(t, r.subnet, r.via)
	}

	outCount := func(v6 bool) func() (int, error) {
		return func() (int, error) {
			return inEchos(testhost.RunT(10*time.Second, "nsenter", "--net=/var/run/netns/"+h.Outside.NetNS, "--", "cat", snmpFile(v6)))
		}
	}
	ctrCount := func(ctr string, v6 bool) func() (int, error) {
		return func() (int, error) { return inEchos(h.Exec(ctr, "cat", snmpFile(v6))) }
	}
	ping := func(ctr string, dst netip.Addr, count int) func() error {
		return func() error {
			_, _ = h.Exec(ctr, "ping", "-c", strconv.Itoa(count), "-W", "1", dst.String())
			return nil
		}
	}
	host, outside := h.fromHost(t), h.fromOutside(t)

	// Nothing leaves: sec-int-a's echo requests to the outside host never
	// arrive there; sec-ext-a's (masqueraded) do.
	assertEchoesBlocked(t, "from internal sec-int-a to the outside host "+out4.String(),
		outCount(false), ping("sec-int-a", out4, 2), 1, ping("sec-ext-a", out4, 1))
	assertEchoesBlocked(t, "from internal sec-int-a to the outside host "+out6.String(),
		outCount(true), ping("sec-int-a", out6, 2), 1, func() error {
			_, _ = h.Exec("sec-ext-a", "ping6", "-c", "1", "-W", "1", out6.String())
			return nil
		})

	// Nothing enters: the outside host's echo requests to the internal
	// containers, and to a normal network's container (not DNAT'd), never
	// arrive; the host's do.
	for _, c := range []struct {
		ctr string
		dst netip.Addr
	}{{"sec-int-a", a4}, {"sec-int-a", a6}, {"sec-int-b", b4}, {"sec-int-b", b6}, {"sec-ext-a", e4}} {
		assertEchoesBlocked(t, fmt.Sprintf("from the outside host to %s (%s)", c.dst, c.ctr),
			ctrCount(c.ctr, c.dst.Is6()), sendEchoes(outside, c.dst, 3), 3, sendEchoes(host, c.dst, 3))
	}
}

// assertEchoesBlocked checks that the echo requests probe sends never arrive
// where count counts them, while the want that control sends afterwards
// along an allowed path do. It waits for the control's to arrive, then
// requires exactly want more than before: the probe's were sent first, and
// a packet crosses these namespaces within the sending call.
func assertEchoesBlocked(t *testing.T, what string, count func() (int, error), probe func() error, want int, control func() error) {
	t.Helper()
	c0, err := count()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if err := probe(); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if err := control(); err != nil {
		t.Fatalf("%s: control: %v", what, err)
	}
	var got int
	err = testhost.Poll(10*time.Second, func() error {
		c, err := count()
		if err != nil {
			return err
		}
		if got = c - c0; got < want {
			return fmt.Errorf("%d echo requests arrived, want at least the control's %d", got, want)
		}
		return nil
	})
	switch {
	case err != nil:
		t.Errorf("%s: control failed: %v", what, err)
	case got != want:
		t.Errorf("%s: %d echo requests got through (%d arrived, %d of them the control's)", what, got-want, got, want)
	}
}

// snmpFile is where a namespace counts its ICMP (v6: ICMPv6) messages.
func snmpFile(v6 bool) string {
	if v6 {
		return "/proc/net/snmp6"
	}
	return "/proc/net/snmp"
}

// inEchos parses the echo requests received from /proc/net/snmp ("Icmp:"
// header and value lines) or /proc/net/snmp6 ("Icmp6InEchos N").
func inEchos(text string, err error) (int, error) {
	if err != nil {
		return 0, err
	}
	var header []string
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 2 && f[0] == "Icmp6InEchos":
			return strconv.Atoi(f[1])
		case len(f) > 1 && f[0] == "Icmp:" && header == nil:
			header = f
		case len(f) > 1 && f[0] == "Icmp:":
			if i := slices.Index(header, "InEchos"); i > 0 && i < len(f) {
				return strconv.Atoi(f[i])
			}
		}
	}
	return 0, fmt.Errorf("no InEchos counter in:\n%s", text)
}

// sendEchoes returns a function that sends n ICMP (or ICMPv6) echo requests
// to dst from v's namespace, without waiting for replies.
func sendEchoes(v vantage, dst netip.Addr, n int) func() error {
	return func() error {
		return nstest.Do(v.ns, func() error {
			network, laddr, typ := "ip4:icmp", "0.0.0.0", byte(8)
			if dst.Is6() {
				network, laddr, typ = "ip6:ipv6-icmp", "::", 128
			}
			c, err := net.ListenPacket(network, laddr)
			if err != nil {
				return err
			}
			defer c.Close()
			for i := range n {
				msg := []byte{typ, 0, 0, 0, 0xe2, 0xe2, 0, byte(i + 1), 'w', 'e', 'f', 't'}
				if dst.Is4() { // the kernel computes ICMPv6 checksums itself
					s := icmpChecksum(msg)
					msg[2], msg[3] = byte(s>>8), byte(s)
				}
				if _, err := c.WriteTo(msg, &net.IPAddr{IP: dst.AsSlice()}); err != nil {
					return fmt.Errorf("sending an echo request from %s to %s: %w", v.name, dst, err)
				}
			}
			return nil
		})
	}
}

func icmpChecksum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}

// bridgeAddr6 is the global IPv6 address of link dev in the host's namespace
// (an internal network's containers get no gateway to read it from).
func bridgeAddr6(t *testing.T, h *Host, dev string) netip.Addr {
	t.Helper()
	out := h.NS(t, "ip", "-6", "-o", "addr", "show", "dev", dev, "scope", "global")
	for _, f := range strings.Fields(out) {
		if p, err := netip.ParsePrefix(f); err == nil && p.Addr().Is6() {
			return p.Addr()
		}
	}
	t.Fatalf("%s has no global IPv6 address:\n%s", dev, out)
	return netip.Addr{}
}

// outsideRoute routes subnet via the host's address on the outside link,
// in the outside host, until the test ends.
func (h *Host) outsideRoute(t *testing.T, subnet, via string) {
	t.Helper()
	if _, err := testhost.RunT(10*time.Second, "ip", "-n", h.Outside.NetNS, "route", "add", subnet, "via", via); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = testhost.RunT(10*time.Second, "ip", "-n", h.Outside.NetNS, "route", "del", subnet) })
}

// TestSecurityLoopbackPublish: a port published on a loopback address
// (-p 127.0.0.1:P:80, -p [::1]:P:80, TCP and UDP) answers on the host's
// loopback and nowhere else: not on the host's address on the outside link,
// neither from the outside host nor from the host itself, and not from
// containers (through their gateway or the host's address). The positive
// controls are the same container's ports published on every address, which
// answer from all of these places. And the host keeps route_localnet off on
// every interface: with it on, a neighbour could send packets to 127.0.0.1
// through the host (CVE-2020-8558); weft never needs it (its proxy serves
// loopback).
func TestSecurityLoopbackPublish(t *testing.T) {
	h := sharedHost(t)
	h.outsideIPv6(t)
	h.CreateNetwork(t, "sec-lo")
	h.CreateNetwork(t, "sec-lo-other")
	h.RunServer(t, "sec-lo-a", []string{"tcp:80", "udp:53"}, "--network", "sec-lo",
		"-p", "127.0.0.1:18611:80", "-p", "127.0.0.1:18612:53/udp", "-p", "[::1]:18613:80",
		"-p", "18614:80", "-p", "18615:53/udp")
	h.RunServer(t, "sec-lo-b", []string{"tcp:80"}, "--network", "sec-lo-other")
	_, gwOther := h.NetworkSubnet(t, "sec-lo-other")
	host, out := h.fromHost(t), h.fromOutside(t)
	hostAddr := h.Outside.HostAddr

	// Loopback: from the host, yes.
	AssertAnswer(t, host, "tcp", hostPort("127.0.0.1", 18611), "sec-lo-a ")
	AssertAnswer(t, host, "udp", hostPort("127.0.0.1", 18612), "sec-lo-a ")
	AssertAnswer(t, host, "tcp", hostPort("::1", 18613), "sec-lo-a ")
	// Controls: every address, from everywhere.
	AssertAnswer(t, out, "tcp", hostPort(hostAddr, 18614), "sec-lo-a "+h.Outside.Addr)
	AssertAnswer(t, out, "udp", hostPort(hostAddr, 18615), "sec-lo-a "+h.Outside.Addr)
	AssertAnswer(t, out, "tcp", hostPort(hostLink6, 18614), "sec-lo-a ")
	AssertAnswer(t, host, "tcp", hostPort(hostAddr, 18614), "sec-lo-a ")
	h.AssertExecAnswer(t, "sec-lo-b", "tcp", hostPort(gwOther.String(), 18614), "sec-lo-a ")
	h.AssertExecAnswer(t, "sec-lo-b", "tcp", hostPort(hostAddr, 18614), "sec-lo-a ")
	// The loopback ports: from nowhere else.
	AssertNoAnswer(t, out, "tcp", hostPort(hostAddr, 18611))
	AssertNoAnswer(t, out, "udp", hostPort(hostAddr, 18612))
	AssertNoAnswer(t, out, "tcp", hostPort(hostLink6, 18613))
	AssertNoAnswer(t, host, "tcp", hostPort(hostAddr, 18611))
	AssertNoAnswer(t, host, "tcp", hostPort(hostLink6, 18613))
	for _, addr := range []string{hostPort(gwOther.String(), 18611), hostPort(hostAddr, 18611)} {
		if got, err := h.ExecProbe("sec-lo-b", "tcp", addr); err == nil {
			t.Errorf("from container sec-lo-b, tcp %s answered %q, want no answer", addr, got)
		}
	}

	out4 := h.NS(t, "sh", "-c", "grep . /proc/sys/net/ipv4/conf/*/route_localnet")
	for _, line := range strings.Split(strings.TrimSpace(out4), "\n") {
		if !strings.HasSuffix(line, ":0") {
			t.Errorf("route_localnet is on in the host's namespace: %s", line)
		}
	}
}

// TestSecurityPluginSocket: weft's plugin socket — which creates networks,
// publishes ports and reports weft's state — belongs to root and is not
// open to other users (mode 0600, or 0660 with group root), and a process
// of another user (uid and gid 65534, no supplementary groups) cannot
// connect to it: the connection is refused for permission. Controls: root
// is served on it (/Weft.State), and the same unprivileged process reaches
// a socket of mode 0666 in the same directory.
func TestSecurityPluginSocket(t *testing.T) {
	h := sharedHost(t)
	sock, err := h.plugin.socket(h)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	perm := fi.Mode().Perm()
	switch {
	case fi.Mode().Type() != os.ModeSocket:
		t.Errorf("%s is not a socket (%s)", sock, fi.Mode())
	case st.Uid != 0:
		t.Errorf("%s belongs to uid %d, want root", sock, st.Uid)
	case perm != 0o600 && !(perm == 0o660 && st.Gid == 0):
		t.Errorf("%s has mode %04o, group %d: want 0600, or 0660 with group root", sock, perm, st.Gid)
	}
	h.WeftState(t) // control: root is served

	// The unprivileged client runs in the host's mount namespace, where the
	// socket is /run/docker/plugins/weft.sock (the test process reaches it
	// through /proc, which another user cannot).
	ctl := filepath.Join(h.PluginDir(), "e2e-unprivileged-control")
	ln, err := net.Listen("unix", ctl)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ln.Close() }() // removes the socket file too
	if err := os.Chmod(ctl, 0o666); err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte("control\n"))
			_ = c.Close()
		}
	}()
	asNobody := func(path string) (string, error) {
		argv := append(h.InHost(), "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--",
			echosrvBin(t), "dial", "unix", path)
		return testhost.RunT(30*time.Second, argv...)
	}
	if out, err := asNobody("/run/docker/plugins/" + filepath.Base(ctl)); err != nil || strings.TrimSpace(out) != "control" {
		t.Fatalf("control: uid 65534 cannot use a socket of mode 0666 next to weft's: %q, %v", out, err)
	}
	out, err := asNobody("/run/docker/plugins/" + filepath.Base(sock))
	switch {
	case err == nil:
		t.Errorf("uid 65534 connected to weft's plugin socket and was answered %q", out)
	case !strings.Contains(err.Error(), "permission denied"):
		t.Errorf("uid 65534 connecting to weft's plugin socket: %v; want the connection refused for permission", err)
	}
}

// TestSecurityListeners: weft opens no TCP or UDP socket that listens, other
// than the host ports of published ports. Those are expected: weft's
// userland proxy (dataplane/bridge/proxy.go) holds every published port on
// its host address, as docker-proxy does, serving the connections DNAT
// cannot (loopback, from containers) and keeping the port from being taken
// twice. So weft listens on exactly: for -p P:80, 0.0.0.0:P and [::]:P; for
// -p 127.0.0.1:P:80, 127.0.0.1:P; for -p P:53/udp, UDP 0.0.0.0:P and [::]:P;
// for -p 80, the ephemeral port it chose, on both. Before and after the
// container: nothing. The sockets are read from /proc/<weft>/net/{tcp,udp}{,6}
// (the host's namespace) and matched to weft by the inodes of its open
// descriptors; a TCP socket listens in state LISTEN, a UDP socket when it
// has no peer (a connected UDP socket is a proxy flow towards a container,
// which the test makes exist by sending through the UDP port).
func TestSecurityListeners(t *testing.T) {
	h := sharedHost(t)
	if h.weft == nil {
		t.Fatalf("WEFT_E2E_PLUGIN=%s: this test reads the legacy weft process's sockets", cfg.plugin)
	}
	pid := h.weft.PID()
	bin, _ := filepath.EvalSymlinks(cfg.weftBin)
	if exe, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe"); err != nil || exe != bin {
		t.Fatalf("process %d is %q (%v), not weft (%s)", pid, exe, err, bin)
	}
	if ls := weftListeners(t, pid); len(ls) != 0 {
		t.Fatalf("with no published port, weft listens on %v", ls)
	}
	h.CreateNetwork(t, "sec-ls")
	h.RunServer(t, "sec-ls-a", []string{"tcp:80", "udp:53"}, "--network", "sec-ls",
		"-p", "18621:80", "-p", "127.0.0.1:18622:80", "-p", "18623:53/udp", "-p", "80")
	ip := h.ContainerIP(t, "sec-ls-a", "sec-ls")
	eph := h.publishedPorts(t, "ip4", "tcp", netip.AddrPortFrom(ip, 80))
	eph = slices.DeleteFunc(eph, func(p int) bool { return p == 18621 })
	if len(eph) != 1 {
		t.Fatalf("DNAT rules to %s:80 for host ports %v besides 18621, want one ephemeral port", ip, eph)
	}
	host := h.fromHost(t)
	AssertAnswer(t, host, "udp", hostPort("127.0.0.1", 18623), "sec-ls-a ") // a UDP flow exists now
	AssertAnswer(t, host, "tcp", hostPort("127.0.0.1", 18622), "sec-ls-a ")
	want := []string{
		"tcp 0.0.0.0:18621", "tcp [::]:18621",
		"tcp 127.0.0.1:18622",
		"udp 0.0.0.0:18623", "udp [::]:18623",
		fmt.Sprintf("tcp 0.0.0.0:%d", eph[0]), fmt.Sprintf("tcp [::]:%d", eph[0]),
	}
	slices.Sort(want)
	if got := weftListeners(t, pid); !slices.Equal(got, want) {
		t.Errorf("weft listens on\n  %s\nwant exactly the published ports\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}

	h.Docker(t, "rm", "-f", "sec-ls-a")
	var got []string
	if err := testhost.Poll(10*time.Second, func() error {
		if got = weftListeners(t, pid); len(got) > 0 {
			return errors.New("still listening")
		}
		return nil
	}); err != nil {
		t.Errorf("with the container gone, weft still listens on %v", got)
	}
}

// weftListeners returns the listening TCP and UDP sockets of process pid
// ("tcp 0.0.0.0:80", "udp [::]:53"), sorted.
func weftListeners(t *testing.T, pid int) []string {
	t.Helper()
	dir := "/proc/" + strconv.Itoa(pid)
	fds, err := os.ReadDir(dir + "/fd")
	if err != nil {
		t.Fatal(err)
	}
	inodes := map[string]bool{}
	for _, fd := range fds {
		l, err := os.Readlink(dir + "/fd/" + fd.Name())
		if err == nil && strings.HasPrefix(l, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	var out []string
	for _, f := range []string{"tcp", "tcp6", "udp", "udp6"} {
		file, err := os.Open(dir + "/net/" + f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(file)
		sc.Scan() // header
		for sc.Scan() {
			// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
			fl := strings.Fields(sc.Text())
			if len(fl) < 10 || !inodes[fl[9]] {
				continue
			}
			local, lerr := procAddr(fl[1])
			remote, rerr := procAddr(fl[2])
			if lerr != nil || rerr != nil {
				t.Fatalf("%s/net/%s: cannot parse %q", dir, f, sc.Text())
			}
			proto := strings.TrimSuffix(f, "6")
			if (proto == "tcp" && fl[3] != "0A") || (proto == "udp" && remote.Port() != 0) {
				continue // a connection, or a UDP socket with a peer
			}
			out = append(out, proto+" "+local.String())
		}
		_ = file.Close()
		if err := sc.Err(); err != nil {
			t.Fatal(err)
		}
	}
	slices.Sort(out)
	return out
}

// procAddr parses an address of /proc/net/{tcp,udp}{,6}: hex address (in
// 32-bit words of host byte order, little-endian here) ":" hex port.
func procAddr(s string) (netip.AddrPort, error) {
	a, p, ok := strings.Cut(s, ":")
	if !ok {
		return netip.AddrPort{}, fmt.Errorf("no port in %q", s)
	}
	raw, err := hex.DecodeString(a)
	if err != nil || (len(raw) != 4 && len(raw) != 16) {
		return netip.AddrPort{}, fmt.Errorf("bad address %q", a)
	}
	for i := 0; i < len(raw); i += 4 {
		raw[i], raw[i+1], raw[i+2], raw[i+3] = raw[i+3], raw[i+2], raw[i+1], raw[i]
	}
	port, err := strconv.ParseUint(p, 16, 16)
	if err != nil {
		return netip.AddrPort{}, err
	}
	addr, _ := netip.AddrFromSlice(raw)
	return netip.AddrPortFrom(addr, uint16(port)), nil
}
