package vxlan

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/weftnet/weft/dataplane"
	"github.com/weftnet/weft/dataplane/fw"
)

func TestParseOffload(t *testing.T) {
	for in, want := range map[string]Offload{"": OffloadAuto, "auto": OffloadAuto, "ON": OffloadOn, " off ": OffloadOff} {
		if got, err := ParseOffload(in); err != nil || got != want {
			t.Errorf("ParseOffload(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"yes", "1", "of"} {
		if _, err := ParseOffload(bad); err == nil || !strings.Contains(err.Error(), "auto, on or off") {
			t.Errorf("ParseOffload(%q) = %v, want an error naming the values", bad, err)
		}
	}
}

func TestOffloadResolve(t *testing.T) {
	for _, tc := range []struct {
		o       Offload
		release string
		want    bool
	}{
		{OffloadAuto, "6.1.0-18-amd64", true},
		{OffloadAuto, "5.7.0", true},
		{OffloadAuto, "5.6.19-generic", false},
		{OffloadAuto, "4.19.0-26-amd64", false},
		{OffloadAuto, "3.10.0-1160.el7.x86_64", false},
		{OffloadAuto, "garbage", true},
		{"", "5.4.0", false},
		{OffloadOn, "4.19.0", true},
		{OffloadOff, "6.18.0", false},
	} {
		got, err := tc.o.resolve(tc.release)
		if err != nil || got != tc.want {
			t.Errorf("%q on %s: %v, %v; want %v", tc.o, tc.release, got, err, tc.want)
		}
	}
	if _, err := Offload("maybe").resolve("6.1"); err == nil {
		t.Error("an unknown setting resolved")
	}
}

func TestKernelVersion(t *testing.T) {
	for in, want := range map[string][2]int{"6.18.44-fc-v1045": {6, 18}, "5.10": {5, 10}, "4.9rc1": {4, 9}} {
		maj, min, ok := kernelVersion(in)
		if !ok || maj != want[0] || min != want[1] {
			t.Errorf("kernelVersion(%q) = %d.%d %v", in, maj, min, ok)
		}
	}
	for _, bad := range []string{"", "6", "x.y", "6.x"} {
		if _, _, ok := kernelVersion(bad); ok {
			t.Errorf("kernelVersion(%q) parsed", bad)
		}
	}
}

func TestParseVTEP(t *testing.T) {
	for in, want := range map[string]string{"192.0.2.7": "192.0.2.7", " 2001:db8::1 ": "2001:db8::1", "::ffff:192.0.2.7": "192.0.2.7"} {
		got, err := ParseVTEP(in)
		if err != nil || got != netip.MustParseAddr(want) {
			t.Errorf("ParseVTEP(%q) = %v, %v; want %s", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "host", "0.0.0.0", "::", "127.0.0.1", "::1", "169.254.1.1", "fe80::1", "fe80::1%eth0", "224.0.0.1", "255.255.255.255", "10.0.0.0/8"} {
		if _, err := ParseVTEP(bad); err == nil {
			t.Errorf("ParseVTEP(%q) accepted", bad)
		}
	}
}

func TestMTUFor(t *testing.T) {
	v4 := dataplane.Network{}
	v6net := dataplane.Network{EnableIPv6: true}
	for _, tc := range []struct {
		n        dataplane.Network
		mtu      int
		underlay int
		v6       bool
		want     int
		err      string
	}{
		{n: v4, underlay: 1500, want: 1450},
		{n: v4, underlay: 1500, v6: true, want: 1430},
		{n: v4, underlay: 9000, want: 8950},
		{n: v4, mtu: 1400, underlay: 1500, want: 1400},
		{n: v4, mtu: 1450, underlay: 1500, want: 1450},
		{n: v4, mtu: 1451, underlay: 1500, err: "larger than the 1450"},
		{n: v4, mtu: 1431, underlay: 1500, v6: true, err: "less 70 bytes of VXLAN over IPv6"},
		{n: v4, underlay: 100, err: "too small"},
		{n: v6net, underlay: 1300, err: "1280"},
		{n: v6net, underlay: 1330, want: 1280},
	} {
		n := tc.n
		n.MTU = tc.mtu
		got, err := mtuFor(n, "eth0", tc.underlay, tc.v6)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%+v: %d, %v; want an error mentioning %q", tc, got, err, tc.err)
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("%+v: %d, %v; want %d", tc, got, err, tc.want)
		}
	}
}

func TestValidate(t *testing.T) {
	good := dataplane.Network{ID: "0123456789abcdef", Mode: dataplane.Vxlan, Vxlan: dataplane.VxlanOptions{VNI: 42},
		IPv4: []dataplane.Subnet{{Pool: netip.MustParsePrefix("10.1.0.0/24")}}}
	if err := Validate(good); err != nil {
		t.Fatal(err)
	}
	for what, f := range map[string]func(*dataplane.Network){
		"mode":    func(n *dataplane.Network) { n.Mode = dataplane.Macvlan },
		"id":      func(n *dataplane.Network) { n.ID = "short" },
		"vni 0":   func(n *dataplane.Network) { n.Vxlan.VNI = 0 },
		"vni big": func(n *dataplane.Network) { n.Vxlan.VNI = 1 << 24 },
		"mtu":     func(n *dataplane.Network) { n.MTU = 67 },
		"subnet":  func(n *dataplane.Network) { n.IPv4 = []dataplane.Subnet{{Pool: netip.MustParsePrefix("fd00::/64")}} },
		"gateway": func(n *dataplane.Network) { n.IPv4[0].Gateway = netip.MustParseAddr("10.2.0.1") },
	} {
		n := good
		n.IPv4 = append([]dataplane.Subnet(nil), good.IPv4...)
		f(&n)
		if err := Validate(n); err == nil {
			t.Errorf("%s: accepted %+v", what, n)
		}
	}
}

func TestFilterRules(t *testing.T) {
	r := Local().filterRule(fw.IPv6, 4790)
	if got := r.String(); got != "-t filter -A INPUT -p udp -m udp --dport 4790 -m set ! --match-set weft-vteps6 src -m comment --comment \"weft-vxlan:known-vteps\" -j DROP" {
		t.Errorf("filter rule: %s", got)
	}
	if got := Local().bridgedRule().String(); got != "-t filter -A FORWARD -i wxb-+ -o wxb-+ -m physdev --physdev-is-bridged -m comment --comment \"weft-vxlan:bridged\" -j ACCEPT" {
		t.Errorf("bridged rule: %s", got)
	}
	if _, ok := fw.TagOf(r.Spec); ok {
		t.Error("the filter rule carries a weft: tag, which the bridge mode would sweep")
	}
	ports := Local().filterPorts([][]string{Local().filterRule(fw.IPv4, 4789).Spec, Local().filterRule(fw.IPv4, 8472).Spec, {"-p", "udp", "--dport", "53", "-j", "DROP"}})
	if len(ports) != 2 || !ports[4789] || !ports[8472] {
		t.Errorf("filterPorts = %v", ports)
	}
}
