package bridge

import (
	"crypto/sha256"
	"net"
	"regexp"

	"github.com/weftnet/weft/dataplane"
)

// Veth name prefixes: host end and container end. Both are followed by the
// first 12 characters of the endpoint ID, 14 bytes in all.
const (
	hostPrefix      = "wh"
	containerPrefix = "wc"
	vethIDLen       = 12
)

var (
	// vethName matches the veth names weft makes (either end).
	vethName = regexp.MustCompile(`^w[hc][0-9a-z]{12}$`)
	// defaultBridge matches DefaultName's results.
	defaultBridge = regexp.MustCompile(`^weft-[0-9a-z]{10}$`)
)

// DefaultName is the bridge name of a network whose user chose none: "weft-"
// and the first 10 characters of the network ID (15 bytes).
func DefaultName(networkID string) string { return dataplane.DefaultBridgeName(networkID) }

// VethNames returns the names of an endpoint's veth ends: host (stays on the
// bridge) and container (what Join hands to Docker). Both are 14 bytes.
func VethNames(endpointID string) (host, container string) {
	id := endpointID
	if len(id) > vethIDLen {
		id = id[:vethIDLen]
	}
	return hostPrefix + id, containerPrefix + id
}

// bridgeName is the bridge of n: the configured name, or the default.
func bridgeName(n dataplane.Network) string {
	if n.Bridge.Name != "" {
		return n.Bridge.Name
	}
	return DefaultName(n.ID)
}

// ownerAlias is the alias of every link weft makes for network id.
func ownerAlias(networkID string) string { return dataplane.OwnerAliasPrefix + networkID }

// bridgeMAC is the bridge's fixed MAC: locally administered, unicast, derived
// from the network ID, so it is the same every time the bridge is re-created.
func bridgeMAC(networkID string) net.HardwareAddr {
	sum := sha256.Sum256([]byte("weft-bridge:" + networkID))
	mac := net.HardwareAddr(sum[:6])
	mac[0] = mac[0]&0xfe | 0x02
	return mac
}

func mtuOf(n dataplane.Network) int {
	if n.MTU == 0 {
		return 1500
	}
	return n.MTU
}
