package vxlan

import (
	"fmt"

	"github.com/weftnet/weft/dataplane"
)

// Encapsulation overhead: outer Ethernet 14 + IP + UDP 8 + VXLAN 8 bytes
// (the outer Ethernet header does not count against the underlay's MTU, but
// the inner one does: 14 + 20 + 8 + 8 = 50 over IPv4, 14 + 40 + 8 + 8 = 70
// over IPv6).
const (
	overheadIPv4 = 50
	overheadIPv6 = 70
	minMTU       = 68
	minMTUIPv6   = 1280
)

// maxMTU is the largest MTU of a network over an underlay link with MTU
// underlay.
func maxMTU(underlay int, v6Underlay bool) int {
	if v6Underlay {
		return underlay - overheadIPv6
	}
	return underlay - overheadIPv4
}

// mtuFor is the MTU of n's links over an underlay link called underlayName
// with MTU underlayMTU: n.MTU if set and not larger than what the underlay
// allows, else that maximum.
func mtuFor(n dataplane.Network, underlayName string, underlayMTU int, v6Underlay bool) (int, error) {
	limit := maxMTU(underlayMTU, v6Underlay)
	fam := "IPv4"
	overhead := overheadIPv4
	if v6Underlay {
		fam, overhead = "IPv6", overheadIPv6
	}
	mtu := n.MTU
	switch {
	case mtu > limit:
		return 0, fmt.Errorf("MTU %d is larger than the %d a VXLAN network can carry over %q (MTU %d, less %d bytes of VXLAN over %s): use -o com.docker.network.driver.mtu=%d or less, or leave it out",
			mtu, limit, underlayName, underlayMTU, overhead, fam, limit)
	case mtu == 0:
		mtu = limit
	}
	if mtu < minMTU {
		return 0, fmt.Errorf("the underlay interface %q has MTU %d, too small for VXLAN (%d bytes of overhead over %s)", underlayName, underlayMTU, overhead, fam)
	}
	if mtu < minMTUIPv6 && (n.EnableIPv6 || len(n.IPv6) > 0) {
		return 0, fmt.Errorf("MTU %d is below the 1280 bytes IPv6 needs (the underlay interface %q has MTU %d); raise the underlay's MTU or create the network without IPv6", mtu, underlayName, underlayMTU)
	}
	return mtu, nil
}
