package ipam

import (
	"net/netip"
	"slices"
	"sort"
)

// spaceKey selects the pools of one address space and family. IPv4 and IPv6
// pools are indexed apart because their numbers overlap as u128.
type spaceKey struct {
	space string
	v6    bool
}

// poolIndex holds the pools of one spaceKey sorted by first address. Pools in
// one space never overlap, so the list is a set of disjoint intervals and an
// overlap test is one binary search instead of a scan of every network.
type poolIndex []*poolState

// search returns the index of the first pool that ends at or after x.
func (ix poolIndex) search(x u128) int {
	return sort.Search(len(ix), func(i int) bool { return !ix[i].last.less(x) })
}

// overlapping returns a pool that shares an address with lo..hi, or nil.
func (ix poolIndex) overlapping(lo, hi u128) *poolState {
	if i := ix.search(lo); i < len(ix) && !hi.less(ix[i].first) {
		return ix[i]
	}
	return nil
}

func (ix *poolIndex) insert(p *poolState) {
	*ix = slices.Insert(*ix, ix.search(p.first), p)
}

func (ix *poolIndex) remove(p *poolState) {
	if i := ix.search(p.first); i < len(*ix) && (*ix)[i] == p {
		*ix = slices.Delete(*ix, i, i+1)
	}
}

// at returns the pool that holds x, or nil.
func (ix poolIndex) at(x u128) *poolState { return ix.overlapping(x, x) }

// PoolOf returns the pool held in space whose subnet is exactly prefix. Pools
// of one space never overlap, so there is at most one; finding it is a binary
// search of the space's index, not a scan of every pool (the plugin looks a
// network's pools up on every network and endpoint create).
func (a *Allocator) PoolOf(space string, prefix netip.Prefix) (Pool, bool) {
	if !prefix.IsValid() {
		return Pool{}, false
	}
	p := a.poolAt(space, prefix.Addr())
	if p == nil || p.rec.Prefix != prefix {
		return Pool{}, false
	}
	return p.rec, true
}

// PoolContaining returns the pool held in space whose subnet contains addr
// (in netip.Prefix.Contains' sense: same family, no zone), if any.
func (a *Allocator) PoolContaining(space string, addr netip.Addr) (Pool, bool) {
	p := a.poolAt(space, addr)
	if p == nil {
		return Pool{}, false
	}
	return p.rec, true
}

// poolAt finds the pool of space that holds addr. The global space's index
// also holds the shared pools of other spaces (Share): those are not the
// global space's own pools and are not returned for it.
func (a *Allocator) poolAt(space string, addr netip.Addr) *poolState {
	if !addr.IsValid() || addr.Zone() != "" {
		return nil
	}
	p := a.index[spaceKey{space, addr.Is6()}].at(u128From(addr))
	if p == nil || p.rec.Space != space || !p.rec.Prefix.Contains(addr) {
		return nil
	}
	return p
}
