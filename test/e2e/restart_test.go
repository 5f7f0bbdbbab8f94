//go:build e2e

package e2e

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// Scenario 6: weft is SIGKILLed and started again. Running containers keep
// working throughout; new containers get addresses distinct from the existing
// ones (the allocations survived); the network can be removed afterwards and
// nothing is left.
func TestWeftKillRestart(t *testing.T) {
	h := newHost(t, "wkill", hostOptions{})
	h.CreateNetwork(t, "k-net", "--subnet", "10.96.0.0/24")
	h.Run(t, "k-a", "--network", "k-net")
	h.Run(t, "k-b", "--network", "k-net")
	used := map[netip.Addr]string{}
	_, gw := h.NetworkSubnet(t, "k-net")
	used[gw] = "gateway"
	for _, c := range []string{"k-a", "k-b"} {
		used[h.ContainerIP(t, c, "k-net")] = c
	}
	h.AssertPing(t, "k-a", "k-b")

	h.KillWeft(t)
	// The data plane is the kernel's: weft being gone changes nothing.
	h.AssertPing(t, "k-a", "k-b")
	h.StartWeft(t)
	h.AssertPing(t, "k-a", "k-b")
	h.AssertPing(t, "k-b", "k-a")

	// New containers: distinct addresses, and they reach the old ones.
	for i := 1; i <= 3; i++ {
		name := fmt.Sprintf("k-new%d", i)
		h.Run(t, name, "--network", "k-net")
		ip := h.ContainerIP(t, name, "k-net")
		if other, dup := used[ip]; dup {
			t.Errorf("%s got %s after weft's restart, already used by %s", name, ip, other)
		}
		used[ip] = name
		h.AssertPing(t, name, "k-a")
	}

	// A second kill, this time with a container created in between, then
	// teardown through the restarted weft.
	h.KillWeft(t)
	h.StartWeft(t)
	h.Docker(t, "rm", "-f", "k-a", "k-b", "k-new1", "k-new2", "k-new3")
	h.Docker(t, "network", "rm", "k-net")
	h.AssertClean(t)
	h.WeftAlive(t)
}

// Scenario 6b: a container removed while weft is down. dockerd's Revoke,
// Leave, DeleteEndpoint and ReleaseAddress cannot reach weft; it moves the
// container's interface back to the host and goes on. Once weft is back and
// its grace period for attaches its restart interrupted is over, weft removes
// what the container left: the veth pair, the published port (a new container
// can publish it) and the address (a /29 fills to capacity again).
func TestContainerRemovedWhileWeftDown(t *testing.T) {
	// Most of its two minutes is waiting (dockerd's minute of retries
	// while weft is down, then weft's grace), on a host of its own: it
	// waits beside the other tests deferred to the end of the run.
	t.Parallel()
	h := newHost(t, "wgone", hostOptions{})
	h.CreateNetwork(t, "g-net", "--subnet", "10.97.0.0/29") // gateway .1, containers .2 to .6
	h.RunServer(t, "g-a", []string{"tcp:80"}, "--network", "g-net", "-p", "18600:80")
	h.Run(t, "g-b", "--network", "g-net")
	veths := func() (host, detached int) {
		for _, l := range h.Links(t) {
			switch {
			case strings.HasPrefix(l.Name, "wh"):
				host++
			case strings.HasPrefix(l.Name, "wc"):
				detached++
			}
		}
		return host, detached
	}
	if host, detached := veths(); host != 2 || detached != 0 {
		t.Fatalf("before: %d host veths and %d container veths in the host namespace, want 2 and 0", host, detached)
	}

	h.KillWeft(t)
	start := time.Now()
	h.Docker(t, "rm", "-f", "g-a")
	t.Logf("docker rm -f with weft down took %s", time.Since(start).Round(time.Second))
	h.StartWeft(t)
	restarted := time.Now()
	if host, detached := veths(); detached != 1 {
		t.Fatalf("after docker rm with weft down: %d host veths, %d container veths in the host namespace; want g-a's container veth back in the host", host, detached)
	}
	deadline := time.Now().Add(90 * time.Second)
	for {
		host, detached := veths()
		if host == 1 && detached == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("90 s after weft's restart g-a's veth pair is still there (%d host veths, %d container veths)", host, detached)
		}
		time.Sleep(time.Second)
	}
	t.Logf("g-a's leftovers were removed %s after weft's restart", time.Since(restarted).Round(time.Second))

	// The port is free again, and so is the address: g-b plus four more
	// fill the /29.
	h.RunServer(t, "g-c", []string{"tcp:80"}, "--network", "g-net", "-p", "18600:80")
	AssertAnswer(t, h.fromHost(t), "tcp", hostPort("127.0.0.1", 18600), "g-c ")
	for _, c := range []string{"g-d", "g-e", "g-f"} {
		h.Run(t, c, "--network", "g-net")
	}
	h.AssertPing(t, "g-f", "g-b")
	h.Docker(t, "rm", "-f", "g-b", "g-c", "g-d", "g-e", "g-f")
	h.Docker(t, "network", "rm", "g-net")
	h.AssertClean(t)
	h.WeftAlive(t)
}

// Scenario 7: dockerd restarted (SIGTERM, start again; live-restore off)
// stops the containers. Once they are removed, every address they held is
// free again: a /29 (five container addresses after the gateway) fills to
// capacity again, with the same addresses, and a sixth container is refused.
func TestDockerdRestartNoLeak(t *testing.T) {
	h := newHost(t, "drestart", hostOptions{})
	h.CreateNetwork(t, "r-net", "--subnet", "10.95.0.0/29")
	first := fillNetwork(t, h, "r-net", "r-a", 5)
	h.AssertPing(t, "r-a1", "r-a5")

	h.StopDockerd(t)
	h.StartDockerd(t)
	// The stopped containers start again, on the addresses they had.
	h.Docker(t, "start", "r-a1", "r-a2")
	h.AssertPing(t, "r-a1", "r-a2")
	removeContainers(t, h, "r-a", 5)
	again := fillNetwork(t, h, "r-net", "r-b", 5)
	if strings.Join(first, " ") != strings.Join(again, " ") {
		t.Logf("addresses before the restart: %v; after: %v", first, again)
	}
	h.AssertPing(t, "r-b1", "r-b5")
	assertNetworkFull(t, h, "r-net", "r-b6")

	removeContainers(t, h, "r-b", 5)
	h.Docker(t, "network", "rm", "r-net")
	h.AssertClean(t)
	h.WeftAlive(t)
}

// Scenario 7, harsher: dockerd is SIGKILLed with containers running. On
// start it kills them and cleans up without a legacy plugin's Leave and
// DeleteEndpoint (protocol.md §4: only ReleaseAddress reaches weft), so weft
// must not leak the endpoints' addresses or links.
func TestDockerdKillNoLeak(t *testing.T) {
	h := newHost(t, "dkill", hostOptions{})
	h.CreateNetwork(t, "dk-net", "--subnet", "10.94.0.0/29")
	fillNetwork(t, h, "dk-net", "dk-a", 5)

	h.KillDockerd(t)
	h.StartDockerd(t)
	removeContainers(t, h, "dk-a", 5)
	fillNetwork(t, h, "dk-net", "dk-b", 5)
	h.AssertPing(t, "dk-b1", "dk-b5")
	assertNetworkFull(t, h, "dk-net", "dk-b6")

	removeContainers(t, h, "dk-b", 5)
	h.Docker(t, "network", "rm", "dk-net")
	h.AssertClean(t)
	h.WeftAlive(t)
}

// A restarted dockerd re-inserts its own FORWARD rules at the top (among
// them "-i docker0 ! -o docker0 -j ACCEPT"); weft's isolation from Docker's
// bridges must still hold afterwards, in both directions, for networks that
// existed before the restart and for new ones.
func TestIsolationAfterDockerdRestart(t *testing.T) {
	h := newHost(t, "diso", hostOptions{})
	h.CreateNetwork(t, "i-old")
	h.StopDockerd(t)
	h.StartDockerd(t)
	h.CreateNetwork(t, "i-new")
	h.CreateNetworkRaw(t, "i-dbr", "-d", "bridge")
	h.Run(t, "i-old", "--network", "i-old")
	h.Run(t, "i-new", "--network", "i-new")
	h.Run(t, "i-d0", "--network", "bridge")
	h.Run(t, "i-dbr", "--network", "i-dbr")
	_, gw := h.NetworkSubnet(t, "i-old")
	h.AssertPing(t, "i-old", gw.String()) // control
	var pairs [][2]string
	for _, w := range []string{"i-old", "i-new"} {
		wip := h.ContainerIP(t, w, w).String()
		for _, d := range []struct{ ctr, net string }{{"i-d0", "bridge"}, {"i-dbr", "i-dbr"}} {
			pairs = append(pairs, [2]string{w, h.ContainerIP(t, d.ctr, d.net).String()}, [2]string{d.ctr, wip})
		}
	}
	pairs = append(pairs, [2]string{"i-old", h.ContainerIP(t, "i-new", "i-new").String()})
	h.AssertNoPings(t, pairs...)
}

// fillNetwork starts n containers prefix1..prefixN on net and returns their
// addresses, which must be distinct.
func fillNetwork(t *testing.T, h *Host, net, prefix string, n int) []string {
	t.Helper()
	var addrs []string
	seen := map[netip.Addr]string{}
	for i := 1; i <= n; i++ {
		name := fmt.Sprintf("%s%d", prefix, i)
		h.Run(t, name, "--network", net)
		ip := h.ContainerIP(t, name, net)
		if other, dup := seen[ip]; dup {
			t.Errorf("%s and %s both got %s", other, name, ip)
		}
		seen[ip] = name
		addrs = append(addrs, ip.String())
	}
	return addrs
}

func removeContainers(t *testing.T, h *Host, prefix string, n int) {
	t.Helper()
	args := []string{"rm", "-f"}
	for i := 1; i <= n; i++ {
		args = append(args, fmt.Sprintf("%s%d", prefix, i))
	}
	h.Docker(t, args...)
}

// assertNetworkFull checks that one more container cannot get an address, so
// that "filled again" above really means "every address was free".
func assertNetworkFull(t *testing.T, h *Host, net, name string) {
	t.Helper()
	h.cleanupContainer(t, name)
	if _, stderr, err := h.DockerErr(h.runArgs(name, []string{"--network", net})...); err == nil {
		t.Errorf("a container beyond the subnet's capacity started on %s", net)
	} else {
		t.Logf("as expected, %s did not start: %s", name, stderr)
	}
}
