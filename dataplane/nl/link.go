package nl

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"

	"github.com/vishvananda/netlink"
)

// checkOwned verifies that an existing link is of type typ and carries alias.
// The error wraps ErrLinkConflict and says what the link is instead.
func checkOwned(l netlink.Link, typ, alias string) error {
	a := l.Attrs()
	if l.Type() != typ {
		return fmt.Errorf("%w: %q is a %s link, not a %s", ErrLinkConflict, a.Name, l.Type(), typ)
	}
	if a.Alias != alias {
		if a.Alias == "" {
			return fmt.Errorf("%w: %s %q exists and was not created by weft", ErrLinkConflict, typ, a.Name)
		}
		return fmt.Errorf("%w: %s %q exists and belongs to %q, not %q", ErrLinkConflict, typ, a.Name, a.Alias, alias)
	}
	return nil
}

// EnsureBridge creates the bridge name with the given MTU (0 = kernel default)
// and ownership alias, and brings it up; if a link called name exists it must
// be a bridge carrying alias (else an error wrapping ErrLinkConflict, and
// nothing is changed), and its MTU and state are corrected. created reports
// whether this call made the bridge, so a caller can undo exactly its own work.
func (h *Handle) EnsureBridge(name string, mtu int, alias string) (link netlink.Link, created bool, err error) {
	for attempt := 0; ; attempt++ {
		l, err := h.LinkByName(name)
		if err == nil {
			if err := checkOwned(l, "bridge", alias); err != nil {
				return nil, false, err
			}
			if err := h.fixLink(l, mtu, 0); err != nil {
				return nil, false, err
			}
			l, err = h.LinkByName(name)
			return l, false, err
		}
		if !errors.Is(err, ErrLinkNotFound) {
			return nil, false, err
		}
		// The MTU is set after creation, not with it: only an MTU set on an
		// existing bridge turns off the kernel's adjusting it to its ports
		// (and back to 1500 when the last port goes).
		attrs := netlink.NewLinkAttrs()
		attrs.Name, attrs.Alias = name, alias
		err = h.h.LinkAdd(&netlink.Bridge{LinkAttrs: attrs})
		if errors.Is(err, syscall.EEXIST) && attempt == 0 {
			continue // someone created it between our lookup and add: verify theirs
		}
		if err != nil {
			return nil, false, fmt.Errorf("creating bridge %q: %w", name, err)
		}
		l, err = h.finishCreate(name, alias, mtu, 0)
		if err != nil {
			return nil, false, err
		}
		return l, true, nil
	}
}

// finishCreate re-reads a link this Handle just created, sets what LinkAdd may
// not have (alias, master) and brings it up; on failure it deletes the link.
func (h *Handle) finishCreate(name, alias string, mtu, masterIndex int) (netlink.Link, error) {
	l, err := h.LinkByName(name)
	if err == nil && l.Attrs().Alias != alias {
		err = h.SetAlias(l, alias)
	}
	if err == nil {
		err = h.fixLink(l, mtu, masterIndex)
	}
	if err != nil {
		if derr := h.DeleteLinkByName(name); derr != nil {
			err = errors.Join(err, fmt.Errorf("undoing: %w", derr))
		}
		return nil, err
	}
	return h.LinkByName(name)
}

// fixLink corrects MTU (if mtu > 0) and master (if masterIndex > 0) and sets
// the link up.
func (h *Handle) fixLink(l netlink.Link, mtu, masterIndex int) error {
	a := l.Attrs()
	if mtu > 0 && a.MTU != mtu {
		if err := h.h.LinkSetMTU(l, mtu); err != nil {
			return fmt.Errorf("setting MTU %d on %q: %w", mtu, a.Name, err)
		}
	}
	if masterIndex > 0 && a.MasterIndex != masterIndex {
		if err := h.h.LinkSetMasterByIndex(l, masterIndex); err != nil {
			return fmt.Errorf("attaching %q to bridge %d: %w", a.Name, masterIndex, err)
		}
	}
	if a.Flags&net.FlagUp == 0 {
		if err := h.h.LinkSetUp(l); err != nil {
			return fmt.Errorf("setting %q up: %w", a.Name, err)
		}
	}
	return nil
}

// EnsureAddr adds addr (an address with its prefix length, e.g. the gateway
// 10.1.0.1/24) to link; an address that is already there is fine. added
// reports whether this call added it.
func (h *Handle) EnsureAddr(link netlink.Link, addr netip.Prefix) (added bool, err error) {
	if !addr.IsValid() {
		return false, fmt.Errorf("adding address to %q: invalid address %v", link.Attrs().Name, addr)
	}
	err = h.h.AddrAdd(link, &netlink.Addr{IPNet: ipNet(addr)})
	if errors.Is(err, syscall.EEXIST) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("adding address %s to %q: %w", addr, link.Attrs().Name, err)
	}
	return true, nil
}

// DeleteAddr removes addr from link; an address that is not there is fine.
func (h *Handle) DeleteAddr(link netlink.Link, addr netip.Prefix) error {
	err := h.h.AddrDel(link, &netlink.Addr{IPNet: ipNet(addr)})
	if err != nil && !errors.Is(err, syscall.EADDRNOTAVAIL) && !errors.Is(err, syscall.ENOENT) && !isNotFound(err) {
		return fmt.Errorf("removing address %s from %q: %w", addr, link.Attrs().Name, err)
	}
	return nil
}

// SetHardwareAddr sets the MAC address of link.
func (h *Handle) SetHardwareAddr(link netlink.Link, mac net.HardwareAddr) error {
	if err := h.h.LinkSetHardwareAddr(link, mac); err != nil {
		return fmt.Errorf("setting MAC %s on %q: %w", mac, link.Attrs().Name, err)
	}
	return nil
}

// SetAlias sets the alias (IFLA_IFALIAS) of link.
func (h *Handle) SetAlias(link netlink.Link, alias string) error {
	if err := h.h.LinkSetAlias(link, alias); err != nil {
		return fmt.Errorf("setting alias of %q: %w", link.Attrs().Name, err)
	}
	return nil
}

// Rename gives link another name. The kernel renames only a link that is
// down: link is set down for the rename and up again if it was up.
func (h *Handle) Rename(link netlink.Link, name string) error {
	old, up := link.Attrs().Name, link.Attrs().Flags&net.FlagUp != 0
	if up {
		if err := h.h.LinkSetDown(link); err != nil {
			return fmt.Errorf("setting %q down to rename it: %w", old, err)
		}
	}
	if err := h.h.LinkSetName(link, name); err != nil {
		if up {
			_ = h.h.LinkSetUp(link)
		}
		return fmt.Errorf("renaming %q to %q: %w", old, name, err)
	}
	if up {
		if err := h.h.LinkSetUp(link); err != nil {
			return fmt.Errorf("setting %q up after renaming it from %q: %w", name, old, err)
		}
	}
	return nil
}

// SetUp sets link administratively up.
func (h *Handle) SetUp(link netlink.Link) error {
	if err := h.h.LinkSetUp(link); err != nil {
		return fmt.Errorf("setting %q up: %w", link.Attrs().Name, err)
	}
	return nil
}

// SetMaster attaches link to master (a bridge).
func (h *Handle) SetMaster(link, master netlink.Link) error {
	if err := h.h.LinkSetMaster(link, master); err != nil {
		return fmt.Errorf("attaching %q to %q: %w", link.Attrs().Name, master.Attrs().Name, err)
	}
	return nil
}

// DeleteLink deletes link; a link that is already gone is fine.
func (h *Handle) DeleteLink(link netlink.Link) error {
	if err := h.h.LinkDel(link); err != nil && !isNotFound(err) {
		return fmt.Errorf("deleting link %q: %w", link.Attrs().Name, err)
	}
	return nil
}

// DeleteLinkByName deletes the link called name; a missing link is fine.
func (h *Handle) DeleteLinkByName(name string) error {
	l, err := h.LinkByName(name)
	if errors.Is(err, ErrLinkNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	return h.DeleteLink(l)
}

// VethPair describes a veth pair for EnsureVethPair.
type VethPair struct {
	// Name is the end that stays in this namespace (attached to Master).
	Name string
	// PeerName is the other end, left in this namespace for someone else to
	// move (Docker moves it into the container).
	PeerName string
	// MTU of both ends; 0 = kernel default.
	MTU int
	// PeerMAC is the peer's hardware address; nil = random.
	PeerMAC net.HardwareAddr
	// MasterIndex is the index of the bridge Name is attached to; 0 = none.
	MasterIndex int
	// Alias is the ownership alias set on both ends.
	Alias string
}

// EnsureVethPair creates the pair v describes, attaches Name to the master and
// sets it up (the peer stays down). If Name exists it must be a veth carrying
// v.Alias (else an error wrapping ErrLinkConflict); it is then corrected
// (master, MTU, up), and so is the peer if it is still in this namespace — a
// peer that is gone has been moved and is left alone. created reports whether
// this call made the pair.
func (h *Handle) EnsureVethPair(v VethPair) (created bool, err error) {
	for attempt := 0; ; attempt++ {
		l, err := h.LinkByName(v.Name)
		if err == nil {
			return false, h.fixVeth(l, v)
		}
		if !errors.Is(err, ErrLinkNotFound) {
			return false, err
		}
		if p, err := h.LinkByName(v.PeerName); err == nil {
			return false, fmt.Errorf("%w: creating veth %q: a %s link called %q exists", ErrLinkConflict, v.Name, p.Type(), v.PeerName)
		}
		attrs := netlink.NewLinkAttrs()
		attrs.Name, attrs.MTU, attrs.Alias = v.Name, v.MTU, v.Alias
		veth := netlink.NewVeth(attrs)
		veth.PeerName = v.PeerName
		veth.PeerHardwareAddr = v.PeerMAC
		err = h.h.LinkAdd(veth)
		if errors.Is(err, syscall.EEXIST) && attempt == 0 {
			continue
		}
		if err != nil {
			return false, fmt.Errorf("creating veth pair %q/%q: %w", v.Name, v.PeerName, err)
		}
		if _, err := h.finishCreate(v.Name, v.Alias, v.MTU, v.MasterIndex); err != nil {
			return false, err
		}
		peer, err := h.LinkByName(v.PeerName)
		if err == nil && peer.Attrs().Alias != v.Alias {
			err = h.SetAlias(peer, v.Alias)
		}
		if err != nil {
			if derr := h.DeleteLinkByName(v.Name); derr != nil {
				err = errors.Join(err, fmt.Errorf("undoing: %w", derr))
			}
			return false, err
		}
		return true, nil
	}
}

// fixVeth verifies and corrects an existing pair.
func (h *Handle) fixVeth(l netlink.Link, v VethPair) error {
	if err := checkOwned(l, "veth", v.Alias); err != nil {
		return err
	}
	if err := h.fixLink(l, v.MTU, v.MasterIndex); err != nil {
		return err
	}
	p, err := h.LinkByName(v.PeerName)
	if errors.Is(err, ErrLinkNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := checkOwned(p, "veth", v.Alias); err != nil {
		return err
	}
	if v.MTU > 0 && p.Attrs().MTU != v.MTU {
		if err := h.h.LinkSetMTU(p, v.MTU); err != nil {
			return fmt.Errorf("setting MTU %d on %q: %w", v.MTU, v.PeerName, err)
		}
	}
	if v.PeerMAC != nil && !bytes.Equal(p.Attrs().HardwareAddr, v.PeerMAC) {
		if err := h.h.LinkSetHardwareAddr(p, v.PeerMAC); err != nil {
			return fmt.Errorf("setting MAC %s on %q: %w", v.PeerMAC, v.PeerName, err)
		}
	}
	return nil
}
