package dataplane

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// MaxLinkName is the kernel's limit on link names (IFNAMSIZ - 1).
const MaxLinkName = 15

// OwnerAliasPrefix starts the alias (IFLA_IFALIAS) of every link weft creates,
// followed by the network ID, so reconciliation can tell weft's links from
// everyone else's even when the user chose the name.
const OwnerAliasPrefix = "weft:"

// VxlanAliasPrefix starts the alias of the links the vxlan mode makes. It is
// not OwnerAliasPrefix, whose bridges the bridge mode takes for its own; the
// other modes must still recognise these links as weft's (a macvlan network
// refuses one as its parent).
const VxlanAliasPrefix = "weft-vxlan:"

// SwarmVxlanAliasPrefix starts the alias of the links a global-scope
// (swarm) weft's vxlan mode makes. It differs from VxlanAliasPrefix, and
// neither is a prefix of the other, so that a local-scope and a global-scope
// weft on one node each sweep only their own links.
const SwarmVxlanAliasPrefix = "weft-swarm:"

// VxlanAliasNetwork returns the network ID in alias if it is the alias of a
// link the vxlan mode of either a local-scope or a global-scope weft made.
func VxlanAliasNetwork(alias string) (string, bool) {
	for _, p := range []string{VxlanAliasPrefix, SwarmVxlanAliasPrefix} {
		if id, ok := strings.CutPrefix(alias, p); ok {
			return id, true
		}
	}
	return "", false
}

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

// MinIDLength is the shortest object ID weft accepts: kernel names and rule
// comments carry the first 12 characters, which must tell objects apart.
const MinIDLength = 12

// MaxIDLength bounds an object ID: Docker's are 64 hex digits, swarm's 25
// base-36 characters.
const MaxIDLength = 64

// CheckID reports whether id is an ID weft accepts from Docker or swarm:
// MinIDLength to MaxIDLength lowercase letters and digits. Docker's and
// swarmkit's IDs are always of that form; anything else is a hand-made
// request, and refusing it keeps IDs literal wherever they go (link names,
// rule comments, store keys, logs). Callers lower-case first (CanonicalID).
func CheckID(id string) error {
	if len(id) < MinIDLength || len(id) > MaxIDLength {
		return fmt.Errorf("an ID is %d to %d characters, this one has %d", MinIDLength, MaxIDLength, len(id))
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z') {
			return fmt.Errorf("an ID is lowercase letters and digits only, this one has %s", describeByte(id, i))
		}
	}
	return nil
}

// CanonicalID is the one spelling of an ID used inside weft: Docker prints
// IDs in lowercase, so an uppercase copy names the same object.
func CanonicalID(id string) string { return strings.ToLower(id) }

// CheckLinkName reports whether a user-chosen link name (a bridge name, a
// macvlan parent) is taken literally by both the kernel and iptables: 1 to
// MaxLinkName bytes of ASCII letters, digits, '_', '-' and '.', not starting
// with '-' or '.'. The kernel expands a printf verb ('%d') in a new link's
// name, and iptables reads a trailing '+' as a wildcard that matches every
// interface; '!' , '/', ':', spaces and non-ASCII bytes are refused too.
// The error names the offending character.
func CheckLinkName(name string) error {
	if name == "" || len(name) > MaxLinkName {
		return fmt.Errorf("interface names are 1 to %d bytes, this one has %d", MaxLinkName, len(name))
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_':
		case c == '-' || c == '.':
			if i == 0 {
				return fmt.Errorf("interface names cannot start with %s", describeByte(name, i))
			}
		default:
			return fmt.Errorf("interface names may contain only letters, digits, '_', '-' and '.'; this one has %s", describeByte(name, i))
		}
	}
	return nil
}

// describeByte names the character at s[i] for an error message, escaped so
// that a control or non-ASCII character cannot garble the message.
func describeByte(s string, i int) string {
	r, _ := utf8.DecodeRuneInString(s[i:])
	return fmt.Sprintf("%s at position %d", strconv.QuoteRuneToASCII(r), i+1)
}
