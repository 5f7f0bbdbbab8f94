//go:build e2e

package e2e

import (
	"strings"
	"testing"
)

// TestLeakCheckerSeesWeftState: the leak checker every test shares
// (Host.Snapshot, AssertNothingNew, AssertClean) compares weft's own view
// too — its networks, endpoints, IPAM pools with their allocated-address
// counts, store records and reservations — and names what differs. A
// network with a container shows up in each of those, and once both are
// removed nothing differs.
func TestLeakCheckerSeesWeftState(t *testing.T) {
	h := sharedHost(t)
	before := h.Snapshot(t)
	netID := h.CreateNetwork(t, "lk-net", "--subnet", "10.152.0.0/24")
	h.Run(t, "lk-a", "--network", "lk-net")
	epID := h.Docker(t, "inspect", "-f", `{{(index .NetworkSettings.Networks "lk-net").EndpointID}}`, "lk-a")

	now := h.Snapshot(t)
	diff := strings.Join(append(append(missingFrom(now.links, before.links), missingFrom(now.rules, before.rules)...), stateDiff(before.state, now.state)...), "\n")
	for _, want := range []string{
		"new: weft network " + netID,
		"new: weft endpoint " + epID,
		"addresses allocated: 2", // the gateway and the container
		"new: store bucket networks, records: 1",
		"new: store bucket endpoints, records: 1",
		"link weft-",
		"-A WEFT-",
	} {
		if !strings.Contains(diff, want) {
			t.Errorf("the leak checker does not name %q; it sees:\n%s", want, diff)
		}
	}
	st := h.WeftState(t)
	if st.Reservations != 0 {
		t.Errorf("weft holds %d unclaimed reservations with a network and a container that claimed theirs", st.Reservations)
	}
	t.Logf("with a network and a container, the leak checker sees:\n%s", diff)

	h.Docker(t, "rm", "-f", "lk-a")
	h.Docker(t, "network", "rm", "lk-net")
	h.AssertNothingNew(t, before, "removing the network and its container")
}
