package nl_test

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/weftnet/weft/dataplane/nl"
	"github.com/weftnet/weft/test/nstest"
)

func handle(t *testing.T) *nl.Handle {
	t.Helper()
	ns := nstest.Setup(t)
	h, err := nl.New(ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return h
}

func TestLinkByNameNotFound(t *testing.T) {
	h := handle(t)
	_, err := h.LinkByName("nosuchlink0")
	if !errors.Is(err, nl.ErrLinkNotFound) {
		t.Fatalf("err = %v, want ErrLinkNotFound", err)
	}
	var nf *nl.NotFoundError
	if !errors.As(err, &nf) || nf.Name != "nosuchlink0" {
		t.Fatalf("err = %#v, want a NotFoundError naming the link", err)
	}
	if _, err := h.LinkByIndex(99999); !errors.Is(err, nl.ErrLinkNotFound) {
		t.Fatalf("LinkByIndex: %v", err)
	}
	if err := h.DeleteLinkByName("nosuchlink0"); err != nil {
		t.Fatalf("deleting a missing link: %v", err)
	}
}

func TestEnsureBridge(t *testing.T) {
	h := handle(t)
	const alias = "weft:test"
	for i, wantCreated := range []bool{true, false} {
		l, created, err := h.EnsureBridge("wbtest0", 1400, alias)
		if err != nil {
			t.Fatal(err)
		}
		if created != wantCreated {
			t.Fatalf("call %d: created = %v", i, created)
		}
		a := l.Attrs()
		if l.Type() != "bridge" || a.MTU != 1400 || a.Alias != alias || a.Flags&net.FlagUp == 0 {
			t.Fatalf("bridge = type %s mtu %d alias %q flags %v", l.Type(), a.MTU, a.Alias, a.Flags)
		}
	}
	// A drifted MTU is corrected.
	l, _ := h.LinkByName("wbtest0")
	if err := netlinkSetMTU(t, l, 1300); err != nil {
		t.Fatal(err)
	}
	if l, _, err := h.EnsureBridge("wbtest0", 1400, alias); err != nil || l.Attrs().MTU != 1400 {
		t.Fatalf("MTU not corrected: %v", err)
	}
	// Not ours: a different alias, no alias, not a bridge.
	if _, _, err := h.EnsureBridge("wbtest0", 1400, "weft:other"); !errors.Is(err, nl.ErrLinkConflict) {
		t.Fatalf("other owner: %v", err)
	}
	if err := nlh(t).LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "foreign0", TxQLen: -1}}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := h.EnsureBridge("foreign0", 1400, alias); !errors.Is(err, nl.ErrLinkConflict) {
		t.Fatalf("foreign bridge: %v", err)
	}
	if _, err := h.EnsureVethPair(nl.VethPair{Name: "vforeign0", PeerName: "vforeign1", Alias: ""}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := h.EnsureBridge("vforeign0", 1400, alias); !errors.Is(err, nl.ErrLinkConflict) {
		t.Fatalf("veth with the bridge's name: %v", err)
	}
	if l, _ := h.LinkByName("foreign0"); l.Attrs().MTU == 1400 {
		t.Fatal("a foreign bridge was changed")
	}

	if err := h.DeleteLinkByName("wbtest0"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.LinkByName("wbtest0"); !errors.Is(err, nl.ErrLinkNotFound) {
		t.Fatalf("bridge still there: %v", err)
	}
}

func TestEnsureAddrAndHostRoutes(t *testing.T) {
	h := handle(t)
	l, _, err := h.EnsureBridge("wbtest0", 0, "weft:test")
	if err != nil {
		t.Fatal(err)
	}
	gw := netip.MustParsePrefix("10.77.0.1/24")
	for i, want := range []bool{true, false} {
		added, err := h.EnsureAddr(l, gw)
		if err != nil || added != want {
			t.Fatalf("call %d: added = %v, err = %v", i, added, err)
		}
	}
	addrs, err := h.AddrList(l, netlink.FAMILY_V4)
	if err != nil || len(addrs) != 1 || addrs[0].IPNet.String() != "10.77.0.1/24" {
		t.Fatalf("addresses = %v, %v", addrs, err)
	}
	if _, err := h.EnsureAddr(l, netip.MustParsePrefix("fd00:77::1/64")); err != nil {
		t.Fatal(err)
	}
	if err := nlh(t).RouteAdd(&netlink.Route{LinkIndex: l.Attrs().Index, Gw: net.ParseIP("10.77.0.254")}); err != nil {
		t.Fatal(err)
	}
	routes, err := h.HostRoutes()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"10.77.0.0/24", "0.0.0.0/0", "fd00:77::/64"} {
		if !slices.Contains(routes, netip.MustParsePrefix(want)) {
			t.Errorf("HostRoutes = %v, missing %s", routes, want)
		}
	}
	if err := h.DeleteAddr(l, gw); err != nil {
		t.Fatal(err)
	}
	if err := h.DeleteAddr(l, gw); err != nil {
		t.Fatalf("deleting a missing address: %v", err)
	}
}

func TestEnsureVethPair(t *testing.T) {
	h := handle(t)
	br, _, err := h.EnsureBridge("wbtest0", 1450, "weft:test")
	if err != nil {
		t.Fatal(err)
	}
	mac, _ := net.ParseMAC("02:42:0a:01:00:05")
	v := nl.VethPair{Name: "whtest", PeerName: "wctest", MTU: 1450, PeerMAC: mac, MasterIndex: br.Attrs().Index, Alias: "weft:test"}
	for i, want := range []bool{true, false} {
		created, err := h.EnsureVethPair(v)
		if err != nil || created != want {
			t.Fatalf("call %d: created = %v, err = %v", i, created, err)
		}
	}
	host, _ := h.LinkByName("whtest")
	peer, _ := h.LinkByName("wctest")
	if a := host.Attrs(); a.MasterIndex != br.Attrs().Index || a.Flags&net.FlagUp == 0 || a.MTU != 1450 || a.Alias != "weft:test" {
		t.Fatalf("host end: master %d up %v mtu %d alias %q", a.MasterIndex, a.Flags&net.FlagUp != 0, a.MTU, a.Alias)
	}
	if a := peer.Attrs(); a.HardwareAddr.String() != mac.String() || a.MTU != 1450 || a.Flags&net.FlagUp != 0 || a.Alias != "weft:test" {
		t.Fatalf("peer: mac %s mtu %d up %v alias %q", a.HardwareAddr, a.MTU, a.Flags&net.FlagUp != 0, a.Alias)
	}

	// The peer moves into a "container": the pair is still fine.
	ctr := nstest.NewNS(t)
	if err := nlh(t).LinkSetNsFd(peer, int(ctr)); err != nil {
		t.Fatal(err)
	}
	if created, err := h.EnsureVethPair(v); err != nil || created {
		t.Fatalf("after the peer moved: created = %v, err = %v", created, err)
	}
	// Someone else's veth with the name is refused.
	if _, err := h.EnsureVethPair(nl.VethPair{Name: "whtest", PeerName: "wctest", Alias: "weft:other"}); !errors.Is(err, nl.ErrLinkConflict) {
		t.Fatalf("other owner: %v", err)
	}
	if err := h.DeleteLinkByName("whtest"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.LinkByName("whtest"); !errors.Is(err, nl.ErrLinkNotFound) {
		t.Fatal("veth still there")
	}
}

// nlh is a raw handle for setting up conditions nl does not offer.
func nlh(t *testing.T) *netlink.Handle {
	t.Helper()
	h, err := netlink.NewHandle()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return h
}

func netlinkSetMTU(t *testing.T, l netlink.Link, mtu int) error {
	t.Helper()
	return nlh(t).LinkSetMTU(l, mtu)
}

// TestBridgeGroups: one filtered dump returns every bridge with its device
// group (across many reply buffers), and no other kind of link.
func TestBridgeGroups(t *testing.T) {
	h := handle(t)
	want := map[string]uint32{}
	for i := range 150 {
		name := fmt.Sprintf("wbg%d", i)
		l, _, err := h.EnsureBridge(name, 1500, "weft:test")
		if err != nil {
			t.Fatal(err)
		}
		g := uint32(0x77650000 + i)
		if err := h.SetGroup(l, g); err != nil {
			t.Fatal(err)
		}
		want[name] = g
	}
	if _, err := h.EnsureVethPair(nl.VethPair{Name: "vgrp0", PeerName: "vgrp1", Alias: "weft:test"}); err != nil {
		t.Fatal(err)
	}
	v, err := h.LinkByName("vgrp0")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.SetGroup(v, 0x77650001); err != nil {
		t.Fatal(err)
	}
	got, err := h.BridgeGroups()
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(got, want) {
		for name, g := range got {
			if want[name] != g {
				t.Errorf("%s: group 0x%x, want 0x%x (or not listed: a bridge only)", name, g, want[name])
			}
		}
		t.Fatalf("BridgeGroups returned %d links, want the %d bridges", len(got), len(want))
	}
	// A changed group shows in the next dump.
	l, err := h.LinkByName("wbg7")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.SetGroup(l, 0); err != nil {
		t.Fatal(err)
	}
	if got, err := h.BridgeGroups(); err != nil || got["wbg7"] != 0 || len(got) != len(want) {
		t.Fatalf("after the change: wbg7 group 0x%x, %d bridges, err %v", got["wbg7"], len(got), err)
	}
}
