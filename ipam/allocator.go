package ipam

import (
	"net/netip"
	"slices"
	"strings"
)

// Allocator holds the pools and allocated addresses of both address spaces.
// It is not safe for concurrent use: the plugin serialises calls with its
// state mutex, which it needs anyway to persist each change before answering.
type Allocator struct {
	defaults []DefaultPool
	pools    map[string]*poolState
	index    map[spaceKey]poolIndex
}

// New returns an empty allocator that takes pools without --subnet from
// defaults, in order. defaults normally comes from ParseDefaultPools; entries
// it would refuse (non-canonical base, bad size) are ignored here.
func New(defaults []DefaultPool) *Allocator {
	a := &Allocator{}
	for _, d := range defaults {
		if d.check() == nil {
			a.defaults = append(a.defaults, d)
		}
	}
	a.reset()
	return a
}

func (a *Allocator) reset() {
	a.pools = map[string]*poolState{}
	a.index = map[spaceKey]poolIndex{}
}

// RequestPool reserves a pool: the one asked for, or with a zero Pool the next
// free default pool of the family. A pool overlapping one already held in the
// same address space is refused, the identical pool included: dockerd's retry
// loop for default pools that clash with host routes holds each pool it
// rejects and asks again, so it must get a different pool (or an error) each
// time. Idempotency of a repeated explicit request is the plugin's business
// (it knows the network the pool belongs to).
func (a *Allocator) RequestPool(req PoolRequest) (Pool, error) {
	prefix := req.Pool
	if prefix == (netip.Prefix{}) {
		if req.SubPool != (netip.Prefix{}) {
			return Pool{}, errorf(ErrBadRequest,
				"ip-range %s needs a subnet to lie in; give the network a --subnet as well", prefixOrNone(req.SubPool))
		}
		// Checked before picking, so the message is about the space.
		if err := checkSpace(req.Space, prefix); err != nil {
			return Pool{}, err
		}
		var err error
		if prefix, err = a.nextDefault(req.V6, req.Avoid); err != nil {
			return Pool{}, err
		}
	}
	p, err := newPoolState(req.Space, prefix, req.SubPool)
	if err != nil {
		return Pool{}, err
	}
	// After newPoolState, so a malformed subnet gets its own message.
	if err := CheckSubnet("subnet", prefix); err != nil {
		return Pool{}, err
	}
	if err := a.checkOverlap(p); err != nil {
		return Pool{}, err
	}
	a.add(p)
	return p.rec, nil
}

// checkOverlap refuses p if it shares an address with a held pool of its space.
func (a *Allocator) checkOverlap(p *poolState) error {
	other := a.index[spaceKey{p.rec.Space, p.v6}].overlapping(p.first, p.last)
	switch {
	case other == nil:
		return nil
	case other.rec.Prefix == p.rec.Prefix:
		return errorf(ErrPoolOverlap,
			"pool %s is already used by another network in address space %s; choose another --subnet",
			p.name(), p.rec.Space)
	}
	return errorf(ErrPoolOverlap,
		"pool %s overlaps pool %s already used by another network in address space %s; choose another --subnet",
		p.name(), other.name(), p.rec.Space)
}

func (a *Allocator) add(p *poolState) {
	a.pools[p.rec.ID] = p
	k := spaceKey{p.rec.Space, p.v6}
	ix := a.index[k]
	ix.insert(p)
	a.index[k] = ix
}

// ReleasePool forgets a pool and every address allocated in it. An unknown ID
// is not an error: dockerd may repeat a release, and Release must be idempotent.
func (a *Allocator) ReleasePool(id string) error {
	p, ok := a.pools[id]
	if !ok {
		return nil
	}
	delete(a.pools, id)
	k := spaceKey{p.rec.Space, p.v6}
	ix := a.index[k]
	ix.remove(p)
	a.index[k] = ix
	if p.rec.Shared && p.rec.Space != GlobalSpace {
		a.unindexGlobally(p)
	}
	return nil
}

// Pool returns the current record of a held pool, Cursor included.
func (a *Allocator) Pool(id string) (Pool, bool) {
	p, ok := a.pools[id]
	if !ok {
		return Pool{}, false
	}
	return p.rec, true
}

// Pools returns the records of all held pools, sorted by ID.
func (a *Allocator) Pools() []Pool {
	out := make([]Pool, 0, len(a.pools))
	for _, p := range a.pools {
		out = append(out, p.rec)
	}
	slices.SortFunc(out, func(x, y Pool) int { return strings.Compare(x.ID, y.ID) })
	return out
}
