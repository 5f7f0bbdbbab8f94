package macvlan

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/weftnet/weft/dataplane"
)

// testNet is a macvlan network on parent (none = isolated) with subnet
// 192.0.2.0/24 (octet 2) or 198.51.<octet>.0/24, gateway .1.
func testNet(id, parent string, octet byte, mut ...func(*dataplane.Network)) dataplane.Network {
	a := [4]byte{198, 51, octet, 0}
	if octet == 2 {
		a = [4]byte{192, 0, 2, 0}
	}
	pool := netip.PrefixFrom(netip.AddrFrom4(a), 24)
	a[3] = 1
	n := dataplane.Network{
		ID:      id,
		Mode:    dataplane.Macvlan,
		IPv4:    []dataplane.Subnet{{Pool: pool, Gateway: netip.AddrFrom4(a)}},
		Macvlan: dataplane.MacvlanOptions{Parent: parent, Mode: ModeBridge},
	}
	for _, f := range mut {
		f(&n)
	}
	return n
}

func withMode(mode string) func(*dataplane.Network) {
	return func(n *dataplane.Network) { n.Macvlan.Mode = mode }
}

func withIPv6(n *dataplane.Network) {
	n.EnableIPv6 = true
	n.IPv6 = []dataplane.Subnet{{Pool: netip.MustParsePrefix("fd00:2::/64"), Gateway: netip.MustParseAddr("fd00:2::1")}}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		mut  func(*dataplane.Network)
		want []string // substrings of the error; none = valid
	}{
		{"ok", func(*dataplane.Network) {}, nil},
		{"isolated", func(n *dataplane.Network) { n.Macvlan.Parent = "" }, nil},
		{"default mode", withMode(""), nil},
		{"private", withMode(ModePrivate), nil},
		{"vepa", withMode(ModeVEPA), nil},
		{"passthru", withMode(ModePassthru), nil},
		{"vlan parent", func(n *dataplane.Network) { n.Macvlan.Parent = "eth0.100" }, nil},
		{"ipv6", withIPv6, nil},
		{"internal", func(n *dataplane.Network) { n.Internal = true }, nil},
		{"mtu", func(n *dataplane.Network) { n.MTU = 9000 }, nil},
		{"no subnet", func(n *dataplane.Network) { n.IPv4 = nil }, nil},
		{"unknown mode", withMode("l2"), []string{"macvlan_mode", `"l2"`, "bridge, private, vepa, passthru"}},
		{"mode case", withMode("Bridge"), []string{"macvlan_mode"}},
		{"wrong network mode", func(n *dataplane.Network) { n.Mode = dataplane.Bridge }, []string{"mode", "macvlan"}},
		{"bad id", func(n *dataplane.Network) { n.ID = "short" }, []string{"network ID"}},
		{"parent too long", func(n *dataplane.Network) { n.Macvlan.Parent = "averyverylongparent" }, []string{"parent", "15 bytes"}},
		{"parent slash", func(n *dataplane.Network) { n.Macvlan.Parent = "eth0/1" }, []string{"parent", "'/'"}},
		{"parent space", func(n *dataplane.Network) { n.Macvlan.Parent = "eth 0" }, []string{"parent", "' '"}},
		{"vlan 0", func(n *dataplane.Network) { n.Macvlan.Parent = "eth0.0" }, []string{"parent", "VLAN ID 0", "between 1 and 4094"}},
		{"vlan 4095", func(n *dataplane.Network) { n.Macvlan.Parent = "eth0.4095" }, []string{"parent", "VLAN ID 4095", "between 1 and 4094"}},
		{"vlan not a number", func(n *dataplane.Network) { n.Macvlan.Parent = "eth0.x" }, []string{"parent", "eth0.100"}},
		{"mtu low", func(n *dataplane.Network) { n.MTU = 10 }, []string{"MTU"}},
		{"gateway outside", func(n *dataplane.Network) { n.IPv4[0].Gateway = netip.MustParseAddr("10.9.9.1") }, []string{"not in subnet"}},
		{"v6 in v4 list", func(n *dataplane.Network) { n.IPv4[0].Pool = netip.MustParsePrefix("fd00::/64") }, []string{"IPv4 subnet"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Validate(testNet(idA, "eth0", 2, tc.mut))
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted, want an error mentioning %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestConflict(t *testing.T) {
	other := func(id, parent string, octet byte, mut ...func(*dataplane.Network)) dataplane.Network {
		return testNet(id, parent, octet, mut...)
	}
	for _, tc := range []struct {
		name string
		n, o dataplane.Network
		want string // substring; "" = no conflict
	}{
		{"same network again", testNet(idA, "eth0", 2), testNet(idA, "eth0", 2), ""},
		{"other parent", testNet(idA, "eth0", 2), other(idB, "eth1", 2), ""},
		{"vlan of the same link", testNet(idA, "eth0", 2), other(idB, "eth0.10", 2), ""},
		{"same parent, disjoint subnets", testNet(idA, "eth0", 2), other(idB, "eth0", 3), ""},
		{"isolated networks", testNet(idA, "", 2), other(idB, "", 2), ""},
		{"same parent, same subnet", testNet(idA, "eth0", 2), other(idB, "eth0", 2), "overlaps subnet 192.0.2.0/24 of weft network b0b1b2b3b4b5"},
		{"same parent, overlapping subnet", testNet(idA, "eth0", 2, func(n *dataplane.Network) {
			n.IPv4[0].Pool = netip.MustParsePrefix("192.0.0.0/16")
			n.IPv4[0].Gateway = netip.MustParseAddr("192.0.0.1")
		}), other(idB, "eth0", 2), "overlaps"},
		{"same parent, same IPv6 subnet", testNet(idA, "eth0", 2, withIPv6), other(idB, "eth0", 3, withIPv6), "fd00:2::/64"},
		{"passthru on a used parent", testNet(idA, "eth0", 2, withMode(ModePassthru)), other(idB, "eth0", 3), "passthru network needs its parent to itself"},
		{"parent used in passthru", testNet(idA, "eth0", 2), other(idB, "eth0", 3, withMode(ModePassthru)), "in passthru mode"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := conflict(tc.n, tc.o)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("unexpected conflict: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("conflict = %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

func TestGatewayFor(t *testing.T) {
	subnets := []dataplane.Subnet{
		{Pool: netip.MustParsePrefix("10.1.0.0/24"), Gateway: netip.MustParseAddr("10.1.0.1")},
		{Pool: netip.MustParsePrefix("10.2.0.0/24"), Gateway: netip.MustParseAddr("10.2.0.1")},
	}
	for _, tc := range []struct{ addr, want string }{
		{"10.2.0.7/24", "10.2.0.1"},
		{"10.1.0.7/24", "10.1.0.1"},
		{"10.3.0.7/24", "10.1.0.1"},
		{"", "invalid IP"},
	} {
		var p netip.Prefix
		if tc.addr != "" {
			p = netip.MustParsePrefix(tc.addr)
		}
		if got := gatewayFor(subnets, p); got.String() != tc.want {
			t.Errorf("gatewayFor(%s) = %s, want %s", tc.addr, got, tc.want)
		}
	}
}
