package ipam

import (
	"encoding/json"
	"net/netip"
	"testing"
)

func global(prefix string) PoolRequest { return PoolRequest{Space: GlobalSpace, Pool: pfx(prefix)} }

// TestShareHoldsThePoolGlobally: a shared local pool is held in the global
// space too — an overlapping global pool is refused while it is shared and
// accepted once it is released or unshared — and stays addressable by its
// local ID, with its addresses.
func TestShareHoldsThePoolGlobally(t *testing.T) {
	a := New(nil)
	p := mustPool(t, a, localRange("192.168.1.0/24", "192.168.1.192/27"))
	mustAddr(t, a, p.ID, ip("192.168.1.1"), true)
	got, err := a.Share(p.ID)
	checkErr(t, err, nil)
	if !got.Shared || got.ID != p.ID || got.Space != LocalSpace {
		t.Fatalf("Share returned %+v; want the same local pool, marked shared", got)
	}
	if again, err := a.Share(p.ID); err != nil || again != got {
		t.Fatalf("a second Share: %+v, %v; want %+v", again, err, got)
	}
	if rec, _ := a.Pool(p.ID); !rec.Shared {
		t.Fatal("Pool does not report the pool as shared")
	}
	_, err = a.RequestPool(global("192.168.0.0/16"))
	checkErr(t, err, ErrPoolOverlap, "192.168.0.0/16", "192.168.1.0/24", GlobalSpace)
	// Still a local pool: addresses by its ID, overlap refused locally.
	if addr := mustAddr(t, a, p.ID, netip.Addr{}, false); addr.Addr() != ip("192.168.1.192") {
		t.Fatalf("dynamic address %s, want 192.168.1.192 (the ip-range)", addr)
	}
	_, err = a.RequestPool(local("192.168.1.128/25"))
	checkErr(t, err, ErrPoolOverlap, LocalSpace)

	a.Unshare(p.ID)
	a.Unshare(p.ID)
	g := mustPool(t, a, global("192.168.1.0/24")) // the same subnet, once per space
	checkErr(t, a.ReleasePool(g.ID), nil)
	if _, err := a.Share(p.ID); err != nil {
		t.Fatal(err)
	}
	checkErr(t, a.ReleasePool(p.ID), nil)
	mustPool(t, a, global("192.168.1.0/24"))
}

// TestShareRefusesGlobalOverlap: sharing a pool that a global pool overlaps
// fails and leaves both as they were.
func TestShareRefusesGlobalOverlap(t *testing.T) {
	a := New(nil)
	g := mustPool(t, a, global("10.20.0.0/16"))
	p := mustPool(t, a, local("10.20.5.0/24"))
	_, err := a.Share(p.ID)
	checkErr(t, err, ErrPoolOverlap, "10.20.5.0/24", "10.20.0.0/16", "cannot be shared")
	if rec, _ := a.Pool(p.ID); rec.Shared {
		t.Fatal("the pool is marked shared after a refused Share")
	}
	checkErr(t, a.ReleasePool(g.ID), nil)
	if _, err := a.Share(p.ID); err != nil {
		t.Fatalf("Share after the global pool went: %v", err)
	}
	_, err = a.Share("weft-local/10.99.0.0/24")
	checkErr(t, err, ErrUnknownPool, "10.99.0.0/24")
}

// TestShareSurvivesRestore: the Shared mark goes through the JSON records,
// and the restored allocator holds the pool globally again; records in which
// a shared pool overlaps a global one are refused.
func TestShareSurvivesRestore(t *testing.T) {
	a := New(nil)
	p := mustPool(t, a, local("172.30.1.0/24"))
	mustAddr(t, a, p.ID, ip("172.30.1.9"), false)
	if _, err := a.Share(p.ID); err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(a.Pools())
	if err != nil {
		t.Fatal(err)
	}
	var recs []Pool
	if err := json.Unmarshal(raw, &recs); err != nil {
		t.Fatal(err)
	}
	b := New(nil)
	checkErr(t, b.Restore(recs, map[string][]netip.Addr{p.ID: a.Allocated(p.ID)}), nil)
	if rec, _ := b.Pool(p.ID); !rec.Shared || !b.IsAllocated(p.ID, ip("172.30.1.9")) {
		t.Fatalf("restored pool %+v lost its mark or its address", rec)
	}
	_, err = b.RequestPool(global("172.30.0.0/16"))
	checkErr(t, err, ErrPoolOverlap, GlobalSpace)

	bad := append(recs, Pool{ID: "weft-global/172.30.0.0/16", Space: GlobalSpace, Prefix: pfx("172.30.0.0/16")})
	checkErr(t, New(nil).Restore(bad, nil), ErrBadState, "172.30.1.0/24", "172.30.0.0/16")
}
