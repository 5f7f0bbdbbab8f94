package vxlan

import (
	"errors"
	"fmt"

	"github.com/vishvananda/netlink"

	"github.com/weftnet/weft/dataplane"
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
