package vxlan

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"

	"github.com/weftnet/weft/dataplane/nl"
)

// DefaultVTEP returns the address the kernel would use as the source for
// traffic on the default route: the route's preferred source if it has one,
// else the first global address of the route's link in the route's family
// (IPv4 before IPv6). It is the default of WEFT_VTEP_ADDR.
func DefaultVTEP(h *nl.Handle) (netip.Addr, error) {
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		routes, err := h.RouteList(fam)
		if err != nil {
			return netip.Addr{}, err
		}
		for _, r := range routes {
			if r.Dst != nil && !isDefault(r) || r.LinkIndex == 0 && len(r.MultiPath) == 0 {
				continue
			}
			if src, ok := netip.AddrFromSlice(r.Src); ok && checkVTEP(src.Unmap()) == nil {
				return src.Unmap(), nil
			}
			idx := r.LinkIndex
			if idx == 0 {
				idx = r.MultiPath[0].LinkIndex
			}
			l, err := h.LinkByIndex(idx)
			if err != nil {
				continue
			}
			addrs, err := h.AddrList(l, fam)
			if err != nil {
				return netip.Addr{}, err
			}
			for _, a := range addrs {
				if ip, ok := netip.AddrFromSlice(a.IP); ok && checkVTEP(ip.Unmap()) == nil {
					return ip.Unmap(), nil
				}
			}
		}
	}
	return netip.Addr{}, errors.New("this host has no default route with a usable source address to use as VTEP address; set WEFT_VTEP_ADDR to the address other hosts reach this one at")
}

func isDefault(r netlink.Route) bool {
	ones, _ := r.Dst.Mask.Size()
	return ones == 0
}

// underlay returns the link that carries addr (the VTEP address).
func underlay(h *nl.Handle, addr netip.Addr) (netlink.Link, error) {
	fam := netlink.FAMILY_V4
	if addr.Is6() {
		fam = netlink.FAMILY_V6
	}
	addrs, err := h.AddrList(nil, fam)
	if err != nil {
		return nil, err
	}
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP); ok && ip.Unmap() == addr {
			return h.LinkByIndex(a.LinkIndex)
		}
	}
	return nil, fmt.Errorf("the VTEP address %s is not an address of this host; set WEFT_VTEP_ADDR to an address of this host that the other hosts reach", addr)
}
