package bridge

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/weftnet/weft/dataplane"
	"github.com/weftnet/weft/dataplane/fw"
)

// applyNetwork does CreateNetwork's firewall work.
func applyNetwork(t *testing.T, m *Mode, n dataplane.Network) {
	t.Helper()
	for _, fam := range m.families(n) {
		if err := m.ensureBase(fam); err != nil {
			t.Fatal(err)
		}
	}
	var u undo
	if err := m.ensureRules(n, &u); err != nil {
		t.Fatal(err)
	}
}

// TestRuleGeneration checks the complete firewall state (a golden iptables -S
// dump of the fake) for every combination of the bridge options.
func TestRuleGeneration(t *testing.T) {
	for _, tc := range []struct {
		name string
		mut  func(*dataplane.Network)
	}{
		{"default", func(*dataplane.Network) {}},
		{"icc-off", func(n *dataplane.Network) { n.Bridge.EnableICC = false }},
		{"masquerade-off", func(n *dataplane.Network) { n.Bridge.Masquerade = false }},
		{"icc-off-masquerade-off", func(n *dataplane.Network) { n.Bridge.EnableICC, n.Bridge.Masquerade = false, false }},
		{"internal", func(n *dataplane.Network) { n.Internal = true }},
		{"internal-icc-off", func(n *dataplane.Network) { n.Internal, n.Bridge.EnableICC = true, false }},
		{"user-name-two-pools", func(n *dataplane.Network) {
			n.Bridge.Name = "br-lan"
			n.IPv4 = append(n.IPv4, dataplane.Subnet{Pool: netip.MustParsePrefix("192.168.7.0/24"), Gateway: netip.MustParseAddr("192.168.7.1")})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, v4, _ := newFirewallMode(t, false)
			applyNetwork(t, m, testNet(idA, 1, tc.mut))
			golden(t, "rules-"+tc.name+".golden", v4.Dump())
		})
	}
}

func TestRuleGenerationIPv6(t *testing.T) {
	m, v4, v6 := newFirewallMode(t, true)
	applyNetwork(t, m, testNet(idA, 1, withIPv6))
	golden(t, "rules-ipv6.golden", "# iptables\n"+v4.Dump()+"# ip6tables\n"+v6.Dump())
}

// TestRulesAreO1 checks that adding or removing a network only appends or
// deletes its own rules: no chain is rewritten, the count does not depend on
// how many networks exist.
func TestRulesAreO1(t *testing.T) {
	m, v4, _ := newFirewallMode(t, false)
	applyNetwork(t, m, testNet(idA, 1))
	applyNetwork(t, m, testNet(idB, 2))
	n := testNet(idC, 3)
	want := len(networkRules(n, fw.IPv4, m.dockerBridges))
	if want > 12 {
		t.Fatalf("%d rules for one network", want)
	}

	before := v4.Mutations
	applyNetwork(t, m, n)
	if got := v4.Mutations - before; got != want {
		t.Errorf("creating a third network made %d changes, want %d (its own rules only)", got, want)
	}
	before = v4.Mutations
	applyNetwork(t, m, n)
	if got := v4.Mutations - before; got != 0 {
		t.Errorf("re-creating an existing network made %d changes, want 0", got)
	}
	before = v4.Mutations
	if err := m.deleteRules(n); err != nil {
		t.Fatal(err)
	}
	if err := m.teardownIfIdle(fw.IPv4); err != nil {
		t.Fatal(err)
	}
	if got := v4.Mutations - before; got != want {
		t.Errorf("deleting a network made %d changes, want %d", got, want)
	}
}

// TestDeleteLastNetworkRestoresBaseline checks that the last network's
// deletion leaves exactly what was there before weft (Docker-like foreign
// rules included), and that deleting twice is fine.
func TestDeleteLastNetworkRestoresBaseline(t *testing.T) {
	m, v4, v6 := newFirewallMode(t, true)
	for _, f := range []*fw.Fake{v4, v6} {
		f.SetRules("filter", "DOCKER-USER", []string{"-j", "RETURN"})
		f.SetRules("filter", "FORWARD", []string{"-j", "DOCKER-USER"}, []string{"-i", "docker0", "-j", "ACCEPT"})
		f.SetRules("nat", "POSTROUTING", []string{"-s", "172.17.0.0/16", "!", "-o", "docker0", "-j", "MASQUERADE"})
	}
	base4, base6 := v4.Dump(), v6.Dump()

	a, b := testNet(idA, 1, withIPv6), testNet(idB, 2)
	applyNetwork(t, m, a)
	applyNetwork(t, m, b)
	for range 2 {
		if err := m.deleteRules(a); err != nil {
			t.Fatal(err)
		}
		for _, fam := range m.families(a) {
			if err := m.teardownIfIdle(fam); err != nil {
				t.Fatal(err)
			}
		}
	}
	if v4.Dump() == base4 || v6.Dump() == base6 {
		t.Fatal("chains removed while network B (IPv4-only, with IPv6 rules) still uses them")
	}
	for range 2 {
		if err := m.deleteRules(b); err != nil {
			t.Fatal(err)
		}
		for _, fam := range m.families(b) {
			if err := m.teardownIfIdle(fam); err != nil {
				t.Fatal(err)
			}
		}
	}
	if v4.Dump() != base4 {
		t.Errorf("iptables after deleting every network:\n%s\nwant:\n%s", v4.Dump(), base4)
	}
	if v6.Dump() != base6 {
		t.Errorf("ip6tables after deleting every network:\n%s\nwant:\n%s", v6.Dump(), base6)
	}
}

// TestTeardownKeepsChainsWithForeignRules: a rule weft does not recognise
// keeps the chains (and what they need) in place.
func TestTeardownKeepsChainsWithForeignRules(t *testing.T) {
	m, v4, _ := newFirewallMode(t, false)
	n := testNet(idA, 1)
	applyNetwork(t, m, n)
	if err := v4.Append("filter", ChainPorts, "-d", "10.1.0.9/32", "-j", "ACCEPT"); err != nil {
		t.Fatal(err)
	}
	if err := m.deleteRules(n); err != nil {
		t.Fatal(err)
	}
	if err := m.teardownIfIdle(fw.IPv4); err != nil {
		t.Fatal(err)
	}
	if ok, _ := v4.ChainExists("filter", ChainForward); !ok {
		t.Fatal("weft chains removed although WEFT-PORTS holds a rule weft does not know")
	}
}

// TestBaseJumpMovedBackToTop: building the base (as Reconcile does at start)
// puts our FORWARD jump back at the top, once.
func TestBaseJumpMovedBackToTop(t *testing.T) {
	m, v4, _ := newFirewallMode(t, false)
	applyNetwork(t, m, testNet(idA, 1))
	// dockerd (re)starts and inserts its own jumps above ours.
	v4.SetRules("filter", "DOCKER-USER", []string{"-j", "RETURN"})
	if err := v4.Insert("filter", "FORWARD", 1, "-j", "DOCKER-USER"); err != nil {
		t.Fatal(err)
	}
	if err := v4.Append("filter", "FORWARD", "-j", ChainForward); err != nil { // a stray second copy
		t.Fatal(err)
	}
	if err := m.buildBase(fw.IPv4); err != nil {
		t.Fatal(err)
	}
	rules, err := m.fw.Rules(fw.IPv4, "filter", "FORWARD")
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{{"-j", ChainForward}, {"-j", "DOCKER-USER"}}
	if !slices.EqualFunc(rules, want, slices.Equal) {
		t.Fatalf("FORWARD = %v, want %v", rules, want)
	}
}

// TestSkeletonRepaired: building the base (as Reconcile does at start)
// restores a damaged WEFT-FORWARD skeleton.
func TestSkeletonRepaired(t *testing.T) {
	m, v4, _ := newFirewallMode(t, false)
	applyNetwork(t, m, testNet(idA, 1))
	want := v4.Dump()
	if err := v4.Delete("filter", ChainForward, "-j", ChainICC); err != nil {
		t.Fatal(err)
	}
	if err := v4.Append("filter", ChainForward, "-j", ChainICC); err != nil { // now last: wrong order
		t.Fatal(err)
	}
	if err := m.buildBase(fw.IPv4); err != nil {
		t.Fatal(err)
	}
	if got := v4.Dump(); got != want {
		t.Fatalf("skeleton not repaired:\n%s\nwant:\n%s", got, want)
	}
}

// TestReconcileRules: rules of unknown networks go, known networks' rules
// stay (and are completed), stale and duplicate rules of known networks go,
// untagged rules stay, and WEFT-PORTS keeps known networks' rules.
func TestReconcileRules(t *testing.T) {
	m, v4, _ := newFirewallMode(t, false)
	a, b := testNet(idA, 1), testNet(idB, 2)
	applyNetwork(t, m, a)
	applyNetwork(t, m, b)
	want := func() string {
		m2, f2, _ := newFirewallMode(t, false)
		applyNetwork(t, m2, a)
		if err := f2.Append("filter", ChainICC, "-i", "foreign0", "-j", "ACCEPT"); err != nil {
			t.Fatal(err)
		}
		if err := f2.Append("filter", ChainPorts, append(append([]string{"-d", "10.1.0.5/32", "-o", a.Bridge.Name, "-p", "tcp", "-m", "tcp", "--dport", "80"}, fw.Comment(fw.Tag(a.ID))...), "-j", "ACCEPT")...); err != nil {
			t.Fatal(err)
		}
		return f2.Dump()
	}()

	tagA, tagB := fw.Comment(fw.Tag(a.ID)), fw.Comment(fw.Tag(b.ID))
	mustAppend := func(chain string, spec ...string) {
		t.Helper()
		if err := v4.Append("filter", chain, spec...); err != nil {
			t.Fatal(err)
		}
	}
	mustAppend(ChainICC, "-i", "foreign0", "-j", "ACCEPT")                                               // untagged: not ours
	mustAppend(ChainICC, append(append([]string{"-i", "old", "-o", "old"}, tagA...), "-j", "ACCEPT")...) // stale rule of A
	mustAppend(ChainPorts, append(append([]string{"-d", "10.1.0.5/32", "-o", a.Bridge.Name, "-p", "tcp", "-m", "tcp", "--dport", "80"}, tagA...), "-j", "ACCEPT")...)
	mustAppend(ChainPorts, append(append([]string{"-d", "10.2.0.5/32", "-o", b.Bridge.Name, "-p", "tcp", "-m", "tcp", "--dport", "80"}, tagB...), "-j", "ACCEPT")...)
	dup := networkRules(a, fw.IPv4, m.dockerBridges)[0]
	mustAppend(dup.Chain, dup.Spec...) // a duplicate of A's ICC rule
	missing := networkRules(a, fw.IPv4, m.dockerBridges)[3]
	if err := v4.Delete(missing.Table, missing.Chain, missing.Spec...); err != nil { // and a missing one
		t.Fatal(err)
	}

	for range 2 {
		used, err := m.reconcileRules([]dataplane.Network{a}, map[string]bool{dataplane.ShortID(a.ID): true}, nil)
		if err != nil {
			t.Fatal(err)
		}
		var u undo
		if err := m.ensureRules(a, &u); err != nil {
			t.Fatal(err)
		}
		if err := m.teardownUnused(used); err != nil {
			t.Fatal(err)
		}
	}
	// The order of per-network rules within a chain does not matter.
	if got := sortedLines(v4.Dump()); got != sortedLines(want) {
		t.Fatalf("after reconcile (sorted):\n%s\nwant:\n%s", got, sortedLines(want))
	}
	if strings.Contains(v4.Dump(), fw.Tag(b.ID)) {
		t.Fatal("rules of the unknown network survived")
	}
}

// TestReconcileNothingKnown removes every weft rule and then the chains.
func TestReconcileNothingKnown(t *testing.T) {
	m, v4, _ := newFirewallMode(t, false)
	applyNetwork(t, m, testNet(idA, 1))
	applyNetwork(t, m, testNet(idB, 2, func(n *dataplane.Network) { n.Internal = true }))
	used, err := m.reconcileRules(nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.teardownUnused(used); err != nil {
		t.Fatal(err)
	}
	if got := v4.Dump(); got != "" {
		t.Fatalf("left behind:\n%s", got)
	}
}

// TestReconcileLeavesUnmanaged: a listed network that fails validation keeps
// its rules.
func TestReconcileLeavesUnmanaged(t *testing.T) {
	m, v4, _ := newFirewallMode(t, false)
	a := testNet(idA, 1)
	applyNetwork(t, m, a)
	want := v4.Dump()
	if _, err := m.reconcileRules(nil, nil, map[string]bool{dataplane.ShortID(a.ID): true}); err != nil {
		t.Fatal(err)
	}
	if got := v4.Dump(); got != want {
		t.Fatalf("rules of an unmanaged network changed:\n%s\nwant:\n%s", got, want)
	}
}

func TestEnsureRulesUndo(t *testing.T) {
	m, v4, _ := newFirewallMode(t, false)
	applyNetwork(t, m, testNet(idA, 1))
	want := v4.Dump()
	v4.Fail = func(op, table, chain string, spec []string) error {
		if op == "append" && chain == ChainIngress {
			return errFake
		}
		return nil
	}
	var u undo
	if err := m.ensureRules(testNet(idB, 2), &u); err == nil {
		t.Fatal("ensureRules did not report the failure")
	}
	u.run(m.log)
	if got := v4.Dump(); got != want {
		t.Fatalf("undo left:\n%s\nwant:\n%s", got, want)
	}
}

func sortedLines(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	slices.Sort(lines)
	return strings.Join(lines, "\n") + "\n"
}

// TestHookedIntoDockerUser covers dockerd inserting its FORWARD rules above
// weft's jump after weft set up: the DOCKER-USER hook keeps weft first.
func TestHookedIntoDockerUser(t *testing.T) {
	m, v4, _ := newFirewallMode(t, false)
	applyNetwork(t, m, testNet(idA, 1))
	if _, err := v4.List("filter", ChainDockerUser); err == nil {
		t.Fatal("weft created Docker's DOCKER-USER chain")
	}
	v4.SetRules("filter", ChainDockerUser, []string{"-j", "RETURN"})
	applyNetwork(t, m, testNet(idB, 2))
	rules, err := m.fw.Rules(fw.IPv4, "filter", ChainDockerUser)
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{{"-j", ChainForward}, {"-j", "RETURN"}}
	if !slices.EqualFunc(rules, want, slices.Equal) {
		t.Fatalf("DOCKER-USER = %v, want %v", rules, want)
	}
	for i, id := range []string{idA, idB} {
		if err := m.deleteRules(testNet(id, byte(i+1))); err != nil {
			t.Fatal(err)
		}
		if err := m.teardownIfIdle(fw.IPv4); err != nil {
			t.Fatal(err)
		}
	}
	rules, err = m.fw.Rules(fw.IPv4, "filter", ChainDockerUser)
	if err != nil || !slices.EqualFunc(rules, [][]string{{"-j", "RETURN"}}, slices.Equal) {
		t.Fatalf("after the last network DOCKER-USER = %v (%v); want only Docker's rule", rules, err)
	}
}

// countingTables counts every iptables run the firewall makes.
type countingTables struct {
	fw.Tables
	runs int
}

func (c *countingTables) Exists(table, chain string, spec ...string) (bool, error) {
	c.runs++
	return c.Tables.Exists(table, chain, spec...)
}
func (c *countingTables) Append(table, chain string, spec ...string) error {
	c.runs++
	return c.Tables.Append(table, chain, spec...)
}
func (c *countingTables) Insert(table, chain string, pos int, spec ...string) error {
	c.runs++
	return c.Tables.Insert(table, chain, pos, spec...)
}
func (c *countingTables) Delete(table, chain string, spec ...string) error {
	c.runs++
	return c.Tables.Delete(table, chain, spec...)
}
func (c *countingTables) List(table, chain string) ([]string, error) {
	c.runs++
	return c.Tables.List(table, chain)
}
func (c *countingTables) ChainExists(table, chain string) (bool, error) {
	c.runs++
	return c.Tables.ChainExists(table, chain)
}
func (c *countingTables) NewChain(table, chain string) error {
	c.runs++
	return c.Tables.NewChain(table, chain)
}
func (c *countingTables) ClearChain(table, chain string) error {
	c.runs++
	return c.Tables.ClearChain(table, chain)
}
func (c *countingTables) DeleteChain(table, chain string) error {
	c.runs++
	return c.Tables.DeleteChain(table, chain)
}

// TestLaterNetworksCheckBaseCheaply: every iptables run reads the whole rule
// set (nft back-end), so once the base is built a network create only reads
// FORWARD and DOCKER-USER, and its firewall work is its own rules plus those
// two reads — the same for the 2nd and the 50th network.
func TestLaterNetworksCheckBaseCheaply(t *testing.T) {
	v4 := fw.NewFake()
	v4.SetRules("filter", ChainDockerUser, []string{"-j", "RETURN"})
	ct := &countingTables{Tables: v4}
	m := New(nil, fw.NewWithTables(nil, ct, nil), nil)
	create := func(n dataplane.Network) int {
		t.Helper()
		before := ct.runs
		applyNetwork(t, m, n)
		return ct.runs - before
	}
	first := create(testNet(idA, 1))
	perNetwork := 2 * len(networkRules(testNet(idB, 2), fw.IPv4, m.dockerBridges)) // -C and -A (or -I) each
	second := create(testNet(idB, 2))
	if want := perNetwork + 2; second != want {
		t.Errorf("the 2nd network took %d iptables runs, want %d (its rules, checked and added, plus 2 reads); the 1st took %d", second, want, first)
	}
	for i := 3; i <= 50; i++ {
		id := fmt.Sprintf("%010x", 0xa000000000+i) + strings.Repeat("0", 54)
		if got := create(testNet(id, byte(i))); got != second {
			t.Fatalf("network %d took %d iptables runs, the 2nd %d", i, got, second)
		}
	}
	t.Logf("iptables runs: 1st network %d, later networks %d", first, second)
	if first <= second {
		t.Errorf("the 1st network took %d iptables runs, not more than the 2nd (%d): is the base built at all?", first, second)
	}
}

// TestFlushedBaseRebuilt: a flush of the kernel's chains (or of weft's)
// removes the FORWARD jump first of all; the next network create notices and
// builds the whole base again.
func TestFlushedBaseRebuilt(t *testing.T) {
	m, v4, _ := newFirewallMode(t, false)
	applyNetwork(t, m, testNet(idA, 1))
	for _, c := range []string{"FORWARD", ChainForward, ChainIsolation2} {
		if err := v4.ClearChain("filter", c); err != nil {
			t.Fatal(err)
		}
	}
	applyNetwork(t, m, testNet(idB, 2))
	fresh, fv4, _ := newFirewallMode(t, false)
	applyNetwork(t, fresh, testNet(idB, 2))
	for _, c := range []string{"FORWARD", ChainForward, ChainIsolation2} {
		got, _ := v4.List("filter", c)
		want, _ := fv4.List("filter", c)
		if !slices.Equal(got, want) {
			t.Errorf("chain %s after the flush and a new network:\n%s\nwant (as on a fresh host):\n%s", c, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
}

// TestDockerAboveUsInForward: dockerd inserts its own FORWARD rules at the
// top whenever it creates a network. With DOCKER-USER (which dockerd keeps
// first) starting with our hook, weft's rules still come first, so a network
// create neither rebuilds the base nor fights dockerd for FORWARD's top.
func TestDockerAboveUsInForward(t *testing.T) {
	v4 := fw.NewFake()
	v4.SetRules("filter", ChainDockerUser, []string{"-j", "RETURN"})
	ct := &countingTables{Tables: v4}
	m := New(nil, fw.NewWithTables(nil, ct, nil), nil)
	applyNetwork(t, m, testNet(idA, 1))
	if err := v4.Insert("filter", "FORWARD", 1, "-j", "DOCKER-USER"); err != nil {
		t.Fatal(err)
	}
	before := ct.runs
	applyNetwork(t, m, testNet(idB, 2))
	if got, want := ct.runs-before, 2*len(networkRules(testNet(idB, 2), fw.IPv4, m.dockerBridges))+2; got != want {
		t.Errorf("the network create took %d iptables runs, want %d (no rebuild)", got, want)
	}
	forward, _ := m.fw.Rules(fw.IPv4, "filter", "FORWARD")
	if want := [][]string{{"-j", "DOCKER-USER"}, {"-j", ChainForward}}; !slices.EqualFunc(forward, want, slices.Equal) {
		t.Errorf("FORWARD = %v, want %v", forward, want)
	}
	// Without the hook (someone removed it), the create puts it back: weft
	// comes first again.
	v4.SetRules("filter", ChainDockerUser, []string{"-j", "RETURN"})
	if err := v4.Delete("filter", "FORWARD", "-j", "DOCKER-USER"); err != nil {
		t.Fatal(err)
	}
	if err := v4.Insert("filter", "FORWARD", 1, "-j", "DOCKER-USER"); err != nil {
		t.Fatal(err)
	}
	applyNetwork(t, m, testNet(idC, 3))
	user, _ := m.fw.Rules(fw.IPv4, "filter", ChainDockerUser)
	if len(user) == 0 || !slices.Equal(user[0], dockerUserJump().Spec) {
		t.Errorf("DOCKER-USER = %v: our hook is not first again", user)
	}
}
