package ipam

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
)

// scanPoolOf is what PoolOf replaces: a scan of every held pool.
func scanPoolOf(a *Allocator, space string, prefix netip.Prefix) (Pool, bool) {
	for _, p := range a.Pools() {
		if p.Space == space && p.Prefix == prefix {
			return p, true
		}
	}
	return Pool{}, false
}

// scanPoolContaining is what PoolContaining replaces.
func scanPoolContaining(a *Allocator, space string, addr netip.Addr) (Pool, bool) {
	for _, p := range a.Pools() {
		if p.Space == space && p.Prefix.Contains(addr) {
			return p, true
		}
	}
	return Pool{}, false
}

// TestPoolOfAndPoolContaining: the index lookups find a space's own pools by
// exact subnet and by address, ranged pools included, and nothing else: not
// an enclosing or enclosed subnet, not another space's pool, not a shared
// local pool when asked about the global space, not a released pool, not an
// address with a zone or of the other family.
func TestPoolOfAndPoolContaining(t *testing.T) {
	a := New(nil)
	p1 := mustPool(t, a, local("10.1.0.0/24"))
	p2 := mustPool(t, a, localRange("10.2.0.0/16", "10.2.3.0/24"))
	g := mustPool(t, a, global("10.1.0.0/24"))
	v6 := mustPool(t, a, local("fd00:1::/64"))
	mac := mustPool(t, a, local("192.168.1.0/24"))
	if _, err := a.Share(mac.ID); err != nil {
		t.Fatal(err)
	}
	mac, _ = a.Pool(mac.ID)

	for _, c := range []struct {
		space  string
		prefix string
		want   Pool
		found  bool
	}{
		{LocalSpace, "10.1.0.0/24", p1, true},
		{GlobalSpace, "10.1.0.0/24", g, true},
		{LocalSpace, "10.2.0.0/16", p2, true},
		{LocalSpace, "10.2.3.0/24", Pool{}, false}, // the range, not a pool
		{LocalSpace, "10.1.0.0/25", Pool{}, false},
		{LocalSpace, "10.0.0.0/8", Pool{}, false},
		{LocalSpace, "fd00:1::/64", v6, true},
		{GlobalSpace, "fd00:1::/64", Pool{}, false},
		{LocalSpace, "192.168.1.0/24", mac, true},
		{GlobalSpace, "192.168.1.0/24", Pool{}, false}, // held there, but local
		{"other", "10.1.0.0/24", Pool{}, false},
	} {
		got, ok := a.PoolOf(c.space, pfx(c.prefix))
		if ok != c.found || got != c.want {
			t.Errorf("PoolOf(%s, %s) = %+v, %v; want %+v, %v", c.space, c.prefix, got, ok, c.want, c.found)
		}
	}
	if _, ok := a.PoolOf(LocalSpace, netip.Prefix{}); ok {
		t.Error("PoolOf found a pool for the zero prefix")
	}
	if _, ok := a.PoolOf(LocalSpace, netip.PrefixFrom(ip("10.1.0.5"), 24)); ok {
		t.Error("PoolOf found a pool for a prefix that is not canonical (10.1.0.5/24)")
	}

	for _, c := range []struct {
		space, addr string
		want        Pool
		found       bool
	}{
		{LocalSpace, "10.1.0.0", p1, true},
		{LocalSpace, "10.1.0.255", p1, true},
		{LocalSpace, "10.1.1.0", Pool{}, false},
		{GlobalSpace, "10.1.0.7", g, true},
		{LocalSpace, "10.2.200.1", p2, true},
		{LocalSpace, "fd00:1::1", v6, true},
		{LocalSpace, "fd00:2::1", Pool{}, false},
		{LocalSpace, "fd00:1::1%eth0", Pool{}, false},
		{LocalSpace, "::ffff:10.1.0.1", Pool{}, false},
		{GlobalSpace, "192.168.1.9", Pool{}, false},
		{LocalSpace, "192.168.1.9", mac, true},
	} {
		got, ok := a.PoolContaining(c.space, ip(c.addr))
		if ok != c.found || got != c.want {
			t.Errorf("PoolContaining(%s, %s) = %+v, %v; want %+v, %v", c.space, c.addr, got, ok, c.want, c.found)
		}
	}
	if _, ok := a.PoolContaining(LocalSpace, netip.Addr{}); ok {
		t.Error("PoolContaining found a pool for the zero address")
	}

	// The record returned is the current one (the cursor moves).
	mustAddr(t, a, p1.ID, netip.Addr{}, false)
	cur, _ := a.Pool(p1.ID)
	if got, _ := a.PoolOf(LocalSpace, p1.Prefix); got != cur {
		t.Errorf("PoolOf after an allocation = %+v; want the current record %+v", got, cur)
	}
	checkErr(t, a.ReleasePool(p1.ID), nil)
	if _, ok := a.PoolOf(LocalSpace, p1.Prefix); ok {
		t.Error("PoolOf found a released pool")
	}
	if _, ok := a.PoolContaining(LocalSpace, ip("10.1.0.1")); ok {
		t.Error("PoolContaining found a released pool")
	}
}

// TestPoolLookupsMatchScan: through random requests, releases, shares and a
// restore, the index lookups answer exactly what a scan of Pools() answers.
func TestPoolLookupsMatchScan(t *testing.T) {
	rng := rand.New(rand.NewPCG(12, 1))
	a := New(nil)
	spaces := []string{LocalSpace, GlobalSpace}
	randPrefix := func() netip.Prefix {
		if rng.IntN(4) == 0 {
			bits := 48 + rng.IntN(17)
			return netip.PrefixFrom(netip.AddrFrom16([16]byte{0xfd, 0, 0, byte(rng.IntN(4)), byte(rng.IntN(4)), 0, byte(rng.IntN(256))}), bits).Masked()
		}
		bits := 16 + rng.IntN(13)
		return netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(rng.IntN(4)), byte(rng.IntN(256)), 0}), bits).Masked()
	}
	randAddr := func() netip.Addr {
		p := randPrefix()
		b := p.Addr().AsSlice()
		b[len(b)-1] = byte(rng.IntN(256))
		x, _ := netip.AddrFromSlice(b)
		return x
	}
	check := func(step int) {
		t.Helper()
		for range 25 {
			space := spaces[rng.IntN(2)]
			var p netip.Prefix
			if held := a.Pools(); len(held) > 0 && rng.IntN(2) == 0 {
				p = held[rng.IntN(len(held))].Prefix
			} else {
				p = randPrefix()
			}
			got, ok := a.PoolOf(space, p)
			want, wok := scanPoolOf(a, space, p)
			if got != want || ok != wok {
				t.Fatalf("step %d: PoolOf(%s, %s) = %+v, %v; the scan says %+v, %v", step, space, p, got, ok, want, wok)
			}
			x := randAddr()
			got, ok = a.PoolContaining(space, x)
			want, wok = scanPoolContaining(a, space, x)
			if got != want || ok != wok {
				t.Fatalf("step %d: PoolContaining(%s, %s) = %+v, %v; the scan says %+v, %v", step, space, x, got, ok, want, wok)
			}
		}
	}
	for step := range 400 {
		switch held := a.Pools(); {
		case len(held) > 0 && rng.IntN(4) == 0:
			checkErr(t, a.ReleasePool(held[rng.IntN(len(held))].ID), nil)
		case len(held) > 0 && rng.IntN(4) == 0:
			p := held[rng.IntN(len(held))]
			if rng.IntN(2) == 0 {
				_, _ = a.Share(p.ID)
			} else {
				a.Unshare(p.ID)
			}
		case step == 200:
			pools := a.Pools()
			if err := a.Restore(pools, map[string][]netip.Addr{}); err != nil {
				t.Fatal(err)
			}
		default:
			_, _ = a.RequestPool(PoolRequest{Space: spaces[rng.IntN(2)], Pool: randPrefix()})
		}
		check(step)
	}
	if n := len(a.Pools()); n < 10 {
		t.Fatalf("only %d pools held at the end; the test exercised too little", n)
	}
}

// BenchmarkPoolOf: one lookup among 1000 pools, which the plugin does on
// every network create (it used to sort all the pools for it).
func BenchmarkPoolOf(b *testing.B) {
	a := New(nil)
	for i := range 1000 {
		mustPool(b, a, local(fmt.Sprintf("10.%d.%d.0/24", 64+i/256, i%256)))
	}
	want := pfx("10.65.244.0/24")
	for b.Loop() {
		if _, ok := a.PoolOf(LocalSpace, want); !ok {
			b.Fatal("not found")
		}
	}
}
