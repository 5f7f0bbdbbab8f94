package ipam

import (
	"testing"
)

// TestSpecialSubnetsRefused: no pool that covers the host's own traffic, or
// that can never work, is handed out — whatever the user typed.
func TestSpecialSubnetsRefused(t *testing.T) {
	for _, tt := range []struct{ subnet, want string }{
		{"0.0.0.0/0", "every address"},
		{"::/0", "every address"},
		{"0.0.0.0/8", "this network"},
		{"0.0.0.0/1", "0.0.0.0/8"},
		{"128.0.0.0/1", "link-local"},
		{"127.0.0.0/8", "loopback"},
		{"127.1.0.0/16", "loopback"},
		{"169.254.0.0/24", "link-local"},
		{"224.0.0.0/24", "multicast"},
		{"240.0.0.0/4", "reserved"},
		{"255.255.255.255/32", "reserved"},
		{"::1/128", "loopback"},
		{"::/64", "unspecified"},
		{"fe80::/64", "link-local"},
		{"ff00::/8", "multicast"},
	} {
		a := New(nil)
		_, err := a.RequestPool(PoolRequest{Space: LocalSpace, Pool: pfx(tt.subnet)})
		checkErr(t, err, ErrBadRequest, tt.subnet, tt.want)
		if len(a.Pools()) != 0 {
			t.Errorf("%s: a refused pool is held", tt.subnet)
		}
	}
	for _, ok := range []string{"10.0.0.0/8", "100.64.0.0/10", "192.0.2.0/24", "172.16.0.0/12", "fd00::/8", "2001:db8::/32", "1.0.0.0/8"} {
		if _, err := New(nil).RequestPool(PoolRequest{Space: LocalSpace, Pool: pfx(ok)}); err != nil {
			t.Errorf("%s refused: %v", ok, err)
		}
	}
}

// TestDefaultPoolsSkipSpecialRanges: a default-pools base that covers a
// special range yields pools around it, not pools RequestPool would refuse.
func TestDefaultPoolsSkipSpecialRanges(t *testing.T) {
	a := New(defaultsOf(t, "base=126.0.0.0/7,size=8"))
	p := mustPool(t, a, PoolRequest{Space: LocalSpace})
	if p.Prefix != pfx("126.0.0.0/8") {
		t.Fatalf("first default pool %s, want 126.0.0.0/8", p.Prefix)
	}
	_, err := a.RequestPool(PoolRequest{Space: LocalSpace})
	checkErr(t, err, ErrNoDefaultPool)
}
