package vxlan

import (
	"strings"

	"github.com/weftnet/weft/dataplane"
)

// Flavour is the set of names one weft instance's vxlan mode gives what it
// makes: links, their alias, ipsets and rule comments. A node may run two
// wefts, a local-scope one and a global-scope (swarm) one (docs/swarm.md);
// each reconciles, sweeps and repairs only what carries its own flavour's
// names, so neither ever touches the other's objects. The flavours' names
// are disjoint: no name of one matches another's ownership tests (nor the
// bridge and macvlan modes' sweeps: bridges aliased "weft:..." or named
// "weft-<10>", veths "wh<12>"/"wc<12>", links "wv<12>", "wm-<10>" and
// "weft-macvlan:..."), and no alias prefix is a prefix of another's.
//
// The flavour is chosen once, from the scope, and passed to New
// (WithFlavour); the zero Flavour is not valid, New defaults to Local.
type Flavour struct {
	// instance names the flavour in logs and errors.
	instance string
	// bridgePrefix and linkPrefix start a network's bridge and VXLAN link
	// names, followed by the first netIDLen characters of the network ID
	// (14 bytes).
	bridgePrefix, linkPrefix string
	// hostPrefix and containerPrefix start an endpoint's veth names,
	// followed by the first epIDLen characters of the endpoint ID (15
	// bytes).
	hostPrefix, containerPrefix string
	// alias starts the alias of every link, followed by the network ID. It
	// is never dataplane.OwnerAliasPrefix: the bridge mode deletes every
	// bridge aliased "weft:..." that is not one of its own networks'.
	alias string
	// set4 and set6 are the known-VTEP filter's ipsets.
	set4, set6 string
	// filterComment and bridgedComment tag the known-VTEP DROP rules and
	// the bridged-traffic ACCEPT rule. They do not start with fw.TagPrefix
	// ("weft:"), which the bridge mode sweeps.
	filterComment, bridgedComment string
}

// Local is the flavour of a local-scope weft: the names weft has always
// used, so an upgraded host renames nothing.
func Local() Flavour {
	return Flavour{
		instance:     "local-scope",
		bridgePrefix: "wxb-", linkPrefix: "wxv-",
		hostPrefix: "wxh", containerPrefix: "wxc",
		alias: dataplane.VxlanAliasPrefix,
		set4:  "weft-vteps4", set6: "weft-vteps6",
		filterComment: "weft-vxlan:known-vteps", bridgedComment: "weft-vxlan:bridged",
	}
}

// Swarm is the flavour of a global-scope (swarm) weft, which may run next
// to a local-scope one on the same node.
func Swarm() Flavour {
	return Flavour{
		instance:     "global-scope",
		bridgePrefix: "wsb-", linkPrefix: "wsv-",
		hostPrefix: "wsh", containerPrefix: "wsc",
		alias: dataplane.SwarmVxlanAliasPrefix,
		set4:  "weft-swarm-vteps4", set6: "weft-swarm-vteps6",
		filterComment: "weft-swarm:known-vteps", bridgedComment: "weft-swarm:bridged",
	}
}

// Flavours are every flavour there is, for telling another instance's
// objects from this one's.
func Flavours() []Flavour { return []Flavour{Local(), Swarm()} }

// Instance names the flavour's weft ("local-scope", "global-scope").
func (f Flavour) Instance() string { return f.instance }

// AliasPrefix starts the alias of every link of this flavour.
func (f Flavour) AliasPrefix() string { return f.alias }

const (
	netIDLen = 10
	epIDLen  = 12
)

// DefaultPort is the UDP port of a network that names none (IANA's VXLAN port).
const DefaultPort = 4789

// MaxVNI is the largest VXLAN network identifier (24 bits).
const MaxVNI = 1<<24 - 1

// BridgeName is the bridge of network id: the bridge prefix and 10 ID
// characters.
func (f Flavour) BridgeName(networkID string) string {
	return f.bridgePrefix + prefix(networkID, netIDLen)
}

// LinkName is the VXLAN link of network id: the link prefix and 10 ID
// characters.
func (f Flavour) LinkName(networkID string) string {
	return f.linkPrefix + prefix(networkID, netIDLen)
}

// VethNames returns the names of an endpoint's veth ends: host (a port of the
// network's bridge) and container (what Join hands to Docker).
func (f Flavour) VethNames(endpointID string) (host, container string) {
	id := prefix(endpointID, epIDLen)
	return f.hostPrefix + id, f.containerPrefix + id
}

// BridgeName, LinkName and VethNames are the local-scope flavour's names
// (Local), which is what "weft status" of a local-scope weft shows.
func BridgeName(networkID string) string { return Local().BridgeName(networkID) }

// LinkName is Local().LinkName.
func LinkName(networkID string) string { return Local().LinkName(networkID) }

// VethNames is Local().VethNames.
func VethNames(endpointID string) (host, container string) {
	return Local().VethNames(endpointID)
}

// isNetLinkName reports whether name is one of this flavour's bridge (bridge
// true) or VXLAN link names, for any network.
func (f Flavour) isNetLinkName(name string, bridge bool) bool {
	p := f.linkPrefix
	if bridge {
		p = f.bridgePrefix
	}
	rest, ok := strings.CutPrefix(name, p)
	return ok && isIDPrefix(rest, netIDLen)
}

// isVethName reports whether name is either end of one of this flavour's
// veth pairs.
func (f Flavour) isVethName(name string) bool {
	for _, p := range []string{f.hostPrefix, f.containerPrefix} {
		if rest, ok := strings.CutPrefix(name, p); ok && isIDPrefix(rest, epIDLen) {
			return true
		}
	}
	return false
}

// isIDPrefix reports whether s is n lowercase letters and digits (the start
// of an ID dataplane.CheckID accepts).
func isIDPrefix(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z') {
			return false
		}
	}
	return true
}

func prefix(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// ownerAlias is the alias of every link this flavour makes for network id.
func (f Flavour) ownerAlias(networkID string) string { return f.alias + networkID }

// aliasNetwork returns the network ID an alias names, if it is this
// flavour's.
func (f Flavour) aliasNetwork(alias string) (string, bool) {
	return strings.CutPrefix(alias, f.alias)
}

// portOf is n's UDP port, with the default applied.
func portOf(n dataplane.Network) uint16 {
	if n.Vxlan.Port == 0 {
		return DefaultPort
	}
	return n.Vxlan.Port
}
