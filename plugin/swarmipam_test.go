package plugin

import (
	"context"
	"net/netip"
	"testing"
	"time"

	dipam "github.com/docker/go-plugins-helpers/ipam"

	"github.com/docker/go-plugins-helpers/network"

	"github.com/weftnet/weft/ipam"
	"github.com/weftnet/weft/store/memstore"
)

// serial is the option swarm's allocator adds to its IPAM requests.
var serial = map[string]string{"com.docker.network.ipam.serial": "true"}

func requestAddr(t *testing.T, d *Driver, poolID, addr string, gateway bool) string {
	t.Helper()
	opts := map[string]string{}
	for k, v := range serial {
		opts[k] = v
	}
	if gateway {
		opts[keyRequestAddressType] = valueGateway
	}
	r, err := d.RequestAddress(context.Background(), &dipam.RequestAddressRequest{PoolID: poolID, Address: addr, Options: opts})
	if err != nil {
		t.Fatalf("RequestAddress(%s, %q): %v", poolID, addr, err)
	}
	return r.Address
}

func requestPool(t *testing.T, d *Driver, space, pool string) string {
	t.Helper()
	r, err := d.RequestPool(context.Background(), &dipam.RequestPoolRequest{AddressSpace: space, Pool: pool, Options: serial})
	if err != nil {
		t.Fatalf("RequestPool(%s, %q): %v", space, pool, err)
	}
	return r.PoolID
}

// The calls swarm makes of weft's IPAM (moby daemon/libnetwork/cnmallocator
// on the leader, daemon/cluster/executor on the nodes): the leader's
// allocations in the global space last until swarm releases them, requests
// swarm repeats get the same answers, and a node's mirror of the network in
// its local space agrees with the leader.
func TestSwarmIPAM(t *testing.T) {
	ctx := context.Background()
	node := startSwarmNode(t, 0, gossipPort(t, 1), time.Second)
	d := node.d // no reservation grace: the sweep below releases every reservation there is
	const subnet = "10.0.9.0/24"

	// The leader: the pool, its gateway, three tasks.
	gp := requestPool(t, d, ipam.GlobalSpace, subnet)
	if gw := requestAddr(t, d, gp, "", true); gw != "10.0.9.1/24" {
		t.Fatalf("gateway %s, want 10.0.9.1/24", gw)
	}
	tasks := map[string]bool{}
	for range 3 {
		tasks[requestAddr(t, d, gp, "", false)] = true
	}
	if len(tasks) != 3 || tasks["10.0.9.1/24"] {
		t.Fatalf("task addresses %v: want 3 distinct, none the gateway", tasks)
	}
	alloc, err := d.AllocateNetwork(ctx, allocReq(swarmNet1, nil, subnet))
	if err != nil {
		t.Fatal(err)
	}

	// This node runs a task too: the mirror in the local space, with the
	// leader's gateway and the task's address; dockerd restarted makes the
	// mirror again without releasing it.
	for round := range 2 {
		lp := requestPool(t, d, ipam.LocalSpace, subnet)
		if lp == gp {
			t.Fatalf("round %d: the local mirror got the global pool's ID %s", round, gp)
		}
		if a := requestAddr(t, d, lp, "10.0.9.1", true); a != "10.0.9.1/24" {
			t.Fatalf("round %d: mirror's gateway %s", round, a)
		}
		if a := requestAddr(t, d, lp, "10.0.9.3", false); a != "10.0.9.3/24" {
			t.Fatalf("round %d: mirror's task address %s", round, a)
		}
		if round > 0 {
			break // the network and the task's endpoint are still there
		}
		generic := map[string]any{}
		for k, v := range alloc.Options {
			generic[k] = v
		}
		req := createReq(swarmNet1, generic)
		req.IPv4Data = []*network.IPAMData{{AddressSpace: ipam.LocalSpace, Pool: subnet, Gateway: "10.0.9.1/24"}}
		if err := d.CreateNetwork(ctx, req); err != nil {
			t.Fatalf("the mirror's CreateNetwork on a node that holds the subnet in both spaces: %v", err)
		}
		if _, err := d.CreateEndpoint(ctx, epReq(swarmNet1, epID(1), "10.0.9.3/24", "")); err != nil {
			t.Fatalf("the task's CreateEndpoint: %v", err)
		}
	}

	// Nothing of the global space is an unclaimed reservation: an hour on,
	// the sweeper has released none of it.
	d.mu.Lock()
	d.sweepReservationsLocked(ctx, time.Now().Add(time.Hour))
	d.mu.Unlock()
	if _, ok := d.deps.IPAM.Pool(gp); !ok {
		t.Fatal("the sweeper released the leader's pool: swarm's raft holds it, no CreateNetwork on the leader ever claims it")
	}
	for _, a := range []string{"10.0.9.1", "10.0.9.2", "10.0.9.3", "10.0.9.4"} {
		if !d.deps.IPAM.IsAllocated(gp, netip.MustParseAddr(a)) {
			t.Errorf("the sweeper released %s of the leader's pool", a)
		}
	}

	// Leadership comes back to this node: its allocator asks again, by
	// value, for what it holds; the next new task gets a new address.
	if again := requestPool(t, d, ipam.GlobalSpace, subnet); again != gp {
		t.Fatalf("replayed pool %s, want %s", again, gp)
	}
	requestAddr(t, d, gp, "10.0.9.1", true)
	for a := range tasks {
		requestAddr(t, d, gp, netip.MustParsePrefix(a).Addr().String(), false)
	}
	if a := requestAddr(t, d, gp, "", false); tasks[a] || a == "10.0.9.1/24" {
		t.Fatalf("a new task after the replay got %s, already given out", a)
	}

	// A new leader (another weft, nothing held) learns by the replay and
	// gives the next task an address none of the others has.
	d2 := startGlobalDriver(t, memstore.New())
	gp2 := requestPool(t, d2, ipam.GlobalSpace, subnet)
	for _, a := range []string{"10.0.9.1", "10.0.9.2", "10.0.9.3", "10.0.9.4", "10.0.9.5"} {
		requestAddr(t, d2, gp2, a, a == "10.0.9.1")
	}
	if a := requestAddr(t, d2, gp2, "", false); a != "10.0.9.6/24" {
		t.Fatalf("the new leader's first new task got %s, want 10.0.9.6/24", a)
	}

	// swarm's release is final.
	if err := d.ReleasePool(ctx, &dipam.ReleasePoolRequest{PoolID: gp}); err != nil {
		t.Fatal(err)
	}
	if _, ok := d.deps.IPAM.Pool(gp); ok {
		t.Fatal("the pool outlived its release")
	}

	// A local-scope weft still refuses a second network on a subnet it
	// holds in its local space: only swarm replays.
	dl, _ := startDriver(t, memstore.New())
	requestPool(t, dl, ipam.LocalSpace, subnet)
	if _, err := dl.RequestPool(ctx, &dipam.RequestPoolRequest{AddressSpace: ipam.LocalSpace, Pool: subnet}); err == nil {
		t.Fatal("a local-scope weft handed out a local pool it already holds")
	}
}
