package ipam

// Shared pools. A macvlan network's subnet is a LAN's subnet, and every host
// on that LAN hands out addresses from it: with independent allocators two
// hosts give two containers the same address (Docker's macvlan driver does,
// moby/moby#49921). Such a pool is held in its own (local) space, where
// Docker addresses it, and also in the global space, the one a cluster store
// shares between hosts: no pool of either space may overlap it, so it is
// already addressed as a cluster-wide subnet when its allocations move to a
// shared store.
//
// A pool of the global space is shared by nature; Share only records it.

// Share holds the pool id in the global space as well and marks it Shared.
// It is idempotent. A pool of the global space overlapping it is refused with
// ErrPoolOverlap; the pool is then left as it was.
func (a *Allocator) Share(id string) (Pool, error) {
	p, ok := a.pools[id]
	if !ok {
		return Pool{}, errorf(ErrUnknownPool, "pool %s is not held; it cannot be shared", id)
	}
	if p.rec.Shared {
		return p.rec, nil
	}
	if p.rec.Space != GlobalSpace {
		if err := a.checkGlobalOverlap(p); err != nil {
			return Pool{}, err
		}
		a.indexGlobally(p)
	}
	p.rec.Shared = true
	return p.rec, nil
}

// Unshare undoes Share (for a caller that must roll back); it is idempotent.
func (a *Allocator) Unshare(id string) {
	p, ok := a.pools[id]
	if !ok || !p.rec.Shared {
		return
	}
	if p.rec.Space != GlobalSpace {
		a.unindexGlobally(p)
	}
	p.rec.Shared = false
}

// checkGlobalOverlap refuses to hold p in the global space if a pool held
// there shares an address with it.
func (a *Allocator) checkGlobalOverlap(p *poolState) error {
	other := a.index[spaceKey{GlobalSpace, p.v6}].overlapping(p.first, p.last)
	if other == nil {
		return nil
	}
	return errorf(ErrPoolOverlap,
		"pool %s (address space %s) cannot be shared: it overlaps pool %s, which address space %s holds; choose another --subnet",
		p.name(), p.rec.Space, other.name(), GlobalSpace)
}

func (a *Allocator) indexGlobally(p *poolState) {
	k := spaceKey{GlobalSpace, p.v6}
	ix := a.index[k]
	ix.insert(p)
	a.index[k] = ix
}

func (a *Allocator) unindexGlobally(p *poolState) {
	k := spaceKey{GlobalSpace, p.v6}
	ix := a.index[k]
	ix.remove(p)
	a.index[k] = ix
}
