package ipam

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
)

func TestU128(t *testing.T) {
	max := u128{^uint64(0), ^uint64(0)}
	if _, ok := max.addOne(); ok {
		t.Error("max+1 did not report overflow")
	}
	if _, ok := (u128{}).subOne(); ok {
		t.Error("0-1 did not report underflow")
	}
	if got, _ := (u128{0, ^uint64(0)}).addOne(); got != (u128{1, 0}) {
		t.Errorf("carry: got %v", got)
	}
	if got, _ := (u128{1, 0}).subOne(); got != (u128{0, ^uint64(0)}) {
		t.Errorf("borrow: got %v", got)
	}
	for _, s := range []string{"10.1.2.3", "0.0.0.0", "255.255.255.255", "fd00::1", "::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "::ffff:1.2.3.4"} {
		a := ip(s)
		if got := u128From(a).addr(a.Is6()); got != a {
			t.Errorf("round trip %s: got %s", a, got)
		}
	}
	for _, tc := range []struct {
		prefix      string
		first, last string
	}{
		{"10.1.0.0/24", "10.1.0.0", "10.1.0.255"},
		{"0.0.0.0/0", "0.0.0.0", "255.255.255.255"},
		{"10.1.0.7/32", "10.1.0.7", "10.1.0.7"},
		{"fd00::/64", "fd00::", "fd00::ffff:ffff:ffff:ffff"},
		{"fd00::/63", "fd00::", "fd00::1:ffff:ffff:ffff:ffff"},
		{"::/0", "::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"},
		{"fd00::5/128", "fd00::5", "fd00::5"},
	} {
		p := pfx(tc.prefix)
		f, l := bounds(p)
		if f.addr(p.Addr().Is6()) != ip(tc.first) || l.addr(p.Addr().Is6()) != ip(tc.last) {
			t.Errorf("bounds(%s) = %s..%s, want %s..%s", p, f.addr(p.Addr().Is6()), l.addr(p.Addr().Is6()), tc.first, tc.last)
		}
	}
	if _, ok := alignUp(u128{^uint64(0), ^uint64(0) - 3}, hostMask(8)); ok {
		t.Error("alignUp past 2^128 did not fail")
	}
	if got, _ := alignUp(u128{lo: 0x101}, hostMask(8)); got != (u128{lo: 0x200}) {
		t.Errorf("alignUp: got %v", got)
	}
}

// TestAddrSetAgainstMap checks the run list against a plain map under random
// adds and removes in a small space, where runs merge and split constantly.
func TestAddrSetAgainstMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var s addrSet
	model := map[uint64]bool{}
	const space = 64
	for i := range 20000 {
		x := u128{lo: rng.Uint64N(space)}
		if rng.IntN(2) == 0 {
			if got, want := s.add(x), !model[x.lo]; got != want {
				t.Fatalf("step %d add(%d) = %v, want %v", i, x.lo, got, want)
			}
			model[x.lo] = true
		} else {
			if got, want := s.remove(x), model[x.lo]; got != want {
				t.Fatalf("step %d remove(%d) = %v, want %v", i, x.lo, got, want)
			}
			delete(model, x.lo)
		}
		checkRuns(t, &s)
		from, last := rng.Uint64N(space), rng.Uint64N(space)
		got, ok := s.nextFree(u128{lo: from}, u128{lo: last})
		want, wantOK := uint64(0), false
		for y := from; y <= last; y++ {
			if !model[y] {
				want, wantOK = y, true
				break
			}
		}
		if ok != wantOK || (ok && got.lo != want) {
			t.Fatalf("step %d nextFree(%d, %d) = %d,%v, want %d,%v", i, from, last, got.lo, ok, want, wantOK)
		}
	}
	var want []netip.Addr
	for y := range uint64(space) {
		if model[y] {
			want = append(want, u128{lo: y}.addr(false))
		}
	}
	if got := s.appendAddrs(nil, false); !slices.Equal(got, want) {
		t.Fatalf("members = %v, want %v", got, want)
	}
}

// checkRuns verifies the representation invariant: sorted, disjoint,
// non-adjacent runs with lo ≤ hi.
func checkRuns(t *testing.T, s *addrSet) {
	t.Helper()
	for i, r := range s.runs {
		if r.hi.less(r.lo) {
			t.Fatalf("run %d inverted: %v", i, r)
		}
		if i > 0 {
			if gap, _ := s.runs[i-1].hi.addOne(); !gap.less(r.lo) {
				t.Fatalf("runs %d and %d touch or overlap: %v %v", i-1, i, s.runs[i-1], r)
			}
		}
	}
}

func TestAddrSetEdges(t *testing.T) {
	max := u128{^uint64(0), ^uint64(0)}
	var s addrSet
	s.add(max)
	if _, ok := s.nextFree(max, max); ok {
		t.Error("nextFree found a free address above the top of the space")
	}
	s.add(u128{})
	if !s.contains(u128{}) || !s.contains(max) || len(s.runs) != 2 {
		t.Errorf("runs = %v", s.runs)
	}
	// Sequential adds stay one run: the property the IPv6 memory bound rests on.
	var seq addrSet
	for x, i := (u128{hi: 7, lo: ^uint64(0) - 500}), 0; i < 1000; i++ {
		seq.add(x)
		x, _ = x.addOne()
	}
	if len(seq.runs) != 1 {
		t.Errorf("1000 sequential adds across a 64-bit carry gave %d runs", len(seq.runs))
	}
}
