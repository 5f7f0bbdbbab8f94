package ipam

import (
	"net/netip"
)

// Address spaces answered to IpamDriver.GetDefaultAddressSpaces. Pools in
// different spaces never conflict with each other: on a swarm manager the same
// subnet is held once by the manager's allocator (global) and once by the
// node's own network (local).
const (
	LocalSpace  = "weft-local"  // answered as LocalDefaultAddressSpace
	GlobalSpace = "weft-global" // answered as GlobalDefaultAddressSpace
)

// PoolRequest is one IpamDriver.RequestPool call in allocator terms.
type PoolRequest struct {
	// Space is LocalSpace or GlobalSpace; anything else is refused.
	Space string
	// Pool is the subnet (--subnet). Zero takes the next free default pool
	// of the family V6 selects.
	Pool netip.Prefix
	// SubPool is the range dynamic addresses come from (--ip-range); zero
	// means the whole pool. It must lie inside Pool.
	SubPool netip.Prefix
	// V6 selects the family when Pool is zero; it is ignored otherwise.
	V6 bool
	// Avoid lists host routes: a default pool overlapping any of them is
	// skipped, because containers could not reach that part of the host's
	// network. Explicit pools are the user's choice and are not checked.
	Avoid []netip.Prefix
}

// Pool is a held pool. It is also the record the plugin persists: JSON-friendly
// and, with the allocated addresses, all Restore needs.
type Pool struct {
	// ID is deterministic: Space + "/" + Prefix, plus "/" + Range if set.
	ID     string       `json:"id"`
	Space  string       `json:"space"`
	Prefix netip.Prefix `json:"prefix"`
	// Range is the SubPool dynamic addresses come from; zero if none.
	Range netip.Prefix `json:"range,omitzero"`
	// Cursor is the address last handed out dynamically. The next search
	// starts after it, so a just-released address is not reused at once
	// (a stale peer's ARP/NDP cache or connection would reach the new owner).
	Cursor netip.Addr `json:"cursor,omitzero"`
	// Shared marks a pool whose subnet other hosts hand out from as well (a
	// LAN's): a pool of another space is then also held in the global space
	// (see Share).
	Shared bool `json:"shared,omitempty"`
}

// poolID builds the deterministic ID of a pool.
func poolID(space string, prefix, rng netip.Prefix) string {
	id := space + "/" + prefix.String()
	if rng.IsValid() {
		id += "/" + rng.String()
	}
	return id
}

// poolState is a held pool with its precomputed bounds and allocated set.
type poolState struct {
	rec         Pool
	v6          bool
	first, last u128 // the whole prefix
	use0, use1  u128 // the addresses that may be assigned at all
	dyn0, dyn1  u128 // Range ∩ usable: where next-free allocation looks
	used        addrSet
}

// newPoolState checks a pool's shape (not its relation to other pools) and
// precomputes its bounds. Its errors wrap ErrBadRequest.
func newPoolState(space string, prefix, rng netip.Prefix) (*poolState, error) {
	if err := checkSpace(space, prefix); err != nil {
		return nil, err
	}
	if err := checkPrefix("subnet", prefix); err != nil {
		return nil, err
	}
	if rng != (netip.Prefix{}) {
		if err := checkPrefix("ip-range", rng); err != nil {
			return nil, err
		}
		if rng.Addr().Is4() != prefix.Addr().Is4() {
			return nil, errorf(ErrBadRequest,
				"ip-range %s and subnet %s are not of the same IP family", rng, prefix)
		}
		if rng.Bits() < prefix.Bits() || !prefix.Contains(rng.Addr()) {
			return nil, errorf(ErrBadRequest,
				"ip-range %s is not inside subnet %s; pick an ip-range within the subnet", rng, prefix)
		}
	}
	p := &poolState{
		rec: Pool{ID: poolID(space, prefix, rng), Space: space, Prefix: prefix, Range: rng},
		v6:  prefix.Addr().Is6(),
	}
	p.first, p.last = bounds(prefix)
	p.use0, p.use1 = p.first, p.last
	// /31, /32, /127 and /128 have no room for a network or broadcast
	// address: every address is a host (RFC 3021, RFC 6164).
	if prefix.Addr().BitLen()-prefix.Bits() >= 2 {
		p.use0, _ = p.first.addOne() // network address / v6 subnet-router anycast
		if !p.v6 {
			p.use1, _ = p.last.subOne() // v4 broadcast
		}
	}
	p.dyn0, p.dyn1 = p.use0, p.use1
	if rng.IsValid() {
		r0, r1 := bounds(rng)
		if p.dyn0.less(r0) {
			p.dyn0 = r0
		}
		if r1.less(p.dyn1) {
			p.dyn1 = r1
		}
		if p.dyn1.less(p.dyn0) {
			return nil, errorf(ErrBadRequest,
				"ip-range %s holds no address a container can get in subnet %s (only the %s); use a larger ip-range",
				rng, prefix, p.reservedName(r0))
		}
	}
	return p, nil
}

// checkSpace refuses address spaces other than weft's two. dockerd sends what
// GetDefaultAddressSpaces answered, so another name means a hand-made request.
func checkSpace(space string, prefix netip.Prefix) error {
	if space == LocalSpace || space == GlobalSpace {
		return nil
	}
	pool := "a default pool"
	if prefix != (netip.Prefix{}) {
		pool = "pool " + prefixOrNone(prefix)
	}
	return errorf(ErrBadRequest, "address space %q is not served by weft (requesting %s); use %s or %s",
		space, pool, LocalSpace, GlobalSpace)
}

// checkPrefix refuses prefixes that are invalid, not canonical or IPv4-mapped.
// what names the flag the user typed ("subnet", "ip-range").
func checkPrefix(what string, p netip.Prefix) error {
	switch {
	case !p.IsValid():
		return errorf(ErrBadRequest, "%s %s is not a valid subnet in CIDR notation (like 10.1.0.0/24)", what, prefixOrNone(p))
	case p.Addr().Is4In6() && p.Bits() >= 96:
		return errorf(ErrBadRequest, "%s %s is an IPv4-mapped IPv6 subnet; use the IPv4 form %s instead",
			what, p, netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96).Masked())
	case p.Addr().Is4In6():
		return errorf(ErrBadRequest, "%s %s lies in the IPv4-mapped IPv6 range ::ffff:0:0/96, which cannot be a network", what, p)
	case p.Masked() != p:
		return errorf(ErrBadRequest, "%s %s is not a network address; did you mean %s?", what, p, p.Masked())
	}
	return nil
}

// prefixOrNone prints a prefix for a message, even an invalid or missing one.
func prefixOrNone(p netip.Prefix) string {
	if p == (netip.Prefix{}) {
		return "(none)"
	}
	if !p.IsValid() {
		return p.Addr().String() + "/?"
	}
	return p.String()
}

// name is how messages refer to the pool: by the subnet the user knows.
func (p *poolState) name() string { return p.rec.Prefix.String() }

// reservedName says which reserved address x (inside the pool, outside the
// usable range) is.
func (p *poolState) reservedName(x u128) string {
	switch {
	case x != p.first:
		return "broadcast address"
	case p.v6:
		return "subnet-router anycast address"
	}
	return "network address"
}

// usable reports whether x may be assigned at all.
func (p *poolState) usable(x u128) bool { return !x.less(p.use0) && !p.use1.less(x) }
