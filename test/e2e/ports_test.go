//go:build e2e

package e2e

import (
	"bufio"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"github.com/weftnet/weft/test/nstest"
	"github.com/weftnet/weft/test/testhost"
)

// Port publishing (`docker run -p`) through weft: from the host, from an
// outside machine, from containers (hairpin), TCP and UDP, ranges, conflicts,
// and nothing left behind. Docker shows none of these ports in `docker port`
// (protocol.md §2.7: it cannot read port data from a remote driver), so the
// tests find ephemeral ports in weft's rules.

// echosrv is the probe binary mounted into containers (echosrv/main.go).
var echosrv struct {
	once sync.Once
	path string
	err  error
}

func echosrvBin(t testing.TB) string {
	t.Helper()
	echosrv.once.Do(func() {
		echosrv.path = filepath.Join(cfg.dir, "bin", "echosrv")
		_, echosrv.err = testhost.RunT(3*time.Minute, "env", "CGO_ENABLED=0", "go", "build", "-o", echosrv.path, "./echosrv")
	})
	if echosrv.err != nil {
		t.Fatalf("building echosrv: %v", echosrv.err)
	}
	return echosrv.path
}

// RunServer starts a container that answers TCP and UDP on the given
// container ports with "NAME <client address>"; args go before the image
// (networks, -p). It is removed when the test ends.
func (h *Host) RunServer(t testing.TB, name string, ports []string, args ...string) {
	t.Helper()
	h.cleanupContainer(t, name)
	full := append([]string{"run", "-d", "--name", name, "--stop-timeout", "1", "-v", echosrvBin(t) + ":/echosrv:ro"}, args...)
	full = append(full, testImage, "/echosrv", "serve", name)
	h.Docker(t, append(full, ports...)...)
}

// RunServerErr is RunServer that returns docker's error (stderr) instead of
// failing.
func (h *Host) RunServerErr(t testing.TB, name string, ports []string, args ...string) error {
	t.Helper()
	h.cleanupContainer(t, name)
	full := append([]string{"run", "-d", "--name", name, "--stop-timeout", "1", "-v", echosrvBin(t) + ":/echosrv:ro"}, args...)
	full = append(full, testImage, "/echosrv", "serve", name)
	_, stderr, err := h.DockerErr(append(full, ports...)...)
	if err != nil {
		return fmt.Errorf("%s", stderr)
	}
	return nil
}

// nsHandle opens a named network namespace, closed when the test ends.
func nsHandle(t testing.TB, name string) netns.NsHandle {
	t.Helper()
	ns, err := netns.GetFromName(name)
	if err != nil {
		t.Fatalf("opening namespace %s: %v", name, err)
	}
	t.Cleanup(func() { _ = ns.Close() })
	return ns
}

// probe connects from ns to addr and returns the server's answer.
func probe(ns netns.NsHandle, network, addr string, timeout time.Duration) (string, error) {
	var answer string
	err := nstest.Do(ns, func() error {
		c, err := net.DialTimeout(network, addr, timeout)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(timeout))
		if network == "udp" {
			var buf [1500]byte
			// UDP may lose the first datagram while a flow is set up: retry.
			for i := 0; ; i++ {
				if _, err := c.Write([]byte("hi")); err != nil {
					return err
				}
				_ = c.SetReadDeadline(time.Now().Add(timeout / 3))
				n, err := c.Read(buf[:])
				if err == nil {
					answer = string(buf[:n])
					return nil
				}
				if i == 2 {
					return err
				}
			}
		}
		line, err := bufio.NewReader(c).ReadString('\n')
		answer = strings.TrimSpace(line)
		return err
	})
	return answer, err
}

// Probes from where: the host's namespace or the outside machine's.
type vantage struct {
	name string
	ns   netns.NsHandle
}

func (h *Host) fromHost(t testing.TB) vantage { return vantage{"the host", nsHandle(t, h.NetNS)} }
func (h *Host) fromOutside(t testing.TB) vantage {
	return vantage{"the outside host", nsHandle(t, h.Outside.NetNS)}
}

// AssertAnswer fails the test unless a connection from v to addr gets an
// answer starting with want (a container name, optionally with the client
// address the container saw).
func AssertAnswer(t testing.TB, v vantage, network, addr, want string) {
	t.Helper()
	var got string
	var err error
	for i := 0; i < 3; i++ { // a fresh port may need a moment (ARP/ND)
		if got, err = probe(v.ns, network, addr, 3*time.Second); err == nil && strings.HasPrefix(got, want) {
			return
		}
		time.Sleep(300 * time.Millisecond)
	}
	t.Errorf("from %s, %s %s: got %q (%v), want %q", v.name, network, addr, got, err, want)
}

// AssertNoAnswer fails the test if a connection from v to addr is answered.
func AssertNoAnswer(t testing.TB, v vantage, network, addr string) {
	t.Helper()
	if got, err := probe(v.ns, network, addr, 1500*time.Millisecond); err == nil {
		t.Errorf("from %s, %s %s answered %q, want no answer", v.name, network, addr, got)
	}
}

// ExecProbe connects from inside container ctr (with echosrv) to addr.
func (h *Host) ExecProbe(ctr, network, addr string) (string, error) {
	out, err := h.Exec(ctr, "/echosrv", "dial", network, addr)
	return strings.TrimSpace(out), err
}

// AssertExecAnswer fails unless container ctr gets an answer from addr that
// starts with want.
func (h *Host) AssertExecAnswer(t testing.TB, ctr, network, addr, want string) {
	t.Helper()
	var got string
	var err error
	for i := 0; i < 3; i++ {
		if got, err = h.ExecProbe(ctr, network, addr); err == nil && strings.HasPrefix(got, want) {
			return
		}
		time.Sleep(300 * time.Millisecond)
	}
	t.Errorf("from container %s, %s %s: got %q (%v), want %q", ctr, network, addr, got, err, want)
}

// publishedPorts lists the host ports weft DNATs to addr (container
// address and port) according to the host's iptables, sorted.
func (h *Host) publishedPorts(t testing.TB, family, proto string, dest netip.AddrPort) []int {
	t.Helper()
	fw, err := h.firewall()
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`-p ` + proto + ` -m ` + proto + ` --dport (\d+) .*-j DNAT --to-destination ` + regexp.QuoteMeta(dest.String()) + `$`)
	var out []int
	for _, r := range fw {
		if r.Family != family || r.Chain != "WEFT-DNAT" {
			continue
		}
		if m := re.FindStringSubmatch(r.Spec); m != nil {
			p, _ := strconv.Atoi(m[1])
			out = append(out, p)
		}
	}
	return out
}

func hostPort(host string, port int) string { return net.JoinHostPort(host, strconv.Itoa(port)) }

// TestPublishPorts: TCP and UDP, all addresses and 127.0.0.1 only, a fixed and
// an ephemeral host port, reached from the outside host, from the host
// itself (its own address and loopback) and from containers; removing the
// container removes every rule and frees the ports.
func TestPublishPorts(t *testing.T) {
	h := sharedHost(t)
	h.CreateNetwork(t, "p1-net")
	_, gw := h.NetworkSubnet(t, "p1-net")
	before := h.Snapshot(t)
	h.RunServer(t, "p1-a", []string{"tcp:80", "udp:53"}, "--network", "p1-net",
		"-p", "18080:80", "-p", "18053:53/udp", "-p", "127.0.0.1:18081:80", "-p", "80")
	ip := h.ContainerIP(t, "p1-a", "p1-net")
	host, out := h.fromHost(t), h.fromOutside(t)
	hostAddr, outAddr := h.Outside.HostAddr, h.Outside.Addr

	// From another machine: DNAT; the container sees the real client.
	AssertAnswer(t, out, "tcp", hostPort(hostAddr, 18080), "p1-a "+outAddr)
	AssertAnswer(t, out, "udp", hostPort(hostAddr, 18053), "p1-a "+outAddr)
	// From the host: its own address (DNAT in OUTPUT) and loopback (proxy).
	AssertAnswer(t, host, "tcp", hostPort(hostAddr, 18080), "p1-a "+hostAddr)
	AssertAnswer(t, host, "tcp", hostPort("127.0.0.1", 18080), "p1-a "+gw.String())
	AssertAnswer(t, host, "tcp", hostPort("::1", 18080), "p1-a "+gw.String())
	AssertAnswer(t, host, "udp", hostPort("127.0.0.1", 18053), "p1-a "+gw.String())
	// 127.0.0.1 only: from the host, not from outside; and the container's
	// port is not reachable straight either.
	AssertAnswer(t, host, "tcp", hostPort("127.0.0.1", 18081), "p1-a")
	AssertNoAnswer(t, out, "tcp", hostPort(hostAddr, 18081))
	// -p 80: a free ephemeral host port chosen by weft.
	eph := h.publishedPorts(t, "ip4", "tcp", netip.AddrPortFrom(ip, 80))
	if len(eph) != 2 || !slicesContain(eph, 18080) {
		t.Fatalf("DNAT rules to %s:80 for host ports %v, want 18080 and one ephemeral port", ip, eph)
	}
	e := eph[0]
	if e == 18080 {
		e = eph[1]
	}
	AssertAnswer(t, out, "tcp", hostPort(hostAddr, e), "p1-a "+outAddr)
	AssertAnswer(t, host, "tcp", hostPort("127.0.0.1", e), "p1-a")
	if ports := h.Docker(t, "port", "p1-a"); ports != "" {
		t.Logf("docker port shows %q (remote drivers cannot report ports; protocol.md §2.7)", ports)
	}

	h.Docker(t, "rm", "-f", "p1-a")
	h.AssertNothingNew(t, before, "removing a container with published ports")
	AssertNoAnswer(t, out, "tcp", hostPort(hostAddr, 18080))
	// The ports are free again for anyone.
	if err := nstest.Do(host.ns, func() error {
		ln, err := net.Listen("tcp", ":18080")
		if err == nil {
			_ = ln.Close()
		}
		return err
	}); err != nil {
		t.Errorf("host port 18080 still held after the container went: %v", err)
	}
}

func slicesContain(s []int, x int) bool {
	for _, v := range s {
		if v == x {
			return true
		}
	}
	return false
}

// TestPublishHairpin: containers reach a published port through the host's
// address — the publishing container itself, one on the same network, one on
// another weft network and one on Docker's default bridge.
func TestPublishHairpin(t *testing.T) {
	h := sharedHost(t)
	h.CreateNetwork(t, "p2-net")
	h.CreateNetwork(t, "p2-other")
	h.RunServer(t, "p2-a", []string{"tcp:80"}, "--network", "p2-net", "-p", "18180:80")
	h.RunServer(t, "p2-b", []string{"tcp:80"}, "--network", "p2-net")
	h.RunServer(t, "p2-c", []string{"tcp:80"}, "--network", "p2-other")
	h.RunServer(t, "p2-d", []string{"tcp:80"}, "--network", "bridge")
	addr := hostPort(h.Outside.HostAddr, 18180)
	for _, c := range []string{"p2-a", "p2-b", "p2-c", "p2-d"} {
		h.AssertExecAnswer(t, c, "tcp", addr, "p2-a ")
	}
	// The network's own gateway address works too.
	_, gw := h.NetworkSubnet(t, "p2-net")
	h.AssertExecAnswer(t, "p2-b", "tcp", hostPort(gw.String(), 18180), "p2-a ")
}

// TestPublishRangeAndConflicts: a host port range gives each container the
// first free port; a taken port — by another container or another program —
// is refused with a message that says so, and the refused container leaves
// nothing behind.
func TestPublishRangeAndConflicts(t *testing.T) {
	h := sharedHost(t)
	h.CreateNetwork(t, "p3-net")
	before := h.Snapshot(t)
	out := h.fromOutside(t)
	h.RunServer(t, "p3-a", []string{"tcp:80"}, "--network", "p3-net", "-p", "18200-18201:80")
	h.RunServer(t, "p3-b", []string{"tcp:80"}, "--network", "p3-net", "-p", "18200-18201:80")
	AssertAnswer(t, out, "tcp", hostPort(h.Outside.HostAddr, 18200), "p3-a ")
	AssertAnswer(t, out, "tcp", hostPort(h.Outside.HostAddr, 18201), "p3-b ")

	for _, c := range []struct {
		name, port, want string
	}{
		{"p3-c", "18200-18201:80", "every host port from 18200 to 18201 (tcp) is already in use"},
		{"p3-d", "18200:80", "is already published for another container"},
	} {
		err := h.RunServerErr(t, c.name, []string{"tcp:80"}, "--network", "p3-net", "-p", c.port)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("docker run -p %s: %v, want an error saying %q", c.port, err, c.want)
		}
	}
	// Another program holds a port on the host.
	var ln net.Listener
	if err := nstest.Do(h.fromHost(t).ns, func() (err error) {
		ln, err = net.Listen("tcp", ":18202")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	err := h.RunServerErr(t, "p3-e", []string{"tcp:80"}, "--network", "p3-net", "-p", "18202:80")
	_ = ln.Close()
	if err == nil || !strings.Contains(err.Error(), "already in use by another program on this host") {
		t.Errorf("docker run -p 18202:80 with the port taken: %v", err)
	}
	// UDP and TCP do not collide.
	h.RunServer(t, "p3-f", []string{"udp:80"}, "--network", "p3-net", "-p", "18200:80/udp")
	AssertAnswer(t, out, "udp", hostPort(h.Outside.HostAddr, 18200), "p3-f ")

	h.Docker(t, "rm", "-f", "p3-a", "p3-b", "p3-c", "p3-d", "p3-e", "p3-f")
	h.AssertNothingNew(t, before, "removing the containers")
}

// TestPublishHostBinding: com.docker.network.bridge.host_binding_ipv4 is the
// default address of a network's published ports.
func TestPublishHostBinding(t *testing.T) {
	h := sharedHost(t)
	h.CreateNetwork(t, "p4-net", "-o", "com.docker.network.bridge.host_binding_ipv4=127.0.0.1")
	h.RunServer(t, "p4-a", []string{"tcp:80"}, "--network", "p4-net", "-p", "18300:80")
	AssertAnswer(t, h.fromHost(t), "tcp", hostPort("127.0.0.1", 18300), "p4-a ")
	AssertNoAnswer(t, h.fromOutside(t), "tcp", hostPort(h.Outside.HostAddr, 18300))
	AssertNoAnswer(t, h.fromHost(t), "tcp", hostPort("::1", 18300))
}

// TestPublishAcrossWeftRestart: weft is killed and started again; the
// published port keeps working from outside meanwhile (the kernel's DNAT),
// works again from the host's loopback once weft is back (its proxy is
// re-opened from the record), and removing the container then removes
// everything.
func TestPublishAcrossWeftRestart(t *testing.T) {
	h := newHost(t, "pkill", hostOptions{outside: true})
	h.CreateNetwork(t, "p5-net")
	h.RunServer(t, "p5-a", []string{"tcp:80"}, "--network", "p5-net", "-p", "18400:80")
	host, out := h.fromHost(t), h.fromOutside(t)
	addr := hostPort(h.Outside.HostAddr, 18400)
	AssertAnswer(t, host, "tcp", hostPort("127.0.0.1", 18400), "p5-a ")

	h.KillWeft(t)
	AssertAnswer(t, out, "tcp", addr, "p5-a "+h.Outside.Addr)
	h.StartWeft(t)
	AssertAnswer(t, host, "tcp", hostPort("127.0.0.1", 18400), "p5-a ")
	AssertAnswer(t, out, "tcp", addr, "p5-a "+h.Outside.Addr)
	// Still held: a second container cannot take it.
	if err := h.RunServerErr(t, "p5-b", []string{"tcp:80"}, "--network", "p5-net", "-p", "18400:80"); err == nil {
		t.Error("a second container got host port 18400 after weft's restart")
	}

	h.Docker(t, "rm", "-f", "p5-a", "p5-b")
	h.Docker(t, "network", "rm", "p5-net")
	h.AssertClean(t)
	h.WeftAlive(t)
}
