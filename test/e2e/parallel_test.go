//go:build e2e

package e2e

import (
	"fmt"
	"net/netip"
	"sync"
	"testing"
)

// Scenario 8: 20 concurrent `docker run -d` on one network all succeed, with
// distinct addresses inside the subnet, none of them the gateway.
func TestParallelRuns(t *testing.T) {
	const n = 20
	h := sharedHost(t)
	h.CreateNetwork(t, "s8-net")
	subnet, gw := h.NetworkSubnet(t, "s8-net")

	names := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range names {
		names[i] = fmt.Sprintf("s8-c%02d", i)
		h.cleanupContainer(t, names[i])
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			_, _, errs[i] = h.DockerErr(h.runArgs(names[i], []string{"--network", "s8-net"})...)
		}(i)
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("%s: %v", names[i], err)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	seen := map[netip.Addr]string{}
	for _, name := range names {
		ip := h.ContainerIP(t, name, "s8-net")
		switch {
		case !subnet.Contains(ip):
			t.Errorf("%s got %s, outside %s", name, ip, subnet)
		case ip == gw:
			t.Errorf("%s got the gateway address %s", name, ip)
		case seen[ip] != "":
			t.Errorf("%s and %s both got %s", seen[ip], name, ip)
		}
		seen[ip] = name
	}
	// They are really attached: the first reaches the last.
	h.AssertPing(t, names[0], names[n-1])
}
