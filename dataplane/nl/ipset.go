package nl

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"

	"github.com/vishvananda/netlink"
	vnl "github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// ErrSetNotFound is wrapped by SetMembers' error when the set does not exist.
var ErrSetNotFound = errors.New("no such ipset")

// SetMember is one member of a hash:net set (Iface empty) or a hash:net,iface
// set (a subnet and an interface name).
type SetMember struct {
	Net   netip.Prefix
	Iface string
}

func (s SetMember) String() string {
	if s.Iface == "" {
		return s.Net.String()
	}
	return s.Net.String() + "," + s.Iface
}

// IpsetSupported reports, with a nil error, whether the kernel answers ipset
// requests in the handle's namespace (CONFIG_IP_SET).
func (h *Handle) IpsetSupported() error {
	if _, _, err := h.h.IpsetProtocol(); err != nil {
		return fmt.Errorf("the kernel's ipset interface does not answer: %w", err)
	}
	return nil
}

// EnsureSet creates set name of type typ ("hash:net", "hash:net,iface") for
// IPv6 or IPv4 addresses, unless it exists as such; a set of that name of
// another kind is an error.
func (h *Handle) EnsureSet(name, typ string, v6 bool) error {
	family := uint8(unix.AF_INET)
	if v6 {
		family = unix.AF_INET6
	}
	// Replace leaves out NLM_F_EXCL: the kernel then accepts the request
	// for a set that exists with the same type and parameters (ipset
	// create -exist), and refuses it for one that differs. It never
	// replaces a set.
	err := h.h.IpsetCreate(name, typ, netlink.IpsetCreateOptions{Family: family, Replace: true})
	if err == nil {
		return nil
	}
	if isSetExists(err) {
		return fmt.Errorf("an ipset named %s exists and is not weft's (%s); remove it with: ipset destroy %s: %w", name, typ, name, err)
	}
	return fmt.Errorf("creating ipset %s (%s): %w", name, typ, err)
}

// isSetExists reports whether err says the set (or member) exists.
func isSetExists(err error) bool {
	return errors.Is(err, syscall.EEXIST) || errors.Is(err, vnl.IPSetError(vnl.IPSET_ERR_EXIST)) ||
		errors.Is(err, vnl.IPSetError(vnl.IPSET_ERR_EXIST_SETNAME2))
}

// isSetMissing reports whether err says the set does not exist.
func isSetMissing(err error) bool {
	return errors.Is(err, syscall.ENOENT)
}

func entry(m SetMember) *netlink.IPSetEntry {
	return &netlink.IPSetEntry{
		IP:      net.IP(m.Net.Masked().Addr().AsSlice()),
		CIDR:    uint8(m.Net.Bits()),
		IFace:   m.Iface,
		Replace: true,
	}
}

// checkMember refuses what the kernel would misread: a /0 (netlink cannot
// send a zero CIDR: the kernel would take it as a host address).
func checkMember(set string, m SetMember) error {
	if !m.Net.IsValid() || m.Net.Bits() == 0 {
		return fmt.Errorf("ipset %s: cannot hold %s", set, m)
	}
	return nil
}

// SetAdd adds m to set; a member already there is fine.
func (h *Handle) SetAdd(set string, m SetMember) error {
	if err := checkMember(set, m); err != nil {
		return err
	}
	if err := h.h.IpsetAdd(set, entry(m)); err != nil && !isSetExists(err) {
		return fmt.Errorf("adding %s to ipset %s: %w", m, set, err)
	}
	return nil
}

// SetDel removes m from set; a missing member or set is fine.
func (h *Handle) SetDel(set string, m SetMember) error {
	if err := checkMember(set, m); err != nil {
		return err
	}
	e := entry(m)
	e.Replace = false
	err := h.h.IpsetDel(set, e)
	if err == nil || errors.Is(err, vnl.IPSetError(vnl.IPSET_ERR_EXIST)) || isSetMissing(err) {
		return nil
	}
	return fmt.Errorf("removing %s from ipset %s: %w", m, set, err)
}

// SetMembers lists set's members; a missing set is an error wrapping
// ErrSetNotFound.
func (h *Handle) SetMembers(set string) ([]SetMember, error) {
	res, err := h.h.IpsetList(set)
	if err != nil {
		if isSetMissing(err) {
			return nil, fmt.Errorf("listing ipset %s: %w", set, ErrSetNotFound)
		}
		return nil, fmt.Errorf("listing ipset %s: %w", set, err)
	}
	out := make([]SetMember, 0, len(res.Entries))
	for _, e := range res.Entries {
		a, ok := netip.AddrFromSlice(e.IP)
		if !ok {
			continue
		}
		a = a.Unmap()
		bits := int(e.CIDR)
		if bits == 0 { // a host entry
			bits = a.BitLen()
		}
		out = append(out, SetMember{Net: netip.PrefixFrom(a, bits), Iface: e.IFace})
	}
	return out, nil
}

// DestroySet removes set; a missing set is fine. A set that a rule still
// references cannot be destroyed (the kernel says it is busy).
func (h *Handle) DestroySet(set string) error {
	if err := h.h.IpsetDestroy(set); err != nil && !isSetMissing(err) {
		return fmt.Errorf("removing ipset %s: %w", set, err)
	}
	return nil
}

// SetGroup sets link's device group (IFLA_GROUP).
func (h *Handle) SetGroup(link netlink.Link, group uint32) error {
	if err := h.h.LinkSetGroup(link, int(group)); err != nil {
		return fmt.Errorf("setting the device group of %q: %w", link.Attrs().Name, err)
	}
	return nil
}
