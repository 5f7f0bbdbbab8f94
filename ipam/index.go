package ipam

import (
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
