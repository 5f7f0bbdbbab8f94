package dataplane

import (
	"fmt"
	"net/netip"
	"strings"
)

// ParseVTEP parses a VTEP address setting (WEFT_VTEP_ADDR): a unicast IPv4
// or IPv6 address, not a loopback, link-local or unspecified one.
func ParseVTEP(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(strings.TrimSpace(s))
	if err != nil {
		return netip.Addr{}, fmt.Errorf("VTEP address %q: want an IPv4 or IPv6 address of this host", s)
	}
	a = a.Unmap()
	if err := CheckVTEP(a); err != nil {
		return netip.Addr{}, err
	}
	return a, nil
}

// CheckVTEP refuses addresses that cannot be a VTEP.
func CheckVTEP(a netip.Addr) error {
	switch {
	case !a.IsValid():
		return fmt.Errorf("no VTEP address")
	case a.Zone() != "":
		return fmt.Errorf("VTEP address %s: a zone is not allowed", a)
	case a.IsUnspecified(), a.IsLoopback(), a.IsMulticast(), a.IsLinkLocalUnicast(), a.IsLinkLocalMulticast(), a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return fmt.Errorf("VTEP address %s: want a unicast address other hosts can reach (not loopback, link-local, multicast or unspecified)", a)
	}
	return nil
}
