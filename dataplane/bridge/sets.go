package bridge

import (
	"errors"
	"fmt"
	"slices"

	"github.com/weftnet/weft/dataplane"
	"github.com/weftnet/weft/dataplane/fw"
	"github.com/weftnet/weft/dataplane/nl"
)

// The fixed rule set ("set design", the default where the kernel has ipset):
// weft's iptables rules do not change as networks come and go. What differs
// between networks is held where the kernel matches it in O(1):
//
//   - each weft bridge's device group (IFLA_GROUP, set through netlink): a
//     tag that says "weft bridge" plus a bit for enable_icc and one for
//     --internal, matched with -m devgroup;
//   - per family, two ipsets managed through netlink: weft-netN holds
//     "<subnet>,<bridge>" for every network (hash:net,iface), which tells
//     routed traffic that stays inside one network from traffic between
//     networks; weft-masqN holds the subnets to masquerade (hash:net).
//
// Creating a network therefore runs no iptables at all once the base exists:
// it sets the bridge's group and adds two or three set members. Every packet
// walks the same dozen rules however many networks there are.
//
// Where the kernel has no ipset, weft keeps one set of rules per network
// (rules.go), as Docker's bridge driver does.

// Device group of weft's bridges: groupTag in the bits of groupTagMask,
// plus flags. A link's group is 0 unless someone sets it; "ip link set
// group" users pick small numbers, far from the tag.
const (
	groupTag      uint32 = 0x77650000 // "we"
	groupTagMask  uint32 = 0xffff0000
	groupICC      uint32 = 0x1 // enable_icc
	groupInternal uint32 = 0x2 // --internal
)

// bridgeGroup is n's bridge's device group.
func bridgeGroup(n dataplane.Network) uint32 {
	g := groupTag
	if n.Bridge.EnableICC {
		g |= groupICC
	}
	if n.Internal {
		g |= groupInternal
	}
	return g
}

// group renders a devgroup value/mask the way iptables -S prints it.
func group(value, mask uint32) string { return fmt.Sprintf("0x%x/0x%x", value, mask) }

// Device-group matches: any weft bridge, a weft bridge with the flag set, a
// weft bridge with the flag clear.
var (
	anyWeft     = group(groupTag, groupTagMask)
	weftICC     = group(groupTag|groupICC, groupTagMask|groupICC)
	weftInt     = group(groupTag|groupInternal, groupTagMask|groupInternal)
	weftNotInt  = group(groupTag, groupTagMask|groupInternal)
	devgroupSrc = func(g string) []string { return []string{"-m", "devgroup", "--src-group", g} }
	devgroupDst = func(g string) []string { return []string{"-m", "devgroup", "--dst-group", g} }
)

// Set names, per family.
func netSet(family fw.Family) string {
	if family == fw.IPv6 {
		return "weft-net6"
	}
	return "weft-net4"
}

func masqSet(family fw.Family) string {
	if family == fw.IPv6 {
		return "weft-masq6"
	}
	return "weft-masq4"
}

// Sets is the kernel's ipset interface as the set design uses it
// (*nl.Handle; tests pass a fake).
type Sets interface {
	EnsureSet(name, typ string, v6 bool) error
	SetAdd(set string, m nl.SetMember) error
	SetDel(set string, m nl.SetMember) error
	SetMembers(set string) ([]nl.SetMember, error)
	DestroySet(set string) error
}

var _ Sets = (*nl.Handle)(nil)

// WithSets selects the set design (see above), with s as the kernel's ipset
// interface. Without it, Mode keeps one set of rules per network.
func WithSets(s Sets) Option { return func(m *Mode) { m.sets = s } }

// FixedRules reports whether m uses the set design.
func (m *Mode) FixedRules() bool { return m.sets != nil }

// setChains are the chains of the set design: the per-network chains of the
// rule design are gone (their work is in WEFT-FORWARD).
func setChains(family fw.Family) []chainRef {
	cs := []chainRef{
		{fw.Filter, ChainPorts},
		{fw.NAT, ChainPostrouting},
		{fw.NAT, ChainDNAT},
	}
	if family == fw.IPv6 {
		cs = append(cs, chainRef{fw.Filter, ChainGuard})
	}
	return cs
}

// ruleDesignOnly are the chains only the rule design has; the set design
// removes them (WEFT-ISOLATION-1 jumps to -2: that order).
var ruleDesignOnly = []string{ChainICC, ChainIsolation1, ChainIsolation2, ChainBridge, ChainIngress}

// setSkeleton is WEFT-FORWARD of the set design, in order:
//
//	-j WEFT-GUARD                                   (IPv6)
//	bridged inside one weft bridge: ACCEPT with enable_icc, else DROP
//	routed, from a network's subnet and bridge to the same bridge: the same
//	from a weft bridge to another weft bridge: DROP
//	from a weft bridge to a Docker bridge, and back: DROP
//	from an --internal weft bridge to anywhere else: DROP
//	from a weft bridge: ACCEPT                      (egress)
//	replies into a weft bridge that is not --internal: ACCEPT
//	-j WEFT-PORTS                                   (published ports)
//	anything else into a weft bridge: DROP
func setSkeleton(family fw.Family, dockerBridges []string) [][]string {
	set := netSet(family)
	sameNet := []string{"-m", "set", "--match-set", set, "src,src", "-m", "set", "--match-set", set, "src,dst"}
	bridged := []string{"-m", "physdev", "--physdev-is-bridged"}
	cat := func(parts ...[]string) []string { return slices.Concat(parts...) }
	jump := func(t string) []string { return []string{"-j", t} }
	var s [][]string
	if family == fw.IPv6 {
		s = append(s, jump(ChainGuard))
	}
	s = append(s,
		cat(bridged, devgroupSrc(weftICC), jump("ACCEPT")),
		cat(bridged, devgroupSrc(anyWeft), jump("DROP")),
		cat(sameNet, devgroupSrc(weftICC), jump("ACCEPT")),
		cat(sameNet, devgroupSrc(anyWeft), jump("DROP")),
		cat([]string{"-m", "devgroup", "--src-group", anyWeft, "--dst-group", anyWeft}, jump("DROP")),
	)
	for _, d := range dockerBridges {
		s = append(s, cat([]string{"-o", d}, devgroupSrc(anyWeft), jump("DROP")))
	}
	for _, d := range dockerBridges {
		s = append(s, cat([]string{"-i", d}, devgroupDst(anyWeft), jump("DROP")))
	}
	return append(s,
		cat(devgroupSrc(weftInt), jump("DROP")),
		cat(devgroupSrc(anyWeft), jump("ACCEPT")),
		cat(devgroupDst(weftNotInt), []string{"-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED"}, jump("ACCEPT")),
		jump(ChainPorts),
		cat(devgroupDst(anyWeft), jump("DROP")),
	)
}

// setStaticRules are the fixed rules of the set design's other chains:
// masquerading of the subnets in weft-masqN for traffic that leaves through
// anything but a weft bridge, no DNAT for traffic from Docker's bridges (the
// base jump already skips weft's), and router advertisements from containers
// dropped (IPv6).
func setStaticRules(family fw.Family, dockerBridges []string) []fw.Rule {
	rs := []fw.Rule{{Table: fw.NAT, Chain: ChainPostrouting, Spec: slices.Concat(
		[]string{"-m", "set", "--match-set", masqSet(family), "src", "-m", "devgroup", "!", "--dst-group", anyWeft},
		[]string{"-j", "MASQUERADE"})}}
	for _, d := range dockerBridges {
		rs = append(rs, fw.Rule{Table: fw.NAT, Chain: ChainDNAT, Spec: []string{"-i", d, "-j", "RETURN"}})
	}
	if family == fw.IPv6 {
		rs = append(rs, fw.Rule{Table: fw.Filter, Chain: ChainGuard, Spec: slices.Concat(
			[]string{"-p", "ipv6-icmp"}, devgroupSrc(anyWeft),
			[]string{"-m", "icmp6", "--icmpv6-type", "134", "-j", "DROP"})})
	}
	return rs
}

// setDNATJump replaces the rule design's PREROUTING jump: traffic from a
// weft bridge skips WEFT-DNAT altogether (containers reach published ports
// through the userland proxy; see networkRules), which in the rule design
// took one RETURN per network.
func setDNATJump() fw.Rule {
	return fw.Rule{Table: fw.NAT, Chain: "PREROUTING", Spec: slices.Concat(
		[]string{"-m", "addrtype", "--dst-type", "LOCAL", "-m", "devgroup", "!", "--src-group", anyWeft},
		[]string{"-j", ChainDNAT})}
}

// members are n's members of family's sets: every subnet with n's bridge in
// weft-netN, and the masqueraded subnets in weft-masqN.
func members(n dataplane.Network, family fw.Family) (nets, masq []nl.SetMember) {
	subnets := n.IPv4
	if family == fw.IPv6 {
		subnets = n.IPv6
	}
	for _, s := range subnets {
		p := s.Pool.Masked()
		if p.Bits() == 0 {
			continue // validateNetwork refuses these; a set cannot hold them
		}
		nets = append(nets, nl.SetMember{Net: p, Iface: bridgeName(n)})
		if masquerades(n, family) {
			masq = append(masq, nl.SetMember{Net: p})
		}
	}
	return nets, masq
}

// ensureSets creates family's sets.
func (m *Mode) ensureSets(family fw.Family) error {
	v6 := family == fw.IPv6
	return errors.Join(
		m.sets.EnsureSet(netSet(family), "hash:net,iface", v6),
		m.sets.EnsureSet(masqSet(family), "hash:net", v6),
	)
}

// ensureMembers adds n's set members; undo collects the removal of each.
func (m *Mode) ensureMembers(n dataplane.Network, u *undo) error {
	for _, fam := range m.families(n) {
		nets, masq := members(n, fam)
		for _, x := range []struct {
			set string
			ms  []nl.SetMember
		}{{netSet(fam), nets}, {masqSet(fam), masq}} {
			for _, mem := range x.ms {
				if err := m.sets.SetAdd(x.set, mem); err != nil {
					return err
				}
				u.add(func() error { return m.sets.SetDel(x.set, mem) })
			}
		}
	}
	return nil
}

// deleteMembers removes n's set members (missing is fine).
func (m *Mode) deleteMembers(n dataplane.Network) error {
	var errs []error
	for _, fam := range m.families(n) {
		nets, masq := members(n, fam)
		for _, mem := range nets {
			errs = append(errs, m.sets.SetDel(netSet(fam), mem))
		}
		for _, mem := range masq {
			errs = append(errs, m.sets.SetDel(masqSet(fam), mem))
		}
	}
	return errors.Join(errs...)
}

// sweepMembers makes family's sets hold exactly the members of valid
// networks: stale ones go, missing ones are added.
func (m *Mode) sweepMembers(family fw.Family, valid []dataplane.Network) error {
	want := map[string]map[nl.SetMember]bool{netSet(family): {}, masqSet(family): {}}
	for _, n := range valid {
		if !slices.Contains(m.families(n), family) {
			continue
		}
		nets, masq := members(n, family)
		for _, mem := range nets {
			want[netSet(family)][mem] = true
		}
		for _, mem := range masq {
			want[masqSet(family)][mem] = true
		}
	}
	var errs []error
	for set, w := range want {
		have, err := m.sets.SetMembers(set)
		if errors.Is(err, nl.ErrSetNotFound) && len(w) == 0 {
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		present := map[nl.SetMember]bool{}
		for _, mem := range have {
			present[mem] = true
			if !w[mem] {
				m.log.Info("removing stale ipset member", "set", set, "member", mem.String())
				errs = append(errs, m.sets.SetDel(set, mem))
			}
		}
		for mem := range w {
			if !present[mem] {
				errs = append(errs, m.sets.SetAdd(set, mem))
			}
		}
	}
	return errors.Join(errs...)
}

// setsEmpty reports whether no network is in any family's weft-netN (a set
// that does not exist is empty).
func (m *Mode) setsEmpty() (bool, error) {
	for _, fam := range []fw.Family{fw.IPv4, fw.IPv6} {
		have, err := m.sets.SetMembers(netSet(fam))
		if errors.Is(err, nl.ErrSetNotFound) {
			continue
		}
		if err != nil {
			return false, err
		}
		if len(have) > 0 {
			return false, nil
		}
	}
	return true, nil
}

// destroySets removes family's sets (after the rules that use them).
func (m *Mode) destroySets(family fw.Family) error {
	return errors.Join(m.sets.DestroySet(netSet(family)), m.sets.DestroySet(masqSet(family)))
}

// missingMembers names the first member a known network of family needs
// that have (each weft set's members, as read; a set not in the map is
// missing) lacks, or "".
func (m *Mode) missingMembers(family fw.Family, have map[string]map[nl.SetMember]bool) string {
	for _, set := range []string{netSet(family), masqSet(family)} {
		if _, ok := have[set]; !ok {
			return "ipset " + set + " is missing"
		}
	}
	for _, n := range m.nets {
		if !slices.Contains(m.families(n), family) {
			continue
		}
		nets, masq := members(n, family)
		for _, mem := range nets {
			if !have[netSet(family)][mem] {
				return fmt.Sprintf("ipset %s lacks %s", netSet(family), mem)
			}
		}
		for _, mem := range masq {
			if !have[masqSet(family)][mem] {
				return fmt.Sprintf("ipset %s lacks %s", masqSet(family), mem)
			}
		}
	}
	return ""
}

// wrongGroup names the first known network whose bridge is missing from
// groups (link name → device group, as read) or lacks its device group, or
// "". A nil groups (no netlink handle to read them with) checks nothing.
func (m *Mode) wrongGroup(groups map[string]uint32) string {
	if groups == nil {
		return ""
	}
	for _, n := range m.nets {
		g, ok := groups[bridgeName(n)]
		if !ok {
			return fmt.Sprintf("bridge %s is missing", bridgeName(n))
		}
		if g != bridgeGroup(n) {
			return fmt.Sprintf("bridge %s has device group 0x%x, not 0x%x", bridgeName(n), g, bridgeGroup(n))
		}
	}
	return ""
}

// The two designs differ in the pieces below; everything else (building the
// base, sweeping, tearing down) is shared.

// chains are family's weft chains besides WEFT-FORWARD, in the order they
// are created (and deleted).
func (m *Mode) chains(family fw.Family) []chainRef {
	if m.sets != nil {
		return setChains(family)
	}
	return perNetworkChains(family)
}

// forwardChain is family's WEFT-FORWARD, in order.
func (m *Mode) forwardChain(family fw.Family) [][]string {
	if m.sets != nil {
		return setSkeleton(family, m.dockerBridges)
	}
	return skeleton(family)
}

// fixedRules are the untagged rules of m.chains that exist for as long as
// the chains do.
func (m *Mode) fixedRules(family fw.Family) []fw.Rule {
	if m.sets != nil {
		return setStaticRules(family, m.dockerBridges)
	}
	return staticRules(m.dockerBridges)
}

// jumps are the jumps from the kernel's chains into weft's; the first is
// filter FORWARD's.
func (m *Mode) jumps(family fw.Family) []fw.Rule {
	rs := baseJumps(family)
	if m.sets != nil {
		for i, r := range rs {
			if r.Table == fw.NAT && r.Chain == "PREROUTING" {
				rs[i] = setDNATJump()
			}
		}
	}
	return rs
}

// otherJumps are the jumps of the other design, removed when the base is
// built (a host moving from one design to the other).
func (m *Mode) otherJumps(family fw.Family) []fw.Rule {
	if m.sets != nil {
		for _, r := range baseJumps(family) {
			if r.Table == fw.NAT && r.Chain == "PREROUTING" {
				return []fw.Rule{r}
			}
		}
		return nil
	}
	return []fw.Rule{setDNATJump()}
}

// fixed reports whether spec in chain c is one of the fixed rules.
func (m *Mode) fixed(family fw.Family, c chainRef, spec []string) bool {
	for _, r := range m.fixedRules(family) {
		if r.Table == c.table && r.Chain == c.name && slices.Equal(r.Spec, spec) {
			return true
		}
	}
	return false
}

// rulesOf are n's own rules in family: none in the set design.
func (m *Mode) rulesOf(n dataplane.Network, family fw.Family) []fw.Rule {
	if m.sets != nil {
		return nil
	}
	return networkRules(n, family, m.dockerBridges)
}
