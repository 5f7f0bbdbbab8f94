package vxlan

import (
	"regexp"
	"strings"

	"github.com/weftnet/weft/dataplane"
)

// Kernel names and aliases of the links this mode makes. None of them can be
// mistaken for another mode's: the bridge mode sweeps bridges aliased
// "weft:..." and named "weft-<10>", and veths named "wh<12>"/"wc<12>"; the
// macvlan mode sweeps "wv<12>", "wm-<10>" and "weft-macvlan:..." links.
const (
	// bridgePrefix and linkPrefix start a network's bridge and VXLAN link
	// names, followed by the first 10 characters of the network ID (14
	// bytes).
	bridgePrefix = "wxb-"
	linkPrefix   = "wxv-"
	netIDLen     = 10
	// hostPrefix and containerPrefix start an endpoint's veth names,
	// followed by the first 12 characters of the endpoint ID (15 bytes).
	hostPrefix      = "wxh"
	containerPrefix = "wxc"
	epIDLen         = 12
	// AliasPrefix starts the alias of every link this mode makes, followed
	// by the network ID. It is deliberately not dataplane.OwnerAliasPrefix:
	// the bridge mode deletes every bridge aliased "weft:..." that is not
	// one of its own networks'.
	AliasPrefix = dataplane.VxlanAliasPrefix
)

// DefaultPort is the UDP port of a network that names none (IANA's VXLAN port).
const DefaultPort = 4789

// MaxVNI is the largest VXLAN network identifier (24 bits).
const MaxVNI = 1<<24 - 1

var (
	netLinkName = regexp.MustCompile(`^wx[bv]-[0-9a-z]{10}$`)
	vethName    = regexp.MustCompile(`^wx[hc][0-9a-z]{12}$`)
)

// BridgeName is the bridge of network id: "wxb-" and 10 ID characters.
func BridgeName(networkID string) string { return bridgePrefix + prefix(networkID, netIDLen) }

// LinkName is the VXLAN link of network id: "wxv-" and 10 ID characters.
func LinkName(networkID string) string { return linkPrefix + prefix(networkID, netIDLen) }

// VethNames returns the names of an endpoint's veth ends: host (a port of the
// network's bridge) and container (what Join hands to Docker).
func VethNames(endpointID string) (host, container string) {
	id := prefix(endpointID, epIDLen)
	return hostPrefix + id, containerPrefix + id
}

func prefix(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// ownerAlias is the alias of every link this mode makes for network id.
func ownerAlias(networkID string) string { return AliasPrefix + networkID }

// aliasNetwork returns the network ID an alias names, if it is this mode's.
func aliasNetwork(alias string) (string, bool) {
	return strings.CutPrefix(alias, AliasPrefix)
}

// portOf is n's UDP port, with the default applied.
func portOf(n dataplane.Network) uint16 {
	if n.Vxlan.Port == 0 {
		return DefaultPort
	}
	return n.Vxlan.Port
}
