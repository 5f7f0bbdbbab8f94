package ipam

import (
	"net/netip"
	"slices"
	"sort"
)

// run is a block of consecutive allocated addresses, lo..hi inclusive.
type run struct{ lo, hi u128 }

// addrSet is the set of allocated addresses of one pool, kept as a sorted list
// of disjoint, non-adjacent runs. A bitmap would cost 2^64 bits for an IPv6 /64;
// runs cost 32 bytes per gap instead, and next-free allocation (which hands out
// consecutive addresses) keeps the list short: a million sequential allocations
// are a single run. Lookups are binary searches; inserting or splitting a run
// moves the tail of the slice, which is cheap for the fragmentation real
// networks see.
type addrSet struct{ runs []run }

// search returns the index of the first run that ends at or after x.
func (s *addrSet) search(x u128) int {
	return sort.Search(len(s.runs), func(i int) bool { return !s.runs[i].hi.less(x) })
}

func (s *addrSet) contains(x u128) bool {
	i := s.search(x)
	return i < len(s.runs) && !x.less(s.runs[i].lo)
}

// add inserts x and reports whether it was absent.
func (s *addrSet) add(x u128) bool {
	i := s.search(x)
	if i < len(s.runs) && !x.less(s.runs[i].lo) {
		return false
	}
	// runs[i-1] ends before x and runs[i] starts after x: x may close the gap
	// on either side, and keeping runs non-adjacent is what makes nextFree O(log n).
	prevEnd, hasPrev := u128{}, i > 0
	if hasPrev {
		prevEnd, _ = s.runs[i-1].hi.addOne()
	}
	joinPrev := hasPrev && prevEnd == x
	next, ok := x.addOne()
	joinNext := ok && i < len(s.runs) && s.runs[i].lo == next
	switch {
	case joinPrev && joinNext:
		s.runs[i-1].hi = s.runs[i].hi
		s.runs = slices.Delete(s.runs, i, i+1)
	case joinPrev:
		s.runs[i-1].hi = x
	case joinNext:
		s.runs[i].lo = x
	default:
		s.runs = slices.Insert(s.runs, i, run{x, x})
	}
	return true
}

// remove deletes x and reports whether it was present.
func (s *addrSet) remove(x u128) bool {
	i := s.search(x)
	if i >= len(s.runs) || x.less(s.runs[i].lo) {
		return false
	}
	r := s.runs[i]
	switch {
	case r.lo == r.hi:
		s.runs = slices.Delete(s.runs, i, i+1)
	case x == r.lo:
		s.runs[i].lo, _ = x.addOne()
	case x == r.hi:
		s.runs[i].hi, _ = x.subOne()
	default:
		before, _ := x.subOne()
		after, _ := x.addOne()
		s.runs[i].hi = before
		s.runs = slices.Insert(s.runs, i+1, run{after, r.hi})
	}
	return true
}

// nextFree returns the lowest address in from..last that is not in the set.
func (s *addrSet) nextFree(from, last u128) (u128, bool) {
	if last.less(from) {
		return u128{}, false
	}
	i := s.search(from)
	if i < len(s.runs) && !from.less(s.runs[i].lo) {
		// Runs are non-adjacent, so the address after this run is free.
		next, ok := s.runs[i].hi.addOne()
		if !ok {
			return u128{}, false
		}
		from = next
	}
	return from, !last.less(from)
}

// appendAddrs appends every member in ascending order.
func (s *addrSet) appendAddrs(dst []netip.Addr, v6 bool) []netip.Addr {
	for _, r := range s.runs {
		for x := r.lo; ; {
			dst = append(dst, x.addr(v6))
			if x == r.hi {
				break
			}
			x, _ = x.addOne()
		}
	}
	return dst
}
