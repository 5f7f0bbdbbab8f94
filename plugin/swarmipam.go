package plugin

import (
	"net/netip"

	"github.com/weftnet/weft/ipam"
)

// weft's IPAM in a swarm.
//
// Swarm's allocator, on the raft leader, asks the IPAM driver for a swarm
// network's pool and for every task's address in the global address space
// (moby daemon/libnetwork/cnmallocator). It keeps what it got in its raft
// log, and releases it there: a pool or address of the global space is never
// claimed by a CreateNetwork or CreateEndpoint on the manager, so it must
// not expire as an unclaimed reservation does. When leadership moves, the new
// leader's allocator asks again for every pool and address it holds, by
// value; when it comes back to a node, that node's weft is asked again for
// what it already holds. Those requests are replays and get the same answer.
//
// Each node that runs a task mirrors the network in its local address space
// (RequestPool with the leader's subnet, RequestAddress with the leader's
// gateway and the task's address), and dockerd makes that mirror again after
// it restarts, without releasing the old one: on a global-scope weft, whose
// every network is a swarm network, a request for a pool or address it holds
// in either space is a replay too. Swarm's allocator, not weft, keeps two
// tasks from being given one address: the leader hands out each dynamic
// address once, and every other request names one.

// replaysIPAM reports whether a request naming a pool or address weft holds
// in space is a replay to answer with it, rather than a conflict to refuse.
func (d *Driver) replaysIPAM(space string) bool {
	return space == ipam.GlobalSpace || d.scope == ScopeGlobal
}

// heldPoolLocked returns the pool a request for pool (with ip-range rng) in
// space replays, if weft holds exactly that pool there and replays are
// answered in space.
func (d *Driver) heldPoolLocked(space string, pool, rng netip.Prefix) (ipam.Pool, bool) {
	if !pool.IsValid() || !d.replaysIPAM(space) {
		return ipam.Pool{}, false
	}
	p, ok := d.deps.IPAM.PoolOf(space, pool)
	if !ok || p.Range != rng {
		return ipam.Pool{}, false
	}
	return p, true
}

// heldAddressLocked reports whether a request for address a of pool is a
// replay of an address weft already handed out.
func (d *Driver) heldAddressLocked(pool ipam.Pool, a netip.Addr) bool {
	return a.IsValid() && d.replaysIPAM(pool.Space) && d.deps.IPAM.IsAllocated(pool.ID, a)
}

// expires reports whether what IPAM hands out in space is a reservation that
// a network or endpoint must claim within the grace: not in the global
// space, which swarm's raft log holds.
func expires(space string) bool { return space != ipam.GlobalSpace }
