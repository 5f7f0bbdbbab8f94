package vxlan

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"

	"github.com/vishvananda/netlink"

	"github.com/weftnet/weft/dataplane"
	"github.com/weftnet/weft/dataplane/nl"
)

// reattach puts an existing host veth back on br (a re-created bridge has no
// ports) and up. A missing veth is fine.
func (m *Mode) reattach(br netlink.Link, host string) error {
	l, err := m.nl.LinkByName(host)
	if errors.Is(err, nl.ErrLinkNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if !m.names.ownedVeth(l) {
		return nil
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

// Reconcile makes the kernel match nets and eps: it re-creates missing
// bridges and VXLAN links of listed networks (and their peers' entries, for
// networks SetPeers was called for), re-attaches listed endpoints' host
// veths, and deletes the links this mode made (alias "weft-vxlan:<id>", or
// none and one of its names) that belong to no listed network or endpoint.
// The peer entries of a listed network for which SetPeers has not been
// called (as after a restart) are left as they are: the control plane's
// first SetPeers decides. A listed network that fails validation is reported
// and its links left as they are. Links weft did not make, and the other
// modes' links, are never touched. Errors are collected: one broken network
// does not stop the rest.
func (m *Mode) Reconcile(ctx context.Context, nets []dataplane.Network, eps []dataplane.Endpoint) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var errs []error
	listed := map[string]bool{}
	valid := map[string]dataplane.Network{}
	for _, n := range nets {
		listed[n.ID] = true
		if err := Validate(n); err != nil {
			errs = append(errs, fmt.Errorf("network %s left as it is: %w", dataplane.ShortID(n.ID), err))
			continue
		}
		valid[n.ID] = n
	}
	m.nets = valid
	for id := range m.peers {
		if _, ok := valid[id]; !ok {
			delete(m.peers, id)
		}
	}
	m.eps = map[string]map[string]dataplane.Endpoint{}
	keepVeths := map[string]bool{}
	for _, ep := range eps {
		if !listed[ep.NetworkID] || dataplane.CheckID(ep.ID) != nil {
			continue // its veth, if any, is swept below
		}
		host, cont := m.names.VethNames(ep.ID)
		keepVeths[host], keepVeths[cont] = true, true
		if _, ok := valid[ep.NetworkID]; ok {
			if m.eps[ep.NetworkID] == nil {
				m.eps[ep.NetworkID] = map[string]dataplane.Endpoint{}
			}
			m.eps[ep.NetworkID][ep.ID] = ep
		}
	}
	// Links of an earlier global-scope weft under the local-scope names
	// become this flavour's, before the sweep that would take them for
	// another instance's.
	errs = append(errs, m.adoptEarlier(listed))
	// Stale links first: a VXLAN link of a deleted network may hold the
	// VNI a listed network needs.
	errs = append(errs, m.sweepLinks(listed, keepVeths))
	for _, id := range sortedKeys(valid) {
		if err := ctx.Err(); err != nil {
			return errors.Join(append(errs, err)...)
		}
		if err := m.ensureNetwork(valid[id]); err != nil {
			errs = append(errs, fmt.Errorf("network %s: %w", dataplane.ShortID(id), err))
		}
	}
	errs = append(errs, m.syncFilter(true, true))
	m.warnSharedPorts(valid)
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("reconciling vxlan networks: %w", err)
	}
	m.log.Info("reconciled", "networks", len(nets), "endpoints", len(eps))
	return nil
}

func sortedKeys[V any](mp map[string]V) []string {
	keys := make([]string, 0, len(mp))
	for k := range mp {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// sweepLinks deletes this mode's links of no listed network (bridges and
// VXLAN links) or endpoint (veths).
func (m *Mode) sweepLinks(listed, keepVeths map[string]bool) error {
	links, err := m.nl.LinkList()
	if err != nil {
		return err
	}
	var errs []error
	// Veths first, then the VXLAN links, then the bridges they are ports of.
	for _, typ := range []string{"veth", "vxlan", "bridge"} {
		for _, l := range links {
			if l.Type() != typ || !m.names.stale(l, listed, keepVeths) {
				continue
			}
			m.log.Info("deleting weft link of no known network or endpoint", "link", l.Attrs().Name, "type", l.Type(), "alias", l.Attrs().Alias)
			errs = append(errs, m.nl.DeleteLink(l))
		}
	}
	return errors.Join(errs...)
}

// stale reports whether l is a link this flavour made that nothing listed
// uses. Another flavour's links (another weft instance's) never are.
func (f Flavour) stale(l netlink.Link, listed, keepVeths map[string]bool) bool {
	a := l.Attrs()
	switch l.Type() {
	case "veth":
		return f.ownedVeth(l) && !keepVeths[a.Name]
	case "bridge", "vxlan":
		isBridge := l.Type() == "bridge"
		want := f.LinkName
		if isBridge {
			want = f.BridgeName
		}
		if id, ok := f.aliasNetwork(a.Alias); ok {
			return !listed[id] || want(id) != a.Name
		}
		if a.Alias != "" || !f.isNetLinkName(a.Name, isBridge) {
			return false
		}
		// No alias: made by weft, which died before setting it.
		for id := range listed {
			if want(id) == a.Name {
				return false
			}
		}
		return true
	}
	return false
}

// Check compares the kernel with what m made and returns the first thing
// missing or different, or "" if everything is in place: every network's
// bridge and VXLAN link (a port of the bridge, both up), every known
// endpoint's host veth on its bridge, and, for networks SetPeers was called
// for, the peer entries. It reads the links with one dump and the entries
// with three (IPv4 and IPv6 neighbours, FDB), whatever the number of
// networks.
func (m *Mode) Check(ctx context.Context) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.nets) == 0 {
		return "", nil
	}
	links, err := m.nl.LinkList()
	if err != nil {
		return "", err
	}
	byName := make(map[string]netlink.Link, len(links))
	for _, l := range links {
		byName[l.Attrs().Name] = l
	}
	var entries map[int]*kernelEntries
	if len(m.peers) > 0 {
		if entries, err = m.readAllEntries(0); err != nil {
			return "", err
		}
	}
	if why, err := m.checkFilter(); why != "" || err != nil {
		return why, err
	}
	for _, id := range sortedKeys(m.nets) {
		short := dataplane.ShortID(id)
		br, vx := byName[m.names.BridgeName(id)], byName[m.names.LinkName(id)]
		switch {
		case br == nil || br.Type() != "bridge" || !m.names.ownedBy(br, id):
			return fmt.Sprintf("network %s: bridge %s is missing", short, m.names.BridgeName(id)), nil
		case vx == nil || vx.Type() != "vxlan" || !m.names.ownedBy(vx, id):
			return fmt.Sprintf("network %s: VXLAN link %s is missing", short, m.names.LinkName(id)), nil
		case vx.Attrs().MasterIndex != br.Attrs().Index:
			return fmt.Sprintf("network %s: VXLAN link %s is not a port of bridge %s", short, m.names.LinkName(id), m.names.BridgeName(id)), nil
		case br.Attrs().Flags&net.FlagUp == 0 || vx.Attrs().Flags&net.FlagUp == 0:
			return fmt.Sprintf("network %s: bridge %s or VXLAN link %s is down", short, m.names.BridgeName(id), m.names.LinkName(id)), nil
		}
		for _, epID := range sortedKeys(m.eps[id]) {
			host, _ := m.names.VethNames(epID)
			if l := byName[host]; l != nil && m.names.ownedVeth(l) && l.Attrs().MasterIndex != br.Attrs().Index {
				return fmt.Sprintf("network %s: endpoint veth %s is not a port of bridge %s", short, host, m.names.BridgeName(id)), nil
			}
		}
		want, ok := m.peers[id]
		if !ok {
			continue
		}
		if d := peerDiff(peersFrom(entries[vx.Attrs().Index]), wantedPeers(want)); d != "" {
			return fmt.Sprintf("network %s, VXLAN link %s: %s", short, m.names.LinkName(id), d), nil
		}
	}
	return "", nil
}

// Repair re-creates what is missing of every known network (links, bridge
// ports, settings) and rewrites its peers' entries. Within weft's own VXLAN
// links it removes stale peer entries (the links and their entries are this
// Mode's alone); it removes no link.
func (m *Mode) Repair(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var errs []error
	for _, id := range sortedKeys(m.nets) {
		if err := ctx.Err(); err != nil {
			return errors.Join(append(errs, err)...)
		}
		if err := m.ensureNetwork(m.nets[id]); err != nil {
			errs = append(errs, fmt.Errorf("network %s: %w", dataplane.ShortID(id), err))
		}
	}
	errs = append(errs, m.syncFilter(true, false))
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("repairing vxlan networks: %w", err)
	}
	return nil
}
