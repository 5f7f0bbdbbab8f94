package macvlan

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/weftnet/weft/dataplane"
)

// Validate checks the values of a macvlan network that need no kernel: the
// mode name, the parent's syntax and, for parent=<link>.<VLAN ID>, the VLAN ID,
// the MTU's range and the subnets. The plugin calls it before any side effect;
// CreateNetwork calls it again. Errors name the option and what to do.
func Validate(n dataplane.Network) error {
	if n.Mode != dataplane.Macvlan {
		return fmt.Errorf("network %s has mode %q, not %q", dataplane.ShortID(n.ID), n.Mode, dataplane.Macvlan)
	}
	if dataplane.CheckID(n.ID) != nil {
		return fmt.Errorf("invalid network ID %q", n.ID)
	}
	if m := n.Macvlan.Mode; m != "" && !slices.Contains(Modes(), m) {
		return fmt.Errorf("macvlan_mode %q is not a macvlan mode: use %s", m, strings.Join(Modes(), ", "))
	}
	if p := n.Macvlan.Parent; p != "" {
		if err := dataplane.CheckLinkName(p); err != nil {
			return fmt.Errorf("parent %q: %w", p, err)
		}
		if _, _, err := splitVLAN(p); err != nil && !errors.Is(err, errNotVLAN) {
			return fmt.Errorf("parent %q: %w", p, err)
		}
	}
	if n.MTU != 0 && (n.MTU < 68 || n.MTU > 65535) {
		return fmt.Errorf("MTU %d: want a number between 68 and 65535, or none to use the parent's", n.MTU)
	}
	for _, s := range n.IPv4 {
		if err := validSubnet(s, true); err != nil {
			return err
		}
	}
	for _, s := range n.IPv6 {
		if err := validSubnet(s, false); err != nil {
			return err
		}
	}
	return nil
}

func validSubnet(s dataplane.Subnet, v4 bool) error {
	fam := "IPv6"
	if v4 {
		fam = "IPv4"
	}
	if !s.Pool.IsValid() || s.Pool.Addr().Is4() != v4 {
		return fmt.Errorf("invalid %s subnet %v", fam, s.Pool)
	}
	if s.Gateway.IsValid() && (s.Gateway.Is4() != v4 || !s.Pool.Contains(s.Gateway)) {
		return fmt.Errorf("gateway %s is not in subnet %s", s.Gateway, s.Pool)
	}
	return nil
}

// validateEndpoint checks ep (and that it belongs to n).
func validateEndpoint(n dataplane.Network, ep dataplane.Endpoint) error {
	if dataplane.CheckID(n.ID) != nil {
		return fmt.Errorf("invalid network ID %q", n.ID)
	}
	if dataplane.CheckID(ep.ID) != nil {
		return fmt.Errorf("invalid endpoint ID %q", ep.ID)
	}
	if ep.NetworkID != "" && ep.NetworkID != n.ID {
		return fmt.Errorf("endpoint %s belongs to network %s, not %s", dataplane.ShortID(ep.ID), dataplane.ShortID(ep.NetworkID), dataplane.ShortID(n.ID))
	}
	if ep.MAC != nil && (len(ep.MAC) != 6 || ep.MAC[0]&1 != 0) {
		return fmt.Errorf("MAC address %s: want a 6-byte unicast address", ep.MAC)
	}
	return nil
}

// conflict explains why n cannot share its parent with the known network o,
// or returns nil. Networks on different parents, and isolated networks
// (each has a parent of its own), never conflict.
func conflict(n, o dataplane.Network) error {
	if n.ID == o.ID || isolated(n) || n.Macvlan.Parent != o.Macvlan.Parent {
		return nil
	}
	p, other := n.Macvlan.Parent, dataplane.ShortID(o.ID)
	switch {
	case modeOf(o) == ModePassthru:
		return fmt.Errorf("parent %q is already used by weft network %s in passthru mode, which gives the whole interface to one container; choose another parent", p, other)
	case modeOf(n) == ModePassthru:
		return fmt.Errorf("parent %q is already used by weft network %s; a passthru network needs its parent to itself: choose another parent or another macvlan_mode", p, other)
	}
	for _, a := range subnets(n) {
		for _, b := range subnets(o) {
			if a.Overlaps(b) {
				return fmt.Errorf("subnet %s overlaps subnet %s of weft network %s, which already uses parent %q: both would share one LAN with clashing addresses; use a subnet that does not overlap, or another parent", a, b, other, p)
			}
		}
	}
	return nil
}

func subnets(n dataplane.Network) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range append(append([]dataplane.Subnet(nil), n.IPv4...), n.IPv6...) {
		out = append(out, s.Pool.Masked())
	}
	return out
}

// gatewayFor returns the gateway of the subnet holding addr (the first subnet
// with a gateway if none holds it); none if the endpoint has no address.
func gatewayFor(subnets []dataplane.Subnet, addr netip.Prefix) netip.Addr {
	if !addr.IsValid() {
		return netip.Addr{}
	}
	var first netip.Addr
	for _, s := range subnets {
		if !s.Gateway.IsValid() {
			continue
		}
		if s.Pool.Contains(addr.Addr()) {
			return s.Gateway
		}
		if !first.IsValid() {
			first = s.Gateway
		}
	}
	return first
}
