//go:build e2e

package e2e

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
)

// What differs between the Docker engines the suite runs on (docs/engines.md
// has the matrix). Tests here assert each engine's own behaviour: they never
// skip because of the engine.

// engineVersion is the test dockerd's major and minor version.
func engineVersion(t testing.TB, h *Host) (major, minor int) {
	t.Helper()
	v := strings.TrimSpace(h.Docker(t, "version", "--format", "{{.Server.Version}}"))
	if _, err := fmt.Sscanf(v, "%d.%d", &major, &minor); err != nil {
		t.Fatalf("reading dockerd's version from %q: %v", v, err)
	}
	return major, minor
}

// engineAtLeast reports whether the test dockerd is major.minor or newer.
func engineAtLeast(t testing.TB, h *Host, major, minor int) bool {
	t.Helper()
	ma, mi := engineVersion(t, h)
	return ma > major || ma == major && mi >= minor
}

// TestGatewayOnlyWhereNeeded: weft tells Docker ≥ 28 (GwAllocCheck) that a
// macvlan network without a parent needs no gateway address, so none is
// reserved and the first address goes to a container; a bridge keeps its
// gateway. Older engines never ask and reserve one for every network.
// (With --subnet given, `docker network inspect` shows only a gateway the
// user gave, so the addresses containers get tell what was reserved.)
func TestGatewayOnlyWhereNeeded(t *testing.T) {
	h := macvlanHost(t)
	asks := engineAtLeast(t, h, 28, 0)

	h.CreateNetwork(t, "gw-iso", macvlanArgs("", "--subnet", "198.18.7.0/24")...)
	h.Run(t, "gw-iso-a", "--network", "gw-iso")
	got := h.ContainerIP(t, "gw-iso-a", "gw-iso")
	want := netip.MustParseAddr("198.18.7.2")
	if asks {
		want = netip.MustParseAddr("198.18.7.1")
	}
	if got != want {
		t.Errorf("the first container on a macvlan network without a parent got %s, want %s (engine calls GwAllocCheck: %v; from 28 on no gateway is reserved)", got, want, asks)
	}

	h.CreateNetwork(t, "gw-br", "--subnet", "198.18.8.0/24")
	h.Run(t, "gw-br-a", "--network", "gw-br")
	if got := h.ContainerIP(t, "gw-br-a", "gw-br"); got != netip.MustParseAddr("198.18.8.2") {
		t.Errorf("the first container on a bridge network got %s, want 198.18.8.2 after the gateway 198.18.8.1 (engine calls GwAllocCheck: %v)", got, asks)
	}
	if addrs := h.NS(t, "ip", "-4", "-o", "addr", "show"); !strings.Contains(addrs, "inet 198.18.8.1/24") {
		t.Errorf("no weft bridge holds the gateway 198.18.8.1/24:\n%s", addrs)
	}
	h.Docker(t, "rm", "-f", "gw-iso-a", "gw-br-a")
	h.Docker(t, "network", "rm", "gw-iso", "gw-br")
}
