//go:build e2e

package e2e

import (
	"slices"
	"strings"
	"testing"
)

// Scenario 10 (this file sorts last, so on the shared host it runs after
// every other sequential test; the tests that run in parallel at the end —
// a load test deferred behind another run's (load_test.go), the tests that
// mostly wait, on hosts of their own — run after it and check their own
// leftovers): once every weft network is gone, the host has no weft
// link (name weft-*, wh*, wc*, or alias weft:*) and no weft firewall chain or
// rule at all — see Host.AssertClean for the exact definition. To be meaningful when run alone, it first creates and removes
// networks of each kind (plain, ICC off, internal, no masquerade, named
// bridge with an MTU) with containers on them.
func TestNoLeftovers(t *testing.T) {
	h := sharedHost(t)
	kinds := [][]string{
		nil,
		{"-o", "com.docker.network.bridge.enable_icc=false"},
		{"--internal"},
		{"-o", "com.docker.network.bridge.enable_ip_masquerade=false"},
		{"-o", "com.docker.network.bridge.name=e2eclean0", "-o", "com.docker.network.driver.mtu=1300"},
	}
	for i, args := range kinds {
		net := "s10-net" + string(rune('a'+i))
		h.Docker(t, append(append([]string{"network", "create", "-d", h.Driver(), "--ipam-driver", h.Driver()}, args...), net)...)
		h.Docker(t, h.runArgs(net+"-c1", []string{"--network", net})...)
		h.Docker(t, h.runArgs(net+"-c2", []string{"--network", net})...)
		h.Docker(t, "network", "connect", "bridge", net+"-c2")
	}
	// Remove everything the suite could have left on the host.
	if ids := strings.Fields(h.Docker(t, "ps", "-aq")); len(ids) > 0 {
		h.Docker(t, append([]string{"rm", "-f"}, ids...)...)
	}
	for _, line := range strings.Split(h.Docker(t, "network", "ls", "--format", "{{.Name}} {{.Driver}}"), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[1] == h.Driver() {
			h.Docker(t, "network", "rm", f[0])
		}
	}
	names := strings.Fields(h.Docker(t, "network", "ls", "--format", "{{.Name}}"))
	slices.Sort(names)
	if !slices.Equal(names, []string{"bridge", "host", "none"}) {
		t.Errorf("networks left: %v, want only bridge, host and none", names)
	}
	h.AssertClean(t)
}
