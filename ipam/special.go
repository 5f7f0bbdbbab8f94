package ipam

import (
	"net/netip"
)

// specialRange is an address range that cannot be a container network.
type specialRange struct {
	prefix netip.Prefix
	what   string
}

// specialRanges lists the special-purpose ranges (RFC 6890 and the IANA
// registries) a container subnet may not overlap: a network over any of them
// would capture traffic the host needs for itself (loopback, link-local and
// with it the cloud metadata address 169.254.169.254), or could never work
// (multicast, reserved, unspecified). Private, shared (100.64/10) and
// documentation ranges stay allowed: people use them for containers.
func specialRanges() []specialRange {
	mk := func(s, what string) specialRange { return specialRange{netip.MustParsePrefix(s), what} }
	return []specialRange{
		mk("0.0.0.0/8", `the "this network" range 0.0.0.0/8`),
		mk("127.0.0.0/8", "the loopback range 127.0.0.0/8"),
		mk("169.254.0.0/16", "the link-local range 169.254.0.0/16"),
		mk("224.0.0.0/4", "the multicast range 224.0.0.0/4"),
		mk("240.0.0.0/4", "the reserved range 240.0.0.0/4 (with the broadcast address 255.255.255.255)"),
		mk("::/128", "the unspecified address ::"),
		mk("::1/128", "the loopback address ::1"),
		mk("::ffff:0:0/96", "the IPv4-mapped range ::ffff:0:0/96"),
		mk("fe80::/10", "the link-local range fe80::/10"),
		mk("ff00::/8", "the multicast range ff00::/8"),
	}
}

// CheckSubnet refuses a subnet that cannot be a container network: a
// default-route prefix (/0), or one overlapping a special-purpose range. Both
// weft's IPAM and its network driver call it, because another IPAM driver
// may hand the driver any pool. what names the flag the user typed
// ("subnet", "ip-range"). The error wraps ErrBadRequest.
func CheckSubnet(what string, p netip.Prefix) error {
	if !p.IsValid() {
		return errorf(ErrBadRequest, "%s %s is not a valid subnet in CIDR notation (like 10.1.0.0/24)", what, prefixOrNone(p))
	}
	if p.Bits() == 0 {
		return errorf(ErrBadRequest,
			"%s %s covers every address (a default route): a container network that large would capture all of the host's traffic; choose a private subnet such as 10.1.0.0/24", what, p)
	}
	for _, r := range specialRanges() {
		if r.prefix.Overlaps(p) {
			return errorf(ErrBadRequest, "%s %s overlaps %s, which cannot be a container network; choose a private subnet such as 10.1.0.0/24 or fd00:1::/64", what, p, r.what)
		}
	}
	return nil
}
