package plugin

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/weftnet/weft/dataplane"
	"github.com/weftnet/weft/ipam"
	"github.com/weftnet/weft/store"
)

// Reservations nobody claims.
//
// dockerd reserves a pool (RequestPool) before CreateNetwork and an address
// (RequestAddress) before CreateEndpoint, and releases them when the create
// fails — unless it cannot: weft was down or killed mid-call, dockerd itself
// was killed, or the release failed. A reservation it never releases would be
// held for ever: a subnet the user can never use again, a pool that slowly
// empties. So every pool and address weft's IPAM hands out starts as a
// reservation, recorded with its time in bucketReservations in the same write
// as the pool or address itself. The CreateNetwork that uses the pool (with
// its gateway and auxiliary addresses) or the CreateEndpoint that uses the
// address claims it, in the same write as the network or endpoint record.
// A reservation still unclaimed after Deps.ReservationGrace is released.
//
// The same holds the other way round. dockerd releases a network's pool
// before DeleteNetwork, and when CreateNetwork failed — including when weft
// was killed after recording the network but before answering. So when a
// pool a weft network uses is released, the network is marked (releasedKey);
// if no DeleteNetwork follows within the grace, the network is deleted, and a
// new network that overlaps it deletes it at once.
//
// Only a weft network claims a pool: weft's IPAM under another network
// driver never sees its network, so such deployments set
// WEFT_RESERVATION_GRACE=0 (documented in the README).

// bucketReservations holds one reservationRecord per unclaimed pool (keyed by
// pool ID) or address (keyed by addressKey).
const bucketReservations = "ipam-reservations"

// DefaultReservationGrace comfortably exceeds the time between dockerd's
// RequestPool and CreateNetwork (or RequestAddress and CreateEndpoint), which
// is milliseconds, even on a host under load with dockerd retrying calls.
const DefaultReservationGrace = 2 * time.Minute

// reservationRecord is what bucketReservations keeps.
type reservationRecord struct {
	Since time.Time `json:"since"`
}

// releasedPrefix starts the bucketReservations key of a network whose pool
// dockerd released; pool IDs start with an address space, address keys
// contain '|', so the three kinds of key never meet.
const releasedPrefix = "network:"

// releasedKey is the key marking network id as released by dockerd.
func releasedKey(id string) string { return releasedPrefix + id }

// reserveOp records a new reservation of key (a pool ID or an addressKey).
func (d *Driver) reserveOp(key string, now time.Time) (store.Op, error) {
	return putJSON(bucketReservations, key, reservationRecord{Since: now})
}

// loadReservationsLocked reads the unclaimed reservations at start; records
// whose pool or address is no longer held are dropped.
func (d *Driver) loadReservationsLocked(ctx context.Context) error {
	raw, err := d.deps.Store.List(ctx, bucketReservations)
	if err != nil {
		return err
	}
	var stale []store.Op
	for key, v := range raw {
		var r reservationRecord
		if err := json.Unmarshal(v, &r); err != nil || !d.reservedLocked(key) {
			stale = append(stale, store.Delete(bucketReservations, key))
			continue
		}
		d.pending[key] = r.Since
	}
	if len(stale) == 0 {
		return nil
	}
	return d.save(ctx, stale...)
}

// reservedLocked reports whether key names a pool or address IPAM holds.
func (d *Driver) reservedLocked(key string) bool {
	if id, ok := strings.CutPrefix(key, releasedPrefix); ok {
		_, known := d.nets[id]
		return known
	}
	if !strings.Contains(key, "|") {
		_, ok := d.deps.IPAM.Pool(key)
		return ok
	}
	poolID, a, err := splitAddressKey(key)
	return err == nil && d.deps.IPAM.IsAllocated(poolID, a)
}

// reservationCountLocked is the number of unclaimed reservations.
func (d *Driver) reservationCountLocked() int { return len(d.pending) }

// claimNetworkLocked returns the keys a new network claims: each of its
// subnets' weft pools and every address already allocated in them (its
// gateway and --aux-address reservations, since no endpoint exists yet).
func (d *Driver) claimNetworkLocked(rec *networkRecord) []string {
	if rec.AddressSpace == "" {
		return nil
	}
	var keys []string
	for _, s := range append(slices.Clone(rec.Network.IPv4), rec.Network.IPv6...) {
		for _, p := range d.poolsOfLocked(rec.AddressSpace, s.Pool) {
			keys = append(keys, p.ID)
			for _, a := range d.deps.IPAM.Allocated(p.ID) {
				keys = append(keys, addressKey(p.ID, a))
			}
		}
	}
	return d.pendingOnlyLocked(keys)
}

// claimEndpointLocked returns the keys a new endpoint claims: its addresses
// in its network's weft pools.
func (d *Driver) claimEndpointLocked(n *networkRecord, ep dataplane.Endpoint) []string {
	if n.AddressSpace == "" {
		return nil
	}
	var keys []string
	for _, pfx := range []netip.Prefix{ep.IPv4, ep.IPv6} {
		if !pfx.IsValid() {
			continue
		}
		if p, ok := d.deps.IPAM.PoolContaining(n.AddressSpace, pfx.Addr()); ok {
			keys = append(keys, addressKey(p.ID, pfx.Addr()))
		}
	}
	return d.pendingOnlyLocked(keys)
}

func (d *Driver) pendingOnlyLocked(keys []string) []string {
	out := keys[:0]
	for _, k := range keys {
		if _, ok := d.pending[k]; ok {
			out = append(out, k)
		}
	}
	return out
}

// claimOps are the store writes that claim keys.
func claimOps(keys []string) []store.Op {
	ops := make([]store.Op, 0, len(keys))
	for _, k := range keys {
		ops = append(ops, store.Delete(bucketReservations, k))
	}
	return ops
}

// claimedLocked forgets keys once their claim is durable.
func (d *Driver) claimedLocked(keys []string) {
	for _, k := range keys {
		delete(d.pending, k)
	}
}

// poolsOfLocked lists the pools IPAM holds for subnet in space (one per
// --ip-range variant at most; pools of a space never overlap, so one).
func (d *Driver) poolsOfLocked(space string, subnet netip.Prefix) []ipam.Pool {
	if p, ok := d.poolOfLocked(space, subnet); ok {
		return []ipam.Pool{p}
	}
	return nil
}

// RunReservationSweeper releases unclaimed reservations older than
// Deps.ReservationGrace until ctx ends. main runs it after Start; it does
// nothing when the grace is zero.
func (d *Driver) RunReservationSweeper(ctx context.Context) {
	if err := d.wait(ctx); err != nil {
		return
	}
	grace := d.deps.ReservationGrace
	if grace <= 0 {
		return
	}
	every := min(max(grace/4, 250*time.Millisecond), 30*time.Second)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			d.mu.Lock()
			d.sweepReservationsLocked(ctx, now)
			d.mu.Unlock()
		}
	}
}

// sweepReservationsLocked releases each reservation older than the grace:
// a pool with all its addresses, or a single address. Its cost is the
// number of unclaimed reservations, not of pools or addresses held.
func (d *Driver) sweepReservationsLocked(ctx context.Context, now time.Time) {
	grace := d.deps.ReservationGrace
	var nets, pools, addrs []string
	for key, since := range d.pending {
		if now.Sub(since) < grace {
			continue
		}
		if id, ok := strings.CutPrefix(key, releasedPrefix); ok {
			nets = append(nets, id)
		} else if strings.Contains(key, "|") {
			addrs = append(addrs, key)
		} else {
			pools = append(pools, key)
		}
	}
	for _, id := range nets {
		r, ok := d.nets[id]
		if !ok {
			delete(d.pending, releasedKey(id))
			continue
		}
		if err := d.deleteNetworkLocked(ctx, r); err != nil {
			d.log.Error("deleting a network whose pool dockerd released failed", "network", dataplane.ShortID(id), "err", err)
			continue
		}
		d.log.Warn("deleted a network dockerd released the pool of but never deleted (was weft stopped during docker network create?)", "network", dataplane.ShortID(id))
	}
	for _, id := range pools {
		if err := d.releasePoolLocked(ctx, id); err != nil {
			d.log.Error("releasing an unclaimed pool failed; trying again later", "pool", id, "err", err)
			continue
		}
		d.log.Warn("released a pool no network claimed; dockerd never released it (was weft or dockerd stopped during docker network create?)", "pool", id)
	}
	for _, key := range addrs {
		if _, ok := d.pending[key]; !ok {
			continue // released with its pool
		}
		poolID, a, err := splitAddressKey(key)
		if err != nil {
			delete(d.pending, key)
			continue
		}
		if err := d.releaseAddressLocked(ctx, poolID, a); err != nil {
			d.log.Error("releasing an unclaimed address failed; trying again later", "pool", poolID, "address", a, "err", err)
			continue
		}
		d.log.Warn("released an address no container claimed; dockerd never released it (was weft or dockerd stopped while a container started?)", "pool", poolID, "address", a)
	}
}

// networksOfPoolLocked lists the weft networks that use pool.
func (d *Driver) networksOfPoolLocked(pool ipam.Pool) []string {
	var out []string
	for id, r := range d.nets {
		if r.AddressSpace != pool.Space {
			continue
		}
		// Not append(IPv4, IPv6...): this runs against every network on
		// each pool release, and must not allocate.
		uses := func(s dataplane.Subnet) bool { return s.Pool == pool.Prefix }
		if slices.ContainsFunc(r.Network.IPv4, uses) || slices.ContainsFunc(r.Network.IPv6, uses) {
			out = append(out, id)
		}
	}
	return out
}

// dropReleasedOverlapsLocked deletes the networks marked released whose
// subnets overlap rec's: dockerd no longer has them, and a user re-creating
// the network (after weft was killed during the first attempt) must not be
// refused because of them.
func (d *Driver) dropReleasedOverlapsLocked(ctx context.Context, rec *networkRecord) error {
	for _, id := range d.releasedNetworksLocked() {
		r, ok := d.nets[id]
		if !ok || id == rec.Network.ID || overlapConflict(rec, r) == nil {
			continue
		}
		if err := d.deleteNetworkLocked(ctx, r); err != nil {
			return fmt.Errorf("removing weft network %s, whose pool dockerd released, to make room: %w", dataplane.ShortID(id), err)
		}
		d.log.Warn("deleted a network dockerd released the pool of, to make room for a new one", "network", dataplane.ShortID(id))
	}
	return nil
}

// releasedNetworksLocked lists the networks weft holds that are marked
// released. The marks are unclaimed reservations, normally a handful however
// many networks exist, so it looks through those, or through the networks if
// they are fewer (weft's IPAM under other network drivers with
// WEFT_RESERVATION_GRACE=0 keeps every reservation).
func (d *Driver) releasedNetworksLocked() []string {
	var ids []string
	if len(d.pending) <= len(d.nets) {
		for key := range d.pending {
			if id, ok := strings.CutPrefix(key, releasedPrefix); ok {
				if _, known := d.nets[id]; known {
					ids = append(ids, id)
				}
			}
		}
		return ids
	}
	for id := range d.nets {
		if _, ok := d.pending[releasedKey(id)]; ok {
			ids = append(ids, id)
		}
	}
	return ids
}
