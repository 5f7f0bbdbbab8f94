package nl

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"syscall"

	"github.com/vishvananda/netlink"
)

// ErrLinkKindUnsupported is wrapped when the kernel does not know a link kind
// (it answers EOPNOTSUPP, "Unknown device type"): the driver is not built in
// and its module cannot be loaded, as for 802.1Q VLANs on some kernels.
var ErrLinkKindUnsupported = errors.New("the kernel does not support this kind of network interface")

// UnsupportedKindError names the link kind the kernel refused. It matches
// ErrLinkKindUnsupported and the kernel's errno with errors.Is.
type UnsupportedKindError struct {
	// Kind is the link kind, as in "ip link add ... type KIND".
	Kind string
	// Err is the kernel's answer.
	Err error
}

func (e *UnsupportedKindError) Error() string {
	return fmt.Sprintf("the kernel does not support %s interfaces: %v", e.Kind, e.Err)
}

// Is makes errors.Is(err, ErrLinkKindUnsupported) true.
func (e *UnsupportedKindError) Is(target error) bool { return target == ErrLinkKindUnsupported }

// Unwrap returns the kernel's error.
func (e *UnsupportedKindError) Unwrap() error { return e.Err }

// addKind adds link and classifies a refusal of its kind.
func (h *Handle) addKind(link netlink.Link) error {
	err := h.h.LinkAdd(link)
	if errors.Is(err, syscall.EOPNOTSUPP) {
		return &UnsupportedKindError{Kind: link.Type(), Err: err}
	}
	return err
}

// Macvlan describes a macvlan link for EnsureMacvlan.
type Macvlan struct {
	// Name of the link.
	Name string
	// ParentIndex is the index of the lower (parent) link.
	ParentIndex int
	// Mode is the macvlan mode (bridge, private, vepa, passthru).
	Mode netlink.MacvlanMode
	// MTU of the link; 0 = the parent's.
	MTU int
	// MAC is the link's hardware address; nil = random (passthru: the
	// parent's). In passthru mode, setting it changes the parent's address
	// too, and the kernel puts the parent's back when the link goes.
	MAC net.HardwareAddr
	// Alias is the ownership alias.
	Alias string
}

// EnsureMacvlan creates the macvlan link m describes and leaves it down (it is
// for someone else to move and bring up). If a link called m.Name exists it
// must be a macvlan carrying m.Alias on the same parent in the same mode
// (else an error wrapping ErrLinkConflict, and nothing is changed); its MTU
// and MAC are then corrected. created reports whether this call made the link.
// The kernel's refusals (EINVAL for a parent that cannot take the link, for
// instance one that is busy in passthru mode) are wrapped for errors.Is.
func (h *Handle) EnsureMacvlan(m Macvlan) (created bool, err error) {
	for attempt := 0; ; attempt++ {
		l, err := h.LinkByName(m.Name)
		if err == nil {
			return false, h.fixMacvlan(l, m)
		}
		if !errors.Is(err, ErrLinkNotFound) {
			return false, err
		}
		attrs := netlink.NewLinkAttrs()
		attrs.Name, attrs.ParentIndex, attrs.MTU = m.Name, m.ParentIndex, m.MTU
		err = h.addKind(&netlink.Macvlan{LinkAttrs: attrs, Mode: m.Mode})
		if errors.Is(err, syscall.EEXIST) && attempt == 0 {
			continue // someone created it between our lookup and add: verify theirs
		}
		if err != nil {
			return false, fmt.Errorf("creating macvlan %q: %w", m.Name, err)
		}
		// The alias (ignored by the kernel at creation) and the MAC (which
		// a passthru link inherits from its parent at creation) are set
		// afterwards.
		l, err = h.LinkByName(m.Name)
		if err == nil {
			err = h.SetAlias(l, m.Alias)
		}
		if err == nil && m.MAC != nil && !bytes.Equal(l.Attrs().HardwareAddr, m.MAC) {
			err = h.SetHardwareAddr(l, m.MAC)
		}
		if err != nil {
			if derr := h.DeleteLinkByName(m.Name); derr != nil {
				err = errors.Join(err, fmt.Errorf("undoing: %w", derr))
			}
			return false, err
		}
		return true, nil
	}
}

// fixMacvlan verifies and corrects an existing macvlan link.
func (h *Handle) fixMacvlan(l netlink.Link, m Macvlan) error {
	if err := checkOwned(l, "macvlan", m.Alias); err != nil {
		return err
	}
	a := l.Attrs()
	if a.ParentIndex != m.ParentIndex {
		return fmt.Errorf("%w: macvlan %q exists on another parent (index %d, not %d)", ErrLinkConflict, a.Name, a.ParentIndex, m.ParentIndex)
	}
	if mv, ok := l.(*netlink.Macvlan); ok && mv.Mode != m.Mode {
		return fmt.Errorf("%w: macvlan %q exists in another mode", ErrLinkConflict, a.Name)
	}
	if m.MTU > 0 && a.MTU != m.MTU {
		if err := h.h.LinkSetMTU(l, m.MTU); err != nil {
			return fmt.Errorf("setting MTU %d on %q: %w", m.MTU, a.Name, err)
		}
	}
	if m.MAC != nil && !bytes.Equal(a.HardwareAddr, m.MAC) {
		return h.SetHardwareAddr(l, m.MAC)
	}
	return nil
}

// Vlan describes an 802.1Q sub-interface for EnsureVlan.
type Vlan struct {
	// Name of the link, e.g. "eth0.100".
	Name string
	// ParentIndex is the index of the link that carries the tagged frames.
	ParentIndex int
	// ID is the VLAN ID, 1 to 4094.
	ID int
	// Alias is the ownership alias.
	Alias string
}

// EnsureVlan creates the VLAN sub-interface v describes (MTU inherited from
// the parent) and brings it up. If a link called v.Name exists it must be a
// VLAN link carrying v.Alias, on v's parent with v's ID (else an error
// wrapping ErrLinkConflict, and nothing is changed); it is then set up. A
// kernel without 802.1Q support gives an error wrapping
// ErrLinkKindUnsupported. created reports whether this call made the link.
func (h *Handle) EnsureVlan(v Vlan) (link netlink.Link, created bool, err error) {
	for attempt := 0; ; attempt++ {
		l, err := h.LinkByName(v.Name)
		if err == nil {
			if err := checkOwned(l, "vlan", v.Alias); err != nil {
				return nil, false, err
			}
			if vl, ok := l.(*netlink.Vlan); ok && (vl.VlanId != v.ID || vl.ParentIndex != v.ParentIndex) {
				return nil, false, fmt.Errorf("%w: VLAN interface %q has VLAN ID %d on parent index %d, not %d on %d",
					ErrLinkConflict, v.Name, vl.VlanId, vl.ParentIndex, v.ID, v.ParentIndex)
			}
			if err := h.fixLink(l, 0, 0); err != nil {
				return nil, false, err
			}
			l, err = h.LinkByName(v.Name)
			return l, false, err
		}
		if !errors.Is(err, ErrLinkNotFound) {
			return nil, false, err
		}
		attrs := netlink.NewLinkAttrs()
		attrs.Name, attrs.ParentIndex = v.Name, v.ParentIndex
		err = h.addKind(&netlink.Vlan{LinkAttrs: attrs, VlanId: v.ID})
		if errors.Is(err, syscall.EEXIST) && attempt == 0 {
			continue
		}
		if err != nil {
			return nil, false, fmt.Errorf("creating VLAN interface %q: %w", v.Name, err)
		}
		l, err = h.finishCreate(v.Name, v.Alias, 0, 0)
		if err != nil {
			return nil, false, err
		}
		return l, true, nil
	}
}
