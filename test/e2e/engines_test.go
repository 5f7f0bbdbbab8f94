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
func TestGatewayOnlyWhereNeeded(t *testing.T) {
	h := macvlanHost(t)
	asks := engineAtLeast(t, h, 28, 0)

	h.CreateNetwork(t, "gw-iso", macvlanArgs("", "--subnet", "198.18.7.0/24")...)
	_, gw := h.NetworkSubnet(t, "gw-iso")
	h.Run(t, "gw-iso-a", "--network", "gw-iso")
	ip := h.ContainerIP(t, "gw-iso-a", "gw-iso")
	first := netip.MustParseAddr("198.18.7.1")
	if asks {
		if gw.IsValid() {
			t.Errorf("Docker ≥ 28 reserved the gateway %s for a macvlan network without a parent; weft's GwAllocCheck should have said skip", gw)
		}
		if ip != first {
			t.Errorf("the first container on a gateway-less network got %s, want the first address %s", ip, first)
		}
	} else {
		if gw != first {
			t.Errorf("Docker before 28 should reserve the first address %s as gateway, inspect says %q", first, gw)
		}
		if ip == first {
			t.Errorf("a container got the gateway's address %s", ip)
		}
	}

	h.CreateNetwork(t, "gw-br", "--subnet", "198.18.8.0/24")
	if _, gw := h.NetworkSubnet(t, "gw-br"); gw != netip.MustParseAddr("198.18.8.1") {
		t.Errorf("a weft bridge network must keep its gateway 198.18.8.1 (the bridge's address), inspect says %q (engine asks GwAllocCheck: %v)", gw, asks)
	}
	h.Docker(t, "rm", "-f", "gw-iso-a")
	h.Docker(t, "network", "rm", "gw-iso", "gw-br")
}
