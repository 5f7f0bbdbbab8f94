package ipam

import "net/netip"

// RequestAddress allocates one address in a held pool and returns it with the
// pool's prefix length (10.1.0.5/24), which dockerd puts on the interface.
//
//   - want set: exactly that address (--ip, --ip6, --aux-address, --gateway).
//     It must lie inside the pool but may lie outside the pool's Range, as
//     Docker allows; it must not be reserved or taken.
//   - want zero, gateway: the first free usable address of the whole pool,
//     ignoring Range, which is where Docker puts a default gateway (.1).
//   - want zero: the next free address of Range (or the pool), searching from
//     just after Cursor and wrapping, so a just-released address is handed out
//     again only when nothing else is free.
//
// Network and broadcast addresses (IPv4) and the subnet-router anycast
// address (IPv6, all-zero host part) are never handed out, except in /31, /32,
// /127 and /128 pools, where every address is a host address.
func (a *Allocator) RequestAddress(poolID string, want netip.Addr, gateway bool) (netip.Prefix, error) {
	p, ok := a.pools[poolID]
	if !ok {
		if want.IsValid() {
			return netip.Prefix{}, errorf(ErrUnknownPool,
				"cannot allocate address %s: pool %s is not held by weft (never requested, or already released)", want, poolID)
		}
		return netip.Prefix{}, errorf(ErrUnknownPool,
			"cannot allocate an address: pool %s is not held by weft (never requested, or already released)", poolID)
	}
	var x u128
	switch {
	case want.IsValid():
		var err error
		if x, err = p.checkAddr(want); err != nil {
			return netip.Prefix{}, err
		}
		if !p.used.add(x) {
			return netip.Prefix{}, errorf(ErrAddressInUse,
				"address %s in pool %s is already in use; choose another address or leave it out to get a free one",
				x.addr(p.v6), p.name())
		}
	case gateway:
		if x, ok = p.used.nextFree(p.use0, p.use1); !ok {
			return netip.Prefix{}, errorf(ErrNoAddresses,
				"no free address left in pool %s for the gateway; use a larger --subnet", p.name())
		}
		p.used.add(x)
	default:
		if x, ok = p.nextDynamic(); !ok {
			if p.rec.Range.IsValid() {
				return netip.Prefix{}, errorf(ErrNoAddresses,
					"no free address left in ip-range %s of pool %s; remove a container from the network or use a larger --ip-range",
					p.rec.Range, p.name())
			}
			return netip.Prefix{}, errorf(ErrNoAddresses,
				"no free address left in pool %s; remove a container from the network or use a larger --subnet", p.name())
		}
		p.used.add(x)
		p.rec.Cursor = x.addr(p.v6)
	}
	return netip.PrefixFrom(x.addr(p.v6), p.rec.Prefix.Bits()), nil
}

// nextDynamic finds the next free address of the dynamic range after Cursor,
// wrapping to the start of the range.
func (p *poolState) nextDynamic() (u128, bool) {
	start := p.dyn0
	if c := p.rec.Cursor; c.IsValid() && c.Is6() == p.v6 {
		// A cursor below the range starts at its beginning, one at or past
		// its end wraps there too; only one inside moves the start.
		if cur := u128From(c); !cur.less(p.dyn0) && cur.less(p.dyn1) {
			start, _ = cur.addOne()
		}
	}
	if x, ok := p.used.nextFree(start, p.dyn1); ok {
		return x, true
	}
	return p.used.nextFree(p.dyn0, p.dyn1)
}

// checkAddr checks that want may be assigned in p and converts it.
func (p *poolState) checkAddr(want netip.Addr) (u128, error) {
	if !p.v6 {
		want = want.Unmap()
	}
	if want.Is6() != p.v6 || !p.rec.Prefix.Contains(want) {
		return u128{}, errorf(ErrAddressOutOfPool,
			"address %s is outside pool %s; choose an address inside the subnet", want, p.name())
	}
	x := u128From(want)
	if !p.usable(x) {
		return u128{}, errorf(ErrReservedAddress,
			"address %s is the %s of pool %s and cannot be assigned; choose another address",
			want, p.reservedName(x), p.name())
	}
	return x, nil
}

// ReleaseAddress frees an address. An unknown pool or an address that is not
// allocated is not an error: dockerd releases gateways it never requested
// (when the gateway came from RequestPool data) and may repeat releases.
// The cursor does not move, so the address is not the next one handed out.
func (a *Allocator) ReleaseAddress(poolID string, addr netip.Addr) error {
	p, ok := a.pools[poolID]
	if !ok {
		return nil
	}
	if !p.v6 {
		addr = addr.Unmap()
	}
	if addr.Is6() == p.v6 && p.rec.Prefix.Contains(addr) {
		p.used.remove(u128From(addr))
	}
	return nil
}

// Allocated returns the allocated addresses of a pool in ascending order (nil
// for an unknown pool). It is linear in the number of addresses: meant for
// persistence checks and tests, not for every request.
func (a *Allocator) Allocated(poolID string) []netip.Addr {
	p, ok := a.pools[poolID]
	if !ok {
		return nil
	}
	return p.used.appendAddrs(nil, p.v6)
}

// IsAllocated reports whether addr is allocated in the pool.
func (a *Allocator) IsAllocated(poolID string, addr netip.Addr) bool {
	p, ok := a.pools[poolID]
	if !ok {
		return false
	}
	if !p.v6 {
		addr = addr.Unmap()
	}
	return addr.Is6() == p.v6 && p.rec.Prefix.Contains(addr) && p.used.contains(u128From(addr))
}
