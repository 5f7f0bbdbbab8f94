package bridge

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/weftnet/weft/dataplane"
	"github.com/weftnet/weft/dataplane/fw"
	"github.com/weftnet/weft/test/nstest"
)

const (
	ep1 = "e100000000000000000000000000000000000000000000000000000000000001"
	ep2 = "e200000000000000000000000000000000000000000000000000000000000002"
	ep3 = "e300000000000000000000000000000000000000000000000000000000000003"
	ep4 = "e400000000000000000000000000000000000000000000000000000000000004"
)

func TestNetnsNetworkCreateDelete(t *testing.T) {
	for _, o := range []envOpts{{sets: true}, {}} {
		t.Run(o.String(), func(t *testing.T) { testNetworkCreateDelete(t, o) })
	}
}

func testNetworkCreateDelete(t *testing.T, o envOpts) {
	e := newEnvWith(t, o)
	e.plantDocker()
	base := e.snapshot()

	n := netSpec(idA, 1, withIPv6, func(n *dataplane.Network) { n.MTU = 1400 })
	for range 2 {
		e.mustCreate(n)
	}
	br, err := e.raw.LinkByName(n.Bridge.Name)
	if err != nil {
		t.Fatal(err)
	}
	a := br.Attrs()
	if br.Type() != "bridge" || a.MTU != 1400 || a.Flags&net.FlagUp == 0 || a.Alias != "weft:"+idA || a.HardwareAddr.String() != bridgeMAC(idA).String() {
		t.Fatalf("bridge: type %s mtu %d up %v alias %q mac %s", br.Type(), a.MTU, a.Flags&net.FlagUp != 0, a.Alias, a.HardwareAddr)
	}
	addrs, err := e.raw.AddrList(br, netlink.FAMILY_ALL)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, ad := range addrs {
		got = append(got, ad.IPNet.String())
	}
	for _, want := range []string{"10.1.0.1/24", "fd00:1::1/64"} {
		if !slices.Contains(got, want) {
			t.Errorf("bridge addresses %v lack %s", got, want)
		}
	}

	// Every generated rule reads back token for token (the specs are in
	// iptables' canonical form, which Reconcile relies on), and the base jumps
	// are first, above DOCKER-USER.
	for _, fam := range e.m.families(n) {
		for _, r := range e.m.rulesOf(n, fam) {
			rules, err := e.fw.Rules(fam, r.Table, r.Chain)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.ContainsFunc(rules, func(s []string) bool { return slices.Equal(s, r.Spec) }) {
				t.Errorf("%s rule %s does not read back; chain holds %q", fam, r, rules)
			}
		}
		for _, j := range e.m.jumps(fam) {
			rules, _ := e.fw.Rules(fam, j.Table, j.Chain)
			if len(rules) == 0 || !slices.Equal(rules[0], j.Spec) {
				t.Errorf("%s %s/%s starts with %q, want %q", fam, j.Table, j.Chain, rules, j.Spec)
			}
		}
	}

	// Check reads every rule back from iptables-save as written.
	e.mustCheck("after creating the network")

	// Reconciling a correct state changes nothing.
	before := e.snapshot()
	if err := e.m.Reconcile(e.ctx, []dataplane.Network{n}, nil); err != nil {
		t.Fatal(err)
	}
	e.assertSame(before, "Reconcile changed a correct state")

	for range 2 {
		if err := e.m.DeleteNetwork(e.ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	e.assertSame(base, "after delete")
}

func TestNetnsEndpointCreateDelete(t *testing.T) {
	e := newEnv(t)
	n := netSpec(idA, 1, func(n *dataplane.Network) { n.MTU = 1450 })
	e.mustCreate(n)
	base := e.snapshot()

	mac, _ := net.ParseMAC("02:42:0a:01:00:05")
	ep := dataplane.Endpoint{ID: ep1, NetworkID: n.ID, IPv4: netip.MustParsePrefix("10.1.0.5/24"), MAC: mac}
	for range 2 {
		if err := e.m.CreateEndpoint(e.ctx, n, ep); err != nil {
			t.Fatal(err)
		}
	}
	host, cont := VethNames(ep.ID)
	br, _ := e.raw.LinkByName(n.Bridge.Name)
	hl, err := e.raw.LinkByName(host)
	if err != nil {
		t.Fatal(err)
	}
	if a := hl.Attrs(); a.MasterIndex != br.Attrs().Index || a.Flags&net.FlagUp == 0 || a.MTU != 1450 || a.Alias != "weft:"+idA {
		t.Fatalf("host end: master %d up %v mtu %d alias %q", a.MasterIndex, a.Flags&net.FlagUp != 0, a.MTU, a.Alias)
	}
	cl, err := e.raw.LinkByName(cont)
	if err != nil {
		t.Fatal(err)
	}
	if a := cl.Attrs(); a.HardwareAddr.String() != mac.String() || a.MTU != 1450 || a.MasterIndex != 0 {
		t.Fatalf("container end: mac %s mtu %d master %d", a.HardwareAddr, a.MTU, a.MasterIndex)
	}

	info, err := e.m.Join(e.ctx, n, ep)
	if err != nil {
		t.Fatal(err)
	}
	want := dataplane.JoinInfo{SrcName: cont, DstPrefix: "eth", Gateway: netip.MustParseAddr("10.1.0.1")}
	if info.SrcName != want.SrcName || info.DstPrefix != want.DstPrefix || info.Gateway != want.Gateway || info.GatewayIPv6.IsValid() || info.DisableGatewayService {
		t.Fatalf("Join = %+v, want %+v", info, want)
	}
	if err := e.m.Leave(e.ctx, n, ep); err != nil {
		t.Fatal(err)
	}

	for range 2 {
		if err := e.m.DeleteEndpoint(e.ctx, n, ep); err != nil {
			t.Fatal(err)
		}
	}
	e.assertSame(base, "after endpoint delete")
	if _, err := e.m.Join(e.ctx, n, ep); err == nil || !strings.Contains(err.Error(), cont) {
		t.Fatalf("Join of a deleted endpoint: %v, want an error naming %s", err, cont)
	}

	// The container's namespace died with the container end in it: the
	// kernel removed the pair, and DeleteEndpoint has nothing to do.
	if err := e.m.CreateEndpoint(e.ctx, n, ep); err != nil {
		t.Fatal(err)
	}
	gone := nstest.NewNS(t)
	cl, _ = e.raw.LinkByName(cont)
	if err := e.raw.LinkSetNsFd(cl, int(gone)); err != nil {
		t.Fatal(err)
	}
	if err := e.m.DeleteEndpoint(e.ctx, n, ep); err != nil { // the host end goes, and with it the pair
		t.Fatal(err)
	}
	e.assertSame(base, "after deleting a moved endpoint")
}

// TestNetnsDeleteEndpointFinishesBehind: DeleteEndpoint answers before the
// kernel has deleted the pair; a CreateEndpoint of the same names right after
// waits for that deletion and gets a fresh pair; Drain returns only when no
// deletion is under way, so the links are gone at once after it.
func TestNetnsDeleteEndpointFinishesBehind(t *testing.T) {
	e := newEnv(t)
	n := netSpec(idA, 1)
	e.mustCreate(n)
	base := e.snapshot()
	ep := dataplane.Endpoint{ID: ep1, NetworkID: n.ID, IPv4: netip.MustParsePrefix("10.1.0.5/24")}
	host, _ := VethNames(ep.ID)
	for i := range 20 {
		if err := e.m.CreateEndpoint(e.ctx, n, ep); err != nil {
			t.Fatalf("round %d: CreateEndpoint right after DeleteEndpoint: %v", i, err)
		}
		l, err := e.raw.LinkByName(host)
		if err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
		if a := l.Attrs(); a.Flags&net.FlagUp == 0 || a.MasterIndex == 0 {
			t.Fatalf("round %d: the re-created host end is not up on the bridge: up %v master %d", i, a.Flags&net.FlagUp != 0, a.MasterIndex)
		}
		if err := e.m.DeleteEndpoint(e.ctx, n, ep); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.m.Drain(e.ctx); err != nil {
		t.Fatal(err)
	}
	if diff := nstest.Diff(base, e.snapshot()); diff != "" {
		t.Fatalf("after Drain, the namespace still differs:\n%s", diff)
	}
	// A CreateEndpoint whose caller gives up while it waits fails cleanly.
	if err := e.m.CreateEndpoint(e.ctx, n, ep); err != nil {
		t.Fatal(err)
	}
	if err := e.m.DeleteEndpoint(e.ctx, n, ep); err != nil {
		t.Fatal(err)
	}
	gone, cancel := context.WithCancel(e.ctx)
	cancel()
	switch err := e.m.CreateEndpoint(gone, n, ep); {
	case errors.Is(err, context.Canceled): // it waited, then gave up
	case err == nil: // the deletion was over already
		if err := e.m.DeleteEndpoint(e.ctx, n, ep); err != nil {
			t.Fatal(err)
		}
	default:
		t.Fatalf("CreateEndpoint with its context done while a deletion is under way: %v", err)
	}
	if err := e.m.Drain(e.ctx); err != nil {
		t.Fatal(err)
	}
	if diff := nstest.Diff(base, e.snapshot()); diff != "" {
		t.Fatalf("at the end, the namespace differs:\n%s", diff)
	}
}

func TestNetnsJoinInternalHasNoGateway(t *testing.T) {
	e := newEnv(t)
	n := netSpec(idA, 1, withIPv6, func(n *dataplane.Network) { n.Internal = true })
	e.mustCreate(n)
	ep := dataplane.Endpoint{ID: ep1, NetworkID: n.ID, IPv4: netip.MustParsePrefix("10.1.0.5/24"), IPv6: netip.MustParsePrefix("fd00:1::5/64"), MAC: net.HardwareAddr{2, 0x42, 10, 1, 0, 5}}
	if err := e.m.CreateEndpoint(e.ctx, n, ep); err != nil {
		t.Fatal(err)
	}
	info, err := e.m.Join(e.ctx, n, ep)
	if err != nil {
		t.Fatal(err)
	}
	if info.Gateway.IsValid() || info.GatewayIPv6.IsValid() {
		t.Fatalf("internal network Join returned gateways %v %v", info.Gateway, info.GatewayIPv6)
	}
	n.Internal = false
	if info, _ = e.m.Join(e.ctx, n, ep); info.GatewayIPv6 != netip.MustParseAddr("fd00:1::1") {
		t.Fatalf("GatewayIPv6 = %v", info.GatewayIPv6)
	}
}

func TestNetnsCreateRefusesForeignLink(t *testing.T) {
	e := newEnv(t)
	if err := e.raw.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "br-mine", TxQLen: -1}}); err != nil {
		t.Fatal(err)
	}
	la := netlink.NewLinkAttrs()
	la.Name = DefaultName(idB)
	if err := e.raw.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: "peer0"}); err != nil {
		t.Fatal(err)
	}
	base := e.snapshot()

	for _, n := range []dataplane.Network{
		netSpec(idA, 1, func(n *dataplane.Network) { n.Bridge.Name = "br-mine" }),
		netSpec(idB, 2),
	} {
		err := e.m.CreateNetwork(e.ctx, n)
		if err == nil || !strings.Contains(err.Error(), n.Bridge.Name) || !strings.Contains(err.Error(), "not created by weft") {
			t.Fatalf("CreateNetwork on %q: %v, want a refusal naming it", n.Bridge.Name, err)
		}
	}
	// Another weft network's bridge name is refused too.
	e.mustCreate(netSpec(idC, 3, func(n *dataplane.Network) { n.Bridge.Name = "wefttaken" }))
	err := e.m.CreateNetwork(e.ctx, netSpec(idA, 1, func(n *dataplane.Network) { n.Bridge.Name = "wefttaken" }))
	if err == nil || !strings.Contains(err.Error(), "weft network "+dataplane.ShortID(idC)) {
		t.Fatalf("reusing a weft bridge name: %v", err)
	}
	if err := e.m.DeleteNetwork(e.ctx, netSpec(idC, 3, func(n *dataplane.Network) { n.Bridge.Name = "wefttaken" })); err != nil {
		t.Fatal(err)
	}
	// Deleting a network whose name is a foreign link leaves the link.
	if err := e.m.DeleteNetwork(e.ctx, netSpec(idA, 1, func(n *dataplane.Network) { n.Bridge.Name = "br-mine" })); err != nil {
		t.Fatal(err)
	}
	e.assertSame(base, "a refused request changed the host")
}

// failingTables makes one kind of iptables change fail.
type failingTables struct {
	fw.Tables
	chain string
}

func (f failingTables) Append(table, chain string, spec ...string) error {
	if chain == f.chain {
		return errors.New("injected failure")
	}
	return f.Tables.Append(table, chain, spec...)
}

func TestNetnsCreateUndoesOnFailure(t *testing.T) {
	real, err := fw.Open(fw.IPv4, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range []struct {
		o     envOpts
		chain string
	}{{envOpts{sets: true}, ChainPostrouting}, {envOpts{}, ChainIngress}} {
		t.Run(x.o.String(), func(t *testing.T) {
			x.o.tables = failingTables{Tables: real, chain: x.chain}
			testCreateUndoesOnFailure(t, x.o)
		})
	}
}

func testCreateUndoesOnFailure(t *testing.T, o envOpts) {
	e := newEnvWith(t, o)
	base := e.snapshot()
	for _, n := range []dataplane.Network{netSpec(idA, 1), netSpec(idB, 2, withIPv6)} {
		if err := e.m.CreateNetwork(e.ctx, n); err == nil {
			t.Fatal("CreateNetwork succeeded despite the injected failure")
		}
		e.assertSame(base, "a failed CreateNetwork left")
	}
}

// TestNetnsReconcile runs with the rule design, whose per-network rules it
// damages; TestNetnsSetDesignRepair is its set-design counterpart.
func TestNetnsReconcile(t *testing.T) {
	e := newEnvWith(t, envOpts{})
	e.plantDocker()
	// Foreign objects: a bridge, a bridge with a weft-like name but someone
	// else's alias, a veth, and a rule.
	if err := e.raw.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "br-foreign", TxQLen: -1}}); err != nil {
		t.Fatal(err)
	}
	lookalike := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "weft-0000000000", TxQLen: -1}}
	if err := e.raw.LinkAdd(lookalike); err != nil {
		t.Fatal(err)
	}
	if err := e.raw.LinkSetAlias(lookalike, "someone"); err != nil {
		t.Fatal(err)
	}
	la := netlink.NewLinkAttrs()
	la.Name = "vethforeign"
	if err := e.raw.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: "vethforeign1"}); err != nil {
		t.Fatal(err)
	}
	nstest.Run(t, "iptables", "-A", "FORWARD", "-i", "br-foreign", "-j", "ACCEPT")
	foreignOnly := e.snapshot()

	a, b := netSpec(idA, 1), netSpec(idB, 2, withIPv6)
	e.mustCreate(a)
	e.mustCreate(b)
	epA1 := dataplane.Endpoint{ID: ep1, NetworkID: a.ID, IPv4: netip.MustParsePrefix("10.1.0.5/24"), MAC: net.HardwareAddr{2, 0x42, 10, 1, 0, 5}}
	epA2 := dataplane.Endpoint{ID: ep2, NetworkID: a.ID, IPv4: netip.MustParsePrefix("10.1.0.6/24"), MAC: net.HardwareAddr{2, 0x42, 10, 1, 0, 6}}
	epB := dataplane.Endpoint{ID: ep3, NetworkID: b.ID, IPv4: netip.MustParsePrefix("10.2.0.5/24"), MAC: net.HardwareAddr{2, 0x42, 10, 2, 0, 5}}
	for _, x := range []struct {
		n  dataplane.Network
		ep dataplane.Endpoint
	}{{a, epA1}, {a, epA2}, {b, epB}} {
		if err := e.m.CreateEndpoint(e.ctx, x.n, x.ep); err != nil {
			t.Fatal(err)
		}
	}
	// Damage A: its bridge vanishes (epA1's host veth loses its master) and
	// one rule is deleted; dockerd puts its jump above ours.
	if err := e.nl.DeleteLinkByName(a.Bridge.Name); err != nil {
		t.Fatal(err)
	}
	icc := networkRules(a, fw.IPv4, e.m.dockerBridges)[0]
	nstest.Run(t, "iptables", append([]string{"-D", icc.Chain}, icc.Spec...)...)
	nstest.Run(t, "iptables", "-D", "FORWARD", "-j", "DOCKER-USER")
	nstest.Run(t, "iptables", "-I", "FORWARD", "1", "-j", "DOCKER-USER")

	for range 2 {
		if err := e.m.Reconcile(e.ctx, []dataplane.Network{a}, []dataplane.Endpoint{epA1}); err != nil {
			t.Fatal(err)
		}
	}
	links := map[string]netlink.Link{}
	ls, _ := e.raw.LinkList()
	for _, l := range ls {
		links[l.Attrs().Name] = l
	}
	for _, name := range []string{"br-foreign", "weft-0000000000", "vethforeign", "vethforeign1", a.Bridge.Name, "wh" + ep1[:12], "wc" + ep1[:12]} {
		if links[name] == nil {
			t.Errorf("%s was deleted", name)
		}
	}
	for _, name := range []string{b.Bridge.Name, "wh" + ep2[:12], "wc" + ep2[:12], "wh" + ep3[:12], "wc" + ep3[:12]} {
		if links[name] != nil {
			t.Errorf("%s survived", name)
		}
	}
	if br, h := links[a.Bridge.Name], links["wh"+ep1[:12]]; br != nil && h != nil && h.Attrs().MasterIndex != br.Attrs().Index {
		t.Error("epA1's veth was not re-attached to the re-created bridge")
	}
	if br := links[a.Bridge.Name]; br != nil {
		addrs, _ := e.raw.AddrList(br, netlink.FAMILY_V4)
		if len(addrs) != 1 || addrs[0].IPNet.String() != "10.1.0.1/24" {
			t.Errorf("re-created bridge has addresses %v", addrs)
		}
	}
	save := nstest.IptablesSave(t, "iptables-save") + nstest.IptablesSave(t, "ip6tables-save")
	if strings.Contains(save, fw.Tag(b.ID)) {
		t.Errorf("rules of the unknown network survived:\n%s", save)
	}
	if !strings.Contains(save, "-A FORWARD -i br-foreign -j ACCEPT") || !strings.Contains(save, "-A DOCKER-USER -j RETURN") {
		t.Errorf("foreign rules were touched:\n%s", save)
	}
	for _, r := range networkRules(a, fw.IPv4, e.m.dockerBridges) {
		if ok, err := e.fw.EnsureRule(fw.IPv4, r); err != nil || ok {
			t.Errorf("rule %s was missing after Reconcile (%v)", r, err)
		}
	}
	if rules, _ := e.fw.Rules(fw.IPv4, "filter", "FORWARD"); !slices.Equal(rules[0], []string{"-j", ChainForward}) {
		t.Errorf("FORWARD starts with %q, want weft's jump", rules[0])
	}
	// An IPv4-only network has IPv6 rules too (its containers have IPv6
	// link-local addresses), and only its own.
	for _, r := range networkRules(a, fw.IPv6, e.m.dockerBridges) {
		if ok, err := e.fw.EnsureRule(fw.IPv6, r); err != nil || ok {
			t.Errorf("IPv6 rule %s was missing after Reconcile (%v)", r, err)
		}
	}

	// Nothing known: everything weft made goes, the rest stays.
	if err := e.m.Reconcile(e.ctx, nil, nil); err != nil {
		t.Fatal(err)
	}
	e.assertSame(foreignOnly, "after reconciling nothing")
}

// TestNetnsInvalidRequestChangesNothing: refused requests leave no trace.
func TestNetnsInvalidRequestChangesNothing(t *testing.T) {
	e := newEnv(t)
	base := e.snapshot()
	bad := netSpec(idA, 1, func(n *dataplane.Network) { n.IPv4[0].Gateway = netip.MustParseAddr("10.9.0.1") })
	if err := e.m.CreateNetwork(e.ctx, bad); err == nil {
		t.Fatal("invalid network accepted")
	}
	n := netSpec(idA, 1)
	if err := e.m.CreateEndpoint(e.ctx, n, dataplane.Endpoint{ID: ep1, NetworkID: n.ID}); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("endpoint on a network without bridge: %v", err)
	}
	e.assertSame(base, "invalid requests changed the host")
}

// TestNetnsAdoptsInterruptedBridge: a bridge with n's default name and no
// alias is what a weft that died between creating it and setting the alias
// left behind; CreateNetwork takes it over.
func TestNetnsAdoptsInterruptedBridge(t *testing.T) {
	e := newEnv(t)
	n := netSpec(idA, 1)
	if err := e.raw.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: n.Bridge.Name, TxQLen: -1}}); err != nil {
		t.Fatal(err)
	}
	e.mustCreate(n)
	l, err := e.raw.LinkByName(n.Bridge.Name)
	if err != nil {
		t.Fatal(err)
	}
	if l.Attrs().Alias != "weft:"+idA {
		t.Fatalf("alias = %q", l.Attrs().Alias)
	}
}
