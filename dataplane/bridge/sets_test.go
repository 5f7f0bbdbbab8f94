package bridge

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/weftnet/weft/dataplane"
	"github.com/weftnet/weft/dataplane/fw"
	"github.com/weftnet/weft/dataplane/nl"
)

// fakeSets is an in-memory ipset: sets by name, each with a type and its
// members.
type fakeSets struct {
	mu   sync.Mutex
	sets map[string]*fakeSet
	// calls counts every call (reads included).
	calls int
	// reading, if set, is called by SetMembers before it reads (without
	// f.mu held).
	reading func()
}

type fakeSet struct {
	typ     string
	members map[nl.SetMember]bool
}

func newFakeSets() *fakeSets { return &fakeSets{sets: map[string]*fakeSet{}} }

func (f *fakeSets) EnsureSet(name, typ string, v6 bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if s, ok := f.sets[name]; ok {
		if s.typ != typ {
			return fmt.Errorf("set %s exists with type %s", name, s.typ)
		}
		return nil
	}
	f.sets[name] = &fakeSet{typ: typ, members: map[nl.SetMember]bool{}}
	return nil
}

func (f *fakeSets) SetAdd(set string, m nl.SetMember) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	s, ok := f.sets[set]
	if !ok {
		return fmt.Errorf("adding to ipset %s: %w", set, nl.ErrSetNotFound)
	}
	if (m.Iface != "") != (s.typ == "hash:net,iface") {
		return fmt.Errorf("member %s does not fit %s (%s)", m, set, s.typ)
	}
	s.members[m] = true
	return nil
}

func (f *fakeSets) SetDel(set string, m nl.SetMember) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if s, ok := f.sets[set]; ok {
		delete(s.members, m)
	}
	return nil
}

func (f *fakeSets) SetMembers(set string) ([]nl.SetMember, error) {
	f.mu.Lock()
	hook := f.reading
	f.mu.Unlock()
	if hook != nil {
		hook()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	s, ok := f.sets[set]
	if !ok {
		return nil, fmt.Errorf("listing ipset %s: %w", set, nl.ErrSetNotFound)
	}
	var out []nl.SetMember
	for m := range s.members {
		out = append(out, m)
	}
	return out, nil
}

func (f *fakeSets) DestroySet(set string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	delete(f.sets, set)
	return nil
}

// dump renders every set and its members, sorted, like ipset save.
func (f *fakeSets) dump() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var lines []string
	for name, s := range f.sets {
		lines = append(lines, "create "+name+" "+s.typ)
		for m := range s.members {
			lines = append(lines, "add "+name+" "+m.String())
		}
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n") + "\n"
}

// newSetMode returns a set-design Mode without netlink over fakes.
func newSetMode(t *testing.T, withV6 bool) (*Mode, *fw.Fake, *fw.Fake, *fakeSets) {
	t.Helper()
	sets := newFakeSets()
	m, v4, v6 := newFirewallMode(t, withV6, WithSets(sets))
	return m, v4, v6, sets
}

// TestSetDesignGolden: the set design's rules are the same whatever the
// networks; only set members differ. One golden dump per option combination
// would all be equal, so the test checks that and keeps one.
func TestSetDesignGolden(t *testing.T) {
	var first string
	for _, tc := range []struct {
		name string
		mut  func(*dataplane.Network)
	}{
		{"default", func(*dataplane.Network) {}},
		{"icc-off", func(n *dataplane.Network) { n.Bridge.EnableICC = false }},
		{"masquerade-off", func(n *dataplane.Network) { n.Bridge.Masquerade = false }},
		{"internal", func(n *dataplane.Network) { n.Internal = true }},
		{"ipv6", withIPv6},
		{"ipv6-routed", func(n *dataplane.Network) {
			withIPv6(n)
			n.Bridge.GatewayModeIPv6 = dataplane.GatewayModeRouted
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, v4, v6, sets := newSetMode(t, true)
			applyNetwork(t, m, testNet(idA, 1, tc.mut))
			rules := "# iptables\n" + v4.Dump() + "# ip6tables\n" + v6.Dump()
			if first == "" {
				first = rules
				golden(t, "sets-rules.golden", rules)
			} else if rules != first {
				t.Errorf("option %s changed the rules:\n%s\nwant (as for the default):\n%s", tc.name, rules, first)
			}
			golden(t, "sets-members-"+tc.name+".golden", sets.dump())
		})
	}
}

// TestSetDesignNetworksRunNoIptables: once the base exists, creating and
// deleting networks runs no iptables at all, for the 2nd network as for the
// 200th; the set work is a fixed handful of calls per network.
func TestSetDesignNetworksRunNoIptables(t *testing.T) {
	v4 := fw.NewFake()
	v4.SetRules("filter", ChainDockerUser, []string{"-j", "RETURN"})
	ct := &countingTables{Tables: v4}
	sets := newFakeSets()
	m := New(nil, fw.NewWithTables(nil, ct, nil), nil, WithSets(sets))
	applyNetwork(t, m, testNet(idA, 1))
	first := ct.runs
	var callsPerNet []int
	for i := 2; i <= 200; i++ {
		id := fmt.Sprintf("%010x", 0xa000000000+i) + strings.Repeat("0", 54)
		n := testNet(id, byte(i))
		before, calls := ct.runs, sets.calls
		applyNetwork(t, m, n)
		if ct.runs != before {
			t.Fatalf("network %d ran iptables %d times, want 0", i, ct.runs-before)
		}
		callsPerNet = append(callsPerNet, sets.calls-calls)
	}
	if slices.Min(callsPerNet) != slices.Max(callsPerNet) {
		t.Errorf("set calls per network vary with the number of networks: %v", callsPerNet)
	}
	t.Logf("iptables runs: 1st network %d (the base), later networks 0; set calls per network %d", first, callsPerNet[0])
}

// TestSetDesignCheckAndTeardown: Check notices a missing set member and a
// flushed WEFT-FORWARD; deleting the last network leaves nothing of weft.
// TestCheckReadsWithoutTheLock: Check reads the kernel without holding the
// mode's lock, so a network create is not held up by its dumps.
func TestCheckReadsWithoutTheLock(t *testing.T) {
	m, v4, _, sets := newSetMode(t, true)
	v4.SetRules("filter", ChainDockerUser, []string{"-j", "RETURN"})
	n := testNet(idA, 1)
	applyNetwork(t, m, n)
	m.nets[n.ID] = n
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	sets.mu.Lock()
	sets.reading = func() {
		once.Do(func() { close(entered); <-release })
	}
	sets.mu.Unlock()
	type result struct {
		why string
		err error
	}
	done := make(chan result, 1)
	go func() {
		why, err := m.Check(t.Context())
		done <- result{why, err}
	}()
	<-entered
	locked := m.mu.TryLock()
	if locked {
		m.mu.Unlock()
	}
	close(release)
	r := <-done
	if !locked {
		t.Error("Check held the mode's lock while it read the kernel")
	}
	if r.err != nil || r.why != "" {
		t.Fatalf("Check = %q, %v; want nothing missing", r.why, r.err)
	}
}

func TestSetDesignCheckAndTeardown(t *testing.T) {
	m, v4, v6, sets := newSetMode(t, true)
	v4.SetRules("filter", ChainDockerUser, []string{"-j", "RETURN"})
	baseline := v4.Dump()
	n1, n2 := testNet(idA, 1), testNet(idB, 2, withIPv6)
	for _, n := range []dataplane.Network{n1, n2} {
		applyNetwork(t, m, n)
		m.nets[n.ID] = n
	}
	check := func(what string, wantMissing bool) {
		t.Helper()
		why, err := m.Check(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if (why != "") != wantMissing {
			t.Fatalf("%s: Check = %q", what, why)
		}
	}
	check("after creating", false)
	if err := sets.SetDel(netSet(fw.IPv6), nl.SetMember{Net: n2.IPv6[0].Pool, Iface: bridgeName(n2)}); err != nil {
		t.Fatal(err)
	}
	check("a member gone", true)
	var u undo
	if err := m.ensureRules(n2, &u); err != nil {
		t.Fatal(err)
	}
	check("the member back", false)
	if err := v4.ClearChain("filter", ChainForward); err != nil {
		t.Fatal(err)
	}
	check("WEFT-FORWARD flushed", true)
	if err := m.buildBase(fw.IPv4); err != nil {
		t.Fatal(err)
	}
	check("the base rebuilt", false)

	for _, n := range []dataplane.Network{n1, n2} {
		delete(m.nets, n.ID)
		if err := m.deleteRules(n); err != nil {
			t.Fatal(err)
		}
		for _, fam := range m.families(n) {
			if err := m.teardownIfIdle(fam); err != nil {
				t.Fatal(err)
			}
		}
	}
	if got := v4.Dump(); got != baseline {
		t.Errorf("after the last network:\n%s\nwant the baseline:\n%s", got, baseline)
	}
	if got := v6.Dump(); got != "" {
		t.Errorf("ip6tables after the last network:\n%s", got)
	}
	if got := sets.dump(); got != "\n" {
		t.Errorf("ipsets after the last network:\n%s", got)
	}
}

// TestSetDesignMigrationSweepsRuleDesign: reconciling the set design over a
// firewall the rule design made leaves exactly what the set design makes on
// a fresh host (no per-network chains, no tagged rules).
func TestSetDesignMigrationSweepsRuleDesign(t *testing.T) {
	old, v4, _ := newFirewallMode(t, false)
	nets := []dataplane.Network{testNet(idA, 1), testNet(idB, 2, func(n *dataplane.Network) { n.Internal = true })}
	for _, n := range nets {
		applyNetwork(t, old, n)
	}
	sets := newFakeSets()
	m := New(nil, fw.NewWithTables(nil, v4, nil), nil, WithSets(sets))
	known := map[string]bool{}
	for _, n := range nets {
		known[strings.TrimPrefix(fw.Tag(n.ID), fw.TagPrefix)] = true
	}
	if _, err := m.reconcileRules(nets, known, nil); err != nil {
		t.Fatal(err)
	}
	fresh, fv4, _, _ := newSetMode(t, false)
	for _, n := range nets {
		applyNetwork(t, fresh, n)
	}
	if got, want := v4.Dump(), fv4.Dump(); got != want {
		t.Errorf("after the migration:\n%s\nwant (as on a fresh host):\n%s", got, want)
	}
}
