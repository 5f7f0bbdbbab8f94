package plugin

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/weftnet/weft/dataplane"
	"github.com/weftnet/weft/ipam"
)

// Option names users pass with `docker network create -o`. Docker's own names
// are kept wherever Docker has one, so `-d bridge` → `-d weft` needs no change.
const (
	optMode            = "mode"
	optMTU             = "com.docker.network.driver.mtu"
	optBridgeName      = "com.docker.network.bridge.name"
	optEnableICC       = "com.docker.network.bridge.enable_icc"
	optMasquerade      = "com.docker.network.bridge.enable_ip_masquerade"
	optHostBindingIPv4 = "com.docker.network.bridge.host_binding_ipv4"
	optGatewayModeIPv6 = "com.docker.network.bridge.gateway_mode_ipv6"
	optParent          = "parent"
	optMacvlanMode     = "macvlan_mode"
	optVNI             = "vni"
	optVxlanPort       = "vxlan_port"
)

// Keys of CreateNetwork's top-level Options map (set by dockerd, not the user).
const (
	keyGeneric    = "com.docker.network.generic"
	keyEnableIPv6 = "com.docker.network.enable_ipv6"
	keyEnableIPv4 = "com.docker.network.enable_ipv4"
	keyInternal   = "com.docker.network.internal"
)

// knownModes lists every mode weft has options for, in the order errors name them.
func knownModes() []dataplane.ModeName {
	return []dataplane.ModeName{dataplane.Bridge, dataplane.Macvlan, dataplane.Vxlan}
}

// modeOptions lists the -o options a mode accepts besides the common ones.
func modeOptions(m dataplane.ModeName) []string {
	switch m {
	case dataplane.Bridge:
		return []string{optBridgeName, optEnableICC, optMasquerade, optHostBindingIPv4, optGatewayModeIPv6}
	case dataplane.Macvlan:
		return []string{optParent, optMacvlanMode}
	case dataplane.Vxlan:
		return []string{optVNI, optVxlanPort}
	}
	return nil
}

// commonOptions are accepted in every mode.
func commonOptions() []string { return []string{optMode, optMTU} }

// ErrInvalidOption marks a refused network option; the message names it.
var ErrInvalidOption = errors.New("invalid network option")

// networkRequest is CreateNetwork's input after decoding, before validation.
type networkRequest struct {
	ID      string
	Options map[string]any
	IPv4    []ipamData
	IPv6    []ipamData
}

// ipamData mirrors one entry of IPv4Data/IPv6Data.
type ipamData struct {
	AddressSpace string
	Pool         string
	Gateway      string
}

// parseNetwork validates a CreateNetwork request into a dataplane.Network.
// It has no side effects; every refusal names the option and what is accepted.
func parseNetwork(req networkRequest) (dataplane.Network, error) {
	n := dataplane.Network{ID: dataplane.CanonicalID(req.ID)}
	if err := checkID("network", n.ID); err != nil {
		return n, err
	}
	generic, err := genericOptions(req.Options)
	if err != nil {
		return n, err
	}
	if n.Mode, err = parseMode(generic); err != nil {
		return n, err
	}
	if err := checkIPv4Enabled(req.Options); err != nil {
		return n, err
	}
	if n.EnableIPv6, err = boolOption(req.Options, keyEnableIPv6, false); err != nil {
		return n, err
	}
	if n.Internal, err = boolOption(req.Options, keyInternal, false); err != nil {
		return n, err
	}
	if v, ok := generic[optMTU]; ok {
		mtu, err := strconv.Atoi(v)
		if err != nil || mtu < 68 || mtu > 65535 {
			return n, fmt.Errorf("%w: %s=%q: want a number between 68 and 65535", ErrInvalidOption, optMTU, v)
		}
		n.MTU = mtu
	}
	if n.IPv4, err = parseSubnets(req.IPv4, false); err != nil {
		return n, err
	}
	if n.IPv6, err = parseSubnets(req.IPv6, true); err != nil {
		return n, err
	}
	switch n.Mode {
	case dataplane.Bridge:
		err = parseBridge(&n, generic)
	case dataplane.Macvlan:
		err = parseMacvlan(&n, generic)
	case dataplane.Vxlan:
		err = parseVxlan(&n, generic)
	}
	return n, err
}

// parseMode reads the mode option (bridge when absent) and checks that
// every other option belongs to that mode.
func parseMode(generic map[string]string) (dataplane.ModeName, error) {
	mode := dataplane.Bridge
	if m, ok := generic[optMode]; ok {
		mode = dataplane.ModeName(m)
		if !slices.Contains(knownModes(), mode) {
			return mode, fmt.Errorf("%w: %s=%q is not a weft mode; use bridge, macvlan or vxlan", ErrInvalidOption, optMode, m)
		}
	}
	return mode, checkOptionNames(mode, generic)
}

// genericOptions extracts the user's -o options as strings.
func genericOptions(opts map[string]any) (map[string]string, error) {
	out := map[string]string{}
	raw, ok := opts[keyGeneric]
	if !ok || raw == nil {
		return out, nil
	}
	m, ok := raw.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%w: %s is %T, want an object of options", ErrInvalidOption, keyGeneric, raw)
	}
	for k, v := range m {
		switch v := v.(type) {
		case string:
			out[k] = v
		case bool:
			out[k] = strconv.FormatBool(v)
		case float64:
			out[k] = strconv.FormatFloat(v, 'f', -1, 64)
		default:
			return nil, fmt.Errorf("%w: %s has a value of type %T, want a string", ErrInvalidOption, k, v)
		}
	}
	return out, nil
}

// checkOptionNames refuses options weft does not know and options that belong
// to another mode, naming what the mode accepts.
func checkOptionNames(mode dataplane.ModeName, generic map[string]string) error {
	allowed := append(commonOptions(), modeOptions(mode)...)
	names := make([]string, 0, len(generic))
	for k := range generic {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		if slices.Contains(allowed, k) {
			continue
		}
		for _, other := range knownModes() {
			if slices.Contains(modeOptions(other), k) {
				return fmt.Errorf("%w: %s applies to mode %s, not %s (set -o mode=%s)", ErrInvalidOption, k, other, mode, other)
			}
		}
		return fmt.Errorf("%w: unknown option %q for mode %s; accepted options: %s", ErrInvalidOption, k, mode, strings.Join(allowed, ", "))
	}
	return nil
}

// boolOption reads one of dockerd's boolean top-level options.
func boolOption(opts map[string]any, key string, def bool) (bool, error) {
	v, ok := opts[key]
	if !ok || v == nil {
		return def, nil
	}
	switch v := v.(type) {
	case bool:
		return v, nil
	case string:
		b, err := strconv.ParseBool(v)
		if err != nil {
			return def, fmt.Errorf("%w: %s=%q: want true or false", ErrInvalidOption, key, v)
		}
		return b, nil
	}
	return def, fmt.Errorf("%w: %s is %T, want true or false", ErrInvalidOption, key, v)
}

// stringBool parses a user's -o boolean.
func stringBool(generic map[string]string, key string, def bool) (bool, error) {
	v, ok := generic[key]
	if !ok {
		return def, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return def, fmt.Errorf("%w: %s=%q: want true or false", ErrInvalidOption, key, v)
	}
	return b, nil
}

// parseSubnets turns IPv4Data/IPv6Data into subnets. Docker's null IPAM sends
// 0.0.0.0/0 with no gateway; such an entry means "no subnet" and is dropped.
// Every other pool must be one a container network can have, whichever IPAM
// driver chose it: a default-route pool would, for one, get a MASQUERADE
// rule with no source limit that NATs every forwarded packet on the host.
func parseSubnets(data []ipamData, v6 bool) ([]dataplane.Subnet, error) {
	family := "IPv4"
	if v6 {
		family = "IPv6"
	}
	var out []dataplane.Subnet
	for _, d := range data {
		pool, err := netip.ParsePrefix(d.Pool)
		if err != nil {
			return nil, fmt.Errorf("%w: %s pool %q is not a CIDR subnet", ErrInvalidOption, family, d.Pool)
		}
		if pool.Addr().Is6() != v6 || pool.Addr().Zone() != "" {
			return nil, fmt.Errorf("%w: pool %s is not an %s subnet", ErrInvalidOption, pool, family)
		}
		if pool.Bits() == 0 && d.Gateway == "" && !v6 && pool.Addr().IsUnspecified() {
			continue
		}
		pool = pool.Masked()
		if err := ipam.CheckSubnet("subnet", pool); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidOption, err)
		}
		s := dataplane.Subnet{Pool: pool}
		if d.Gateway != "" {
			gw, err := parseAddrOrPrefix(d.Gateway)
			if err != nil {
				return nil, fmt.Errorf("%w: gateway %q of pool %s: %w", ErrInvalidOption, d.Gateway, pool, err)
			}
			if !pool.Contains(gw) {
				return nil, fmt.Errorf("%w: gateway %s is outside pool %s", ErrInvalidOption, gw, pool)
			}
			if err := checkGateway(pool, gw); err != nil {
				return nil, err
			}
			s.Gateway = gw
		}
		out = append(out, s)
	}
	return out, nil
}

// checkGateway refuses an IPv4 gateway that is its subnet's network or
// broadcast address: hosts would send to the whole subnet, or to nobody.
// /31 and /32 have no such addresses (RFC 3021).
func checkGateway(pool netip.Prefix, gw netip.Addr) error {
	if !gw.Is4() || pool.Bits() >= 31 {
		return nil
	}
	if gw == pool.Addr() {
		return fmt.Errorf("%w: gateway %s is the network address of %s; use a host address such as %s", ErrInvalidOption, gw, pool, pool.Addr().Next())
	}
	b := pool.Addr().As4()
	host := uint32(1)<<(32-pool.Bits()) - 1
	v := (uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])) | host
	if gw == netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}) {
		return fmt.Errorf("%w: gateway %s is the broadcast address of %s; use a host address such as %s", ErrInvalidOption, gw, pool, pool.Addr().Next())
	}
	return nil
}

// parseAddrOrPrefix accepts "10.0.0.1" or "10.0.0.1/24" (Docker sends the
// latter) and returns the address in its one canonical form: an
// IPv4-mapped IPv6 address becomes the IPv4 address it denotes (it would
// otherwise be a second spelling of one address in keys and records), and a
// zone (fe80::1%eth0) is refused.
func parseAddrOrPrefix(s string) (netip.Addr, error) {
	var a netip.Addr
	var err error
	if strings.Contains(s, "/") {
		var p netip.Prefix
		p, err = netip.ParsePrefix(s)
		a = p.Addr()
	} else {
		a, err = netip.ParseAddr(s)
	}
	switch {
	case err != nil:
		return netip.Addr{}, errors.New("not an IP address")
	case a.Zone() != "":
		return netip.Addr{}, errors.New("an address with a zone (%...) cannot be a container address")
	}
	return a.Unmap(), nil
}

// parseBridge fills the bridge-mode settings with Docker's defaults.
func parseBridge(n *dataplane.Network, generic map[string]string) error {
	var err error
	b := &n.Bridge
	b.Name = generic[optBridgeName]
	if b.Name == "" {
		b.Name = dataplane.DefaultBridgeName(n.ID)
	} else if err := dataplane.CheckLinkName(b.Name); err != nil {
		return fmt.Errorf("%w: %s=%q: %w", ErrInvalidOption, optBridgeName, b.Name, err)
	}
	if b.EnableICC, err = stringBool(generic, optEnableICC, true); err != nil {
		return err
	}
	if b.Masquerade, err = stringBool(generic, optMasquerade, true); err != nil {
		return err
	}
	if v, ok := generic[optHostBindingIPv4]; ok {
		a, err := netip.ParseAddr(v)
		if err != nil || !a.Is4() {
			return fmt.Errorf("%w: %s=%q: want an IPv4 address", ErrInvalidOption, optHostBindingIPv4, v)
		}
		b.HostBindingIPv4 = a
	}
	switch v := generic[optGatewayModeIPv6]; v {
	case "", dataplane.GatewayModeNAT, dataplane.GatewayModeRouted:
		b.GatewayModeIPv6 = v
	default:
		return fmt.Errorf("%w: %s=%q: use %s or %s", ErrInvalidOption, optGatewayModeIPv6, v, dataplane.GatewayModeNAT, dataplane.GatewayModeRouted)
	}
	if len(n.IPv4) == 0 && len(n.IPv6) == 0 {
		return fmt.Errorf("%w: a bridge network needs a subnet; use the weft or default IPAM driver, not null", ErrInvalidOption)
	}
	return nil
}

// macvlanModes are the kernel's macvlan modes, under Docker's names.
func macvlanModes() []string { return []string{"bridge", "private", "vepa", "passthru"} }

// parseMacvlan checks the macvlan settings that need no kernel: the mode name,
// the parent's syntax and, for parent=name.VID, the VLAN ID (as Docker does, a
// dot in the parent's name means an 802.1Q sub-interface).
func parseMacvlan(n *dataplane.Network, generic map[string]string) error {
	m := &n.Macvlan
	m.Mode = generic[optMacvlanMode]
	if m.Mode == "" {
		m.Mode = "bridge"
	}
	if !slices.Contains(macvlanModes(), m.Mode) {
		return fmt.Errorf("%w: %s=%q: use %s", ErrInvalidOption, optMacvlanMode, m.Mode, strings.Join(macvlanModes(), ", "))
	}
	m.Parent = generic[optParent]
	if m.Parent == "" {
		return nil
	}
	if err := dataplane.CheckLinkName(m.Parent); err != nil {
		return fmt.Errorf("%w: %s=%q: %w", ErrInvalidOption, optParent, m.Parent, err)
	}
	if i := strings.LastIndexByte(m.Parent, '.'); i >= 0 {
		vid, err := strconv.Atoi(m.Parent[i+1:])
		if i == 0 || err != nil || vid < 1 || vid > 4094 {
			return fmt.Errorf("%w: %s=%q: a parent with a dot names a VLAN sub-interface as <link>.<VLAN ID>, with an ID between 1 and 4094", ErrInvalidOption, optParent, m.Parent)
		}
	}
	return nil
}

// parseVxlan reads the vxlan settings (the mode itself may not be wired in).
func parseVxlan(n *dataplane.Network, generic map[string]string) error {
	if v, ok := generic[optVNI]; ok {
		vni, err := strconv.ParseUint(v, 10, 32)
		if err != nil || vni < 1 || vni > 1<<24-1 {
			return fmt.Errorf("%w: %s=%q: want a number between 1 and 16777215", ErrInvalidOption, optVNI, v)
		}
		n.Vxlan.VNI = uint32(vni)
	}
	n.Vxlan.Port = 4789
	if v, ok := generic[optVxlanPort]; ok {
		port, err := strconv.ParseUint(v, 10, 16)
		if err != nil || port == 0 {
			return fmt.Errorf("%w: %s=%q: want a UDP port between 1 and 65535", ErrInvalidOption, optVxlanPort, v)
		}
		n.Vxlan.Port = uint16(port)
	}
	return nil
}

// checkID refuses an object ID weft would not take literally everywhere it
// goes (kind is "network" or "endpoint"); id is already canonical.
func checkID(kind, id string) error {
	if err := dataplane.CheckID(id); err != nil {
		return fmt.Errorf("%w: %s ID %q: %w", ErrInvalidOption, kind, id, err)
	}
	return nil
}

// checkIPv4Enabled refuses an IPv6-only network (`--ipv4=false`, Docker 28
// and later): every weft mode gives each container an IPv4 address, and
// taking the option silently would make a network the user did not ask
// for.
func checkIPv4Enabled(opts map[string]any) error {
	v4, err := boolOption(opts, keyEnableIPv4, true)
	if err != nil {
		return err
	}
	if !v4 {
		return fmt.Errorf("%w: IPv6-only networks (--ipv4=false) are not supported by weft yet; leave IPv4 on (add --ipv6 for dual stack)", ErrInvalidOption)
	}
	return nil
}

// gatewayless reports whether a network created with these CreateNetwork
// options has no use for a gateway address (see Driver.GwAllocCheck). It
// refuses what CreateNetwork would refuse, so the user hears of a bad
// option before Docker reserves anything.
func gatewayless(opts map[string]any) (bool, error) {
	generic, err := genericOptions(opts)
	if err != nil {
		return false, err
	}
	mode, err := parseMode(generic)
	if err != nil {
		return false, err
	}
	if err := checkIPv4Enabled(opts); err != nil {
		return false, err
	}
	internal, err := boolOption(opts, keyInternal, false)
	if err != nil {
		return false, err
	}
	switch mode {
	case dataplane.Macvlan:
		return internal || generic[optParent] == "", nil
	case dataplane.Vxlan:
		return internal, nil
	}
	return false, nil
}
