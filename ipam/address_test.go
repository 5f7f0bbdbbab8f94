package ipam

import (
	"net/netip"
	"slices"
	"testing"
)

// step is one RequestAddress (or, with release set, ReleaseAddress) call.
type step struct {
	want     string // "" = zero address
	gateway  bool
	release  bool
	got      string // expected prefix on success
	err      error
	mentions []string
}

func (s step) run(t *testing.T, a *Allocator, id string) {
	t.Helper()
	var want netip.Addr
	if s.want != "" {
		want = ip(s.want)
	}
	if s.release {
		checkErr(t, a.ReleaseAddress(id, want), nil)
		if a.IsAllocated(id, want) {
			t.Fatalf("%s still allocated after release", want)
		}
		return
	}
	got, err := a.RequestAddress(id, want, s.gateway)
	checkErr(t, err, s.err, s.mentions...)
	if s.err == nil {
		if s.got == "" && (got.Addr() != want || got.Bits() != a.pools[id].rec.Prefix.Bits()) || s.got != "" && got.String() != s.got {
			t.Fatalf("RequestAddress(%q, gateway=%v) = %s, want %s", s.want, s.gateway, got, s.got)
		}
		if !a.IsAllocated(id, got.Addr()) {
			t.Fatalf("%s not recorded as allocated", got)
		}
	}
}

func dyn(got string) step      { return step{got: got} }
func gw(got string) step       { return step{gateway: true, got: got} }
func exact(want string) step   { return step{want: want} } // checks the address only
func release(addr string) step { return step{want: addr, release: true} }
func fail(s step, err error, m ...string) step {
	s.got, s.err, s.mentions = "", err, m
	return s
}

func TestRequestAddress(t *testing.T) {
	for _, tc := range []struct {
		name  string
		pool  PoolRequest
		steps []step
	}{
		{
			name:  "dynamic addresses are sequential with the pool's prefix length",
			pool:  local("10.1.0.0/24"),
			steps: []step{gw("10.1.0.1/24"), dyn("10.1.0.2/24"), dyn("10.1.0.3/24")},
		},
		{
			name:  "dynamic without a gateway starts at the first usable address",
			pool:  local("10.1.0.0/24"),
			steps: []step{dyn("10.1.0.1/24"), gw("10.1.0.2/24")},
		},
		{
			name: "explicit addresses, aux and gateway",
			pool: local("10.1.0.0/24"),
			steps: []step{
				{want: "10.1.0.254", gateway: true, got: "10.1.0.254/24"},
				{want: "10.1.0.1", got: "10.1.0.1/24"},
				dyn("10.1.0.2/24"),
			},
		},
		{
			name: "explicit address in use",
			pool: local("10.1.0.0/24"),
			steps: []step{
				exact("10.1.0.5"),
				fail(step{want: "10.1.0.5"}, ErrAddressInUse, "address 10.1.0.5 in pool 10.1.0.0/24 is already in use"),
				fail(step{want: "10.1.0.5", gateway: true}, ErrAddressInUse, "10.1.0.5", "10.1.0.0/24"),
			},
		},
		{
			name: "explicit address outside the pool",
			pool: local("10.1.0.0/24"),
			steps: []step{
				fail(step{want: "10.2.0.5"}, ErrAddressOutOfPool, "address 10.2.0.5 is outside pool 10.1.0.0/24"),
				fail(step{want: "fd00::5"}, ErrAddressOutOfPool, "fd00::5", "10.1.0.0/24"),
			},
		},
		{
			name: "IPv4-mapped address is taken as IPv4",
			pool: local("10.1.0.0/24"),
			steps: []step{
				{want: "::ffff:10.1.0.7", got: "10.1.0.7/24"},
				fail(step{want: "10.1.0.7"}, ErrAddressInUse, "10.1.0.7"),
				release("::ffff:10.1.0.7"),
				exact("10.1.0.7"),
			},
		},
		{
			name: "reserved IPv4 addresses",
			pool: local("10.1.0.0/24"),
			steps: []step{
				fail(step{want: "10.1.0.0"}, ErrReservedAddress, "address 10.1.0.0 is the network address of pool 10.1.0.0/24"),
				fail(step{want: "10.1.0.255"}, ErrReservedAddress, "address 10.1.0.255 is the broadcast address of pool 10.1.0.0/24"),
				fail(step{want: "10.1.0.255", gateway: true}, ErrReservedAddress, "10.1.0.255"),
			},
		},
		{
			name: "IPv6: anycast reserved, no broadcast",
			pool: local("fd00::/126"),
			steps: []step{
				fail(step{want: "fd00::"}, ErrReservedAddress, "address fd00:: is the subnet-router anycast address of pool fd00::/126"),
				gw("fd00::1/126"), dyn("fd00::2/126"), dyn("fd00::3/126"),
				fail(dyn(""), ErrNoAddresses, "pool fd00::/126"),
			},
		},
		{
			name: "IPv4 /30 has two hosts",
			pool: local("10.1.0.0/30"),
			steps: []step{
				gw("10.1.0.1/30"), dyn("10.1.0.2/30"),
				fail(dyn(""), ErrNoAddresses, "no free address left in pool 10.1.0.0/30"),
				fail(gw(""), ErrNoAddresses, "10.1.0.0/30", "gateway"),
			},
		},
		{
			name:  "IPv4 /31 point-to-point: both addresses usable",
			pool:  local("10.1.0.0/31"),
			steps: []step{gw("10.1.0.0/31"), dyn("10.1.0.1/31"), fail(dyn(""), ErrNoAddresses, "10.1.0.0/31")},
		},
		{
			name:  "IPv4 /32: the one address",
			pool:  local("10.1.0.9/32"),
			steps: []step{exact("10.1.0.9"), fail(gw(""), ErrNoAddresses, "10.1.0.9/32"), release("10.1.0.9"), dyn("10.1.0.9/32")},
		},
		{
			name:  "IPv6 /127: both addresses usable",
			pool:  local("fd00::/127"),
			steps: []step{gw("fd00::/127"), dyn("fd00::1/127"), fail(dyn(""), ErrNoAddresses, "fd00::/127")},
		},
		{
			name:  "IPv6 /128",
			pool:  local("fd00::9/128"),
			steps: []step{dyn("fd00::9/128"), fail(dyn(""), ErrNoAddresses, "fd00::9/128")},
		},
		{
			name: "ip-range: dynamic from the range, gateway from the subnet",
			pool: localRange("10.1.0.0/16", "10.1.2.0/30"),
			steps: []step{
				gw("10.1.0.1/16"),
				dyn("10.1.2.0/16"), dyn("10.1.2.1/16"), dyn("10.1.2.2/16"), dyn("10.1.2.3/16"),
				fail(dyn(""), ErrNoAddresses, "no free address left in ip-range 10.1.2.0/30 of pool 10.1.0.0/16"),
				exact("10.1.7.7"), // --ip outside the range, inside the subnet
			},
		},
		{
			name: "ip-range at the end of the subnet skips the broadcast address",
			pool: localRange("10.1.0.0/24", "10.1.0.252/30"),
			steps: []step{
				dyn("10.1.0.252/24"), dyn("10.1.0.253/24"), dyn("10.1.0.254/24"),
				fail(dyn(""), ErrNoAddresses, "10.1.0.252/30"),
			},
		},
		{
			name: "ip-range at the start of the subnet skips the network address",
			pool: localRange("10.1.0.0/24", "10.1.0.0/30"),
			steps: []step{
				dyn("10.1.0.1/24"), dyn("10.1.0.2/24"), dyn("10.1.0.3/24"),
				fail(dyn(""), ErrNoAddresses, "10.1.0.0/30"),
			},
		},
		{
			name: "released address is not reused at once",
			pool: local("10.1.0.0/29"), // hosts .1-.6
			steps: []step{
				dyn("10.1.0.1/29"), dyn("10.1.0.2/29"), dyn("10.1.0.3/29"),
				release("10.1.0.2"),
				dyn("10.1.0.4/29"),
				release("10.1.0.4"),
				dyn("10.1.0.5/29"), dyn("10.1.0.6/29"),
				dyn("10.1.0.2/29"), // wrapped
				dyn("10.1.0.4/29"),
				fail(dyn(""), ErrNoAddresses, "10.1.0.0/29"),
				release("10.1.0.6"),
				dyn("10.1.0.6/29"), // the only free one
			},
		},
		{
			name: "explicit allocation does not move the cursor; dynamic skips it",
			pool: local("10.1.0.0/29"),
			steps: []step{
				exact("10.1.0.2"),
				dyn("10.1.0.1/29"), dyn("10.1.0.3/29"),
			},
		},
		{
			name: "releases that are no-ops",
			pool: local("10.1.0.0/29"),
			steps: []step{
				release("10.1.0.1"), // never allocated (dockerd's gateway release)
				release("10.9.9.9"), // outside the pool
				release("fd00::1"),  // other family
				dyn("10.1.0.1/29"),
			},
		},
		{
			name: "big IPv6 pool",
			pool: local("fd00:1:2::/48"),
			steps: []step{
				gw("fd00:1:2::1/48"), dyn("fd00:1:2::2/48"),
				exact("fd00:1:2:ffff:ffff:ffff:ffff:ffff"),
				fail(step{want: "fd00:1:3::"}, ErrAddressOutOfPool, "fd00:1:3::", "fd00:1:2::/48"),
			},
		},
		{
			name: "IPv6 range across the 64-bit boundary",
			pool: localRange("fd00::/56", "fd00:0:0:1::/64"),
			steps: []step{
				dyn("fd00:0:0:1::/56"), dyn("fd00:0:0:1::1/56"), exact("fd00:0:0:1:ffff:ffff:ffff:fffe"),
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := New(nil)
			p := mustPool(t, a, tc.pool)
			for _, s := range tc.steps {
				s.run(t, a, p.ID)
			}
		})
	}
}

func TestRequestAddressUnknownPool(t *testing.T) {
	a := New(nil)
	_, err := a.RequestAddress("weft-local/10.1.0.0/24", ip("10.1.0.5"), false)
	checkErr(t, err, ErrUnknownPool, "address 10.1.0.5", "pool weft-local/10.1.0.0/24")
	_, err = a.RequestAddress("weft-local/10.1.0.0/24", netip.Addr{}, true)
	checkErr(t, err, ErrUnknownPool, "pool weft-local/10.1.0.0/24")
	checkErr(t, a.ReleaseAddress("weft-local/10.1.0.0/24", ip("10.1.0.5")), nil)
	if a.Allocated("nope") != nil || a.IsAllocated("nope", ip("10.1.0.5")) {
		t.Error("unknown pool has addresses")
	}
}

func TestAllocatedSorted(t *testing.T) {
	a := New(nil)
	p := mustPool(t, a, local("10.1.0.0/24"))
	for _, s := range []string{"10.1.0.200", "10.1.0.3", "10.1.0.100", "10.1.0.4"} {
		mustAddr(t, a, p.ID, ip(s), false)
	}
	mustAddr(t, a, p.ID, netip.Addr{}, false)
	want := []netip.Addr{ip("10.1.0.1"), ip("10.1.0.3"), ip("10.1.0.4"), ip("10.1.0.100"), ip("10.1.0.200")}
	if got := a.Allocated(p.ID); !slices.Equal(got, want) {
		t.Fatalf("Allocated = %v, want %v", got, want)
	}
}

// TestFullIPv4Slash16 fills a /16 and checks every usable address was handed
// out exactly once, then that releasing one makes exactly it available.
func TestFullIPv4Slash16(t *testing.T) {
	a := New(nil)
	p := mustPool(t, a, local("10.7.0.0/16"))
	seen := make(map[netip.Addr]bool, 65534)
	for range 65534 {
		got := mustAddr(t, a, p.ID, netip.Addr{}, false).Addr()
		if seen[got] {
			t.Fatalf("%s handed out twice", got)
		}
		seen[got] = true
	}
	_, err := a.RequestAddress(p.ID, netip.Addr{}, false)
	checkErr(t, err, ErrNoAddresses, "10.7.0.0/16")
	if seen[ip("10.7.0.0")] || seen[ip("10.7.255.255")] {
		t.Fatal("network or broadcast address handed out")
	}
	checkErr(t, a.ReleaseAddress(p.ID, ip("10.7.128.9")), nil)
	if got := mustAddr(t, a, p.ID, netip.Addr{}, false); got != pfx("10.7.128.9/16") {
		t.Fatalf("after release got %s", got)
	}
}
