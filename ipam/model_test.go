package ipam

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
)

// model is a deliberately naive allocator for small pools — maps and linear
// scans over every address — that the real one is checked against.
type model struct {
	defaults []DefaultPool
	pools    map[string]*modelPool
}

type modelPool struct {
	rec  Pool
	used map[netip.Addr]bool
}

func newModel(defaults []DefaultPool) *model {
	return &model{defaults: defaults, pools: map[string]*modelPool{}}
}

// addrsOf lists every address of a (small) prefix in order.
func addrsOf(p netip.Prefix) []netip.Addr {
	var out []netip.Addr
	for a := p.Addr(); a.IsValid() && p.Contains(a); a = a.Next() {
		out = append(out, a)
	}
	return out
}

// usable lists the addresses that may be assigned at all.
func (p *modelPool) usable() []netip.Addr {
	all := addrsOf(p.rec.Prefix)
	if p.rec.Prefix.Addr().BitLen()-p.rec.Prefix.Bits() < 2 {
		return all
	}
	all = all[1:]
	if p.rec.Prefix.Addr().Is4() {
		all = all[:len(all)-1]
	}
	return all
}

// isUsable reports whether a may be assigned in p, without enumerating.
func (p *modelPool) isUsable(a netip.Addr) bool {
	pr := p.rec.Prefix
	switch {
	case !pr.Contains(a):
		return false
	case pr.Addr().BitLen()-pr.Bits() < 2:
		return true
	case a == pr.Addr():
		return false
	}
	return pr.Addr().Is6() || a != lastOf(pr)
}

// lastOf sets the host bits, byte by byte (independently of u128).
func lastOf(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

func (m *model) requestPool(req PoolRequest) (Pool, error) {
	if req.Space != LocalSpace && req.Space != GlobalSpace {
		return Pool{}, ErrBadRequest
	}
	prefix := req.Pool
	if !prefix.IsValid() {
		found := false
		for _, d := range m.defaults {
			if d.Base.Addr().Is6() != req.V6 || found {
				continue
			}
			for a := d.Base.Addr(); d.Base.Contains(a); {
				cand := netip.PrefixFrom(a, d.Size)
				free := true
				for _, p := range m.pools {
					free = free && !p.rec.Prefix.Overlaps(cand)
				}
				for _, r := range req.Avoid {
					free = free && (r.Bits() == 0 || !r.Overlaps(cand))
				}
				if free {
					prefix, found = cand, true
					break
				}
				last := addrsOf(cand)
				a = last[len(last)-1].Next()
				if !a.IsValid() {
					break
				}
			}
		}
		if !found {
			return Pool{}, ErrNoDefaultPool
		}
	}
	for _, p := range m.pools {
		if p.rec.Space == req.Space && p.rec.Prefix.Overlaps(prefix) {
			return Pool{}, ErrPoolOverlap
		}
	}
	rec := Pool{ID: poolID(req.Space, prefix, req.SubPool), Space: req.Space, Prefix: prefix, Range: req.SubPool}
	m.pools[rec.ID] = &modelPool{rec: rec, used: map[netip.Addr]bool{}}
	return rec, nil
}

func (m *model) releasePool(id string) { delete(m.pools, id) }

func (m *model) requestAddress(id string, want netip.Addr, gateway bool) (netip.Prefix, error) {
	p, ok := m.pools[id]
	if !ok {
		return netip.Prefix{}, ErrUnknownPool
	}
	var got netip.Addr
	usable := p.usable()
	switch {
	case want.IsValid():
		want = want.Unmap()
		switch {
		case !p.rec.Prefix.Contains(want):
			return netip.Prefix{}, ErrAddressOutOfPool
		case !p.isUsable(want):
			return netip.Prefix{}, ErrReservedAddress
		case p.used[want]:
			return netip.Prefix{}, ErrAddressInUse
		}
		got = want
	case gateway:
		for _, a := range usable {
			if !p.used[a] {
				got = a
				break
			}
		}
	default:
		var cands []netip.Addr
		for _, a := range usable {
			if (!p.rec.Range.IsValid() || p.rec.Range.Contains(a)) && !p.used[a] {
				cands = append(cands, a)
			}
		}
		for _, a := range cands {
			if !p.rec.Cursor.IsValid() || p.rec.Cursor.Less(a) {
				got = a
				break
			}
		}
		if !got.IsValid() && len(cands) > 0 {
			got = cands[0]
		}
		if got.IsValid() {
			p.rec.Cursor = got
		}
	}
	if !got.IsValid() {
		return netip.Prefix{}, ErrNoAddresses
	}
	p.used[got] = true
	return netip.PrefixFrom(got, p.rec.Prefix.Bits()), nil
}

func (m *model) releaseAddress(id string, a netip.Addr) {
	if p, ok := m.pools[id]; ok {
		delete(p.used, a.Unmap())
	}
}

func (m *model) ids() []string {
	var ids []string
	for id := range m.pools {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

func (m *model) allocated(id string) []netip.Addr {
	var out []netip.Addr
	for a := range m.pools[id].used {
		out = append(out, a)
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// kindOf names the sentinel an error is classified by, for comparisons.
func kindOf(err error) error {
	for _, k := range []error{ErrBadRequest, ErrPoolOverlap, ErrNoDefaultPool, ErrUnknownPool,
		ErrNoAddresses, ErrAddressInUse, ErrAddressOutOfPool, ErrReservedAddress} {
		if errors.Is(err, k) {
			return k
		}
	}
	return err
}

// mentionsAll reports whether msg contains every string.
func mentionsAll(msg string, ss ...string) bool {
	for _, s := range ss {
		if !strings.Contains(msg, s) {
			return false
		}
	}
	return true
}
