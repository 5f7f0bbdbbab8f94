package bridge

import (
	"strings"
	"testing"

	"github.com/weftnet/weft/dataplane"
	"github.com/weftnet/weft/dataplane/fw"
	"github.com/weftnet/weft/test/nstest"
)

// setFirewalls are the set design on both iptables back-ends.
var setFirewalls = []envOpts{{sets: true}, {sets: true, legacy: true}}

// mustCheck fails unless Check finds everything in place.
func (e *env) mustCheck(what string) {
	e.t.Helper()
	why, err := e.m.Check(e.ctx)
	if err != nil || why != "" {
		e.t.Fatalf("%s: Check = %q, %v; want everything in place", what, why, err)
	}
}

// TestNetnsSetDesignRepair: in the set design the kernel holds weft's fixed
// rules, two sets per family and device groups. Each way of removing some
// of it behind weft's back (what a firewall reload, an "iptables -F" or an
// "ipset flush" do) is noticed by Check, and Repair — what the plugin then
// runs — puts back exactly what was there, so behaviour is back too.
// Deleting the networks afterwards leaves the namespace as it was.
func TestNetnsSetDesignRepair(t *testing.T) {
	for _, o := range setFirewalls {
		t.Run(o.String(), func(t *testing.T) { testSetDesignRepair(t, o) })
	}
}

func testSetDesignRepair(t *testing.T, o envOpts) {
	e := newEnvWith(t, o)
	e.plantDocker()
	base := e.snapshot()
	n1 := netSpec(idA, 1)
	n2 := netSpec(idB, 2, withIPv6, func(n *dataplane.Network) { n.Bridge.EnableICC = false })
	nets := []dataplane.Network{n1, n2}
	for _, n := range nets {
		e.mustCreate(n)
	}
	e.mustCheck("after creating two networks")
	if err := e.m.Reconcile(e.ctx, nets, nil); err != nil {
		t.Fatal(err)
	}
	e.mustCheck("after Reconcile")
	want := e.snapshot()
	// A second Reconcile changes nothing: every rule weft writes reads back
	// the same (canonical), so nothing is re-inserted or duplicated.
	if err := e.m.Reconcile(e.ctx, nets, nil); err != nil {
		t.Fatal(err)
	}
	e.assertSame(want, "a second Reconcile")
	if dump := nstest.IptablesSave(t, e.ipt+"-save"); strings.Contains(dump, "weft:") {
		t.Errorf("the set design wrote per-network (tagged) rules:\n%s", dump)
	}

	ip6 := strings.Replace(e.ipt, "iptables", "ip6tables", 1)
	for _, d := range []struct {
		name string
		do   func()
	}{
		{"iptables -F WEFT-FORWARD", func() { nstest.Run(t, e.ipt, "-F", ChainForward) }},
		{"iptables -F (the filter table), then dockerd's rules back", func() {
			nstest.Run(t, e.ipt, "-F")
			nstest.Run(t, e.ipt, "-A", ChainDockerUser, "-j", "RETURN")
			nstest.Run(t, e.ipt, "-A", "FORWARD", "-j", ChainDockerUser)
		}},
		{"iptables -t nat -F, then dockerd's rule back", func() {
			nstest.Run(t, e.ipt, "-t", "nat", "-F")
			nstest.Run(t, e.ipt, "-t", "nat", "-A", "POSTROUTING", "-s", "172.17.0.0/16", "!", "-o", "docker0", "-j", "MASQUERADE")
		}},
		{"ip6tables -F WEFT-GUARD", func() { nstest.Run(t, ip6, "-F", ChainGuard) }},
		{"ipset flush weft-net4", func() { nstest.Run(t, "ipset", "flush", "weft-net4") }},
		{"ipset flush weft-masq6", func() { nstest.Run(t, "ipset", "flush", "weft-masq6") }},
		{"ip link set group 0", func() { nstest.Run(t, "ip", "link", "set", bridgeName(n2), "group", "0") }},
		{"ip link del (a bridge)", func() { nstest.Run(t, "ip", "link", "del", bridgeName(n1)) }},
		{"DOCKER-USER hook deleted", func() { nstest.Run(t, e.ipt, "-D", ChainDockerUser, "-j", ChainForward) }},
	} {
		d.do()
		why, err := e.m.Check(e.ctx)
		if err != nil {
			t.Fatalf("%s: Check: %v", d.name, err)
		}
		if why == "" {
			t.Fatalf("%s: Check found nothing missing", d.name)
		}
		t.Logf("%s: Check found %q", d.name, why)
		if err := e.m.Repair(e.ctx); err != nil {
			t.Fatalf("%s: Repair: %v", d.name, err)
		}
		e.mustCheck(d.name + ", then Repair")
		e.assertSame(want, d.name+", then Repair")
	}

	for _, n := range nets {
		if err := e.m.DeleteNetwork(e.ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	e.mustCheck("after deleting every network")
	e.assertSame(base, "deleting every network")
}

// TestNetnsMigrationFromRuleDesign: a host whose weft ran the rule design
// (one set of rules per network) comes up under the set design with the
// fixed rules and nothing of the old ones left, and its containers keep
// talking throughout. The way back (a kernel that lost ipset) works too.
func TestNetnsMigrationFromRuleDesign(t *testing.T) {
	e := newEnvWith(t, envOpts{})
	e.plantDocker()
	base := e.snapshot()
	n := netSpec(idA, 1)
	other := netSpec(idB, 2)
	nets := []dataplane.Network{n, other}
	for _, x := range nets {
		e.mustCreate(x)
	}
	c1 := e.attach(n, ep1, "10.1.0.2/24")
	c2 := e.attach(n, ep2, "10.1.0.3/24")
	c3 := e.attach(other, ep3, "10.2.0.2/24")
	peers := serve(t, c2, 80)
	mustReach(t, c1, c2, peers, c1.addr.String())
	eps := []dataplane.Endpoint{{ID: ep1, NetworkID: n.ID}, {ID: ep2, NetworkID: n.ID}, {ID: ep3, NetworkID: other.ID}}

	// Restart under the set design.
	sets := drained(t, New(e.nl, e.fw, nil, WithSets(e.nl)))
	if err := sets.Reconcile(e.ctx, nets, eps); err != nil {
		t.Fatal(err)
	}
	if why, err := sets.Check(e.ctx); err != nil || why != "" {
		t.Fatalf("after the migration: Check = %q, %v", why, err)
	}
	dump := nstest.IptablesSave(t, e.ipt+"-save") + nstest.IptablesSave(t, "ip6tables-save")
	for _, c := range ruleDesignOnly {
		if strings.Contains(dump, ":"+c+" ") {
			t.Errorf("chain %s of the rule design is left after the migration", c)
		}
	}
	if strings.Contains(dump, "weft:") {
		t.Errorf("per-network (tagged) rules left after the migration:\n%s", dump)
	}
	mustReach(t, c1, c2, peers, c1.addr.String())
	mustNotReach(t, c1, c3)

	// And back: the rule design's Reconcile removes the set design's jump.
	rules := drained(t, New(e.nl, e.fw, nil))
	if err := rules.Reconcile(e.ctx, nets, eps); err != nil {
		t.Fatal(err)
	}
	if why, err := rules.Check(e.ctx); err != nil || why != "" {
		t.Fatalf("after going back: Check = %q, %v", why, err)
	}
	mustReach(t, c1, c2, peers, c1.addr.String())
	mustNotReach(t, c1, c3)
	if dump := nstest.IptablesSave(t, e.ipt+"-save"); strings.Contains(dump, "devgroup") {
		t.Errorf("set design rules left after going back:\n%s", dump)
	}
	// The rule design knows nothing of ipsets (it runs where the kernel has
	// none); here, where the kernel has them, the test removes them.
	for _, ep := range []struct {
		n  dataplane.Network
		id string
	}{{n, ep1}, {n, ep2}, {other, ep3}} {
		if err := rules.DeleteEndpoint(e.ctx, ep.n, dataplane.Endpoint{ID: ep.id, NetworkID: ep.n.ID}); err != nil {
			t.Fatal(err)
		}
	}
	for _, x := range nets {
		if err := rules.DeleteNetwork(e.ctx, x); err != nil {
			t.Fatal(err)
		}
	}
	for _, fam := range []fw.Family{fw.IPv4, fw.IPv6} {
		_ = e.nl.DestroySet(netSet(fam))
		_ = e.nl.DestroySet(masqSet(fam))
	}
	e.assertSame(base, "deleting every network")
}

// TestNetnsTwoInstancesRepairWithoutFighting: two weft instances on one host
// (two plugin aliases) share the fixed rules and the sets. Repair removes
// nothing, so one instance repairing its own objects never takes the
// other's away, and both stay intact.
func TestNetnsTwoInstancesRepairWithoutFighting(t *testing.T) {
	e := newEnvWith(t, envOpts{sets: true})
	other := drained(t, New(e.nl, e.fw, nil, WithSets(e.nl)))
	n1, n2 := netSpec(idA, 1), netSpec(idB, 2)
	e.mustCreate(n1)
	if err := other.CreateNetwork(e.ctx, n2); err != nil {
		t.Fatal(err)
	}
	e.mustCheck("two instances, one network each")
	nstest.Run(t, "ipset", "flush", "weft-net4")
	for _, m := range []*Mode{e.m, other} {
		if why, _ := m.Check(e.ctx); why == "" {
			t.Fatal("Check missed the flushed set")
		}
		if err := m.Repair(e.ctx); err != nil {
			t.Fatal(err)
		}
	}
	for i, m := range []*Mode{e.m, other, e.m} {
		if why, err := m.Check(e.ctx); err != nil || why != "" {
			t.Fatalf("instance %d after both repaired: Check = %q, %v", i%2, why, err)
		}
	}
	if err := other.DeleteNetwork(e.ctx, n2); err != nil {
		t.Fatal(err)
	}
	e.mustCheck("the other instance deleted its network")
	if err := e.m.DeleteNetwork(e.ctx, n1); err != nil {
		t.Fatal(err)
	}
}
