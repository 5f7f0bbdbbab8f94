package macvlan

import (
	"errors"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/weftnet/weft/dataplane"
)

const (
	idA = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90"
	idB = "b0b1b2b3b4b5b6b7b8b9babbbcbdbebfb0b1b2b3b4b5b6b7b8b9babbbcbdbebf"
	idC = "c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00"
	ep1 = "e100000000000000000000000000000000000000000000000000000000000001"
	ep2 = "e200000000000000000000000000000000000000000000000000000000000002"
	ep3 = "e300000000000000000000000000000000000000000000000000000000000003"
)

func TestNamesFitAndAreRecognised(t *testing.T) {
	for _, id := range []string{idA, idB, "tzr9fb5exsxtt9uckbqayl3z6" /* a swarm ID */} {
		ep, iso := EndpointLinkName(id), IsolatedParentName(id)
		for _, name := range []string{ep, iso} {
			if len(name) > dataplane.MaxLinkName || dataplane.CheckLinkName(name) != nil {
				t.Errorf("%q is not a valid link name", name)
			}
		}
		if !endpointName.MatchString(ep) || EndpointLinkName(id) != ep {
			t.Errorf("EndpointLinkName(%s) = %q: not deterministic or not recognised", id, ep)
		}
		if !isolatedName.MatchString(iso) || IsolatedParentName(id) != iso {
			t.Errorf("IsolatedParentName(%s) = %q: not deterministic or not recognised", id, iso)
		}
	}
	if got := EndpointLinkName(ep1); got != "wve10000000000" {
		t.Errorf("EndpointLinkName = %q", got)
	}
	if got := IsolatedParentName(idA); got != "wm-a1b2c3d4e5" {
		t.Errorf("IsolatedParentName = %q", got)
	}
	// Nobody else's names look like weft's, and weft's modes do not share
	// names: the bridge mode's bridges are "weft-…", its veths "wh…"/"wc…".
	for _, foreign := range []string{"eth0", "macvlan0", "wh0123456789ab", "weft-0123456789", "wm-0123", "wv0123"} {
		if endpointName.MatchString(foreign) || isolatedName.MatchString(foreign) {
			t.Errorf("%q recognised as a macvlan-mode name", foreign)
		}
	}
	if strings.HasPrefix(IsolatedAliasPrefix, dataplane.OwnerAliasPrefix) {
		t.Error("the isolated parent's alias must not start with weft: (the bridge mode sweeps such bridges)")
	}
}

func TestSplitVLAN(t *testing.T) {
	for _, tc := range []struct {
		in   string
		link string
		vid  int
		err  string // substring; "" = ok
	}{
		{"eth0.100", "eth0", 100, ""},
		{"bond0.1", "bond0", 1, ""},
		{"en.p1.4094", "en.p1", 4094, ""},
		{"eth0.0100", "eth0", 100, ""},
		{"eth0", "", 0, "not a VLAN"},
		{"eth0.0", "", 0, "between 1 and 4094"},
		{"eth0.4095", "", 0, "between 1 and 4094"},
		{"eth0.99999999999999999999", "", 0, "between 1 and 4094"},
		{"eth0.x", "", 0, "<interface>.<VLAN ID>"},
		{"eth0.-1", "", 0, "<interface>.<VLAN ID>"},
		{"eth0.+1", "", 0, "<interface>.<VLAN ID>"},
		{"eth0.", "", 0, "<interface>.<VLAN ID>"},
		{".100", "", 0, "<interface>.<VLAN ID>"},
	} {
		link, vid, err := splitVLAN(tc.in)
		switch {
		case tc.err == "" && (err != nil || link != tc.link || vid != tc.vid):
			t.Errorf("splitVLAN(%q) = %q, %d, %v; want %q, %d", tc.in, link, vid, err, tc.link, tc.vid)
		case tc.err == "not a VLAN" && !errors.Is(err, errNotVLAN):
			t.Errorf("splitVLAN(%q) error = %v, want errNotVLAN", tc.in, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("splitVLAN(%q) error = %v, want one mentioning %q", tc.in, err, tc.err)
		}
	}
}

func TestKernelMode(t *testing.T) {
	want := map[string]netlink.MacvlanMode{
		ModeBridge: netlink.MACVLAN_MODE_BRIDGE, ModePrivate: netlink.MACVLAN_MODE_PRIVATE,
		ModeVEPA: netlink.MACVLAN_MODE_VEPA, ModePassthru: netlink.MACVLAN_MODE_PASSTHRU,
	}
	for _, m := range Modes() {
		if kernelMode(m) != want[m] {
			t.Errorf("kernelMode(%s) = %v", m, kernelMode(m))
		}
	}
	if len(want) != len(Modes()) {
		t.Errorf("Modes() = %v", Modes())
	}
	if modeOf(dataplane.Network{}) != ModeBridge {
		t.Error("the default mode is not bridge")
	}
}

func TestFindVLAN(t *testing.T) {
	vl := func(name string, parent, vid int) netlink.Link {
		return &netlink.Vlan{LinkAttrs: netlink.LinkAttrs{Name: name, ParentIndex: parent}, VlanId: vid}
	}
	links := []netlink.Link{
		&netlink.Device{LinkAttrs: netlink.LinkAttrs{Name: "eth0", Index: 2}},
		vl("vlan100", 2, 100),
		vl("eth1.100", 3, 100),
	}
	if got := findVLAN(links, 2, 100); got != "vlan100" {
		t.Errorf("findVLAN = %q, want vlan100", got)
	}
	if got := findVLAN(links, 2, 200); got != "" {
		t.Errorf("findVLAN = %q, want none", got)
	}
}

// TestParentErrorWeftLinks: links weft made for any mode are refused as a
// parent, the vxlan mode's (aliased weft-vxlan:) included; a plain Ethernet
// link is not.
func TestParentErrorWeftLinks(t *testing.T) {
	const id = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9"
	bridge := func(name, alias string) netlink.Link {
		return &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name, Alias: alias, EncapType: "ether"}}
	}
	for _, c := range []struct {
		link netlink.Link
		want string
	}{
		{bridge("weft-a1b2c3d4e5", dataplane.OwnerAliasPrefix+id), "bridge of weft network a1b2c3d4e5f6"},
		{bridge("wxb-a1b2c3d4e5", dataplane.VxlanAliasPrefix+id), "vxlan network a1b2c3d4e5f6"},
		{&netlink.Vxlan{LinkAttrs: netlink.LinkAttrs{Name: "wxv-a1b2c3d4e5", Alias: dataplane.VxlanAliasPrefix + id, EncapType: "ether"}}, "vxlan network a1b2c3d4e5f6"},
	} {
		err := parentError(c.link)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want it to mention %q", c.link.Attrs().Name, err, c.want)
		}
	}
	if err := parentError(&netlink.Device{LinkAttrs: netlink.LinkAttrs{Name: "eth0", EncapType: "ether"}}); err != nil {
		t.Errorf("eth0 refused: %v", err)
	}
}
