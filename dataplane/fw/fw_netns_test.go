package fw_test

import (
	"os/exec"
	"slices"
	"testing"

	"github.com/weftnet/weft/dataplane/fw"
	"github.com/weftnet/weft/test/nstest"
)

// The Firewall against the real iptables of a throwaway namespace, with the
// back-end chosen by binary.
func TestNetnsFirewall(t *testing.T) {
	for _, bin := range []struct{ v4, v6 string }{
		{"", ""},
		{"iptables-nft", "ip6tables-nft"},
		{"iptables-legacy", "ip6tables-legacy"},
	} {
		name := bin.v4
		if name == "" {
			name = "default"
		}
		t.Run(name, func(t *testing.T) {
			ns := nstest.Setup(t)
			if bin.v4 == "iptables-legacy" {
				nstest.RequireKernelFeature(t, "legacy iptables (ip_tables)", func() error {
					return exec.Command("iptables-legacy", "-S").Run()
				})
			}
			// Every chain and rule exercise makes, it removes: no
			// leftover in either back-end.
			nstest.CheckLeaks(t, ns)
			f, err := fw.New(nil, fw.Binaries(bin.v4, bin.v6))
			if err != nil {
				t.Fatal(err)
			}
			exercise(t, f, fw.IPv4, orDefault(bin.v4, "iptables"))
			exercise(t, f, fw.IPv6, orDefault(bin.v6, "ip6tables"))
			exerciseBatch(t, f, fw.IPv4)
			exerciseBatch(t, f, fw.IPv6)
		})
	}
}

// exercise runs the Firewall's operations in fam; plant is the iptables
// program of the same back-end, for planting foreign rules.
func exercise(t *testing.T, f *fw.Firewall, fam fw.Family, plant string) {
	t.Helper()
	if !f.Has(fam) {
		t.Fatalf("no %s family", fam)
	}
	if _, err := f.Rules(fam, fw.Filter, "WEFT-NOPE"); !fw.IsNotExist(err) {
		t.Fatalf("%s: Rules of a missing chain: %v, want IsNotExist", fam, err)
	}
	for range 2 {
		if err := f.EnsureChain(fam, fw.Filter, "WEFT-T"); err != nil {
			t.Fatal(err)
		}
	}
	r := fw.Rule{Table: fw.Filter, Chain: "WEFT-T", Spec: append(append([]string{"-i", "br0", "!", "-o", "br0", "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED"}, fw.Comment("weft:0123456789ab")...), "-j", "ACCEPT")}
	for i, want := range []bool{true, false} {
		added, err := f.EnsureRule(fam, r)
		if err != nil || added != want {
			t.Fatalf("%s: EnsureRule #%d = %v, %v", fam, i, added, err)
		}
	}
	rules, err := f.Rules(fam, fw.Filter, "WEFT-T")
	if err != nil {
		t.Fatal(err)
	}
	if len(rules) != 1 || !slices.Equal(rules[0], r.Spec) {
		t.Fatalf("%s: read back %q, want %q", fam, rules, r.Spec)
	}
	if id, ok := fw.TagOf(rules[0]); !ok || id != "0123456789ab" {
		t.Fatalf("%s: tag read back as %q", fam, id)
	}

	// A foreign rule above ours is moved below it, twice over.
	jump := fw.Rule{Table: fw.Filter, Chain: "FORWARD", Spec: []string{"-j", "WEFT-T"}}
	if err := f.EnsureFirst(fam, jump); err != nil {
		t.Fatal(err)
	}
	foreign := []string{"-i", "foreign0", "-j", "ACCEPT"}
	nstest.Run(t, plant, append([]string{"-I", "FORWARD", "1"}, foreign...)...)
	for range 2 {
		if err := f.EnsureFirst(fam, jump); err != nil {
			t.Fatal(err)
		}
	}
	if got, _ := f.Rules(fam, fw.Filter, "FORWARD"); !slices.EqualFunc(got, [][]string{jump.Spec, foreign}, slices.Equal) {
		t.Fatalf("%s: FORWARD = %q", fam, got)
	}

	for range 2 {
		if err := f.DeleteRule(fam, jump); err != nil {
			t.Fatal(err)
		}
		if err := f.DeleteRule(fam, r); err != nil {
			t.Fatal(err)
		}
		if err := f.DeleteChain(fam, fw.Filter, "WEFT-T"); err != nil {
			t.Fatal(err)
		}
	}
	if ok, err := exists(f, fam, "WEFT-T"); err != nil || ok {
		t.Fatalf("%s: chain still there (%v)", fam, err)
	}
	nstest.Run(t, plant, append([]string{"-D", "FORWARD"}, foreign...)...)
}

// exerciseBatch adds and deletes rules of two tables in batches (one
// iptables-save and one iptables-restore each): what is there already is
// not added again, a top rule goes first, everything reads back as written,
// and deleting removes every copy.
func exerciseBatch(t *testing.T, f *fw.Firewall, fam fw.Family) {
	t.Helper()
	for _, c := range []struct{ table, chain string }{{fw.Filter, "WEFT-B"}, {fw.NAT, "WEFT-BN"}} {
		if err := f.EnsureChain(fam, c.table, c.chain); err != nil {
			t.Fatal(err)
		}
	}
	first := fw.Rule{Table: fw.Filter, Chain: "WEFT-B", Spec: []string{"-i", "br1", "-j", "DROP"}}
	if _, err := f.EnsureRule(fam, first); err != nil {
		t.Fatal(err)
	}
	changes := []fw.Change{
		{Rule: first},
		{Rule: fw.Rule{Table: fw.Filter, Chain: "WEFT-B", Spec: append(append([]string{"-o", "br1"}, fw.Comment("weft:0123456789ab")...), "-j", "ACCEPT")}},
		{Rule: fw.Rule{Table: fw.Filter, Chain: "WEFT-B", Spec: []string{"-i", "br2", "-j", "RETURN"}}, Top: true},
		{Rule: fw.Rule{Table: fw.NAT, Chain: "WEFT-BN", Spec: []string{"-i", "br1", "-j", "RETURN"}}},
	}
	for i, want := range []int{3, 0} {
		added, err := f.EnsureRules(fam, changes)
		if err != nil || len(added) != want {
			t.Fatalf("%s: EnsureRules #%d added %d (%v), want %d", fam, i, len(added), err, want)
		}
	}
	got, err := f.Rules(fam, fw.Filter, "WEFT-B")
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{changes[2].Spec, first.Spec, changes[1].Spec}
	if !slices.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("%s: WEFT-B = %q, want %q", fam, got, want)
	}
	if _, err := f.EnsureRules(fam, []fw.Change{{Rule: fw.Rule{Table: fw.Filter, Chain: "WEFT-NOPE", Spec: []string{"-j", "ACCEPT"}}}}); err == nil {
		t.Fatalf("%s: EnsureRules into a missing chain succeeded", fam)
	}
	var rules []fw.Rule
	for _, c := range changes {
		rules = append(rules, c.Rule)
	}
	for range 2 {
		if err := f.DeleteRules(fam, rules); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct{ table, chain string }{{fw.Filter, "WEFT-B"}, {fw.NAT, "WEFT-BN"}} {
		if got, _ := f.Rules(fam, c.table, c.chain); len(got) != 0 {
			t.Fatalf("%s: %s left after DeleteRules: %q", fam, c.chain, got)
		}
		if err := f.DeleteChain(fam, c.table, c.chain); err != nil {
			t.Fatal(err)
		}
	}
}

func exists(f *fw.Firewall, fam fw.Family, chain string) (bool, error) {
	_, err := f.Rules(fam, fw.Filter, chain)
	if fw.IsNotExist(err) {
		return false, nil
	}
	return err == nil, err
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
