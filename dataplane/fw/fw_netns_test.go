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
