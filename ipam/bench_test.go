package ipam

import (
	"net/netip"
	"runtime"
	"testing"
)

// BenchmarkRequestAddressV4Slash16 measures next-free allocation in a /16 in
// steady state: 60000 of 65534 addresses held, the oldest released before
// each request, so the cursor keeps wrapping through a nearly full pool.
func BenchmarkRequestAddressV4Slash16(b *testing.B) {
	a := New(nil)
	p := mustPool(b, a, local("10.7.0.0/16"))
	const held = 60000
	ring := make([]netip.Addr, held)
	for i := range ring {
		ring[i] = mustAddr(b, a, p.ID, netip.Addr{}, false).Addr()
	}
	i := 0
	for b.Loop() {
		a.ReleaseAddress(p.ID, ring[i])
		got, err := a.RequestAddress(p.ID, netip.Addr{}, false)
		if err != nil {
			b.Fatal(err)
		}
		ring[i] = got.Addr()
		i = (i + 1) % held
	}
}

// BenchmarkRequestAddressV4Slash16Fragmented is the bad case for the run
// list: every other address of a /16 held (32767 runs), and each iteration
// allocates into a gap and frees another address, splitting and merging runs.
func BenchmarkRequestAddressV4Slash16Fragmented(b *testing.B) {
	a := New(nil)
	p := mustPool(b, a, local("10.7.0.0/16"))
	for x := ip("10.7.0.1"); p.Prefix.Contains(x) && x != ip("10.7.255.255"); x = x.Next().Next() {
		mustAddr(b, a, p.ID, x, false)
	}
	for b.Loop() {
		got, err := a.RequestAddress(p.ID, netip.Addr{}, false)
		if err != nil {
			b.Fatal(err)
		}
		a.ReleaseAddress(p.ID, got.Addr().Prev())
	}
	b.ReportMetric(float64(len(a.pools[p.ID].used.runs)), "runs")
}

// BenchmarkRequestAddressV6Slash64 measures next-free allocation in a /64.
func BenchmarkRequestAddressV6Slash64(b *testing.B) {
	a := New(nil)
	p := mustPool(b, a, local("fd00:1::/64"))
	for b.Loop() {
		if _, err := a.RequestAddress(p.ID, netip.Addr{}, false); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMemory1MAllocationsV6 reports the heap that 10^6 allocations in a
// /64 keep alive (gateway, then dynamic addresses): the figure that a bitmap
// would make 2^61 bytes.
func BenchmarkMemory1MAllocationsV6(b *testing.B) {
	const n = 1_000_000
	var kept float64
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		a := New(nil)
		p := mustPool(b, a, local("fd00:1::/64"))
		mustAddr(b, a, p.ID, netip.Addr{}, true)
		for range n - 1 {
			if _, err := a.RequestAddress(p.ID, netip.Addr{}, false); err != nil {
				b.Fatal(err)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		if !a.IsAllocated(p.ID, ip("fd00:1::f:4240")) { // keeps a alive up to here
			b.Fatal("the millionth address is not allocated")
		}
		kept = float64(int64(after.HeapAlloc) - int64(before.HeapAlloc))
	}
	b.ReportMetric(kept, "heap-bytes/1M-addrs")
	b.ReportMetric(kept/n, "heap-bytes/addr")
}
