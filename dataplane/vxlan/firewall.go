package vxlan

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"

	"github.com/weftnet/weft/dataplane/fw"
	"github.com/weftnet/weft/dataplane/nl"
)

// The firewall (WithFirewall) has two jobs.
//
// Bridged traffic: br_netfilter sends frames bridged between a network's
// VXLAN port and its containers' veths through filter FORWARD, whose policy
// dockerd sets to DROP. One fixed rule per family, inserted at the top of
// FORWARD while any vxlan network exists, accepts exactly those frames
// (bridged, in and out of one of this flavour's bridges; bridged frames
// never leave their bridge, and the bridges have no address, so nothing is
// routed between them). For the local-scope flavour:
//
//	-m physdev --physdev-is-bridged -i wxb-+ -o wxb-+
//	    -m comment --comment weft-vxlan:bridged -j ACCEPT
//
// The known-VTEP filter: encapsulated packets reach the
// kernel's VXLAN socket only from VTEPs weft knows. Per address family in
// use and per UDP port of this Mode's networks, one rule at the top of
// filter INPUT:
//
//	-p udp -m udp --dport PORT -m set ! --match-set weft-vteps4 src
//	    -m comment --comment weft-vxlan:known-vteps -j DROP
//
// and one ipset per family (weft-vteps4, weft-vteps6; hash:net, host
// entries) holding every peer VTEP of every network (SetPeers) and every
// VTEP given to SetKnownVTEPs. The rule count grows with ports (usually
// one), never with networks, peers or hosts. The comment is not a "weft:"
// tag, so the bridge mode's sweeps never take the rule for one of theirs.
//
// A global-scope weft (Swarm flavour) has the same rules with its own
// bridge prefix (wsb-), sets (weft-swarm-vteps4/6) and comments
// (weft-swarm:...); each instance finds, replaces and removes only rules
// with its own comments. Two instances never filter the same port: a packet
// must pass every DROP rule on its port, so a swarm node's VTEP, unknown to
// the local-scope weft's set, would be dropped by its rule. CreateNetwork
// therefore refuses a port the other instance's networks use (portConflict).

// bridgedRule is the FORWARD rule that accepts frames bridged within one of
// this flavour's bridges.
func (f Flavour) bridgedRule() fw.Rule {
	return fw.Rule{Table: fw.Filter, Chain: "FORWARD", Spec: []string{
		"-i", f.bridgePrefix + "+", "-o", f.bridgePrefix + "+", "-m", "physdev", "--physdev-is-bridged",
		"-m", "comment", "--comment", f.bridgedComment, "-j", "ACCEPT",
	}}
}

// WithFirewall turns on the rules above, programmed through f. Without it
// the mode adds no firewall rule: encapsulated packets are accepted from
// anyone who can reach the port, and on a host where dockerd set the
// FORWARD policy to DROP, containers of vxlan networks cannot talk.
func WithFirewall(f *fw.Firewall) Option {
	return func(m *Mode) { m.fw = f }
}

// vtepSet is the known-VTEP ipset of family fam.
func (f Flavour) vtepSet(fam fw.Family) string {
	if fam == fw.IPv6 {
		return f.set6
	}
	return f.set4
}

func familyOf(a netip.Addr) fw.Family {
	if a.Is4() {
		return fw.IPv4
	}
	return fw.IPv6
}

// filterRule is the DROP rule for port in family fam.
func (f Flavour) filterRule(fam fw.Family, port uint16) fw.Rule {
	return fw.Rule{Table: fw.Filter, Chain: "INPUT", Spec: []string{
		"-p", "udp", "-m", "udp", "--dport", strconv.Itoa(int(port)),
		"-m", "set", "!", "--match-set", f.vtepSet(fam), "src",
		"-m", "comment", "--comment", f.filterComment, "-j", "DROP",
	}}
}

// SetKnownVTEPs sets the VTEPs of the cluster's hosts (from the store),
// accepted by the known-VTEP filter in addition to every peer's VTEP. A
// host that leaves the cluster should leave this list. Without WithFirewall
// it only records the list.
func (m *Mode) SetKnownVTEPs(ctx context.Context, vteps []netip.Addr) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	known := make(map[netip.Addr]bool, len(vteps))
	for _, a := range vteps {
		a = a.Unmap()
		if err := checkVTEP(a); err != nil {
			return err
		}
		known[a] = true
	}
	m.known = known
	return m.syncMembers()
}

// wantedFilter returns the ports the filter must cover, by family: those of
// the known networks, in the family of this host's VTEP.
func (m *Mode) wantedFilter() (map[fw.Family]map[uint16]bool, error) {
	want := map[fw.Family]map[uint16]bool{}
	if len(m.nets) == 0 {
		return want, nil
	}
	vtep, _, err := m.local()
	if err != nil {
		return nil, err
	}
	ports := map[uint16]bool{}
	for _, n := range m.nets {
		ports[portOf(n)] = true
	}
	want[familyOf(vtep)] = ports
	return want, nil
}

// filterPortsInKernel reads the ports of the filter rules in INPUT.
func (m *Mode) filterPortsInKernel(f fw.Family) (map[uint16]bool, error) {
	rules, err := m.fw.Rules(f, fw.Filter, "INPUT")
	if err != nil {
		return nil, err
	}
	return m.names.filterPorts(rules), nil
}

// filterPorts returns the ports of this flavour's known-VTEP rules among
// specs.
func (f Flavour) filterPorts(specs [][]string) map[uint16]bool {
	out := map[uint16]bool{}
	for _, spec := range specs {
		if !slices.Contains(spec, f.filterComment) {
			continue
		}
		if i := slices.Index(spec, "--dport"); i >= 0 && i+1 < len(spec) {
			if p, err := strconv.ParseUint(spec[i+1], 10, 16); err == nil {
				out[uint16(p)] = true
			}
		}
	}
	return out
}

// syncFilter makes the filter rules and sets match the known networks. With
// fromKernel it compares with the rules the kernel holds (Reconcile,
// Repair), else with what this Mode applied last; with prune it removes
// rules of ports no network uses and the set of a family none uses.
func (m *Mode) syncFilter(fromKernel, prune bool) error {
	if m.fw == nil {
		return nil
	}
	want, err := m.wantedFilter()
	if err != nil {
		return err
	}
	var errs []error
	for _, f := range []fw.Family{fw.IPv4, fw.IPv6} {
		if !m.fw.Has(f) {
			continue
		}
		ports, have := want[f], m.filterPorts[f]
		if fromKernel {
			if have, err = m.filterPortsInKernel(f); err != nil {
				errs = append(errs, err)
				continue
			}
		}
		if len(ports) > 0 {
			if err := m.nl.EnsureSet(m.names.vtepSet(f), "hash:net", f == fw.IPv6); err != nil {
				errs = append(errs, err)
				continue
			}
			if err := m.syncFamilyMembers(f); err != nil {
				errs = append(errs, err)
				continue
			}
		}
		if len(m.nets) > 0 {
			if added, err := m.fw.EnsureInserted(f, m.names.bridgedRule()); err != nil {
				errs = append(errs, err)
			} else if added {
				m.log.Info("accepting bridged traffic of vxlan networks", "family", f)
			}
		} else if prune {
			errs = append(errs, m.fw.DeleteRule(f, m.names.bridgedRule()))
		}
		applied := map[uint16]bool{}
		for p := range ports {
			if !have[p] {
				if _, err := m.fw.EnsureInserted(f, m.names.filterRule(f, p)); err != nil {
					errs = append(errs, err)
					continue
				}
				m.log.Info("known-VTEP filter on", "family", f, "port", p)
			}
			applied[p] = true
		}
		if prune {
			for p := range have {
				if !ports[p] {
					if err := m.fw.DeleteRule(f, m.names.filterRule(f, p)); err != nil {
						errs = append(errs, err)
						applied[p] = true
						continue
					}
					m.log.Info("known-VTEP filter off", "family", f, "port", p)
				}
			}
			if len(applied) == 0 && (fromKernel || len(have) > 0) {
				errs = append(errs, m.nl.DestroySet(m.names.vtepSet(f)))
			}
		} else {
			for p := range have {
				applied[p] = true
			}
		}
		m.filterPorts[f] = applied
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("known-VTEP filter: %w", err)
	}
	return nil
}

// syncMembers updates the sets of the families whose filter is on.
func (m *Mode) syncMembers() error {
	if m.fw == nil {
		return nil
	}
	var errs []error
	for f, ports := range m.filterPorts {
		if len(ports) > 0 {
			errs = append(errs, m.syncFamilyMembers(f))
		}
	}
	return errors.Join(errs...)
}

// wantedMembers is every known and every peer VTEP of family f.
func (m *Mode) wantedMembers(f fw.Family) map[netip.Addr]bool {
	want := map[netip.Addr]bool{}
	for a := range m.known {
		if familyOf(a) == f {
			want[a] = true
		}
	}
	for _, peers := range m.peers {
		for _, p := range peers {
			if familyOf(p.VTEP) == f {
				want[p.VTEP] = true
			}
		}
	}
	return want
}

// syncFamilyMembers makes family f's set hold exactly wantedMembers(f).
func (m *Mode) syncFamilyMembers(f fw.Family) error {
	set := m.names.vtepSet(f)
	have, err := m.nl.SetMembers(set)
	if err != nil {
		return err
	}
	want := m.wantedMembers(f)
	var errs []error
	present := map[netip.Addr]bool{}
	for _, s := range have {
		a := s.Net.Addr()
		if s.Net.IsSingleIP() && want[a] {
			present[a] = true
			continue
		}
		errs = append(errs, m.nl.SetDel(set, s))
	}
	for a := range want {
		if !present[a] {
			errs = append(errs, m.nl.SetAdd(set, nl.SetMember{Net: netip.PrefixFrom(a, a.BitLen())}))
		}
	}
	return errors.Join(errs...)
}

// checkFilter returns what is missing of the filter, or "".
func (m *Mode) checkFilter() (string, error) {
	if m.fw == nil {
		return "", nil
	}
	want, err := m.wantedFilter()
	if err != nil {
		return "", err
	}
	for _, f := range []fw.Family{fw.IPv4, fw.IPv6} {
		if !m.fw.Has(f) || len(m.nets) == 0 {
			continue
		}
		// One iptables-save per family.
		snap, err := m.fw.Snapshot(f, map[string][]string{fw.Filter: {"INPUT", "FORWARD"}})
		if err != nil {
			return "", err
		}
		if !slices.ContainsFunc(snap[fw.Filter]["FORWARD"], func(spec []string) bool { return slices.Contains(spec, m.names.bridgedComment) }) {
			return fmt.Sprintf("rule missing: %s", m.names.bridgedRule()), nil
		}
		ports := want[f]
		if len(ports) == 0 {
			continue
		}
		have := m.names.filterPorts(snap[fw.Filter]["INPUT"])
		for p := range ports {
			if !have[p] {
				return fmt.Sprintf("known-VTEP filter: rule missing: %s", m.names.filterRule(f, p)), nil
			}
		}
		members, err := m.nl.SetMembers(m.names.vtepSet(f))
		if errors.Is(err, nl.ErrSetNotFound) {
			return fmt.Sprintf("known-VTEP filter: ipset %s missing", m.names.vtepSet(f)), nil
		}
		if err != nil {
			return "", err
		}
		got := map[netip.Addr]bool{}
		for _, s := range members {
			got[s.Net.Addr()] = true
		}
		for a := range m.wantedMembers(f) {
			if !got[a] {
				return fmt.Sprintf("known-VTEP filter: %s missing from ipset %s", a, m.names.vtepSet(f)), nil
			}
		}
	}
	return "", nil
}
