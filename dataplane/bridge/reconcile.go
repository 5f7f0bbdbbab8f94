package bridge

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"

	"github.com/weftnet/weft/dataplane"
	"github.com/weftnet/weft/dataplane/fw"
	"github.com/weftnet/weft/dataplane/nl"
)

// Reconcile makes the kernel match nets and eps: it removes weft rules of
// networks not listed (and stale or duplicate rules of listed ones), re-creates
// missing bridges, addresses and rules, puts the base jumps back at position 1,
// re-attaches listed endpoints' host veths to their bridge, and deletes
// weft-made bridges and veths that belong to no listed network or endpoint.
// An endpoint whose veth is gone is left alone (its container end is in a
// container or was destroyed with it). A listed network that fails validation
// is reported and left exactly as it is. Objects weft did not make are never
// touched. Errors are collected: one broken network does not stop the rest.
func (m *Mode) Reconcile(ctx context.Context, nets []dataplane.Network, eps []dataplane.Endpoint) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var errs []error
	var valid []dataplane.Network
	byID := map[string]dataplane.Network{} // every listed network, valid or not
	known := map[string]bool{}             // tags (12 chars) of valid networks
	unmanaged := map[string]bool{}         // tags of listed networks that failed validation
	for _, n := range nets {
		byID[n.ID] = n
		tag := strings.TrimPrefix(fw.Tag(n.ID), fw.TagPrefix)
		if err := m.validateNetwork(n); err != nil {
			errs = append(errs, fmt.Errorf("network %s left as it is: %w", dataplane.ShortID(n.ID), err))
			unmanaged[tag] = true
			continue
		}
		valid = append(valid, n)
		known[tag] = true
	}

	used, err := m.reconcileRules(valid, known, unmanaged)
	errs = append(errs, err)

	ready := map[string]bool{} // networks whose bridge is in place
	for _, n := range valid {
		if err := ctx.Err(); err != nil {
			return errors.Join(append(errs, err)...)
		}
		if err := m.ensureNetwork(n, false); err != nil {
			errs = append(errs, fmt.Errorf("network %s: %w", dataplane.ShortID(n.ID), err))
			continue
		}
		ready[n.ID] = true
	}
	m.nets = map[string]dataplane.Network{}
	for _, n := range valid {
		if ready[n.ID] {
			m.nets[n.ID] = n
		}
	}

	keepVeths := map[string]bool{}
	for _, ep := range eps {
		n, ok := byID[ep.NetworkID]
		if !ok || dataplane.CheckID(ep.ID) != nil {
			continue // its veth, if any, is swept below
		}
		host, cont := VethNames(ep.ID)
		keepVeths[host], keepVeths[cont] = true, true
		if ready[n.ID] {
			errs = append(errs, m.reattach(n, host))
		}
	}

	errs = append(errs, m.sweepLinks(byID, keepVeths))

	errs = append(errs, m.teardownUnused(used))
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("reconciling bridge networks: %w", err)
	}
	m.log.Info("reconciled", "networks", len(nets), "endpoints", len(eps))
	return nil
}

// reattach puts an existing host veth back on n's bridge (a re-created bridge
// has no ports) and up. A missing veth is fine.
func (m *Mode) reattach(n dataplane.Network, host string) error {
	l, err := m.nl.LinkByName(host)
	if errors.Is(err, nl.ErrLinkNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if !ownedVeth(l) {
		return nil
	}
	br, err := m.nl.LinkByName(bridgeName(n))
	if err != nil {
		return fmt.Errorf("re-attaching %q: %w", host, err)
	}
	if l.Attrs().MasterIndex != br.Attrs().Index {
		m.log.Info("re-attaching endpoint veth to its bridge", "veth", host, "bridge", br.Attrs().Name)
		if err := m.nl.SetMaster(l, br); err != nil {
			return err
		}
	}
	if l.Attrs().Flags&net.FlagUp == 0 {
		return m.nl.SetUp(l)
	}
	return nil
}

// sweepLinks deletes weft-made bridges that are not the bridge of a listed
// network, and weft-named veths that are not a listed endpoint's.
func (m *Mode) sweepLinks(nets map[string]dataplane.Network, keepVeths map[string]bool) error {
	links, err := m.nl.LinkList()
	if err != nil {
		return err
	}
	keepBridges := map[string]bool{}
	for _, n := range nets {
		keepBridges[bridgeName(n)] = true
	}
	var errs []error
	for _, l := range links {
		if !m.stale(l, nets, keepBridges, keepVeths) {
			continue
		}
		m.log.Info("deleting weft link of no known network or endpoint", "link", l.Attrs().Name, "type", l.Type(), "alias", l.Attrs().Alias)
		errs = append(errs, m.nl.DeleteLink(l))
	}
	return errors.Join(errs...)
}

// stale reports whether l is a weft-made link that nothing listed uses.
func (m *Mode) stale(l netlink.Link, nets map[string]dataplane.Network, keepBridges, keepVeths map[string]bool) bool {
	a := l.Attrs()
	switch l.Type() {
	case "bridge":
		if strings.HasPrefix(a.Alias, dataplane.OwnerAliasPrefix) {
			n, ok := nets[strings.TrimPrefix(a.Alias, dataplane.OwnerAliasPrefix)]
			return !ok || bridgeName(n) != a.Name
		}
		return a.Alias == "" && defaultBridge.MatchString(a.Name) && !keepBridges[a.Name]
	case "veth":
		return ownedVeth(l) && !keepVeths[a.Name]
	}
	return false
}

// firewallFamilies are the families m programs.
func (m *Mode) firewallFamilies() []fw.Family {
	if m.fw.Has(fw.IPv6) {
		return []fw.Family{fw.IPv4, fw.IPv6}
	}
	return []fw.Family{fw.IPv4}
}

// reconcileRules sweeps every family's weft chains (see sweepRules) and
// ensures the base chains and jumps of the families valid networks use,
// which it returns. Per-network rules are ensured afterwards, network by
// network.
func (m *Mode) reconcileRules(valid []dataplane.Network, known, unmanaged map[string]bool) (map[fw.Family]bool, error) {
	var errs []error
	used := map[fw.Family]bool{}
	for _, fam := range m.firewallFamilies() {
		want := map[string]bool{}
		for _, n := range valid {
			if slices.Contains(m.families(n), fam) {
				used[fam] = true
				for _, r := range m.rulesOf(n, fam) {
					want[r.String()] = true
				}
			}
		}
		errs = append(errs, m.sweepRules(fam, known, unmanaged, want))
		if used[fam] {
			errs = append(errs, m.buildBase(fam))
		}
		if m.sets != nil {
			// Unused families too: members of networks deleted while weft
			// was down would keep the sets (and chains) alive.
			errs = append(errs, m.sweepMembers(fam, valid))
		}
	}
	return used, errors.Join(errs...)
}

// teardownUnused removes the chains of families no valid network uses, if
// nothing else is left in them.
func (m *Mode) teardownUnused(used map[fw.Family]bool) error {
	var errs []error
	for _, fam := range m.firewallFamilies() {
		if !used[fam] {
			errs = append(errs, m.teardownIfIdle(fam))
		}
	}
	return errors.Join(errs...)
}
