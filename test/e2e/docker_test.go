//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weftnet/weft/test/testhost"
)

// dockerTimeout bounds one docker CLI call: a hung plugin hangs dockerd (a
// legacy plugin call has no timeout), and the test must say so rather than
// wait forever.
const dockerTimeout = 3 * time.Minute

// dockerEnv is the CLI's environment (testhost.DockerEnv): the machine's
// DOCKER_* variables and ~/.docker (contexts!) must not redirect it to
// another engine.
func dockerEnv() []string { return testhost.DockerEnv(cfg.dockerConfig) }

// docker runs the docker CLI against the host's dockerd. It returns stdout;
// the error (a *testhost.DockerError) holds stderr.
func (h *Host) docker(ctx context.Context, args ...string) (string, error) {
	return testhost.RunDocker(ctx, cfg.docker, dockerEnv(), h.Sock, args...)
}

// DockerErr runs docker with the default timeout and returns stdout, stderr
// and the error.
func (h *Host) DockerErr(args ...string) (string, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), dockerTimeout)
	defer cancel()
	out, err := h.docker(ctx, args...)
	if de, ok := err.(*testhost.DockerError); ok {
		return out, de.Stderr, err
	}
	return out, "", err
}

// Docker runs docker and fails the test on error; it returns trimmed stdout.
func (h *Host) Docker(t testing.TB, args ...string) string {
	t.Helper()
	out, _, err := h.DockerErr(args...)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(out)
}

// Driver is the name to pass to -d and --ipam-driver.
func (h *Host) Driver() string { return h.plugin.driver() }

// CreateNetwork creates a weft network (driver and IPAM driver weft, plus
// args) and removes it when the test ends. It returns the network ID.
func (h *Host) CreateNetwork(t testing.TB, name string, args ...string) string {
	t.Helper()
	full := append([]string{"network", "create", "-d", h.Driver(), "--ipam-driver", h.Driver()}, args...)
	return h.createNetwork(t, name, full)
}

// CreateNetworkRaw creates a network with exactly the given args (no
// implicit driver) and removes it when the test ends.
func (h *Host) CreateNetworkRaw(t testing.TB, name string, args ...string) string {
	t.Helper()
	return h.createNetwork(t, name, append([]string{"network", "create"}, args...))
}

func (h *Host) createNetwork(t testing.TB, name string, args []string) string {
	t.Helper()
	id := h.Docker(t, append(args, name)...)
	t.Cleanup(func() {
		// Containers (registered later, so removed earlier) are gone by now.
		if _, stderr, err := h.DockerErr("network", "rm", name); err != nil && !strings.Contains(stderr, "not found") && !strings.Contains(stderr, "No such network") {
			t.Errorf("removing network %s: %v", name, err)
		}
	})
	return id
}

// Run starts a detached container (sleeping) and removes it when the test
// ends; args go between "run -d --name NAME" and the image.
func (h *Host) Run(t testing.TB, name string, args ...string) {
	t.Helper()
	h.Docker(t, h.runArgs(name, args)...)
	h.cleanupContainer(t, name)
}

func (h *Host) runArgs(name string, args []string) []string {
	// sleep as PID 1 ignores SIGTERM: without a short stop timeout every
	// stop (and a dockerd shutdown) waits Docker's default 10 s.
	full := append([]string{"run", "-d", "--name", name, "--stop-timeout", "1"}, args...)
	return append(full, testImage, "sleep", "86400")
}

func (h *Host) cleanupContainer(t testing.TB, name string) {
	t.Cleanup(func() {
		if _, stderr, err := h.DockerErr("rm", "-f", name); err != nil && !strings.Contains(stderr, "No such container") {
			t.Errorf("removing container %s: %v", name, err)
		}
	})
}

// Exec runs a command in a container.
func (h *Host) Exec(ctr string, argv ...string) (string, error) {
	out, _, err := h.DockerErr(append([]string{"exec", ctr}, argv...)...)
	return out, err
}

// ContainerIP is the container's IPv4 address on network net.
func (h *Host) ContainerIP(t testing.TB, ctr, net string) netip.Addr {
	t.Helper()
	s := h.Docker(t, "inspect", "-f", fmt.Sprintf(`{{with index .NetworkSettings.Networks %q}}{{.IPAddress}}{{end}}`, net), ctr)
	a, err := netip.ParseAddr(s)
	if err != nil {
		t.Fatalf("container %s has no IPv4 address on %s (inspect said %q)", ctr, net, s)
	}
	return a
}

// NetworkSubnet returns the first IPv4 subnet and gateway of a network.
func (h *Host) NetworkSubnet(t testing.TB, net string) (netip.Prefix, netip.Addr) {
	t.Helper()
	s := h.Docker(t, "network", "inspect", "-f", `{{range .IPAM.Config}}{{.Subnet}} {{.Gateway}}{{"\n"}}{{end}}`, net)
	for _, line := range strings.Split(s, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		p, err := netip.ParsePrefix(f[0])
		if err != nil || !p.Addr().Is4() {
			continue
		}
		var gw netip.Addr
		if len(f) > 1 {
			gw, _ = netip.ParseAddr(f[1])
		}
		return p, gw
	}
	t.Fatalf("network %s has no IPv4 subnet (inspect said %q)", net, s)
	return netip.Prefix{}, netip.Addr{}
}

// NetworkIDs lists the IDs of all networks (docker network ls -q --no-trunc).
func (h *Host) NetworkIDs(t testing.TB) []string {
	t.Helper()
	return strings.Fields(h.Docker(t, "network", "ls", "-q", "--no-trunc"))
}

// pingOnce pings target once from ctr, waiting up to wait seconds.
func (h *Host) pingOnce(ctr, target string, count, wait int) (string, error) {
	return h.Exec(ctr, "ping", "-c", fmt.Sprint(count), "-W", fmt.Sprint(wait), target)
}

// AssertPing fails the test unless ctr can ping target (an address or a
// name). It retries for a few seconds: a fresh interface may still be
// learning its neighbours.
func (h *Host) AssertPing(t testing.TB, ctr, target string) {
	t.Helper()
	var last string
	var err error
	for i := 0; i < 5; i++ {
		if last, err = h.pingOnce(ctr, target, 1, 1); err == nil {
			return
		}
	}
	t.Errorf("%s cannot ping %s: %v\n%s", ctr, target, err, last)
}

// AssertNoPing fails the test if ctr can ping target.
func (h *Host) AssertNoPing(t testing.TB, ctr, target string) {
	t.Helper()
	h.AssertNoPings(t, [2]string{ctr, target})
}

// AssertNoPings is AssertNoPing for several (container, target) pairs, run
// concurrently: each negative check waits out its timeout.
func (h *Host) AssertNoPings(t testing.TB, pairs ...[2]string) {
	t.Helper()
	msgs := make([]string, len(pairs))
	var wg sync.WaitGroup
	for i, p := range pairs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if out, err := h.pingOnce(p[0], p[1], 2, 1); err == nil {
				msgs[i] = fmt.Sprintf("%s can ping %s, but must not:\n%s", p[0], p[1], out)
			}
		}()
	}
	wg.Wait()
	for _, m := range msgs {
		if m != "" {
			t.Error(m)
		}
	}
}
