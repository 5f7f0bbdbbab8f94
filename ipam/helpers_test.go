package ipam

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }
func ip(s string) netip.Addr    { return netip.MustParseAddr(s) }

// checkErr fails unless err is classified as kind (nil: no error) and its
// message mentions every string in mentions.
func checkErr(t *testing.T, err, kind error, mentions ...string) {
	t.Helper()
	if kind == nil {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("no error, want %v", kind)
	}
	if !errors.Is(err, kind) {
		t.Fatalf("error %q is not %v", err, kind)
	}
	for _, m := range mentions {
		if !strings.Contains(err.Error(), m) {
			t.Errorf("error %q does not mention %q", err, m)
		}
	}
}

func mustPool(t testing.TB, a *Allocator, req PoolRequest) Pool {
	t.Helper()
	p, err := a.RequestPool(req)
	if err != nil {
		t.Fatalf("RequestPool(%+v): %v", req, err)
	}
	return p
}

func mustAddr(t testing.TB, a *Allocator, id string, want netip.Addr, gateway bool) netip.Prefix {
	t.Helper()
	got, err := a.RequestAddress(id, want, gateway)
	if err != nil {
		t.Fatalf("RequestAddress(%s, %v, %v): %v", id, want, gateway, err)
	}
	return got
}

func local(prefix string) PoolRequest { return PoolRequest{Space: LocalSpace, Pool: pfx(prefix)} }

func localRange(prefix, rng string) PoolRequest {
	return PoolRequest{Space: LocalSpace, Pool: pfx(prefix), SubPool: pfx(rng)}
}
