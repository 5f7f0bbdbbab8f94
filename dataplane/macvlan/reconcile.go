package macvlan

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/vishvananda/netlink"

	"github.com/weftnet/weft/dataplane"
)

// Reconcile makes the kernel match nets and eps: it re-creates missing
// isolated parents and VLAN sub-interfaces of listed networks, and deletes
// weft-made endpoint links of no listed endpoint, isolated parents of no
// listed network and weft-made VLAN sub-interfaces no listed network uses.
// An endpoint whose link is gone is left alone (it is in a container, or was
// destroyed with it). A listed network that fails validation is reported and
// its links are left as they are. Links weft did not make are never touched.
// Errors are collected: one broken network does not stop the rest. The
// listed networks become the known set CreateNetwork checks new ones
// against.
func (m *Mode) Reconcile(ctx context.Context, nets []dataplane.Network, eps []dataplane.Endpoint) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var errs []error
	byID := make(map[string]dataplane.Network, len(nets))
	for _, n := range nets {
		byID[n.ID] = n
	}
	m.known = byID
	for _, n := range nets {
		if err := ctx.Err(); err != nil {
			return errors.Join(append(errs, err)...)
		}
		if err := Validate(n); err != nil {
			errs = append(errs, fmt.Errorf("network %s left as it is: %w", dataplane.ShortID(n.ID), err))
			continue
		}
		if err := m.ensureNetwork(n); err != nil {
			errs = append(errs, fmt.Errorf("network %s: %w", dataplane.ShortID(n.ID), err))
		}
	}
	keep := map[string]bool{}
	for _, ep := range eps {
		if _, ok := byID[ep.NetworkID]; ok && dataplane.CheckID(ep.ID) == nil {
			keep[EndpointLinkName(ep.ID)] = true
		}
	}
	errs = append(errs, m.sweepLinks(byID, keep))
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("reconciling macvlan networks: %w", err)
	}
	m.log.Info("reconciled", "networks", len(nets), "endpoints", len(eps))
	return nil
}

// sweepLinks deletes the weft-made links that nothing listed uses.
func (m *Mode) sweepLinks(nets map[string]dataplane.Network, keepEndpoints map[string]bool) error {
	links, err := m.nl.LinkList()
	if err != nil {
		return err
	}
	usedParents := map[string]bool{}
	for _, n := range nets {
		usedParents[parentName(n)] = true
	}
	var errs []error
	// Endpoint links first: deleting a parent takes its macvlan links with
	// it, and they would then fail to delete.
	for _, pass := range []func(netlink.Link) bool{
		func(l netlink.Link) bool { return ownedEndpoint(l) && !keepEndpoints[l.Attrs().Name] },
		func(l netlink.Link) bool { return staleParent(l, nets, usedParents) },
	} {
		for _, l := range links {
			if !pass(l) {
				continue
			}
			m.log.Info("deleting weft link of no known network or endpoint", "link", l.Attrs().Name, "type", l.Type(), "alias", l.Attrs().Alias)
			errs = append(errs, m.nl.DeleteLink(l))
		}
	}
	return errors.Join(errs...)
}

// staleParent reports whether l is a parent weft made (an isolated network's
// bridge or a VLAN sub-interface) that no listed network uses.
func staleParent(l netlink.Link, nets map[string]dataplane.Network, usedParents map[string]bool) bool {
	a := l.Attrs()
	switch l.Type() {
	case "bridge":
		if id, ok := strings.CutPrefix(a.Alias, IsolatedAliasPrefix); ok {
			n, listed := nets[id]
			return !listed || !isolated(n) || IsolatedParentName(n.ID) != a.Name
		}
		// No alias: made by weft, which died before setting it.
		return a.Alias == "" && isolatedName.MatchString(a.Name) && !usedParents[a.Name]
	case "vlan":
		return a.Alias == VLANAlias && !usedParents[a.Name]
	}
	return false
}
