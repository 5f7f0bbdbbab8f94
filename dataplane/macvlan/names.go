package macvlan

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/vishvananda/netlink"

	"github.com/weftnet/weft/dataplane"
)

// Kernel names and aliases of the links this mode makes.
const (
	// endpointPrefix starts an endpoint's macvlan link name, followed by
	// the first 12 characters of the endpoint ID (14 bytes).
	endpointPrefix = "wv"
	endpointIDLen  = 12
	// isolatedPrefix starts the name of an isolated network's parent
	// bridge, followed by the first 10 characters of the network ID (13
	// bytes).
	isolatedPrefix = "wm-"
	isolatedIDLen  = 10
	// IsolatedAliasPrefix starts the alias of an isolated network's parent
	// bridge, followed by the network ID. It is deliberately not
	// dataplane.OwnerAliasPrefix: the bridge mode removes every bridge with
	// a "weft:" alias that is not one of its own networks' bridges.
	IsolatedAliasPrefix = "weft-macvlan:"
	// VLANAlias is the alias of every 802.1Q sub-interface weft creates. A
	// sub-interface may serve several networks, so it names none.
	VLANAlias = dataplane.OwnerAliasPrefix + "vlan"
)

// Kernel macvlan modes, under Docker's names (-o macvlan_mode=...).
const (
	ModeBridge   = "bridge"
	ModePrivate  = "private"
	ModeVEPA     = "vepa"
	ModePassthru = "passthru"
)

// DefaultMode is the macvlan mode of a network that names none.
const DefaultMode = ModeBridge

// Modes returns the accepted macvlan_mode values.
func Modes() []string { return []string{ModeBridge, ModePrivate, ModeVEPA, ModePassthru} }

// kernelMode maps a validated mode name to netlink's.
func kernelMode(name string) netlink.MacvlanMode {
	switch name {
	case ModePrivate:
		return netlink.MACVLAN_MODE_PRIVATE
	case ModeVEPA:
		return netlink.MACVLAN_MODE_VEPA
	case ModePassthru:
		return netlink.MACVLAN_MODE_PASSTHRU
	default:
		return netlink.MACVLAN_MODE_BRIDGE
	}
}

// modeOf is n's macvlan mode name, with the default applied.
func modeOf(n dataplane.Network) string {
	if n.Macvlan.Mode == "" {
		return DefaultMode
	}
	return n.Macvlan.Mode
}

var (
	// endpointName matches the endpoint link names weft makes.
	endpointName = regexp.MustCompile(`^wv[0-9a-z]{12}$`)
	// isolatedName matches the isolated-parent bridge names weft makes.
	isolatedName = regexp.MustCompile(`^wm-[0-9a-z]{10}$`)
)

// EndpointLinkName is the macvlan link of an endpoint: "wv" and the first 12
// characters of the endpoint ID. It is the SrcName Join hands to Docker.
func EndpointLinkName(endpointID string) string {
	return endpointPrefix + prefix(endpointID, endpointIDLen)
}

// IsolatedParentName is the parent bridge of a network without parent: "wm-"
// and the first 10 characters of the network ID.
func IsolatedParentName(networkID string) string {
	return isolatedPrefix + prefix(networkID, isolatedIDLen)
}

func prefix(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// ownerAlias is the alias of the endpoint links weft makes for network id.
func ownerAlias(networkID string) string { return dataplane.OwnerAliasPrefix + networkID }

// isolatedAlias is the alias of network id's isolated parent bridge.
func isolatedAlias(networkID string) string { return IsolatedAliasPrefix + networkID }

// parentName is the link n's endpoints hang off: the configured parent, or
// the isolated parent bridge.
func parentName(n dataplane.Network) string {
	if n.Macvlan.Parent != "" {
		return n.Macvlan.Parent
	}
	return IsolatedParentName(n.ID)
}

// isolated reports whether n has no parent of the user's (containers reach
// each other and nothing else).
func isolated(n dataplane.Network) bool { return n.Macvlan.Parent == "" }

// errNotVLAN is returned by splitVLAN for a name without a dot.
var errNotVLAN = errors.New("not a VLAN sub-interface name")

// splitVLAN parses Docker's "<link>.<VLAN ID>" parent form: "eth0.100" is
// VLAN 100 on eth0. A name without a dot gives errNotVLAN; a name with a dot
// whose suffix is not a VLAN ID from 1 to 4094 gives an error that says so.
func splitVLAN(parent string) (link string, vid int, err error) {
	i := strings.LastIndexByte(parent, '.')
	if i < 0 {
		return "", 0, errNotVLAN
	}
	link, id := parent[:i], parent[i+1:]
	if link == "" || id == "" || strings.Trim(id, "0123456789") != "" {
		return "", 0, fmt.Errorf("a parent with a dot names an 802.1Q VLAN sub-interface as <interface>.<VLAN ID>, like eth0.100; %q is not of that form", parent)
	}
	vid, err = strconv.Atoi(id)
	if err != nil || vid < 1 || vid > 4094 {
		return "", 0, fmt.Errorf("VLAN ID %s in %q is out of range: use a VLAN ID between 1 and 4094", id, parent)
	}
	return link, vid, nil
}
