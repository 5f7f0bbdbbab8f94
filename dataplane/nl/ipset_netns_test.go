package nl_test

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/weftnet/weft/dataplane/nl"
	"github.com/weftnet/weft/test/nstest"
)

// TestIpsetRoundTrip: sets made, filled, listed and removed through the
// handle live in the handle's namespace (ipset save there shows them) and
// read back exactly as written; every call is idempotent.
func TestIpsetRoundTrip(t *testing.T) {
	h := handle(t)
	nstest.RequireKernelFeature(t, "ipset", h.IpsetSupported)
	for range 2 {
		if err := h.EnsureSet("t-net4", "hash:net,iface", false); err != nil {
			t.Fatal(err)
		}
		if err := h.EnsureSet("t-net6", "hash:net,iface", true); err != nil {
			t.Fatal(err)
		}
		if err := h.EnsureSet("t-masq4", "hash:net", false); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.EnsureSet("t-net4", "hash:net", false); err == nil {
		t.Fatal("EnsureSet accepted an existing set of another type")
	}
	members := map[string][]nl.SetMember{
		"t-net4":  {{Net: netip.MustParsePrefix("10.1.0.0/24"), Iface: "weft-a"}, {Net: netip.MustParsePrefix("172.30.0.0/16"), Iface: "br-lan"}},
		"t-net6":  {{Net: netip.MustParsePrefix("fd00:1::/64"), Iface: "weft-a"}},
		"t-masq4": {{Net: netip.MustParsePrefix("10.1.0.0/24")}, {Net: netip.MustParsePrefix("192.0.2.7/32")}},
	}
	for set, ms := range members {
		for _, m := range ms {
			for range 2 {
				if err := h.SetAdd(set, m); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	for set, want := range members {
		got, err := h.SetMembers(set)
		if err != nil {
			t.Fatal(err)
		}
		cmp := func(a, b nl.SetMember) int { return strings.Compare(a.String(), b.String()) }
		slices.SortFunc(got, cmp)
		slices.SortFunc(want, cmp)
		if !slices.Equal(got, want) {
			t.Errorf("%s holds %v, want %v", set, got, want)
		}
	}
	if save := nstest.Run(t, "ipset", "save"); !strings.Contains(save, "add t-net4 10.1.0.0/24,weft-a") || !strings.Contains(save, "add t-net6 fd00:1::/64,weft-a") {
		t.Errorf("ipset save in the namespace:\n%s", save)
	}
	if err := h.SetAdd("t-masq4", nl.SetMember{Net: netip.MustParsePrefix("0.0.0.0/0")}); err == nil {
		t.Error("SetAdd accepted a /0, which netlink cannot express")
	}
	m := members["t-net4"][0]
	for range 2 {
		if err := h.SetDel("t-net4", m); err != nil {
			t.Fatal(err)
		}
	}
	if got, _ := h.SetMembers("t-net4"); slices.Contains(got, m) {
		t.Errorf("%s still in t-net4 after SetDel", m)
	}
	for _, set := range []string{"t-net4", "t-net6", "t-masq4"} {
		for range 2 {
			if err := h.DestroySet(set); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := h.SetMembers(set); !errors.Is(err, nl.ErrSetNotFound) {
			t.Errorf("SetMembers of removed %s: %v, want ErrSetNotFound", set, err)
		}
	}
	if err := h.SetDel("t-gone", m); err != nil {
		t.Errorf("SetDel on a missing set: %v", err)
	}
	if save := strings.TrimSpace(nstest.Run(t, "ipset", "save")); save != "" {
		t.Errorf("sets left:\n%s", save)
	}
}

func TestSetGroup(t *testing.T) {
	h := handle(t)
	br, _, err := h.EnsureBridge("grp0", 0, "weft:x")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.SetGroup(br, 0x77650003); err != nil {
		t.Fatal(err)
	}
	l, err := h.LinkByName("grp0")
	if err != nil {
		t.Fatal(err)
	}
	if g := l.Attrs().Group; g != 0x77650003 {
		t.Fatalf("group %#x, want 0x77650003", g)
	}
	_ = netlink.Link(l)
}
