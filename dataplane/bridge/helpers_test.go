package bridge

import (
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/weftnet/weft/dataplane"
	"github.com/weftnet/weft/dataplane/fw"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

const (
	idA = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90"
	idB = "b0b1b2b3b4b5b6b7b8b9babbbcbdbebfb0b1b2b3b4b5b6b7b8b9babbbcbdbebf"
	idC = "c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00"
	epA = "e1e2e3e4e5e6e7e8e9eaebecedeeeff0e1e2e3e4e5e6e7e8e9eaebecedeeeff0"
)

// testNet is a bridge network as the plugin builds it with Docker's defaults
// (icc on, masquerade on), with subnet 10.<n>.0.0/24.
func testNet(id string, octet byte, mut ...func(*dataplane.Network)) dataplane.Network {
	pool := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, octet, 0, 0}), 24)
	n := dataplane.Network{
		ID:   id,
		Mode: dataplane.Bridge,
		IPv4: []dataplane.Subnet{{Pool: pool, Gateway: netip.AddrFrom4([4]byte{10, octet, 0, 1})}},
		Bridge: dataplane.BridgeOptions{
			Name:       DefaultName(id),
			EnableICC:  true,
			Masquerade: true,
		},
	}
	for _, f := range mut {
		f(&n)
	}
	return n
}

func withIPv6(n *dataplane.Network) {
	n.EnableIPv6 = true
	n.IPv6 = []dataplane.Subnet{{Pool: netip.MustParsePrefix("fd00:1::/64"), Gateway: netip.MustParseAddr("fd00:1::1")}}
}

// newFirewallMode returns a Mode without netlink (for firewall-only tests)
// over fakes, with opts (the rule design unless WithSets); v6 is nil unless
// withV6.
func newFirewallMode(t *testing.T, withV6 bool, opts ...Option) (*Mode, *fw.Fake, *fw.Fake) {
	t.Helper()
	v4 := fw.NewFake()
	var v6 *fw.Fake
	var t6 fw.Tables
	if withV6 {
		v6 = fw.NewFake()
		t6 = v6
	}
	return New(nil, fw.NewWithTables(nil, v4, t6), nil, opts...), v4, v6
}

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from the golden file (go test -update rewrites it)\n--- got:\n%s--- want:\n%s", name, got, want)
	}
}
