package ipam

import (
	"net/netip"
	"slices"
	"testing"
	"time"
)

func TestParseDefaultPools(t *testing.T) {
	for _, tc := range []struct {
		in       string
		want     []DefaultPool
		mentions []string // non-nil: an error is expected
	}{
		{in: DefaultPoolsSetting, want: []DefaultPool{{pfx("10.208.0.0/12"), 24}, {pfx("fd5e:f7ee:5000::/40"), 64}}},
		{in: " base = 10.0.0.0/8 , size = 16 ; ; base=172.30.0.0/16,size=24; ", want: []DefaultPool{{pfx("10.0.0.0/8"), 16}, {pfx("172.30.0.0/16"), 24}}},
		{in: "size=24,base=10.0.0.0/8", want: []DefaultPool{{pfx("10.0.0.0/8"), 24}}},
		{in: "base=10.0.0.0/8,size=8", want: []DefaultPool{{pfx("10.0.0.0/8"), 8}}},
		{in: "base=10.0.0.0/8,size=30", want: []DefaultPool{{pfx("10.0.0.0/8"), 30}}},
		{in: "", want: []DefaultPool{}},
		{in: " ; ", want: []DefaultPool{}},

		{in: "base=10.0.0.0/8", mentions: []string{`entry 1 "base=10.0.0.0/8"`, "both base and size"}},
		{in: "size=24", mentions: []string{`"size=24"`, "both base and size"}},
		{in: "base=10.0.0.0/8,size=24;base=10.1.0.0/33,size=24", mentions: []string{`entry 2 "base=10.1.0.0/33,size=24"`, `base "10.1.0.0/33"`}},
		{in: "base=10.0.0.1/8,size=24", mentions: []string{"10.0.0.1/8 is not a network address; did you mean 10.0.0.0/8?"}},
		{in: "base=::ffff:10.0.0.0/104,size=120", mentions: []string{"IPv4-mapped", "10.0.0.0/8"}},
		{in: "base=10.0.0.0/16,size=8", mentions: []string{"size 8", "16"}},
		{in: "base=10.0.0.0/16,size=31", mentions: []string{"size 31", "30"}},
		{in: "base=fd00::/48,size=127", mentions: []string{"size 127", "126"}},
		{in: "base=10.0.0.0/16,size=x", mentions: []string{`size "x" is not a number`}},
		{in: "base=10.0.0.0/16,size=24,mask=8", mentions: []string{`unknown key "mask"`}},
		{in: "base=10.0.0.0/16,base=10.1.0.0/16,size=24", mentions: []string{"base is given twice"}},
		{in: "base=10.0.0.0/16,size=24,size=25", mentions: []string{"size is given twice"}},
		{in: "base=10.0.0.0/16 size=24", mentions: []string{"not a subnet"}},
		{in: "10.0.0.0/16", mentions: []string{`"10.0.0.0/16" is not key=value`}},
		{in: "base=10.0.0.0/16,,size=24", mentions: []string{`"" is not key=value`}},
	} {
		got, err := ParseDefaultPools(tc.in)
		if tc.mentions != nil {
			t.Run(tc.in, func(t *testing.T) {
				checkErr(t, err, ErrBadDefaultPools, append(tc.mentions, "base=CIDR,size=N", DefaultPoolsSetting)...)
			})
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("ParseDefaultPools(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	if s := (DefaultPool{pfx("10.208.0.0/12"), 24}).String(); s != "base=10.208.0.0/12,size=24" {
		t.Errorf("String() = %s", s)
	}
}

func defaultsOf(t *testing.T, s string) []DefaultPool {
	t.Helper()
	d, err := ParseDefaultPools(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestDefaultPools(t *testing.T) {
	type req struct {
		space string
		v6    bool
		avoid []string
		want  string // pool prefix, or "" with err
		err   error
		ment  []string
	}
	v4 := func(want string, avoid ...string) req { return req{space: LocalSpace, want: want, avoid: avoid} }
	v6 := func(want string, avoid ...string) req {
		return req{space: LocalSpace, v6: true, want: want, avoid: avoid}
	}
	for _, tc := range []struct {
		name     string
		defaults string
		held     []PoolRequest
		reqs     []req
	}{
		{
			name:     "the built-in defaults, one family after the other",
			defaults: DefaultPoolsSetting,
			reqs: []req{
				v4("10.208.0.0/24"), v4("10.208.1.0/24"),
				v6("fd5e:f7ee:5000::/64"), v6("fd5e:f7ee:5000:1::/64"),
				v4("10.208.2.0/24"),
			},
		},
		{
			name:     "held pools are skipped, in either space",
			defaults: DefaultPoolsSetting,
			held: []PoolRequest{
				local("10.208.0.0/23"),
				{Space: GlobalSpace, Pool: pfx("10.208.2.0/24")},
				local("10.208.3.128/25"),
				local("fd5e:f7ee:5000::/63"),
			},
			reqs: []req{
				v4("10.208.4.0/24"),
				{space: GlobalSpace, want: "10.208.5.0/24"},
				v6("fd5e:f7ee:5000:2::/64"),
			},
		},
		{
			name:     "host routes are avoided; default routes and the other family are not",
			defaults: DefaultPoolsSetting,
			reqs: []req{
				v4("10.208.1.0/24", "10.208.0.5/32"),
				v4("10.209.0.0/24", "10.208.0.0/16", "0.0.0.0/0", "fd5e:f7ee:5000::/48"),
				v4("10.208.0.0/24", "::ffff:10.208.2.0/120", "10.208.3.0/24"),
				v4("10.208.4.0/24", "::ffff:10.208.2.0/120", "10.208.3.0/24", "10.208.2.0/23"),
				v6("fd5e:f7ee:5000:5::/64", "fd5e:f7ee:5000::/62", "fd5e:f7ee:5000:4::1/128", "::/0", "10.0.0.0/8", "::ffff:0:0/90"),
				v6("fd5e:f7ee:5000::/64", "::ffff:0:0/96"), // maps to 0.0.0.0/0: ignored
			},
		},
		{
			name:     "later bases when the first is used up, then a clear error",
			defaults: "base=10.0.0.0/30,size=30;base=10.1.0.0/29,size=30",
			reqs: []req{
				v4("10.0.0.0/30"), v4("10.1.0.0/30"), v4("10.1.0.4/30"),
				{space: LocalSpace, err: ErrNoDefaultPool, ment: []string{"IPv4", "10.0.0.0/30 as /30s", "10.1.0.0/29 as /30s", "--subnet", "WEFT_DEFAULT_POOLS"}},
			},
		},
		{
			name:     "overlapping bases never give overlapping pools",
			defaults: "base=10.0.0.0/24,size=26;base=10.0.0.0/23,size=25",
			reqs: []req{
				v4("10.0.0.0/26"), v4("10.0.0.64/26"), v4("10.0.0.128/26"), v4("10.0.0.192/26"),
				v4("10.0.1.0/25"), v4("10.0.1.128/25"),
				{space: LocalSpace, err: ErrNoDefaultPool},
			},
		},
		{
			name:     "every default pool behind a route",
			defaults: "base=10.0.0.0/16,size=24",
			reqs:     []req{{space: LocalSpace, avoid: []string{"10.0.0.0/8"}, err: ErrNoDefaultPool, ment: []string{"10.0.0.0/16 as /24s", "host route"}}},
		},
		{
			name:     "no IPv6 base configured",
			defaults: "base=10.0.0.0/16,size=24",
			reqs: []req{
				{space: LocalSpace, v6: true, err: ErrNoDefaultPool, ment: []string{"no default IPv6 pool is configured", "--subnet"}},
				v4("10.0.0.0/24"),
			},
		},
		{
			name: "no defaults at all",
			reqs: []req{{space: LocalSpace, err: ErrNoDefaultPool, ment: []string{"IPv4"}}},
		},
		{
			name:     "bad address space before any pool is taken",
			defaults: DefaultPoolsSetting,
			reqs:     []req{{space: "nope", err: ErrBadRequest, ment: []string{`"nope"`}}, v4("10.208.0.0/24")},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := New(defaultsOf(t, tc.defaults))
			for _, h := range tc.held {
				mustPool(t, a, h)
			}
			for i, r := range tc.reqs {
				var avoid []netip.Prefix
				for _, s := range r.avoid {
					avoid = append(avoid, pfx(s))
				}
				got, err := a.RequestPool(PoolRequest{Space: r.space, V6: r.v6, Avoid: avoid})
				checkErr(t, err, r.err, r.ment...)
				if r.err == nil && got.Prefix != pfx(r.want) {
					t.Fatalf("request %d: got pool %s, want %s", i, got.Prefix, r.want)
				}
				if r.err == nil && got.ID != r.space+"/"+r.want {
					t.Fatalf("request %d: ID %s", i, got.ID)
				}
			}
		})
	}
}

// TestDefaultPoolsRetryLoop mimics dockerd's loop for a default pool that
// clashes with something it knows of: it holds each pool it rejects and asks
// again, so each answer must differ; releasing them makes them available again.
func TestDefaultPoolsRetryLoop(t *testing.T) {
	a := New(defaultsOf(t, DefaultPoolsSetting))
	seen := map[netip.Prefix]bool{}
	var ids []string
	for range 50 {
		p := mustPool(t, a, PoolRequest{Space: LocalSpace})
		if seen[p.Prefix] {
			t.Fatalf("pool %s returned twice while held", p.Prefix)
		}
		seen[p.Prefix] = true
		ids = append(ids, p.ID)
	}
	for _, id := range ids[:49] {
		checkErr(t, a.ReleasePool(id), nil)
	}
	if p := mustPool(t, a, PoolRequest{Space: LocalSpace}); p.Prefix != pfx("10.208.0.0/24") {
		t.Fatalf("after release got %s", p.Prefix)
	}
}

// TestDefaultPoolsHugeBases would run for ages if candidates were enumerated:
// the first free /120 sits 2^112 candidates into the base.
func TestDefaultPoolsHugeBases(t *testing.T) {
	a := New(defaultsOf(t, "base=fc00::/7,size=120;base=0.0.0.0/1,size=30"))
	// A thousand held pools in a row, each forcing one more jump.
	slot := func(i int) netip.Prefix {
		return netip.PrefixFrom(u128{hi: 0xfd80 << 48, lo: uint64(i) << 8}.addr(true), 120)
	}
	for i := range 1000 {
		mustPool(t, a, PoolRequest{Space: LocalSpace, Pool: slot(i)})
	}
	start := time.Now()
	p := mustPool(t, a, PoolRequest{Space: LocalSpace, V6: true, Avoid: []netip.Prefix{pfx("fc00::/8"), pfx("fd00::/9")}})
	if p.Prefix != slot(1000) {
		t.Fatalf("got %s, want %s", p.Prefix, slot(1000))
	}
	p = mustPool(t, a, PoolRequest{Space: LocalSpace, Avoid: []netip.Prefix{pfx("0.0.0.0/2"), pfx("64.0.0.0/3")}})
	if p.Prefix != pfx("96.0.0.0/30") {
		t.Fatalf("got %s", p.Prefix)
	}
	_, err := a.RequestPool(PoolRequest{Space: LocalSpace, Avoid: []netip.Prefix{pfx("0.0.0.0/1")}})
	checkErr(t, err, ErrNoDefaultPool, "0.0.0.0/1")
	if d := time.Since(start); d > time.Second {
		t.Fatalf("default pool search took %v", d)
	}
}

func TestNewIgnoresInvalidDefaults(t *testing.T) {
	a := New([]DefaultPool{
		{pfx("10.0.0.1/16"), 24},          // not canonical
		{pfx("10.1.0.0/16"), 8},           // size shorter than base
		{pfx("10.2.0.0/16"), 33},          // size too long
		{netip.Prefix{}, 24},              // missing base
		{pfx("10.3.0.0/16"), 24},          // fine
		{pfx("::ffff:10.4.0.0/112"), 120}, // IPv4-mapped
	})
	if p := mustPool(t, a, PoolRequest{Space: LocalSpace}); p.Prefix != pfx("10.3.0.0/24") {
		t.Fatalf("got %s", p.Prefix)
	}
	if _, err := a.RequestPool(PoolRequest{Space: LocalSpace, V6: true}); err == nil {
		t.Fatal("IPv4-mapped base was used")
	}
}
