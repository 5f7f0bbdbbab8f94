package vxlan

import (
	"errors"
	"log/slog"
	"net/netip"
	"slices"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/weftnet/weft/dataplane"
	"github.com/weftnet/weft/dataplane/fw"
	"github.com/weftnet/weft/dataplane/nl"
	"github.com/weftnet/weft/test/nstest"
)

// instance is one weft's vxlan Mode on host A, of one flavour.
type instance struct {
	*host
	f Flavour
}

// newInstance returns a Mode of flavour fl acting on h's namespace (with the
// firewall fwall, which may be nil), as a second weft on the same host.
func newInstance(t *testing.T, h *host, fl Flavour, fwall *fw.Firewall) instance {
	t.Helper()
	log := slog.New(slog.NewTextHandler(testWriter{t, h.name + "/" + fl.instance}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	opts := []Option{WithVTEP(h.vtep), WithNamespace(h.ns), WithFlavour(fl)}
	if fwall != nil {
		opts = append(opts, WithFirewall(fwall))
	}
	c := *h
	c.name = h.name + "/" + fl.instance
	c.m = New(h.nl, log, opts...)
	return instance{host: &c, f: fl}
}

// restarted is a new Mode of the same flavour and settings, as after a
// restart of that weft.
func (i instance) restarted(t *testing.T, fwall *fw.Firewall) instance {
	t.Helper()
	return newInstance(t, &host{t: t, name: i.name[:1], ns: i.ns, nl: i.nl, raw: i.raw, vtep: i.vtep, ctx: i.ctx}, i.f, fwall)
}

// mustCheck fails unless i's Check finds everything in place.
func (i instance) mustCheck() {
	i.t.Helper()
	if why, err := i.m.Check(i.ctx); why != "" || err != nil {
		i.t.Fatalf("%s: Check = %q, %v", i.name, why, err)
	}
}

// hasRules reports whether INPUT holds i's known-VTEP rule on port and
// FORWARD its bridged rule.
func (i instance) hasRules(fwall *fw.Firewall, port uint16) (filter, bridged bool) {
	i.t.Helper()
	in, err := fwall.Rules(fw.IPv4, fw.Filter, "INPUT")
	if err != nil {
		i.t.Fatal(err)
	}
	fwd, err := fwall.Rules(fw.IPv4, fw.Filter, "FORWARD")
	if err != nil {
		i.t.Fatal(err)
	}
	return i.f.filterPorts(in)[port], slices.ContainsFunc(fwd, func(s []string) bool { return slices.Contains(s, i.f.bridgedComment) })
}

// members returns the VTEPs in i's IPv4 set.
func (i instance) members() []netip.Addr {
	i.t.Helper()
	ms, err := i.nl.SetMembers(i.f.set4)
	if err != nil {
		i.t.Fatalf("%s: set %s: %v", i.name, i.f.set4, err)
	}
	var out []netip.Addr
	for _, m := range ms {
		out = append(out, m.Net.Addr())
	}
	return out
}

// TestNetnsTwoInstances: a local-scope and a global-scope weft on the same
// hosts (two Modes of different flavours in each namespace) each make a
// network, with traffic across the hosts on both, and each reconciles,
// repairs and sweeps only its own links, set members and rules: the other's
// stay, and its traffic keeps flowing. The second weft may not take the
// first's UDP port, whose known-VTEP filter would drop its peers.
func TestNetnsTwoInstances(t *testing.T) {
	a, b := newHosts(t, 1500)
	if err := a.nl.IpsetSupported(); err != nil {
		t.Skipf("missing kernel feature: ipset: %v", err)
	}
	fwall, err := fw.New(slog.New(slog.NewTextHandler(testWriter{t, "fw"}, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	// As on a Docker host: bridged traffic that no rule accepts is dropped.
	nstest.Run(t, "iptables", "-P", "FORWARD", "DROP")
	t.Cleanup(func() { nstest.Run(t, "iptables", "-P", "FORWARD", "ACCEPT") })

	// Host A runs both wefts with the firewall (the test's namespace is
	// A's, where iptables acts); host B runs both without it.
	locA, swA := newInstance(t, a, Local(), fwall), newInstance(t, a, Swarm(), fwall)
	locB, swB := newInstance(t, b, Local(), nil), newInstance(t, b, Swarm(), nil)
	const swPort = 4790
	nL := network(idA, vni)
	nS := network(idB, vni+1, func(n *dataplane.Network) { n.Vxlan.Port = swPort })
	locA.mustCreate(nL)
	locB.mustCreate(nL)

	// The local weft's port is refused to the swarm one, naming why.
	err = swA.m.CreateNetwork(swA.ctx, network(idB, vni+1))
	mustFail(t, "the global-scope weft's network on the local one's port", err, "4789", "local-scope weft", "vxlan_port")
	if !errors.Is(err, ErrPortOfOtherWeft) {
		t.Errorf("error does not wrap ErrPortOfOtherWeft: %v", err)
	}
	swA.gone(Swarm().BridgeName(idB))
	for range 2 {
		swA.mustCreate(nS)
		swB.mustCreate(nS)
	}
	// And the other way round.
	mustFail(t, "the local-scope weft's network on the global one's port",
		locA.m.CreateNetwork(locA.ctx, network("cccccccccccc3333", vni+2, func(n *dataplane.Network) { n.Vxlan.Port = swPort })),
		"4790", "global-scope weft")

	for _, name := range []string{Local().BridgeName(idA), Local().LinkName(idA), Swarm().BridgeName(idB), Swarm().LinkName(idB)} {
		a.link(name)
		b.link(name)
	}
	l1 := locA.attach(nL, endpoint(nL, ep1, "10.50.0.11/24", ""))
	l2 := locB.attach(nL, endpoint(nL, ep2, "10.50.0.12/24", ""))
	s1 := swA.attach(nS, endpoint(nS, ep3, "10.50.0.13/24", ""))
	s2 := swB.attach(nS, endpoint(nS, "e4e4e4e4e4e4000000000000000000000000000000000000000000000000000d", "10.50.0.14/24", ""))
	if h, _ := Swarm().VethNames(ep3); a.link(h).Attrs().MasterIndex != a.link(Swarm().BridgeName(idB)).Attrs().Index {
		t.Fatalf("the swarm veth %s is not on the swarm bridge", h)
	}
	locA.mustSetPeers(idA, l2.peer(vtepB))
	locB.mustSetPeers(idA, l1.peer(vtepA))
	swA.mustSetPeers(idB, s2.peer(vtepB))
	swB.mustSetPeers(idB, s1.peer(vtepA))
	// A host only the swarm weft knows (a swarm node without containers).
	swarmOnly := netip.MustParseAddr("10.99.0.77")
	if err := swA.m.SetKnownVTEPs(swA.ctx, []netip.Addr{swarmOnly}); err != nil {
		t.Fatal(err)
	}
	bothFlow := func(when string) {
		t.Helper()
		t.Log(when)
		waitPing(t, l1, l2.addr, 56)
		waitPing(t, s1, s2.addr, 56)
		waitPing(t, s2, s1.addr, 56)
		// The networks stay apart: same subnet, other VNI and port.
		noPing(t, l1, s2.addr)
	}
	bothFlow("both wefts' networks")
	locA.mustCheck()
	swA.mustCheck()
	for _, i := range []instance{locA, swA} {
		port := uint16(4789)
		if i.f == Swarm() {
			port = swPort
		}
		if filter, bridged := i.hasRules(fwall, port); !filter || !bridged {
			t.Fatalf("%s: known-VTEP rule %v, bridged rule %v", i.name, filter, bridged)
		}
	}
	if got := locA.members(); !slices.Equal(got, []netip.Addr{vtepB}) {
		t.Fatalf("local set = %v", got)
	}
	if got := swA.members(); len(got) != 2 || !slices.Contains(got, swarmOnly) {
		t.Fatalf("swarm set = %v", got)
	}

	// Leftovers of each weft without an alias (a crash before it was set):
	// only their own weft sweeps them.
	const strayNet = "ffffffffffff9999"
	for _, fl := range Flavours() {
		if err := a.raw.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: fl.BridgeName(strayNet), TxQLen: -1}}); err != nil {
			t.Fatal(err)
		}
	}

	// Each weft, restarted, reconciles its own state: nothing of the
	// other's changes, and both keep carrying traffic.
	for round := range 2 {
		locA = locA.restarted(t, fwall)
		if err := locA.m.Reconcile(locA.ctx, []dataplane.Network{nL}, []dataplane.Endpoint{l1.ep}); err != nil {
			t.Fatal(err)
		}
		a.gone(Local().BridgeName(strayNet))
		if round == 0 {
			a.link(Swarm().BridgeName(strayNet))
		}
		swA.mustCheck()
		swA = swA.restarted(t, fwall)
		if err := swA.m.Reconcile(swA.ctx, []dataplane.Network{nS}, []dataplane.Endpoint{s1.ep}); err != nil {
			t.Fatal(err)
		}
		a.gone(Swarm().BridgeName(strayNet))
		locA.mustSetPeers(idA, l2.peer(vtepB))
		swA.mustSetPeers(idB, s2.peer(vtepB))
		if err := swA.m.SetKnownVTEPs(swA.ctx, []netip.Addr{swarmOnly}); err != nil {
			t.Fatal(err)
		}
		locA.mustCheck()
		swA.mustCheck()
		if got := locA.members(); !slices.Equal(got, []netip.Addr{vtepB}) {
			t.Fatalf("local set after the reconciles = %v", got)
		}
		if got := swA.members(); len(got) != 2 {
			t.Fatalf("swarm set after the reconciles = %v", got)
		}
	}
	bothFlow("after each weft reconciled")

	// Repair of one puts back only its own: the local weft's rule and set
	// member removed, its Repair restores them, the swarm's untouched.
	if err := fwall.DeleteRule(fw.IPv4, Local().bridgedRule()); err != nil {
		t.Fatal(err)
	}
	if err := a.nl.SetDel(Local().set4, nl.SetMember{Net: netip.PrefixFrom(vtepB, 32)}); err != nil {
		t.Fatal(err)
	}
	swA.mustCheck()
	waitPing(t, s1, s2.addr, 56)
	if why, _ := locA.m.Check(locA.ctx); why == "" {
		t.Fatal("the local weft's Check did not notice its missing rule")
	}
	if err := locA.m.Repair(locA.ctx); err != nil {
		t.Fatal(err)
	}
	locA.mustCheck()
	bothFlow("after the local weft's repair")

	// The local weft with no network left (all its networks deleted while
	// it was down) removes its links, rules and set; the swarm weft's stay
	// and carry traffic.
	if err := locA.m.DeleteEndpoint(locA.ctx, nL, l1.ep); err != nil {
		t.Fatal(err)
	}
	locA = locA.restarted(t, fwall)
	if err := locA.m.Reconcile(locA.ctx, nil, nil); err != nil {
		t.Fatal(err)
	}
	a.gone(Local().BridgeName(idA))
	a.gone(Local().LinkName(idA))
	if _, err := a.nl.SetMembers(Local().set4); !errors.Is(err, nl.ErrSetNotFound) {
		t.Fatalf("the local weft's set outlived its last network: %v", err)
	}
	if filter, bridged := locA.hasRules(fwall, 4789); filter || bridged {
		t.Fatalf("the local weft's rules outlived its last network: filter %v, bridged %v", filter, bridged)
	}
	swA.mustCheck()
	if filter, bridged := swA.hasRules(fwall, swPort); !filter || !bridged {
		t.Fatalf("the swarm weft's rules went with the local weft's: filter %v, bridged %v", filter, bridged)
	}
	if got := swA.members(); len(got) != 2 {
		t.Fatalf("swarm set after the local weft left = %v", got)
	}
	waitPing(t, s1, s2.addr, 56)
	waitPing(t, s2, s1.addr, 56)

	// The local weft back with a network on its port: the swarm's stays.
	locA.mustCreate(nL)
	swA.mustCheck()
	locA.mustDelete(nL)

	// And the other way round: the swarm weft's last network gone, the
	// local weft's (made again) stays.
	locA.mustCreate(nL)
	l1 = locA.attach(nL, endpoint(nL, ep1, "10.50.0.11/24", ""))
	locA.mustSetPeers(idA, l2.peer(vtepB))
	if err := swA.m.DeleteEndpoint(swA.ctx, nS, s1.ep); err != nil {
		t.Fatal(err)
	}
	swA.mustDelete(nS)
	a.gone(Swarm().BridgeName(idB))
	if _, err := a.nl.SetMembers(Swarm().set4); !errors.Is(err, nl.ErrSetNotFound) {
		t.Fatalf("the swarm weft's set outlived its last network: %v", err)
	}
	locA.mustCheck()
	waitPing(t, l1, l2.addr, 56)

	// Clean up: the local weft's network on A, both on B.
	if err := locA.m.DeleteEndpoint(locA.ctx, nL, l1.ep); err != nil {
		t.Fatal(err)
	}
	locA.mustDelete(nL)
	for _, c := range []struct {
		i  instance
		n  dataplane.Network
		ep dataplane.Endpoint
	}{{locB, nL, l2.ep}, {swB, nS, s2.ep}} {
		if err := c.i.m.DeleteEndpoint(c.i.ctx, c.n, c.ep); err != nil {
			t.Fatal(err)
		}
		c.i.mustDelete(c.n)
	}
}

// TestNetnsSwarmAdoptsEarlierNames: a global-scope weft upgraded from
// before flavours finds its networks' links under the local-scope names
// (made here by a Local Mode): its Reconcile renames them to its own, the
// traffic keeps flowing, and the old known-VTEP rules and set go, since no
// local-scope weft's link is left. A local-scope weft's network next to it
// keeps its links and rules.
func TestNetnsSwarmAdoptsEarlierNames(t *testing.T) {
	a, b := newHosts(t, 1500)
	if err := a.nl.IpsetSupported(); err != nil {
		t.Skipf("missing kernel feature: ipset: %v", err)
	}
	fwall, err := fw.New(slog.New(slog.NewTextHandler(testWriter{t, "fw"}, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	nstest.Run(t, "iptables", "-P", "FORWARD", "DROP")
	t.Cleanup(func() { nstest.Run(t, "iptables", "-P", "FORWARD", "ACCEPT") })

	for _, withLocal := range []bool{false, true} {
		earlier := newInstance(t, a, Local(), fwall) // the swarm weft before the upgrade
		bSide := newInstance(t, b, Swarm(), nil)
		n := network(idB, vni+1)
		earlier.mustCreate(n)
		bSide.mustCreate(n)
		c1 := earlier.attach(n, endpoint(n, ep1, "10.50.0.11/24", ""))
		c2 := bSide.attach(n, endpoint(n, ep2, "10.50.0.12/24", ""))
		earlier.mustSetPeers(idB, c2.peer(vtepB))
		bSide.mustSetPeers(idB, c1.peer(vtepA))
		waitPing(t, c1, c2.addr, 56)
		var loc instance
		nL := network(idA, vni, func(n *dataplane.Network) { n.Vxlan.Port = 4791 })
		if withLocal {
			loc = newInstance(t, a, Local(), fwall)
			loc.mustCreate(nL)
		}

		sw := newInstance(t, a, Swarm(), fwall)
		if err := sw.m.Reconcile(sw.ctx, []dataplane.Network{n}, []dataplane.Endpoint{c1.ep}); err != nil {
			t.Fatal(err)
		}
		host, _ := Swarm().VethNames(ep1)
		for _, name := range []string{Swarm().BridgeName(idB), Swarm().LinkName(idB), host} {
			if l := a.link(name); l.Attrs().Alias != Swarm().ownerAlias(idB) {
				t.Fatalf("%s has alias %q after the upgrade", name, l.Attrs().Alias)
			}
		}
		oldHost, _ := Local().VethNames(ep1)
		for _, name := range []string{Local().BridgeName(idB), Local().LinkName(idB), oldHost} {
			a.gone(name)
		}
		sw.mustSetPeers(idB, c2.peer(vtepB))
		sw.mustCheck()
		waitPing(t, c1, c2.addr, 56)
		waitPing(t, c2, c1.addr, 56)
		oldFilter, oldBridged := earlier.hasRules(fwall, 4789)
		_, setErr := a.nl.SetMembers(Local().set4)
		if withLocal {
			// The local-scope weft's rules and set stay (its port's rule
			// and the shared bridged rule), and its links.
			if l, b := loc.hasRules(fwall, 4791); !l || !b || setErr != nil {
				t.Fatalf("with a local-scope network: its rule %v, bridged %v, set %v", l, b, setErr)
			}
			loc.mustCheck()
		} else if oldFilter || oldBridged || !errors.Is(setErr, nl.ErrSetNotFound) {
			t.Fatalf("the earlier weft's filter is left: rule %v, bridged %v, set %v", oldFilter, oldBridged, setErr)
		}

		if err := sw.m.DeleteEndpoint(sw.ctx, n, c1.ep); err != nil {
			t.Fatal(err)
		}
		sw.mustDelete(n)
		if err := bSide.m.DeleteEndpoint(bSide.ctx, n, c2.ep); err != nil {
			t.Fatal(err)
		}
		bSide.mustDelete(n)
		if withLocal {
			loc.mustDelete(nL)
		} else if err := earlier.restarted(t, fwall).m.Reconcile(a.ctx, nil, nil); err != nil {
			t.Fatal(err)
		}
	}
}
