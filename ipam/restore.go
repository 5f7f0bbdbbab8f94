package ipam

import (
	"net/netip"
	"slices"
)

// Restore replaces the allocator's state with persisted records: the pools
// (with their cursors) as Pools returned them, and the allocated addresses of
// each pool by pool ID as Allocated returned them. Nothing is replayed to the
// plugin after a restart, so this is how it remembers.
//
// It validates everything a running allocator guarantees — well-formed pools
// with the ID their content implies, no overlap within an address space, every
// address inside its pool, assignable and listed once, no addresses for an
// unknown pool — and on any violation returns an error wrapping ErrBadState
// plus the specific sentinel, leaving the current state untouched.
func (a *Allocator) Restore(pools []Pool, addrs map[string][]netip.Addr) error {
	next := &Allocator{defaults: a.defaults}
	next.reset()
	for _, rec := range pools {
		p, err := newPoolState(rec.Space, rec.Prefix, rec.Range)
		if err != nil {
			return stateError(errorf(ErrBadRequest, "record %q: %v", rec.ID, err))
		}
		if rec.ID != p.rec.ID {
			return stateError(errorf(ErrBadRequest,
				"record %q describes pool %s and should have the ID %q", rec.ID, p.name(), p.rec.ID))
		}
		if _, dup := next.pools[rec.ID]; dup {
			return stateError(errorf(ErrPoolOverlap, "pool %s (record %q) is listed twice", p.name(), rec.ID))
		}
		if err := next.checkOverlap(p); err != nil {
			return stateError(err)
		}
		if c := rec.Cursor; c.IsValid() && (c.Is6() != p.v6 || !rec.Prefix.Contains(c)) {
			return stateError(errorf(ErrAddressOutOfPool,
				"the cursor address %s of pool %s lies outside the pool", c, p.name()))
		}
		p.rec.Cursor = rec.Cursor
		if rec.Shared && rec.Space != GlobalSpace {
			if err := next.checkGlobalOverlap(p); err != nil {
				return stateError(err)
			}
			next.indexGlobally(p)
		}
		p.rec.Shared = rec.Shared
		next.add(p)
	}
	// Sorted IDs make the first error reported deterministic.
	ids := make([]string, 0, len(addrs))
	for id := range addrs {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		list := addrs[id]
		p, ok := next.pools[id]
		if !ok {
			if len(list) == 0 {
				continue
			}
			return stateError(errorf(ErrUnknownPool,
				"address %s is recorded for pool %s, which is not among the restored pools", list[0], id))
		}
		// Ascending order makes every insertion an append to the last run.
		sorted := slices.Clone(list)
		slices.SortFunc(sorted, netip.Addr.Compare)
		for _, addr := range sorted {
			x, err := p.checkAddr(addr)
			if err != nil {
				return stateError(err)
			}
			if !p.used.add(x) {
				return stateError(errorf(ErrAddressInUse,
					"address %s in pool %s is recorded twice", addr, p.name()))
			}
		}
	}
	*a = *next
	return nil
}
