package vxlan

import (
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"

	"github.com/vishvananda/netlink"
)

var (
	local  = netip.MustParseAddr("192.0.2.1")
	remote = netip.MustParseAddr("192.0.2.2")
	macA   = net.HardwareAddr{0x02, 0x42, 10, 0, 0, 2}
	macB   = net.HardwareAddr{0x02, 0x42, 10, 0, 0, 3}
)

func TestValidatePeers(t *testing.T) {
	good := []Peer{
		{VTEP: remote, MAC: macA, IPv4: netip.MustParseAddr("10.0.0.2"), IPv6: netip.MustParseAddr("fd00::2")},
		{VTEP: netip.MustParseAddr("::ffff:192.0.2.3"), MAC: macB},
	}
	got, err := validatePeers(local, good)
	if err != nil || len(got) != 2 || got[keyOf(macB)].VTEP != netip.MustParseAddr("192.0.2.3") {
		t.Fatalf("validatePeers = %v, %v", got, err)
	}
	for what, tc := range map[string]struct {
		peers []Peer
		want  string
	}{
		"no VTEP":       {[]Peer{{MAC: macA}}, "no VTEP"},
		"own VTEP":      {[]Peer{{VTEP: local, MAC: macA}}, "this host's own"},
		"family":        {[]Peer{{VTEP: netip.MustParseAddr("2001:db8::2"), MAC: macA}}, "same family"},
		"multicast MAC": {[]Peer{{VTEP: remote, MAC: net.HardwareAddr{1, 0, 0x5e, 0, 0, 1}}}, "unicast MAC"},
		"zero MAC":      {[]Peer{{VTEP: remote, MAC: make(net.HardwareAddr, 6)}}, "unicast MAC"},
		"short MAC":     {[]Peer{{VTEP: remote, MAC: macA[:4]}}, "6-byte"},
		"v6 as v4":      {[]Peer{{VTEP: remote, MAC: macA, IPv4: netip.MustParseAddr("fd00::1")}}, "IPv4"},
		"v4 as v6":      {[]Peer{{VTEP: remote, MAC: macA, IPv6: netip.MustParseAddr("10.0.0.1")}}, "IPv6"},
		"dup MAC":       {[]Peer{{VTEP: remote, MAC: macA}, {VTEP: remote, MAC: macA}}, "twice"},
		"dup IP":        {[]Peer{{VTEP: remote, MAC: macA, IPv4: netip.MustParseAddr("10.0.0.2")}, {VTEP: remote, MAC: macB, IPv4: netip.MustParseAddr("10.0.0.2")}}, "twice"},
	} {
		if _, err := validatePeers(local, tc.peers); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error mentioning %q", what, err, tc.want)
		}
	}
}

func TestGroupAndPeersFrom(t *testing.T) {
	const vx, other = 7, 8
	ip := func(s string) net.IP { return net.IP(netip.MustParseAddr(s).AsSlice()) }
	neighs := []netlink.Neigh{
		{LinkIndex: vx, Family: netlink.FAMILY_V4, State: netlink.NUD_PERMANENT, IP: ip("10.0.0.2"), HardwareAddr: macA},
		{LinkIndex: vx, Family: netlink.FAMILY_V6, State: netlink.NUD_PERMANENT, IP: ip("fd00::2"), HardwareAddr: macA},
		{LinkIndex: vx, Family: netlink.FAMILY_V4, State: netlink.NUD_REACHABLE, IP: ip("10.0.0.9"), HardwareAddr: macB}, // not weft's
		{LinkIndex: other, Family: netlink.FAMILY_V4, State: netlink.NUD_PERMANENT, IP: ip("10.0.0.3"), HardwareAddr: macB},
	}
	fdbs := []netlink.Neigh{
		{LinkIndex: vx, Family: syscall.AF_BRIDGE, State: netlink.NUD_PERMANENT, Flags: netlink.NTF_SELF, IP: ip("192.0.2.2"), HardwareAddr: macA},
		{LinkIndex: vx, Family: syscall.AF_BRIDGE, State: netlink.NUD_NOARP, MasterIndex: 5, HardwareAddr: macA},
		{LinkIndex: vx, Family: syscall.AF_BRIDGE, State: netlink.NUD_PERMANENT, MasterIndex: 5, HardwareAddr: net.HardwareAddr{0xaa, 0, 0, 0, 0, 1}}, // the port's own
		{LinkIndex: vx, Family: syscall.AF_BRIDGE, State: netlink.NUD_PERMANENT, Flags: netlink.NTF_SELF, IP: ip("192.0.2.3"), HardwareAddr: macB},
	}
	g := groupEntries(neighs, fdbs)
	got := peersFrom(g[vx])
	want := []Peer{
		{VTEP: remote, MAC: macA, IPv4: netip.MustParseAddr("10.0.0.2"), IPv6: netip.MustParseAddr("fd00::2")},
		{MAC: macB}, // no static bridge entry: no VTEP
		{MAC: macB, VTEP: netip.MustParseAddr("192.0.2.3")}, // so its destination comes on its own
	}
	if !SamePeers(got, want) {
		t.Fatalf("peersFrom = %v, want %v", got, want)
	}
	if got := peersFrom(g[other]); !SamePeers(got, []Peer{{MAC: macB, IPv4: netip.MustParseAddr("10.0.0.3")}}) {
		t.Fatalf("other link: %v", got)
	}
	if peersFrom(nil) != nil {
		t.Fatal("peersFrom(nil) is not empty")
	}
}

func TestSamePeersAndDiff(t *testing.T) {
	p := Peer{VTEP: remote, MAC: macA, IPv4: netip.MustParseAddr("10.0.0.2")}
	q := Peer{VTEP: remote, MAC: macB}
	mapped := Peer{VTEP: netip.MustParseAddr("::ffff:192.0.2.2"), MAC: macA, IPv4: netip.MustParseAddr("10.0.0.2")}
	if !SamePeers([]Peer{p, q}, []Peer{q, mapped}) {
		t.Error("order or a mapped address made a difference")
	}
	if SamePeers([]Peer{p}, []Peer{q}) || SamePeers([]Peer{p}, []Peer{p, q}) || SamePeers(nil, []Peer{p}) {
		t.Error("different sets compared equal")
	}
	if d := peerDiff([]Peer{p}, []Peer{p, q}); !strings.Contains(d, macB.String()) || !strings.Contains(d, "missing") {
		t.Errorf("peerDiff (missing) = %q", d)
	}
	if d := peerDiff([]Peer{p, q}, []Peer{p}); !strings.Contains(d, "stale") {
		t.Errorf("peerDiff (stale) = %q", d)
	}
	if d := peerDiff([]Peer{p}, []Peer{p}); d != "" {
		t.Errorf("peerDiff (same) = %q", d)
	}
}
