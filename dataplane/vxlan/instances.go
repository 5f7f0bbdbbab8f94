package vxlan

import (
	"errors"
	"fmt"
	"strings"

	"github.com/vishvananda/netlink"

	"github.com/weftnet/weft/dataplane"
	"github.com/weftnet/weft/dataplane/fw"
)

// ErrPortOfOtherWeft is wrapped by CreateNetwork's error when the network's
// UDP port carries a vxlan network of the other weft instance on this host
// (a local-scope and a global-scope weft, see Flavour).
var ErrPortOfOtherWeft = errors.New("UDP port used by the other weft on this host")

// otherFlavourLink returns the other flavour that made l, a VXLAN link, and
// the network it names ("" if the link has no alias yet).
func (f Flavour) otherFlavourLink(l netlink.Link) (Flavour, string, bool) {
	a := l.Attrs()
	for _, o := range Flavours() {
		if o == f {
			continue
		}
		if id, ok := o.aliasNetwork(a.Alias); ok {
			return o, id, true
		}
		if a.Alias == "" && o.isNetLinkName(a.Name, false) {
			return o, "", true
		}
	}
	return Flavour{}, "", false
}

// portHolder describes the other weft instance's VXLAN link on port among
// links, or returns "".
//
// Two instances never share a UDP port: every known-VTEP DROP rule on a
// port applies to every packet to it, so the other instance's peers, which
// are not in this instance's set, would be dropped by this instance's rule
// (and the other way round). Keeping the ports apart keeps the filters,
// and so the instances, independent.
func (f Flavour) portHolder(links []netlink.Link, port uint16) string {
	for _, l := range links {
		vx, ok := l.(*netlink.Vxlan)
		if !ok || vx.Port != int(port) {
			continue
		}
		o, id, ok := f.otherFlavourLink(l)
		if !ok {
			continue
		}
		if id == "" {
			return fmt.Sprintf("the %s weft (interface %q)", o.instance, vx.Name)
		}
		return fmt.Sprintf("the %s weft's vxlan network %s (interface %q)", o.instance, dataplane.ShortID(id), vx.Name)
	}
	return ""
}

// checkPortFree refuses n if the other weft instance on this host carries
// a network on n's UDP port, unless n's own VXLAN link is there already (a
// network made before, which Reconcile warns about instead).
func (m *Mode) checkPortFree(n dataplane.Network) error {
	links, err := m.nl.LinkList()
	if err != nil {
		return err
	}
	for _, l := range links {
		if l.Type() == "vxlan" && l.Attrs().Name == m.names.LinkName(n.ID) && m.names.ownedBy(l, n.ID) {
			return nil
		}
	}
	port := portOf(n)
	if who := m.names.portHolder(links, port); who != "" {
		return fmt.Errorf("UDP port %d already carries %s on this host; a local-scope and a global-scope weft on one host need different ports, because each drops VXLAN packets from hosts it does not know: create the network with another -o vxlan_port=P (the same on every host): %w",
			port, who, ErrPortOfOtherWeft)
	}
	return nil
}

// warnSharedPorts logs the listed networks whose port the other weft
// instance on this host also uses (made before this check existed, or by
// two creations at the same moment): their peers may be dropped by the
// other instance's known-VTEP filter. They are left as they are.
func (m *Mode) warnSharedPorts(nets map[string]dataplane.Network) {
	if len(nets) == 0 {
		return
	}
	links, err := m.nl.LinkList()
	if err != nil {
		return // sweepLinks reports it
	}
	for _, id := range sortedKeys(nets) {
		if who := m.names.portHolder(links, portOf(nets[id])); who != "" {
			m.log.Warn("this vxlan network shares its UDP port with the other weft on this host; each weft's known-VTEP filter may drop the other's peers: re-create one of them with another vxlan_port",
				"network", dataplane.ShortID(id), "port", portOf(nets[id]), "other", who)
		}
	}
}

// adoptEarlier takes over what a global-scope weft made before flavours
// existed, when it used the local-scope names: the links of networks listed
// here that carry a Local alias are this instance's (a network ID names one
// network; a local-scope weft cannot have a swarm network's), so they are
// renamed to this flavour's names and aliased as its own, veths included
// (each is down for a moment). If any was, the old known-VTEP rules of the
// ports no local-scope weft's VXLAN link uses are removed (they would keep
// dropping new peers), and, if no local-scope weft's link is left at all,
// the old bridged rule and sets. A Local Mode adopts nothing.
func (m *Mode) adoptEarlier(listed map[string]bool) error {
	old := Local()
	if m.names == old {
		return nil
	}
	links, err := m.nl.LinkList()
	if err != nil {
		return err
	}
	var errs []error
	adopted, othersLeft, otherPorts := 0, false, map[uint16]bool{}
	for _, l := range links {
		a := l.Attrs()
		id, ok := old.aliasNetwork(a.Alias)
		name := ""
		if ok && listed[id] {
			name = m.names.adoptedName(old, l, id)
		}
		if name == "" {
			// Not one of this instance's: the local-scope weft's, if
			// anyone's.
			if ok || a.Alias == "" && (old.isNetLinkName(a.Name, true) || old.isNetLinkName(a.Name, false) || old.isVethName(a.Name)) {
				othersLeft = true
				if vx, isVx := l.(*netlink.Vxlan); isVx {
					otherPorts[uint16(vx.Port)] = true
				}
			}
			continue
		}
		m.log.Info("renaming a link an earlier global-scope weft made under the local-scope names", "network", dataplane.ShortID(id), "link", a.Name, "to", name)
		if err := m.nl.Rename(l, name); err != nil {
			errs = append(errs, err)
			continue
		}
		errs = append(errs, m.nl.SetAlias(l, m.names.ownerAlias(id)))
		adopted++
	}
	if adopted > 0 && m.fw != nil {
		errs = append(errs, m.removeFilterOf(old, otherPorts, othersLeft))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("taking over the links of an earlier global-scope weft: %w", err)
	}
	return nil
}

// adoptedName is f's name for l, a link flavour old made for network id, or
// "" if l is not one of old's links.
func (f Flavour) adoptedName(old Flavour, l netlink.Link, id string) string {
	name := l.Attrs().Name
	switch l.Type() {
	case "bridge":
		if name == old.BridgeName(id) {
			return f.BridgeName(id)
		}
	case "vxlan":
		if name == old.LinkName(id) {
			return f.LinkName(id)
		}
	case "veth":
		if rest, ok := strings.CutPrefix(name, old.hostPrefix); ok && isIDPrefix(rest, epIDLen) {
			return f.hostPrefix + rest
		}
		if rest, ok := strings.CutPrefix(name, old.containerPrefix); ok && isIDPrefix(rest, epIDLen) {
			return f.containerPrefix + rest
		}
	}
	return ""
}

// removeFilterOf removes flavour o's known-VTEP rules of the ports not in
// keepPorts, in every family, and unless inUse its bridged rule and sets.
func (m *Mode) removeFilterOf(o Flavour, keepPorts map[uint16]bool, inUse bool) error {
	var errs []error
	for _, f := range []fw.Family{fw.IPv4, fw.IPv6} {
		if !m.fw.Has(f) {
			continue
		}
		rules, err := m.fw.Rules(f, fw.Filter, "INPUT")
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for p := range o.filterPorts(rules) {
			if !keepPorts[p] {
				m.log.Info("removing a known-VTEP rule an earlier global-scope weft made under the local-scope names", "family", f, "port", p)
				errs = append(errs, m.fw.DeleteRule(f, o.filterRule(f, p)))
			}
		}
		if !inUse {
			errs = append(errs, m.fw.DeleteRule(f, o.bridgedRule()), m.nl.DestroySet(o.vtepSet(f)))
		}
	}
	return errors.Join(errs...)
}
