package nl

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"

	"github.com/vishvananda/netlink"
)

// Vxlan describes a VXLAN link for EnsureVxlan: unicast only (no group), no
// L2/L3-miss notifications.
type Vxlan struct {
	// Name of the link.
	Name string
	// VNI is the VXLAN network identifier (1 to 2^24-1).
	VNI uint32
	// Port is the destination UDP port (and the port the kernel listens on).
	Port uint16
	// Local is the source address of encapsulated packets (this host's
	// VTEP); it also decides the family of the tunnel.
	Local netip.Addr
	// Learning: the kernel learns remote MACs from received packets.
	Learning bool
	// Proxy: the kernel answers ARP and neighbour solicitations from its
	// neighbour table instead of sending them through the tunnel.
	Proxy bool
	// MTU of the link; 0 = kernel default.
	MTU int
	// MasterIndex is the bridge the link is a port of; 0 = none.
	MasterIndex int
	// Alias is the ownership alias.
	Alias string
}

// EnsureVxlan creates the VXLAN link v describes, attaches it to the master
// and brings it up. If a link called v.Name exists it must be a VXLAN link
// carrying v.Alias with v's VNI, port, local address, learning and proxy
// settings (else an error wrapping ErrLinkConflict, and nothing is changed);
// its MTU, master and state are then corrected. created reports whether this
// call made the link.
//
// The kernel's refusals are wrapped for errors.Is: EEXIST when another VXLAN
// link of the namespace (possibly moved into another namespace since) uses
// the VNI on the same port, EADDRINUSE when the UDP port is bound by a
// socket that is not a VXLAN one (seen when the link goes up). On failure
// nothing is left behind.
func (h *Handle) EnsureVxlan(v Vxlan) (link netlink.Link, created bool, err error) {
	if !v.Local.IsValid() {
		return nil, false, fmt.Errorf("creating VXLAN link %q: no local address", v.Name)
	}
	for attempt := 0; ; attempt++ {
		l, err := h.LinkByName(v.Name)
		if err == nil {
			if err := checkVxlan(l, v); err != nil {
				return nil, false, err
			}
			if err := h.fixLink(l, v.MTU, v.MasterIndex); err != nil {
				return nil, false, err
			}
			l, err = h.LinkByName(v.Name)
			return l, false, err
		}
		if !errors.Is(err, ErrLinkNotFound) {
			return nil, false, err
		}
		attrs := netlink.NewLinkAttrs()
		attrs.Name, attrs.MTU = v.Name, v.MTU
		err = h.addKind(&netlink.Vxlan{
			LinkAttrs: attrs,
			VxlanId:   int(v.VNI),
			SrcAddr:   net.IP(v.Local.AsSlice()),
			Port:      int(v.Port),
			Learning:  v.Learning,
			Proxy:     v.Proxy,
		})
		if errors.Is(err, syscall.EEXIST) && attempt == 0 {
			if _, lerr := h.LinkByName(v.Name); lerr == nil {
				continue // someone created it between our lookup and add: verify theirs
			}
		}
		if err != nil {
			return nil, false, fmt.Errorf("creating VXLAN link %q (VNI %d, UDP port %d): %w", v.Name, v.VNI, v.Port, err)
		}
		l, err = h.finishCreate(v.Name, v.Alias, v.MTU, v.MasterIndex)
		if err != nil {
			return nil, false, err
		}
		return l, true, nil
	}
}

// checkVxlan verifies that an existing link is the VXLAN link v describes.
func checkVxlan(l netlink.Link, v Vxlan) error {
	if err := checkOwned(l, "vxlan", v.Alias); err != nil {
		return err
	}
	vx, ok := l.(*netlink.Vxlan)
	if !ok {
		return fmt.Errorf("%w: %q is not a VXLAN link", ErrLinkConflict, v.Name)
	}
	local, _ := netip.AddrFromSlice(vx.SrcAddr)
	switch {
	case uint32(vx.VxlanId) != v.VNI || vx.Port != int(v.Port):
		return fmt.Errorf("%w: VXLAN link %q has VNI %d on UDP port %d, not VNI %d on port %d", ErrLinkConflict, v.Name, vx.VxlanId, vx.Port, v.VNI, v.Port)
	case local.Unmap() != v.Local:
		return fmt.Errorf("%w: VXLAN link %q has local address %v, not %s", ErrLinkConflict, v.Name, vx.SrcAddr, v.Local)
	case vx.Learning != v.Learning || vx.Proxy != v.Proxy || vx.L2miss || vx.L3miss || vx.Group != nil && !vx.Group.IsUnspecified():
		return fmt.Errorf("%w: VXLAN link %q has other settings (learning %v, proxy %v, l2miss %v, l3miss %v, group %v)",
			ErrLinkConflict, v.Name, vx.Learning, vx.Proxy, vx.L2miss, vx.L3miss, vx.Group)
	}
	return nil
}
