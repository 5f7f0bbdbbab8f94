package bridge

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/weftnet/weft/dataplane"
)

var errFake = errors.New("injected failure")

func TestValidateNetwork(t *testing.T) {
	m, _, _ := newFirewallMode(t, false)
	m6, _, _ := newFirewallMode(t, true)
	for _, tc := range []struct {
		name string
		mut  func(*dataplane.Network)
		want string // substring of the error; "" = valid
		m    *Mode
	}{
		{"ok", func(*dataplane.Network) {}, "", m},
		{"internal", func(n *dataplane.Network) { n.Internal = true }, "", m},
		{"mtu", func(n *dataplane.Network) { n.MTU = 9000 }, "", m},
		{"wrong mode", func(n *dataplane.Network) { n.Mode = dataplane.Macvlan }, "mode", m},
		{"bad id", func(n *dataplane.Network) { n.ID = "short" }, "network ID", m},
		{"long name", func(n *dataplane.Network) { n.Bridge.Name = "a-much-too-long-name" }, "bridge name", m},
		{"slash", func(n *dataplane.Network) { n.Bridge.Name = "a/b" }, "bridge name", m},
		{"mtu low", func(n *dataplane.Network) { n.MTU = 10 }, "MTU", m},
		{"gateway outside", func(n *dataplane.Network) { n.IPv4[0].Gateway = netip.MustParseAddr("10.9.9.1") }, "not in subnet", m},
		{"v6 in v4 list", func(n *dataplane.Network) { n.IPv4[0].Pool = netip.MustParsePrefix("fd00::/64") }, "IPv4 subnet", m},
		{"ipv6 without ip6tables", withIPv6, "ip6tables", m},
		{"ipv6", withIPv6, "", m6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.m.validateNetwork(testNet(idA, 1, tc.mut))
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error = %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

func TestGatewayFor(t *testing.T) {
	subnets := []dataplane.Subnet{
		{Pool: netip.MustParsePrefix("10.1.0.0/24"), Gateway: netip.MustParseAddr("10.1.0.1")},
		{Pool: netip.MustParsePrefix("10.2.0.0/24"), Gateway: netip.MustParseAddr("10.2.0.1")},
	}
	for _, tc := range []struct {
		addr string
		want string
	}{
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
