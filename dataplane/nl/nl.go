package nl

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"syscall"

	"github.com/vishvananda/netlink"
	vnl "github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// ErrLinkNotFound is wrapped by every error that means "no link of that name
// or index"; test with errors.Is.
var ErrLinkNotFound = errors.New("link not found")

// ErrLinkConflict is wrapped when a link with the wanted name exists but is not
// the one the caller asked for: a different link type, or a link that does not
// carry the caller's ownership alias.
var ErrLinkConflict = errors.New("a different network interface already has this name")

// NotFoundError names the link that was not found. It matches ErrLinkNotFound
// with errors.Is.
type NotFoundError struct {
	// Name is the link name looked up; empty for a lookup by index.
	Name string
	// Index is the link index looked up; 0 for a lookup by name.
	Index int
}

func (e *NotFoundError) Error() string {
	if e.Name == "" {
		return fmt.Sprintf("link with index %d not found", e.Index)
	}
	return fmt.Sprintf("link %q not found", e.Name)
}

// Is makes errors.Is(err, ErrLinkNotFound) true.
func (e *NotFoundError) Is(target error) bool { return target == ErrLinkNotFound }

// maxDumpAttempts bounds the retries of a dump the kernel keeps interrupting
// (it does so while links or addresses change under the dump).
const maxDumpAttempts = 10

// Handle is a netlink handle bound to one network namespace. It is safe for
// concurrent use to the extent the underlying netlink.Handle is (one request at
// a time per socket; netlink serialises).
type Handle struct {
	h *netlink.Handle
	// route is a rtnetlink socket of the same namespace for the requests
	// netlink.Handle cannot make (a link dump the kernel filters:
	// BridgeGroups); its requests run one at a time.
	route *vnl.SocketHandle
}

// New returns a Handle whose requests act in the network namespace ns. The
// caller keeps ownership of ns (it may close it once New returns).
func New(ns netns.NsHandle) (*Handle, error) {
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return nil, fmt.Errorf("opening netlink socket in namespace %s: %w", ns, err)
	}
	s, err := vnl.GetNetlinkSocketAt(ns, netns.None(), unix.NETLINK_ROUTE)
	if err != nil {
		h.Close()
		return nil, fmt.Errorf("opening netlink socket in namespace %s: %w", ns, err)
	}
	return &Handle{h: h, route: &vnl.SocketHandle{Socket: s}}, nil
}

// NewHost returns a Handle for the network namespace of the calling thread at
// the time of the call, which for a daemon is the host namespace.
func NewHost() (*Handle, error) {
	h, err := netlink.NewHandle()
	if err != nil {
		return nil, fmt.Errorf("opening netlink socket: %w", err)
	}
	s, err := vnl.GetNetlinkSocketAt(netns.None(), netns.None(), unix.NETLINK_ROUTE)
	if err != nil {
		h.Close()
		return nil, fmt.Errorf("opening netlink socket: %w", err)
	}
	return &Handle{h: h, route: &vnl.SocketHandle{Socket: s}}, nil
}

// Close releases the netlink sockets.
func (h *Handle) Close() {
	h.h.Close()
	h.route.Socket.Close()
}

// retry runs a dump until the kernel returns it uninterrupted.
func retry[T any](what string, f func() (T, error)) (T, error) {
	var zero T
	var err error
	for range maxDumpAttempts {
		var v T
		v, err = f()
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			return v, err
		}
	}
	return zero, fmt.Errorf("%s: %w (still interrupted after %d attempts)", what, err, maxDumpAttempts)
}

// isNotFound reports whether a netlink error means the link does not exist.
func isNotFound(err error) bool {
	var nf netlink.LinkNotFoundError
	return errors.As(err, &nf) || errors.Is(err, syscall.ENODEV) || errors.Is(err, ErrLinkNotFound)
}

// LinkByName returns the link called name; a missing link is reported with an
// error wrapping ErrLinkNotFound.
func (h *Handle) LinkByName(name string) (netlink.Link, error) {
	l, err := retry("looking up link "+name, func() (netlink.Link, error) { return h.h.LinkByName(name) })
	if err != nil {
		if isNotFound(err) {
			return nil, &NotFoundError{Name: name}
		}
		return nil, fmt.Errorf("looking up link %q: %w", name, err)
	}
	return l, nil
}

// LinkByIndex returns the link with the given index; a missing link is
// reported with an error wrapping ErrLinkNotFound.
func (h *Handle) LinkByIndex(index int) (netlink.Link, error) {
	l, err := h.h.LinkByIndex(index)
	if err != nil {
		if isNotFound(err) {
			return nil, &NotFoundError{Index: index}
		}
		return nil, fmt.Errorf("looking up link %d: %w", index, err)
	}
	return l, nil
}

// rtextFilterSkipStats asks the kernel to leave the statistics out of a link
// dump (RTEXT_FILTER_SKIP_STATS, Linux 5.x); an older kernel ignores it.
const rtextFilterSkipStats = 1 << 3

// BridgeGroups returns the device group of every bridge in the namespace, by
// name, from one link dump that the kernel filters to bridges (the
// IFLA_INFO_KIND filter of RTM_GETLINK dumps). weft checks its bridges'
// groups every few seconds: one dump costs one request whatever the number
// of networks, where a lookup per bridge costs one per network, and the
// filter keeps the endpoints' veths (one per container) out of it. Only the
// name and the group of each link are decoded. A kernel without the filter
// returns every link, which costs more but changes nothing: callers look up
// the names they know.
func (h *Handle) BridgeGroups() (map[string]uint32, error) {
	groups, err := retry("listing bridges", func() (map[string]uint32, error) {
		req := &vnl.NetlinkRequest{
			NlMsghdr: unix.NlMsghdr{Len: unix.SizeofNlMsghdr, Type: unix.RTM_GETLINK, Flags: unix.NLM_F_REQUEST | unix.NLM_F_DUMP},
			Sockets:  map[int]*vnl.SocketHandle{unix.NETLINK_ROUTE: h.route},
		}
		req.AddData(vnl.NewIfInfomsg(unix.AF_UNSPEC))
		req.AddData(vnl.NewRtAttr(unix.IFLA_EXT_MASK, vnl.Uint32Attr(rtextFilterSkipStats)))
		info := vnl.NewRtAttr(unix.IFLA_LINKINFO, nil)
		info.AddRtAttr(vnl.IFLA_INFO_KIND, vnl.NonZeroTerminated("bridge"))
		req.AddData(info)
		groups := map[string]uint32{}
		err := req.ExecuteIter(unix.NETLINK_ROUTE, unix.RTM_NEWLINK, func(msg []byte) bool {
			if len(msg) < unix.SizeofIfInfomsg {
				return true
			}
			attrs, perr := vnl.ParseRouteAttr(msg[unix.SizeofIfInfomsg:])
			if perr != nil {
				return true
			}
			var name string
			var group uint32
			for _, a := range attrs {
				switch a.Attr.Type {
				case unix.IFLA_IFNAME:
					name = strings.TrimRight(string(a.Value), "\x00")
				case unix.IFLA_GROUP:
					if len(a.Value) >= 4 {
						group = vnl.NativeEndian().Uint32(a.Value)
					}
				}
			}
			if name != "" {
				groups[name] = group
			}
			return true
		})
		return groups, err
	})
	if err != nil {
		return nil, fmt.Errorf("listing bridges: %w", err)
	}
	return groups, nil
}

// LinkList returns every link of the namespace.
func (h *Handle) LinkList() ([]netlink.Link, error) {
	ls, err := retry("listing links", h.h.LinkList)
	if err != nil {
		return nil, fmt.Errorf("listing links: %w", err)
	}
	return ls, nil
}

// AddrList returns the addresses of link (nil = all links) in family
// (netlink.FAMILY_V4, FAMILY_V6 or FAMILY_ALL).
func (h *Handle) AddrList(link netlink.Link, family int) ([]netlink.Addr, error) {
	as, err := retry("listing addresses", func() ([]netlink.Addr, error) { return h.h.AddrList(link, family) })
	if err != nil {
		return nil, fmt.Errorf("listing addresses: %w", err)
	}
	return as, nil
}

// RouteList returns the routes of the main table in family.
func (h *Handle) RouteList(family int) ([]netlink.Route, error) {
	rs, err := retry("listing routes", func() ([]netlink.Route, error) { return h.h.RouteList(nil, family) })
	if err != nil {
		return nil, fmt.Errorf("listing routes: %w", err)
	}
	return rs, nil
}

// HostRoutes returns the destination of every IPv4 and IPv6 route in the main
// routing table, once each, default routes (0.0.0.0/0, ::/0) included; IPAM
// uses it to avoid default pools that collide with the host's networks.
func (h *Handle) HostRoutes() ([]netip.Prefix, error) {
	rs, err := h.RouteList(netlink.FAMILY_ALL)
	if err != nil {
		return nil, err
	}
	seen := make(map[netip.Prefix]bool, len(rs))
	var out []netip.Prefix
	for _, r := range rs {
		p, ok := routeDst(r)
		if !ok || seen[p] {
			continue
		}
		seen[p] = true
		out = append(out, p)
	}
	return out, nil
}

// routeDst converts a route's destination; a nil Dst is the family's default.
func routeDst(r netlink.Route) (netip.Prefix, bool) {
	if r.Dst == nil {
		switch r.Family {
		case netlink.FAMILY_V4:
			return netip.PrefixFrom(netip.IPv4Unspecified(), 0), true
		case netlink.FAMILY_V6:
			return netip.PrefixFrom(netip.IPv6Unspecified(), 0), true
		}
		return netip.Prefix{}, false
	}
	return prefixFromIPNet(r.Dst)
}

func prefixFromIPNet(n *net.IPNet) (netip.Prefix, bool) {
	ones, bits := n.Mask.Size()
	ip := n.IP
	if bits == 32 {
		ip = ip.To4()
	}
	a, ok := netip.AddrFromSlice(ip)
	if !ok || bits != a.BitLen() {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(a, ones).Masked(), true
}

// ipNet converts a prefix (address with its prefix length, not masked) to the
// form netlink takes.
func ipNet(p netip.Prefix) *net.IPNet {
	bits := 32
	if p.Addr().Is6() {
		bits = 128
	}
	return &net.IPNet{IP: net.IP(p.Addr().AsSlice()), Mask: net.CIDRMask(p.Bits(), bits)}
}
