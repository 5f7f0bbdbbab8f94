package dataplane

// MaxLinkName is the kernel's limit on link names (IFNAMSIZ - 1).
const MaxLinkName = 15

// OwnerAliasPrefix starts the alias (IFLA_IFALIAS) of every link weft creates,
// followed by the network ID, so reconciliation can tell weft's links from
// everyone else's even when the user chose the name.
const OwnerAliasPrefix = "weft:"

// DefaultBridgeName is the bridge name of a network whose user gave none:
// "weft-" and the first 10 hex digits of the network ID (15 bytes).
func DefaultBridgeName(networkID string) string {
	return "weft-" + shortID(networkID, 10)
}

// ShortID returns the first 12 characters of a Docker ID, as the docker CLI
// shows them; used in logs and rule comments.
func ShortID(id string) string { return shortID(id, 12) }

func shortID(id string, n int) string {
	if len(id) > n {
		return id[:n]
	}
	return id
}
