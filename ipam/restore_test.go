package ipam

import (
	"encoding/json"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// snapshot is what the plugin persists: the pool records and their addresses.
func snapshot(a *Allocator) ([]Pool, map[string][]netip.Addr) {
	pools := a.Pools()
	addrs := map[string][]netip.Addr{}
	for _, p := range pools {
		addrs[p.ID] = a.Allocated(p.ID)
	}
	return pools, addrs
}

// sameAnswers drives two allocators through the same calls and fails on the
// first different answer.
func sameAnswers(t *testing.T, a, b *Allocator, calls int) {
	t.Helper()
	if !reflect.DeepEqual(a.Pools(), b.Pools()) {
		t.Fatalf("Pools differ:\n%v\n%v", a.Pools(), b.Pools())
	}
	ids := []string{}
	for _, p := range a.Pools() {
		ids = append(ids, p.ID)
		if !slices.Equal(a.Allocated(p.ID), b.Allocated(p.ID)) {
			t.Fatalf("Allocated(%s) differs", p.ID)
		}
	}
	for i := range calls {
		id := ids[i%len(ids)]
		x, errA := a.RequestAddress(id, netip.Addr{}, i%7 == 0)
		y, errB := b.RequestAddress(id, netip.Addr{}, i%7 == 0)
		if x != y || (errA == nil) != (errB == nil) {
			t.Fatalf("call %d in %s: %v,%v vs %v,%v", i, id, x, errA, y, errB)
		}
		if i%3 == 0 && x.IsValid() {
			a.ReleaseAddress(id, x.Addr())
			b.ReleaseAddress(id, x.Addr())
		}
	}
	for _, v6 := range []bool{false, true} {
		x, errA := a.RequestPool(PoolRequest{Space: LocalSpace, V6: v6})
		y, errB := b.RequestPool(PoolRequest{Space: LocalSpace, V6: v6})
		if x != y || (errA == nil) != (errB == nil) {
			t.Fatalf("default pool: %v,%v vs %v,%v", x, errA, y, errB)
		}
	}
}

func TestRestoreRoundTripJSON(t *testing.T) {
	defaults := defaultsOf(t, DefaultPoolsSetting)
	a := New(defaults)
	v4 := mustPool(t, a, PoolRequest{Space: LocalSpace})
	v6 := mustPool(t, a, PoolRequest{Space: LocalSpace, V6: true})
	rng := mustPool(t, a, localRange("10.30.0.0/16", "10.30.8.0/22"))
	glob := mustPool(t, a, PoolRequest{Space: GlobalSpace, Pool: pfx("10.30.0.0/16")})
	mustPool(t, a, local("192.168.77.0/24")) // held, no addresses
	for _, id := range []string{v4.ID, v6.ID, rng.ID, glob.ID} {
		mustAddr(t, a, id, netip.Addr{}, true)
		for range 40 {
			mustAddr(t, a, id, netip.Addr{}, false)
		}
	}
	for _, s := range []string{"10.208.0.7", "10.208.0.30"} {
		checkErr(t, a.ReleaseAddress(v4.ID, ip(s)), nil)
	}
	mustAddr(t, a, rng.ID, ip("10.30.200.1"), false)

	pools, addrs := snapshot(a)
	raw, err := json.Marshal(struct {
		Pools []Pool
		Addrs map[string][]netip.Addr
	}{pools, addrs})
	if err != nil {
		t.Fatal(err)
	}
	if s := string(raw); !strings.Contains(s, `"cursor":"10.208.0.41"`) || !strings.Contains(s, `"range":"10.30.8.0/22"`) ||
		strings.Contains(s, `"range":""`) || strings.Contains(s, `"cursor":""`) {
		t.Errorf("unexpected JSON: %s", s)
	}
	var back struct {
		Pools []Pool
		Addrs map[string][]netip.Addr
	}
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatal(err)
	}
	b := New(defaults)
	mustPool(t, b, local("172.31.0.0/16")) // state Restore must replace
	checkErr(t, b.Restore(back.Pools, back.Addrs), nil)
	sameAnswers(t, a, b, 500)
}

func TestRestoreRefuses(t *testing.T) {
	good := Pool{ID: "weft-local/10.1.0.0/24", Space: LocalSpace, Prefix: pfx("10.1.0.0/24")}
	withRange := Pool{ID: "weft-local/10.2.0.0/16/10.2.1.0/24", Space: LocalSpace, Prefix: pfx("10.2.0.0/16"), Range: pfx("10.2.1.0/24")}
	mod := func(p Pool, f func(*Pool)) Pool { f(&p); return p }
	for _, tc := range []struct {
		name     string
		pools    []Pool
		addrs    map[string][]netip.Addr
		kind     error
		mentions []string
	}{
		{
			name:  "unknown address space",
			pools: []Pool{mod(good, func(p *Pool) { p.Space = "x"; p.ID = "x/10.1.0.0/24" })},
			kind:  ErrBadRequest, mentions: []string{`"x"`, "10.1.0.0/24"},
		},
		{
			name:  "non-canonical prefix",
			pools: []Pool{mod(good, func(p *Pool) { p.Prefix = pfx("10.1.0.1/24") })},
			kind:  ErrBadRequest, mentions: []string{"10.1.0.1/24", "did you mean 10.1.0.0/24?"},
		},
		{
			name:  "range outside the pool",
			pools: []Pool{mod(withRange, func(p *Pool) { p.Range = pfx("10.3.1.0/24") })},
			kind:  ErrBadRequest, mentions: []string{"10.3.1.0/24", "10.2.0.0/16"},
		},
		{
			name:  "ID not matching the content",
			pools: []Pool{mod(good, func(p *Pool) { p.ID = "weft-local/10.1.0.0/25" })},
			kind:  ErrBadRequest, mentions: []string{"weft-local/10.1.0.0/25", "10.1.0.0/24", `"weft-local/10.1.0.0/24"`},
		},
		{
			name:  "pool listed twice",
			pools: []Pool{good, good},
			kind:  ErrPoolOverlap, mentions: []string{"10.1.0.0/24", "twice"},
		},
		{
			name:  "overlapping pools",
			pools: []Pool{good, {ID: "weft-local/10.1.0.0/16", Space: LocalSpace, Prefix: pfx("10.1.0.0/16")}},
			kind:  ErrPoolOverlap, mentions: []string{"pool 10.1.0.0/16 overlaps pool 10.1.0.0/24", "weft-local"},
		},
		{
			name:  "cursor outside the pool",
			pools: []Pool{mod(good, func(p *Pool) { p.Cursor = ip("10.9.0.1") })},
			kind:  ErrAddressOutOfPool, mentions: []string{"10.9.0.1", "10.1.0.0/24"},
		},
		{
			name:  "cursor of the other family",
			pools: []Pool{mod(good, func(p *Pool) { p.Cursor = ip("::a01:1") })},
			kind:  ErrAddressOutOfPool, mentions: []string{"::a01:1", "10.1.0.0/24"},
		},
		{
			name:  "addresses of an unknown pool",
			pools: []Pool{good},
			addrs: map[string][]netip.Addr{"weft-local/10.5.0.0/24": {ip("10.5.0.1")}},
			kind:  ErrUnknownPool, mentions: []string{"10.5.0.1", "weft-local/10.5.0.0/24"},
		},
		{
			name:  "address outside its pool",
			pools: []Pool{good},
			addrs: map[string][]netip.Addr{good.ID: {ip("10.1.0.1"), ip("10.1.1.1")}},
			kind:  ErrAddressOutOfPool, mentions: []string{"10.1.1.1", "10.1.0.0/24"},
		},
		{
			name:  "reserved address",
			pools: []Pool{good},
			addrs: map[string][]netip.Addr{good.ID: {ip("10.1.0.255")}},
			kind:  ErrReservedAddress, mentions: []string{"10.1.0.255", "broadcast", "10.1.0.0/24"},
		},
		{
			name:  "address listed twice",
			pools: []Pool{good},
			addrs: map[string][]netip.Addr{good.ID: {ip("10.1.0.9"), ip("10.1.0.3"), ip("10.1.0.9")}},
			kind:  ErrAddressInUse, mentions: []string{"10.1.0.9", "10.1.0.0/24", "twice"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := New(nil)
			keep := mustPool(t, a, local("172.16.0.0/24"))
			mustAddr(t, a, keep.ID, netip.Addr{}, false)
			err := a.Restore(tc.pools, tc.addrs)
			checkErr(t, err, ErrBadState, append(tc.mentions, "cannot restore")...)
			checkErr(t, err, tc.kind)
			if got := a.Pools(); len(got) != 1 || got[0].ID != keep.ID || len(a.Allocated(keep.ID)) != 1 {
				t.Fatalf("failed Restore changed the state: %v", got)
			}
		})
	}
}

func TestRestoreAccepts(t *testing.T) {
	a := New(nil)
	pools := []Pool{
		{ID: "weft-local/10.1.0.0/24", Space: LocalSpace, Prefix: pfx("10.1.0.0/24"), Cursor: ip("10.1.0.5")},
		{ID: "weft-global/10.1.0.0/24", Space: GlobalSpace, Prefix: pfx("10.1.0.0/24")},
		// A cursor outside the range (inside the pool) just starts at the range.
		{ID: "weft-local/fd00::/64/fd00::100/120", Space: LocalSpace, Prefix: pfx("fd00::/64"), Range: pfx("fd00::100/120"), Cursor: ip("fd00::1")},
	}
	addrs := map[string][]netip.Addr{
		"weft-local/10.1.0.0/24": {ip("10.1.0.6"), ip("::ffff:10.1.0.1")}, // unsorted, mapped form
		"weft-local/10.9.0.0/24": nil,                                     // empty list for an unknown pool: harmless
	}
	checkErr(t, a.Restore(pools, addrs), nil)
	if got := mustAddr(t, a, "weft-local/10.1.0.0/24", netip.Addr{}, false); got != pfx("10.1.0.7/24") {
		t.Errorf("after cursor 10.1.0.5 with .6 taken got %s", got)
	}
	if got := mustAddr(t, a, "weft-local/fd00::/64/fd00::100/120", netip.Addr{}, false); got != pfx("fd00::100/64") {
		t.Errorf("range start: got %s", got)
	}
	if !slices.Equal(a.Allocated("weft-local/10.1.0.0/24"), []netip.Addr{ip("10.1.0.1"), ip("10.1.0.6"), ip("10.1.0.7")}) {
		t.Errorf("Allocated = %v", a.Allocated("weft-local/10.1.0.0/24"))
	}
	checkErr(t, a.Restore(nil, nil), nil)
	if len(a.Pools()) != 0 {
		t.Error("Restore(nil, nil) kept pools")
	}
}
