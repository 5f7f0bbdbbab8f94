package ipam

import (
	"net/netip"
	"slices"
	"testing"
)

func TestRequestPool(t *testing.T) {
	for _, tc := range []struct {
		name     string
		held     []PoolRequest // requested first, must succeed
		req      PoolRequest
		wantID   string
		wantErr  error
		mentions []string
	}{
		{name: "explicit IPv4", req: local("10.1.0.0/24"), wantID: "weft-local/10.1.0.0/24"},
		{name: "explicit IPv6", req: local("fd00:1::/64"), wantID: "weft-local/fd00:1::/64"},
		{name: "global space", req: PoolRequest{Space: GlobalSpace, Pool: pfx("10.1.0.0/24")}, wantID: "weft-global/10.1.0.0/24"},
		{name: "with ip-range", req: localRange("10.1.0.0/16", "10.1.2.0/24"), wantID: "weft-local/10.1.0.0/16/10.1.2.0/24"},
		{name: "ip-range equal to subnet", req: localRange("10.1.0.0/24", "10.1.0.0/24"), wantID: "weft-local/10.1.0.0/24/10.1.0.0/24"},
		{name: "V6 flag ignored for explicit pool", req: PoolRequest{Space: LocalSpace, Pool: pfx("10.1.0.0/24"), V6: true}, wantID: "weft-local/10.1.0.0/24"},
		{name: "IPv4 /31", req: local("10.1.0.0/31"), wantID: "weft-local/10.1.0.0/31"},
		{name: "IPv4 /32", req: local("10.1.0.9/32"), wantID: "weft-local/10.1.0.9/32"},
		{name: "IPv6 /127", req: local("fd00::/127"), wantID: "weft-local/fd00::/127"},
		{name: "IPv6 /128", req: local("fd00::9/128"), wantID: "weft-local/fd00::9/128"},
		{name: "IPv6 /48", req: local("fd00:1:2::/48"), wantID: "weft-local/fd00:1:2::/48"},
		{
			name: "same prefix in the other space",
			held: []PoolRequest{{Space: GlobalSpace, Pool: pfx("10.1.0.0/24")}},
			req:  local("10.1.0.0/24"), wantID: "weft-local/10.1.0.0/24",
		},
		{
			name: "IPv6 numerically equal to a held IPv4 pool",
			held: []PoolRequest{local("10.1.0.0/24")},
			req:  local("::a01:0/120"), wantID: "weft-local/::a01:0/120",
		},
		{
			name: "adjacent pools",
			held: []PoolRequest{local("10.1.0.0/24"), local("10.1.2.0/24")},
			req:  local("10.1.1.0/24"), wantID: "weft-local/10.1.1.0/24",
		},

		{
			name: "unknown address space", req: PoolRequest{Space: "default", Pool: pfx("10.1.0.0/24")},
			wantErr: ErrBadRequest, mentions: []string{`"default"`, "10.1.0.0/24", LocalSpace, GlobalSpace},
		},
		{
			name: "unknown address space, default pool", req: PoolRequest{Space: ""},
			wantErr: ErrBadRequest, mentions: []string{`""`, "a default pool", LocalSpace, GlobalSpace},
		},
		{
			name: "subnet not a network address", req: local("10.1.0.1/24"),
			wantErr: ErrBadRequest, mentions: []string{"10.1.0.1/24 is not a network address; did you mean 10.1.0.0/24?"},
		},
		{
			name: "IPv6 subnet not a network address", req: local("fd00::1/64"),
			wantErr: ErrBadRequest, mentions: []string{"fd00::1/64 is not a network address; did you mean fd00::/64?"},
		},
		{
			name: "ip-range not a network address", req: localRange("10.1.0.0/16", "10.1.2.1/24"),
			wantErr: ErrBadRequest, mentions: []string{"ip-range 10.1.2.1/24 is not a network address; did you mean 10.1.2.0/24?"},
		},
		{
			name: "IPv4-mapped IPv6 subnet", req: local("::ffff:10.1.0.0/120"),
			wantErr: ErrBadRequest, mentions: []string{"::ffff:10.1.0.0/120", "IPv4-mapped", "10.1.0.0/24"},
		},
		{
			name: "subnet across the IPv4-mapped range", req: local("::ffff:0:0/95"),
			wantErr: ErrBadRequest, mentions: []string{"::ffff:0.0.0.0/95", "IPv4-mapped"},
		},
		{
			name: "invalid prefix length", req: PoolRequest{Space: LocalSpace, Pool: netip.PrefixFrom(ip("10.1.0.0"), 33)},
			wantErr: ErrBadRequest, mentions: []string{"10.1.0.0/?", "not a valid subnet"},
		},
		{
			name: "ip-range outside subnet", req: localRange("10.1.0.0/16", "10.2.0.0/24"),
			wantErr: ErrBadRequest, mentions: []string{"ip-range 10.2.0.0/24 is not inside subnet 10.1.0.0/16"},
		},
		{
			name: "ip-range larger than subnet", req: localRange("10.1.0.0/16", "10.0.0.0/8"),
			wantErr: ErrBadRequest, mentions: []string{"10.0.0.0/8", "10.1.0.0/16"},
		},
		{
			name: "ip-range of the other family", req: localRange("10.1.0.0/16", "fd00::/64"),
			wantErr: ErrBadRequest, mentions: []string{"fd00::/64", "10.1.0.0/16", "same IP family"},
		},
		{
			name: "ip-range without subnet", req: PoolRequest{Space: LocalSpace, SubPool: pfx("10.1.2.0/24")},
			wantErr: ErrBadRequest, mentions: []string{"10.1.2.0/24", "--subnet"},
		},
		{
			name: "ip-range holding only the network address", req: localRange("10.1.0.0/24", "10.1.0.0/32"),
			wantErr: ErrBadRequest, mentions: []string{"10.1.0.0/32", "10.1.0.0/24", "network address"},
		},
		{
			name: "ip-range holding only the broadcast address", req: localRange("10.1.0.0/24", "10.1.0.255/32"),
			wantErr: ErrBadRequest, mentions: []string{"10.1.0.255/32", "broadcast address"},
		},
		{
			name: "ip-range holding only the anycast address", req: localRange("fd00::/64", "fd00::/128"),
			wantErr: ErrBadRequest, mentions: []string{"fd00::/128", "fd00::/64", "anycast"},
		},
		{
			name: "larger pool overlaps a held one", held: []PoolRequest{local("10.1.2.0/24")}, req: local("10.1.0.0/16"),
			wantErr: ErrPoolOverlap, mentions: []string{"pool 10.1.0.0/16 overlaps pool 10.1.2.0/24 already used by another network in address space weft-local"},
		},
		{
			name: "smaller pool inside a held one", held: []PoolRequest{local("10.1.0.0/16")}, req: local("10.1.2.0/24"),
			wantErr: ErrPoolOverlap, mentions: []string{"pool 10.1.2.0/24 overlaps pool 10.1.0.0/16", "weft-local"},
		},
		{
			name: "identical pool again", held: []PoolRequest{local("10.1.0.0/24")}, req: local("10.1.0.0/24"),
			wantErr: ErrPoolOverlap, mentions: []string{"pool 10.1.0.0/24 is already used by another network in address space weft-local"},
		},
		{
			name: "identical pool and range again", held: []PoolRequest{localRange("10.1.0.0/16", "10.1.2.0/24")}, req: localRange("10.1.0.0/16", "10.1.2.0/24"),
			wantErr: ErrPoolOverlap, mentions: []string{"10.1.0.0/16", "weft-local"},
		},
		{
			name: "same subnet with another range", held: []PoolRequest{localRange("10.1.0.0/16", "10.1.2.0/24")}, req: localRange("10.1.0.0/16", "10.1.3.0/24"),
			wantErr: ErrPoolOverlap, mentions: []string{"10.1.0.0/16"},
		},
		{
			name: "IPv6 overlap", held: []PoolRequest{local("fd00::/48")}, req: local("fd00:0:0:5::/64"),
			wantErr: ErrPoolOverlap, mentions: []string{"fd00:0:0:5::/64", "fd00::/48"},
		},
		{
			name:    "overlap in global space",
			held:    []PoolRequest{{Space: GlobalSpace, Pool: pfx("10.1.0.0/24")}},
			req:     PoolRequest{Space: GlobalSpace, Pool: pfx("10.1.0.128/25")},
			wantErr: ErrPoolOverlap, mentions: []string{"10.1.0.128/25", "10.1.0.0/24", "weft-global"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := New(nil)
			for _, h := range tc.held {
				mustPool(t, a, h)
			}
			before := a.Pools()
			got, err := a.RequestPool(tc.req)
			checkErr(t, err, tc.wantErr, tc.mentions...)
			if tc.wantErr != nil {
				if after := a.Pools(); !slices.Equal(before, after) {
					t.Errorf("refused request changed the pools: %v → %v", before, after)
				}
				return
			}
			if got.ID != tc.wantID || got.Prefix != tc.req.Pool || got.Range != tc.req.SubPool || got.Space != tc.req.Space || got.Cursor.IsValid() {
				t.Errorf("got %+v, want ID %s", got, tc.wantID)
			}
			if rec, ok := a.Pool(got.ID); !ok || rec != got {
				t.Errorf("Pool(%s) = %+v, %v", got.ID, rec, ok)
			}
		})
	}
}

func TestReleasePool(t *testing.T) {
	a := New(nil)
	p := mustPool(t, a, local("10.1.0.0/24"))
	mustAddr(t, a, p.ID, netip.Addr{}, true)
	mustAddr(t, a, p.ID, netip.Addr{}, false)

	checkErr(t, a.ReleasePool(p.ID), nil)
	checkErr(t, a.ReleasePool(p.ID), nil) // idempotent
	checkErr(t, a.ReleasePool("weft-local/192.0.2.0/24"), nil)
	if _, ok := a.Pool(p.ID); ok || len(a.Pools()) != 0 || a.Allocated(p.ID) != nil {
		t.Fatal("released pool is still held")
	}
	// The subnet and its addresses are free again, cursor included.
	p2 := mustPool(t, a, local("10.1.0.0/24"))
	if len(a.Allocated(p2.ID)) != 0 || p2.Cursor.IsValid() {
		t.Fatalf("re-requested pool inherited state: %+v %v", p2, a.Allocated(p2.ID))
	}
	if got := mustAddr(t, a, p2.ID, netip.Addr{}, false); got != pfx("10.1.0.1/24") {
		t.Errorf("first address after re-request = %s", got)
	}
	// A released pool no longer blocks an overlapping one.
	mustPool(t, a, local("172.20.0.0/16"))
	checkErr(t, a.ReleasePool("weft-local/172.20.0.0/16"), nil)
	mustPool(t, a, local("172.20.5.0/24"))
}

func TestPoolsSortedAndCursor(t *testing.T) {
	a := New(nil)
	for _, r := range []PoolRequest{local("10.9.0.0/24"), {Space: GlobalSpace, Pool: pfx("10.1.0.0/24")}, local("fd00::/64"), local("10.1.0.0/24")} {
		mustPool(t, a, r)
	}
	var ids []string
	for _, p := range a.Pools() {
		ids = append(ids, p.ID)
	}
	want := []string{"weft-global/10.1.0.0/24", "weft-local/10.1.0.0/24", "weft-local/10.9.0.0/24", "weft-local/fd00::/64"}
	if !slices.Equal(ids, want) {
		t.Fatalf("Pools() IDs = %v, want %v", ids, want)
	}
	mustAddr(t, a, "weft-local/10.9.0.0/24", netip.Addr{}, false)
	mustAddr(t, a, "weft-local/10.9.0.0/24", netip.Addr{}, false)
	mustAddr(t, a, "weft-local/10.9.0.0/24", ip("10.9.0.200"), false) // explicit: cursor stays
	mustAddr(t, a, "weft-local/10.9.0.0/24", netip.Addr{}, true)      // gateway: cursor stays
	if p, _ := a.Pool("weft-local/10.9.0.0/24"); p.Cursor != ip("10.9.0.2") {
		t.Errorf("Cursor = %s, want 10.9.0.2", p.Cursor)
	}
}
