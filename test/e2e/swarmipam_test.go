//go:build e2e

package e2e

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/weftnet/weft/ipam"
	"github.com/weftnet/weft/test/testhost"
)

// weft's IPAM in the swarm (docs/swarm.md, "Addresses"): a second swarm
// network with --ipam-driver the same plugin. Swarm's allocator on the
// manager asks the manager's weft for the pool and every task's address in
// the global space; each node mirrors the subnet in its local space.

const (
	swIPAMNet    = "sw-ipam"
	swIPAMSubnet = "10.250.8.0/24"
	swIPAMSvc    = "sw-ipam-svc"
	// swGrace is the swarm installs' WEFT_RESERVATION_GRACE: the step
	// outlives it before it asks for new addresses, which must not collide
	// with the held ones (the leader's allocations are not reservations
	// that expire).
	swGrace = 3 * time.Second
)

// swIPAMStep runs the step on the swarm of hosts (hosts[0] the manager)
// whose plugin is ref; everything it makes is gone when it returns.
func swIPAMStep(t *testing.T, hosts []*Host, ref string, vteps map[*Host]netip.Addr) {
	h1 := hosts[0]
	subnet := netip.MustParsePrefix(swIPAMSubnet)
	h1.Docker(t, "network", "create", "-d", ref, "--ipam-driver", ref, "--attachable", "--subnet", swIPAMSubnet, swIPAMNet)
	rmNet := func() {
		if _, stderr, err := h1.DockerErr("network", "rm", swIPAMNet); err != nil && !strings.Contains(stderr, "not found") && !strings.Contains(stderr, "No such network") {
			t.Errorf("removing network %s: %v", swIPAMNet, err)
		}
	}
	t.Cleanup(rmNet)
	rmSvc := func() {
		if _, stderr, err := h1.DockerErr("service", "rm", swIPAMSvc); err != nil && !strings.Contains(stderr, "not found") {
			t.Errorf("removing service %s: %v", swIPAMSvc, err)
		}
	}
	t.Cleanup(rmSvc)
	h1.Docker(t, "service", "create", "--detach", "--mode", "global", "--endpoint-mode", "dnsrr", "--network", swIPAMNet,
		"--name", swIPAMSvc, "--no-resolve-image", "--stop-grace-period", "1s", testImage, "sleep", "86400")
	tasks := map[*Host]string{}
	err := testhost.Poll(swTasksMax, func() error {
		var missing []string
		for _, h := range hosts {
			if tasks[h] == "" {
				if ids := strings.Fields(h.Docker(t, "ps", "-q", "--filter", "label=com.docker.swarm.service.name="+swIPAMSvc)); len(ids) == 1 {
					tasks[h] = ids[0]
				} else {
					missing = append(missing, h.Name)
				}
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("no running task on %v", missing)
		}
		return nil
	})
	if err != nil {
		out, _, _ := h1.DockerErr("service", "ps", "--no-trunc", "--format", "{{.Node}} {{.CurrentState}} {{.Error}}", swIPAMSvc)
		t.Fatalf("global service %s on a network with weft's IPAM: %v\ndocker service ps:\n%s", swIPAMSvc, err, out)
	}
	var eps []vxEP
	seen := map[netip.Addr]string{}
	for _, h := range hosts {
		e := vxEndpoint(t, h, tasks[h], swIPAMNet)
		e.vtep = vteps[h]
		if !subnet.Contains(e.ip) || e.ip == subnet.Addr().Next() {
			t.Errorf("%s: address %s is outside %s or its gateway", e, e.ip, subnet)
		}
		seen[e.ip] = e.String()
		eps = append(eps, e)
	}
	swUnique(t, "tasks on a network with weft's IPAM", eps)
	t.Logf("tasks on a network with weft's IPAM: %s; %s; %s", eps[0], eps[1], eps[2])
	vxPingAll(t, "tasks on a network with weft's IPAM", swConverge, vxPairs(eps)...)

	// The manager's weft holds the pool in its global space with the
	// gateway and the three tasks' addresses; every node mirrors the subnet
	// in its local space.
	globalID := ipam.GlobalSpace + "/" + swIPAMSubnet
	localID := ipam.LocalSpace + "/" + swIPAMSubnet
	if n, ok := poolAllocated(t, h1, globalID); !ok || n != 4 {
		t.Errorf("manager %s: pool %s holds %d addresses (held: %v); want the gateway and 3 tasks'", h1.Name, globalID, n, ok)
	}
	for _, h := range hosts {
		if _, ok := poolAllocated(t, h, localID); !ok {
			t.Errorf("host %s runs a task but holds no pool %s", h.Name, localID)
		}
	}

	// Past the reservation grace, standalone containers started on every
	// node get addresses none of the tasks has: the leader's allocations
	// did not expire.
	time.Sleep(2 * swGrace)
	for i, h := range hosts {
		name := fmt.Sprintf("sw-ipam-c%d", i+1)
		t.Cleanup(func() { _, _, _ = h.DockerErr("rm", "-f", name) }) // best effort: the pool checks below report leftovers
		h.Docker(t, h.runArgs(name, []string{"--network", swIPAMNet})...)
		e := vxEndpoint(t, h, name, swIPAMNet)
		if other, dup := seen[e.ip]; dup || !subnet.Contains(e.ip) {
			t.Errorf("%s, started %s after the tasks, got %s (in use by %q)", e, 2*swGrace, e.ip, other)
		}
		seen[e.ip] = e.String()
		h.Docker(t, "rm", "-f", name)
	}
	err = testhost.Poll(swConverge, func() error {
		if n, ok := poolAllocated(t, h1, globalID); !ok || n != 4 {
			return fmt.Errorf("pool %s holds %d addresses (held: %v); want 4", globalID, n, ok)
		}
		return nil
	})
	if err != nil {
		t.Errorf("manager %s, after the standalone containers left: %v", h1.Name, err)
	}

	// Removing the service and the network releases everything, everywhere.
	rmSvc()
	rmNet()
	err = testhost.Poll(swCleanMax, func() error {
		for _, h := range hosts {
			for _, id := range []string{globalID, localID} {
				if n, ok := poolAllocated(t, h, id); ok {
					return fmt.Errorf("host %s still holds pool %s (%d addresses)", h.Name, id, n)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Errorf("after the service and network %s were removed: %v", swIPAMNet, err)
	}
}

// poolAllocated is the number of addresses h's weft holds in pool id, and
// whether it holds the pool.
func poolAllocated(t *testing.T, h *Host, id string) (int, bool) {
	t.Helper()
	for _, p := range h.WeftState(t).Pools {
		if p.ID == id {
			return p.Allocated, true
		}
	}
	return 0, false
}
