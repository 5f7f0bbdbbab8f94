package fw

import (
	"errors"
	"slices"
	"testing"
)

func TestSplitJoinRoundTrip(t *testing.T) {
	for _, spec := range [][]string{
		{"-i", "br0", "-o", "br0", "-m", "comment", "--comment", "weft:0123456789ab", "-j", "ACCEPT"},
		{"-i", "br0", "!", "-o", "br0", "-m", "comment", "--comment", "a comment with \"quotes\" and \\", "-j", "DROP"},
		{"-s", "10.0.0.0/24", "!", "-o", "br-+", "-j", "MASQUERADE"},
	} {
		if got := Split(Join(spec)); !slices.Equal(got, spec) {
			t.Errorf("Split(Join(%q)) = %q", spec, got)
		}
	}
	// What iptables -S really prints.
	got := Split(`-A WEFT-ICC -i br0 -o br0 -m comment --comment "weft:0123456789ab" -j ACCEPT`)
	want := []string{"-A", "WEFT-ICC", "-i", "br0", "-o", "br0", "-m", "comment", "--comment", "weft:0123456789ab", "-j", "ACCEPT"}
	if !slices.Equal(got, want) {
		t.Errorf("Split = %q", got)
	}
}

func TestTags(t *testing.T) {
	id := "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	if Tag(id) != "weft:0123456789ab" {
		t.Fatalf("Tag = %q", Tag(id))
	}
	spec := append(append([]string{"-o", "br0"}, Comment(Tag(id))...), "-j", "DROP")
	if got, ok := TagOf(spec); !ok || got != "0123456789ab" {
		t.Fatalf("TagOf = %q, %v", got, ok)
	}
	for _, s := range [][]string{
		{"-o", "br0", "-j", "DROP"},
		{"-m", "comment", "--comment", "docker rule", "-j", "DROP"},
		{"-m", "comment", "--comment", "weft:"},
	} {
		if _, ok := TagOf(s); ok {
			t.Errorf("TagOf(%q) found a weft tag", s)
		}
	}
}

func TestFakeBehavesLikeIptables(t *testing.T) {
	f := NewFake()
	if err := f.Append("filter", "FORWARD", "-j", "MISSING"); err == nil {
		t.Error("jump to a missing chain accepted")
	}
	if err := f.NewChain("filter", "A"); err != nil {
		t.Fatal(err)
	}
	if err := f.NewChain("filter", "A"); err == nil || IsNotExist(err) {
		t.Errorf("second NewChain: %v", err)
	}
	if err := f.Append("filter", "FORWARD", "-j", "A"); err != nil {
		t.Fatal(err)
	}
	if err := f.DeleteChain("filter", "A"); err == nil {
		t.Error("deleted a referenced chain")
	}
	if err := f.Delete("filter", "FORWARD", "-j", "B"); !IsNotExist(err) {
		t.Errorf("deleting a missing rule: %v, want a not-exist error", err)
	}
	if ok, err := f.Exists("filter", "NOPE", "-j", "ACCEPT"); ok || err != nil {
		t.Errorf("Exists in a missing chain = %v, %v", ok, err)
	}
	if _, err := f.List("filter", "NOPE"); !IsNotExist(err) {
		t.Errorf("List of a missing chain: %v", err)
	}
	if err := f.Insert("filter", "FORWARD", 3, "-j", "ACCEPT"); err == nil {
		t.Error("insert beyond the end accepted")
	}
	if err := f.DeleteChain("filter", "FORWARD"); err == nil {
		t.Error("deleted a built-in chain")
	}
}

func TestFirewallOperations(t *testing.T) {
	f := NewFake()
	fw := NewWithTables(nil, f, nil)
	if fw.Has(IPv6) {
		t.Fatal("Has(IPv6) without ip6tables")
	}
	if err := fw.EnsureChain(IPv4, Filter, "WEFT-X"); err != nil {
		t.Fatal(err)
	}
	if err := fw.EnsureChain(IPv4, Filter, "WEFT-X"); err != nil {
		t.Fatal(err)
	}
	r := Rule{Table: Filter, Chain: "WEFT-X", Spec: []string{"-i", "a", "-j", "ACCEPT"}}
	if added, err := fw.EnsureRule(IPv4, r); err != nil || !added {
		t.Fatalf("EnsureRule = %v, %v", added, err)
	}
	if added, err := fw.EnsureRule(IPv4, r); err != nil || added {
		t.Fatalf("second EnsureRule = %v, %v", added, err)
	}
	_ = f.Append(Filter, "WEFT-X", r.Spec...) // a duplicate
	if err := fw.DeleteRule(IPv4, r); err != nil {
		t.Fatal(err)
	}
	if rules, _ := fw.Rules(IPv4, Filter, "WEFT-X"); len(rules) != 0 {
		t.Fatalf("DeleteRule left %q", rules)
	}
	if err := fw.DeleteRule(IPv4, r); err != nil {
		t.Fatalf("deleting a missing rule: %v", err)
	}

	seq := [][]string{{"-j", "ACCEPT"}, {"-j", "DROP"}}
	for range 2 {
		if err := fw.EnsureSequence(IPv4, Filter, "WEFT-SEQ", seq); err != nil {
			t.Fatal(err)
		}
	}
	if got, _ := fw.Rules(IPv4, Filter, "WEFT-SEQ"); !slices.EqualFunc(got, seq, slices.Equal) {
		t.Fatalf("sequence = %q", got)
	}

	jump := Rule{Table: Filter, Chain: "FORWARD", Spec: []string{"-j", "WEFT-X"}}
	_ = f.Append(Filter, "FORWARD", "-j", "DROP")
	for range 2 {
		if err := fw.EnsureFirst(IPv4, jump); err != nil {
			t.Fatal(err)
		}
	}
	got, _ := fw.Rules(IPv4, Filter, "FORWARD")
	if want := [][]string{{"-j", "WEFT-X"}, {"-j", "DROP"}}; !slices.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("FORWARD = %q, want %q", got, want)
	}

	if _, err := fw.Rules(IPv4, Filter, "NOPE"); !IsNotExist(err) {
		t.Fatalf("Rules of a missing chain: %v", err)
	}
	if err := fw.DeleteChain(IPv4, Filter, "NOPE"); err != nil {
		t.Fatalf("deleting a missing chain: %v", err)
	}
	if _, err := fw.EnsureRule(IPv6, r); err == nil {
		t.Fatal("IPv6 rule accepted without ip6tables")
	}
}

func TestFailHook(t *testing.T) {
	f := NewFake()
	boom := errors.New("boom")
	f.Fail = func(op, table, chain string, spec []string) error {
		if op == "newchain" {
			return boom
		}
		return nil
	}
	fw := NewWithTables(nil, f, nil)
	if err := fw.EnsureChain(IPv4, Filter, "X"); !errors.Is(err, boom) {
		t.Fatalf("EnsureChain = %v, want the injected failure", err)
	}
}

func TestEnsureInserted(t *testing.T) {
	f := NewFake()
	fw := NewWithTables(nil, f, nil)
	if err := fw.EnsureChain(IPv4, NAT, "WEFT-D"); err != nil {
		t.Fatal(err)
	}
	item := Rule{Table: NAT, Chain: "WEFT-D", Spec: []string{"-p", "tcp", "-j", "ACCEPT"}}
	ret := Rule{Table: NAT, Chain: "WEFT-D", Spec: []string{"-i", "b", "-j", "RETURN"}}
	if _, err := fw.EnsureRule(IPv4, item); err != nil {
		t.Fatal(err)
	}
	for i, want := range []bool{true, false} {
		if added, err := fw.EnsureInserted(IPv4, ret); err != nil || added != want {
			t.Fatalf("EnsureInserted #%d = %v, %v; want %v", i+1, added, err, want)
		}
	}
	got, _ := fw.Rules(IPv4, NAT, "WEFT-D")
	if want := [][]string{ret.Spec, item.Spec}; !slices.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("chain = %q, want %q", got, want)
	}
}

func TestParseSave(t *testing.T) {
	text := `# Generated by iptables-nft-save v1.8.9 (nf_tables) on Tue Dec  1 14:00:00 2026
*nat
:PREROUTING ACCEPT [0:0]
:WEFT-DNAT - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j WEFT-DNAT
COMMIT
*filter
:FORWARD DROP [12:720]
:WEFT-EMPTY - [0:0]
-A FORWARD -m comment --comment "weft:a b\"c" -j ACCEPT
COMMIT
`
	s := ParseSave(text)
	if !s.Has("nat", "WEFT-DNAT") || !s.Has("filter", "WEFT-EMPTY") || s.Has("filter", "WEFT-DNAT") {
		t.Fatalf("chains: %v", s)
	}
	if len(s["filter"]["WEFT-EMPTY"]) != 0 {
		t.Errorf("an empty chain has rules: %v", s["filter"]["WEFT-EMPTY"])
	}
	if !s.Contains("nat", "PREROUTING", []string{"-m", "addrtype", "--dst-type", "LOCAL", "-j", "WEFT-DNAT"}) {
		t.Errorf("nat PREROUTING: %v", s["nat"]["PREROUTING"])
	}
	if !s.Contains("filter", "FORWARD", []string{"-m", "comment", "--comment", `weft:a b"c`, "-j", "ACCEPT"}) {
		t.Errorf("a quoted comment did not read back: %q", s["filter"]["FORWARD"])
	}
	if s.Contains("filter", "FORWARD", []string{"-j", "ACCEPT"}) {
		t.Error("Contains matched a different rule")
	}
}

func TestSaveProgram(t *testing.T) {
	for _, tc := range []struct {
		bin  string
		fam  Family
		want string
	}{
		{"", IPv4, "iptables-save"},
		{"", IPv6, "ip6tables-save"},
		{"iptables-legacy", IPv4, "iptables-legacy-save"},
		{"/usr/sbin/ip6tables-nft", IPv6, "/usr/sbin/ip6tables-nft-save"},
	} {
		if got := saveProgram(tc.bin, tc.fam); got != tc.want {
			t.Errorf("saveProgram(%q, %v) = %q, want %q", tc.bin, tc.fam, got, tc.want)
		}
	}
}
