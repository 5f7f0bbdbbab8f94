package nl

import (
	"errors"
	"fmt"
	"syscall"

	"github.com/vishvananda/netlink"
)

// NeighSet adds or replaces a neighbour or FDB entry (ip neigh replace,
// bridge fdb replace): idempotent, and an entry that exists with other
// content is overwritten.
func (h *Handle) NeighSet(n *netlink.Neigh) error {
	if err := h.h.NeighSet(n); err != nil {
		return fmt.Errorf("writing %s: %w", describeNeigh(n), err)
	}
	return nil
}

// NeighDel deletes a neighbour or FDB entry; an entry (or link) that is
// already gone is fine.
func (h *Handle) NeighDel(n *netlink.Neigh) error {
	err := h.h.NeighDel(n)
	if err == nil || errors.Is(err, syscall.ENOENT) || isNotFound(err) {
		return nil
	}
	return fmt.Errorf("deleting %s: %w", describeNeigh(n), err)
}

// NeighList returns the neighbour entries of family (netlink.FAMILY_V4,
// FAMILY_V6, or unix.AF_BRIDGE for forwarding-database entries) on the link
// with index linkIndex (0 = every link), retried while the kernel
// interrupts the dump.
func (h *Handle) NeighList(linkIndex, family int) ([]netlink.Neigh, error) {
	ns, err := retry("listing neighbour entries", func() ([]netlink.Neigh, error) { return h.h.NeighList(linkIndex, family) })
	if err != nil {
		return nil, fmt.Errorf("listing neighbour entries: %w", err)
	}
	return ns, nil
}

// SetLearning turns MAC learning on or off for link as a bridge port
// (bridge link set dev LINK learning on|off).
func (h *Handle) SetLearning(link netlink.Link, on bool) error {
	if err := h.h.LinkSetLearning(link, on); err != nil {
		return fmt.Errorf("setting learning %v on bridge port %q: %w", on, link.Attrs().Name, err)
	}
	return nil
}

func describeNeigh(n *netlink.Neigh) string {
	kind := "neighbour entry"
	if n.Family == syscall.AF_BRIDGE {
		kind = "FDB entry"
	}
	s := fmt.Sprintf("%s %s", kind, n.HardwareAddr)
	if n.IP != nil {
		s += " " + n.IP.String()
	}
	return fmt.Sprintf("%s on link %d", s, n.LinkIndex)
}
