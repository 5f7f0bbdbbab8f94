package plugin

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/weftnet/weft/dataplane"
)

const testNetID = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func v4Data(pool, gw string) []ipamData {
	return []ipamData{{AddressSpace: "weft-local", Pool: pool, Gateway: gw}}
}

func withGeneric(kv map[string]any) map[string]any {
	return map[string]any{keyGeneric: kv, keyEnableIPv6: false}
}

func TestParseNetworkDefaults(t *testing.T) {
	n, err := parseNetwork(networkRequest{ID: testNetID, Options: withGeneric(nil), IPv4: v4Data("10.1.0.0/24", "10.1.0.1/24")})
	if err != nil {
		t.Fatal(err)
	}
	want := dataplane.Network{
		ID: testNetID, Mode: dataplane.Bridge,
		IPv4:   []dataplane.Subnet{{Pool: netip.MustParsePrefix("10.1.0.0/24"), Gateway: netip.MustParseAddr("10.1.0.1")}},
		Bridge: dataplane.BridgeOptions{Name: "weft-0123456789", EnableICC: true, Masquerade: true},
	}
	if n.Mode != want.Mode || n.Bridge != want.Bridge || n.MTU != 0 || n.Internal || len(n.IPv4) != 1 || n.IPv4[0] != want.IPv4[0] {
		t.Fatalf("got %+v, want %+v", n, want)
	}
	if len(n.Bridge.Name) > dataplane.MaxLinkName {
		t.Fatalf("derived bridge name %q is longer than %d bytes", n.Bridge.Name, dataplane.MaxLinkName)
	}
}

func TestParseNetworkOptions(t *testing.T) {
	opts := map[string]any{
		keyGeneric: map[string]any{
			optBridgeName: "mybr0", optMTU: "1400", optEnableICC: "false",
			optMasquerade: "0", optHostBindingIPv4: "127.0.0.1",
			optGatewayModeIPv6: "routed",
		},
		keyInternal: true, keyEnableIPv6: true,
	}
	n, err := parseNetwork(networkRequest{
		ID: testNetID, Options: opts, IPv4: v4Data("10.1.0.0/24", "10.1.0.254/24"),
		IPv6: []ipamData{{Pool: "fd00:1::/64", Gateway: "fd00:1::1/64"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if n.Bridge.Name != "mybr0" || n.MTU != 1400 || n.Bridge.EnableICC || n.Bridge.Masquerade || !n.Internal || !n.EnableIPv6 {
		t.Fatalf("options not applied: %+v", n)
	}
	if n.Bridge.HostBindingIPv4 != netip.MustParseAddr("127.0.0.1") {
		t.Fatalf("host binding = %v", n.Bridge.HostBindingIPv4)
	}
	if n.Bridge.GatewayModeIPv6 != dataplane.GatewayModeRouted {
		t.Fatalf("gateway_mode_ipv6 = %q", n.Bridge.GatewayModeIPv6)
	}
	if n.IPv4[0].Gateway != netip.MustParseAddr("10.1.0.254") || n.IPv6[0].Gateway != netip.MustParseAddr("fd00:1::1") {
		t.Fatalf("gateways = %v %v", n.IPv4[0].Gateway, n.IPv6[0].Gateway)
	}
}

func TestParseNetworkRefusals(t *testing.T) {
	tests := []struct {
		name    string
		generic map[string]any
		ipv4    []ipamData
		want    []string // substrings of the error
	}{
		{"unknown option", map[string]any{"foo": "bar"}, nil, []string{`"foo"`, "accepted options", optEnableICC}},
		{"option of another mode", map[string]any{optParent: "eth0"}, nil, []string{optParent, "mode macvlan", "not bridge"}},
		{"unknown mode", map[string]any{optMode: "ipvlan"}, nil, []string{"ipvlan", "bridge, macvlan or vxlan"}},
		{"mtu not a number", map[string]any{optMTU: "big"}, nil, []string{optMTU, `"big"`, "68 and 65535"}},
		{"mtu too small", map[string]any{optMTU: "20"}, nil, []string{optMTU, "68 and 65535"}},
		{"bad bool", map[string]any{optEnableICC: "maybe"}, nil, []string{optEnableICC, "true or false"}},
		{"bridge name too long", map[string]any{optBridgeName: "averyverylongbridge"}, nil, []string{optBridgeName, "15 bytes"}},
		{"bridge name with slash", map[string]any{optBridgeName: "a/b"}, nil, []string{optBridgeName, "'/'"}},
		{"host binding not v4", map[string]any{optHostBindingIPv4: "::1"}, nil, []string{optHostBindingIPv4, "IPv4"}},
		{"bad gateway mode", map[string]any{optGatewayModeIPv6: "nat-unprotected"}, nil, []string{optGatewayModeIPv6, "nat or routed"}},
		{"bad macvlan mode", map[string]any{optMode: "macvlan", optMacvlanMode: "l2"}, nil, []string{optMacvlanMode, "passthru"}},
		{"vlan id out of range", map[string]any{optMode: "macvlan", optParent: "eth0.4095"}, nil, []string{optParent, "1 and 4094"}},
		{"vlan id not a number", map[string]any{optMode: "macvlan", optParent: "eth0.x"}, nil, []string{optParent, "VLAN"}},
		{"parent too long", map[string]any{optMode: "macvlan", optParent: "averyverylongparent"}, nil, []string{optParent, "15 bytes"}},
		{"bad vni", map[string]any{optMode: "vxlan", optVNI: "0"}, nil, []string{optVNI, "16777215"}},
		{"bad pool", nil, v4Data("10.1.0.0/33", ""), []string{"10.1.0.0/33", "CIDR"}},
		{"gateway outside pool", nil, v4Data("10.1.0.0/24", "10.2.0.1/24"), []string{"10.2.0.1", "outside", "10.1.0.0/24"}},
		{"v6 pool in v4 data", nil, v4Data("fd00::/64", ""), []string{"fd00::/64", "IPv4"}},
		{"null IPAM", nil, v4Data("0.0.0.0/0", ""), []string{"needs a subnet"}},
		{"generic value not a string", map[string]any{optMTU: []any{1}}, nil, []string{optMTU, "string"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ipv4 := tt.ipv4
			if ipv4 == nil {
				ipv4 = v4Data("10.1.0.0/24", "10.1.0.1/24")
			}
			_, err := parseNetwork(networkRequest{ID: testNetID, Options: withGeneric(tt.generic), IPv4: ipv4})
			if err == nil {
				t.Fatal("accepted")
			}
			if !errors.Is(err, ErrInvalidOption) {
				t.Errorf("error %q does not wrap ErrInvalidOption", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestParseNetworkModes(t *testing.T) {
	n, err := parseNetwork(networkRequest{ID: testNetID, Options: withGeneric(map[string]any{optMode: "macvlan", optParent: "eth0", optMacvlanMode: "bridge"}), IPv4: v4Data("10.1.0.0/24", "")})
	if err != nil || n.Mode != dataplane.Macvlan || n.Macvlan.Parent != "eth0" || n.Macvlan.Mode != "bridge" {
		t.Fatalf("macvlan: %+v %v", n, err)
	}
	n, err = parseNetwork(networkRequest{ID: testNetID, Options: withGeneric(map[string]any{optMode: "macvlan", optParent: "eth0.100", optMacvlanMode: "passthru"}), IPv4: v4Data("10.1.0.0/24", "")})
	if err != nil || n.Macvlan.Parent != "eth0.100" || n.Macvlan.Mode != "passthru" {
		t.Fatalf("macvlan vlan parent: %+v %v", n, err)
	}
	n, err = parseNetwork(networkRequest{ID: testNetID, Options: withGeneric(map[string]any{optMode: "vxlan", optVNI: "42"}), IPv4: v4Data("10.1.0.0/24", "")})
	if err != nil || n.Vxlan.VNI != 42 || n.Vxlan.Port != 4789 {
		t.Fatalf("vxlan: %+v %v", n, err)
	}
}

// An IPv6-only network (--ipv4=false, Docker 28 and later) is refused, both
// by CreateNetwork and by the gateway check that comes before it; IPv4 on,
// or the option absent (older engines), is fine.
func TestIPv6OnlyRefused(t *testing.T) {
	for _, v := range []any{false, "false"} {
		opts := map[string]any{keyGeneric: map[string]any{}, keyEnableIPv4: v, keyEnableIPv6: true}
		_, err := parseNetwork(networkRequest{ID: testNetID, Options: opts, IPv6: []ipamData{{Pool: "fd00::/64"}}})
		if !errors.Is(err, ErrInvalidOption) || !strings.Contains(err.Error(), "--ipv4=false") {
			t.Errorf("enable_ipv4=%v: CreateNetwork got %v; want a refusal naming --ipv4=false", v, err)
		}
		if _, err := gatewayless(opts); !errors.Is(err, ErrInvalidOption) {
			t.Errorf("enable_ipv4=%v: GwAllocCheck got %v; want a refusal", v, err)
		}
	}
	opts := map[string]any{keyGeneric: map[string]any{}, keyEnableIPv4: true}
	if _, err := parseNetwork(networkRequest{ID: testNetID, Options: opts, IPv4: v4Data("10.1.0.0/24", "")}); err != nil {
		t.Errorf("enable_ipv4=true: %v", err)
	}
}
