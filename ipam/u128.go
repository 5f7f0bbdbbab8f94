package ipam

import (
	"encoding/binary"
	"math/bits"
	"net/netip"
)

// u128 is an IP address as an unsigned 128-bit number (IPv4 in the low 32
// bits). The allocator does all its arithmetic on it because IPv6 pools are
// wider than any machine word: a /64 holds 2^64 addresses and a /48 more.
type u128 struct{ hi, lo uint64 }

func u128From(a netip.Addr) u128 {
	if a.Is4() {
		b := a.As4()
		return u128{lo: uint64(binary.BigEndian.Uint32(b[:]))}
	}
	b := a.As16()
	return u128{hi: binary.BigEndian.Uint64(b[:8]), lo: binary.BigEndian.Uint64(b[8:])}
}

// addr converts back; v6 selects the family because IPv4 and the low end of
// IPv6 share numbers.
func (x u128) addr(v6 bool) netip.Addr {
	if !v6 {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], uint32(x.lo))
		return netip.AddrFrom4(b)
	}
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], x.hi)
	binary.BigEndian.PutUint64(b[8:], x.lo)
	return netip.AddrFrom16(b)
}

func (x u128) cmp(y u128) int {
	switch {
	case x.hi < y.hi:
		return -1
	case x.hi > y.hi:
		return 1
	case x.lo < y.lo:
		return -1
	case x.lo > y.lo:
		return 1
	}
	return 0
}

func (x u128) less(y u128) bool { return x.cmp(y) < 0 }

// addOne returns x+1; ok is false when x is the largest value (no wrap).
func (x u128) addOne() (u128, bool) {
	lo, carry := bits.Add64(x.lo, 1, 0)
	hi, over := bits.Add64(x.hi, 0, carry)
	return u128{hi, lo}, over == 0
}

// subOne returns x-1; ok is false when x is zero (no wrap).
func (x u128) subOne() (u128, bool) {
	lo, borrow := bits.Sub64(x.lo, 1, 0)
	hi, under := bits.Sub64(x.hi, 0, borrow)
	return u128{hi, lo}, under == 0
}

func (x u128) or(y u128) u128  { return u128{x.hi | y.hi, x.lo | y.lo} }
func (x u128) and(y u128) u128 { return u128{x.hi & y.hi, x.lo & y.lo} }
func (x u128) isZero() bool    { return x.hi == 0 && x.lo == 0 }

// hostMask has the low n bits set (0 ≤ n ≤ 128).
func hostMask(n int) u128 {
	switch {
	case n <= 0:
		return u128{}
	case n < 64:
		return u128{lo: 1<<uint(n) - 1}
	case n < 128:
		return u128{hi: 1<<uint(n-64) - 1, lo: ^uint64(0)}
	}
	return u128{^uint64(0), ^uint64(0)}
}

// bounds returns the first and last address of a canonical prefix.
func bounds(p netip.Prefix) (first, last u128) {
	first = u128From(p.Addr())
	return first, first.or(hostMask(p.Addr().BitLen() - p.Bits()))
}

// alignUp returns the smallest block start ≥ x for blocks whose host part is
// mask; ok is false when no such start exists below 2^128.
func alignUp(x, mask u128) (u128, bool) {
	if x.and(mask).isZero() {
		return x, true
	}
	return x.or(mask).addOne()
}
