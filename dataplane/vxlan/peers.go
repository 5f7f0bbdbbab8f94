package vxlan

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"syscall"

	"github.com/vishvananda/netlink"

	"github.com/weftnet/weft/dataplane"
	"github.com/weftnet/weft/dataplane/nl"
)

// Peer is one remote endpoint of a network (dataplane.Peer).
type Peer = dataplane.Peer

// macKey is a MAC address as a map key.
type macKey [6]byte

func keyOf(mac net.HardwareAddr) macKey {
	var k macKey
	copy(k[:], mac)
	return k
}

func (k macKey) mac() net.HardwareAddr { return net.HardwareAddr(bytes.Clone(k[:])) }

// comparePeers orders peers by MAC, then VTEP, IPv4, IPv6.
func comparePeers(a, b Peer) int {
	return cmp.Or(bytes.Compare(a.MAC, b.MAC), a.VTEP.Compare(b.VTEP), a.IPv4.Compare(b.IPv4), a.IPv6.Compare(b.IPv6))
}

// SamePeers reports whether a and b hold the same peers, in any order.
func SamePeers(a, b []Peer) bool {
	if len(a) != len(b) {
		return false
	}
	a, b = canonical(a), canonical(b)
	return slices.EqualFunc(a, b, func(x, y Peer) bool { return comparePeers(x, y) == 0 })
}

func canonical(ps []Peer) []Peer {
	out := make([]Peer, len(ps))
	for i, p := range ps {
		out[i] = Peer{VTEP: p.VTEP.Unmap(), MAC: p.MAC, IPv4: p.IPv4.Unmap(), IPv6: p.IPv6}
	}
	slices.SortFunc(out, comparePeers)
	return out
}

// validatePeers checks peers for a network whose VTEP is local and returns
// them by MAC.
func validatePeers(local netip.Addr, peers []Peer) (map[macKey]Peer, error) {
	out := make(map[macKey]Peer, len(peers))
	ips := make(map[netip.Addr]bool, len(peers))
	for _, p := range peers {
		p = Peer{VTEP: p.VTEP.Unmap(), MAC: p.MAC, IPv4: p.IPv4.Unmap(), IPv6: p.IPv6}
		if err := checkVTEP(p.VTEP); err != nil {
			return nil, fmt.Errorf("peer %s: %w", p, err)
		}
		if p.VTEP.Is4() != local.Is4() {
			return nil, fmt.Errorf("peer %s: its VTEP address is not of the same family as this host's, %s", p, local)
		}
		if p.VTEP == local {
			return nil, fmt.Errorf("peer %s: its VTEP address is this host's own", p)
		}
		if len(p.MAC) != 6 || p.MAC[0]&1 != 0 || bytes.Equal(p.MAC, make([]byte, 6)) {
			return nil, fmt.Errorf("peer %s: want a 6-byte unicast MAC address", p)
		}
		if p.IPv4.IsValid() && (!p.IPv4.Is4() || p.IPv4.IsUnspecified() || p.IPv4.IsMulticast()) {
			return nil, fmt.Errorf("peer %s: %s is not a unicast IPv4 address", p, p.IPv4)
		}
		if p.IPv6.IsValid() && (!p.IPv6.Is6() || p.IPv6.Is4In6() || p.IPv6.Zone() != "" || p.IPv6.IsUnspecified() || p.IPv6.IsMulticast()) {
			return nil, fmt.Errorf("peer %s: %s is not a unicast IPv6 address", p, p.IPv6)
		}
		k := keyOf(p.MAC)
		if _, dup := out[k]; dup {
			return nil, fmt.Errorf("peer %s: MAC address %s appears twice", p, p.MAC)
		}
		for _, a := range []netip.Addr{p.IPv4, p.IPv6} {
			if a.IsValid() && ips[a] {
				return nil, fmt.Errorf("peer %s: address %s appears twice", p, a)
			}
			ips[a] = true
		}
		p.MAC = k.mac()
		out[k] = p
	}
	return out, nil
}

// fdbEntry is one destination of a VXLAN forwarding entry.
type fdbEntry struct {
	mac macKey
	dst netip.Addr
}

// kernelEntries are the permanent entries weft manages on one VXLAN link.
type kernelEntries struct {
	// fdb: the link's own (self) entries, MAC → remote VTEP.
	fdb []fdbEntry
	// static: the bridge's static entries for the link's port.
	static map[macKey]bool
	// neigh: neighbour entries, IP → MAC.
	neigh map[netip.Addr]macKey
}

func newKernelEntries() *kernelEntries {
	return &kernelEntries{static: map[macKey]bool{}, neigh: map[netip.Addr]macKey{}}
}

// groupEntries sorts neighbour and FDB dumps into the entries of each link
// (by index) that weft manages.
func groupEntries(neighs, fdbs []netlink.Neigh) map[int]*kernelEntries {
	out := map[int]*kernelEntries{}
	get := func(i int) *kernelEntries {
		k := out[i]
		if k == nil {
			k = newKernelEntries()
			out[i] = k
		}
		return k
	}
	for _, n := range neighs {
		ip, ok := netip.AddrFromSlice(n.IP)
		if !ok || n.State&netlink.NUD_PERMANENT == 0 || len(n.HardwareAddr) != 6 {
			continue
		}
		get(n.LinkIndex).neigh[ip.Unmap()] = keyOf(n.HardwareAddr)
	}
	for _, n := range fdbs {
		if len(n.HardwareAddr) != 6 {
			continue
		}
		switch {
		case n.MasterIndex != 0:
			// The bridge's entries for the port: weft's are static
			// (NOARP); the port's own address is permanent (local).
			if n.State&netlink.NUD_NOARP != 0 && n.State&netlink.NUD_PERMANENT == 0 && n.Vlan == 0 {
				get(n.LinkIndex).static[keyOf(n.HardwareAddr)] = true
			}
		case n.State&netlink.NUD_PERMANENT != 0:
			dst, ok := netip.AddrFromSlice(n.IP)
			if !ok {
				continue
			}
			k := get(n.LinkIndex)
			k.fdb = append(k.fdb, fdbEntry{mac: keyOf(n.HardwareAddr), dst: dst.Unmap()})
		}
	}
	return out
}

// peersFrom describes kernel entries as peers: one per MAC, with a VTEP only
// if the VXLAN link has a forwarding entry for the MAC and the bridge a
// static one, and the addresses the link's neighbour entries map to the
// MAC. What does not fit (a second destination or address for a MAC) is
// reported as an extra peer holding only that, so that a comparison with
// the desired peers shows it.
func peersFrom(k *kernelEntries) []Peer {
	if k == nil {
		return nil
	}
	type acc struct {
		dsts     []netip.Addr
		v4s, v6s []netip.Addr
	}
	by := map[macKey]*acc{}
	get := func(m macKey) *acc {
		a := by[m]
		if a == nil {
			a = &acc{}
			by[m] = a
		}
		return a
	}
	for _, e := range k.fdb {
		get(e.mac).dsts = append(get(e.mac).dsts, e.dst)
	}
	for m := range k.static {
		get(m)
	}
	for ip, m := range k.neigh {
		if ip.Is4() {
			get(m).v4s = append(get(m).v4s, ip)
		} else {
			get(m).v6s = append(get(m).v6s, ip)
		}
	}
	var out []Peer
	for m, a := range by {
		slices.SortFunc(a.dsts, netip.Addr.Compare)
		slices.SortFunc(a.v4s, netip.Addr.Compare)
		slices.SortFunc(a.v6s, netip.Addr.Compare)
		p := Peer{MAC: m.mac()}
		if len(a.dsts) > 0 && k.static[m] {
			p.VTEP, a.dsts = a.dsts[0], a.dsts[1:]
		}
		if len(a.v4s) > 0 {
			p.IPv4, a.v4s = a.v4s[0], a.v4s[1:]
		}
		if len(a.v6s) > 0 {
			p.IPv6, a.v6s = a.v6s[0], a.v6s[1:]
		}
		out = append(out, p)
		for _, d := range a.dsts {
			out = append(out, Peer{MAC: m.mac(), VTEP: d})
		}
		for _, ip := range append(a.v4s, a.v6s...) {
			x := Peer{MAC: m.mac()}
			if ip.Is4() {
				x.IPv4 = ip
			} else {
				x.IPv6 = ip
			}
			out = append(out, x)
		}
	}
	slices.SortFunc(out, comparePeers)
	return out
}

// readKernel reads the entries of the VXLAN link with index idx (never nil).
func (m *Mode) readKernel(idx int) (*kernelEntries, error) {
	all, err := m.readAllEntries(idx)
	if err != nil {
		return nil, err
	}
	if k := all[idx]; k != nil {
		return k, nil
	}
	return newKernelEntries(), nil
}

// readAllEntries dumps the neighbour and FDB entries of link idx (0 = every
// link) and groups them by link.
func (m *Mode) readAllEntries(idx int) (map[int]*kernelEntries, error) {
	return readEntries(m.nl, idx)
}

func readEntries(h *nl.Handle, idx int) (map[int]*kernelEntries, error) {
	var neighs []netlink.Neigh
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		ns, err := h.NeighList(idx, fam)
		if err != nil {
			return nil, err
		}
		neighs = append(neighs, ns...)
	}
	fdbs, err := h.NeighList(idx, syscall.AF_BRIDGE)
	if err != nil {
		return nil, err
	}
	return groupEntries(neighs, fdbs), nil
}

// LinkPeers reads, through h, what KernelPeers reads for a network of a
// running Mode: the remote endpoints the kernel holds on the VXLAN link
// named link, from its permanent neighbour and forwarding entries, and the
// link's local (VTEP) address. It is for weft doctor, which compares them
// with the cluster store whether or not weft runs. found is false when
// there is no such link.
func LinkPeers(h *nl.Handle, link string) (local netip.Addr, peers []Peer, found bool, err error) {
	l, err := h.LinkByName(link)
	if errors.Is(err, nl.ErrLinkNotFound) {
		return netip.Addr{}, nil, false, nil
	}
	if err != nil {
		return netip.Addr{}, nil, false, err
	}
	vx, ok := l.(*netlink.Vxlan)
	if !ok {
		return netip.Addr{}, nil, true, fmt.Errorf("the interface %q is not a VXLAN link", link)
	}
	local, _ = netip.AddrFromSlice(vx.SrcAddr)
	all, err := readEntries(h, vx.Attrs().Index)
	if err != nil {
		return netip.Addr{}, nil, true, err
	}
	return local.Unmap(), peersFrom(all[vx.Attrs().Index]), true, nil
}

// DiffPeers describes the first difference between the peers a VXLAN link
// holds (have, from LinkPeers) and the wanted ones, naming the peer, or
// returns "" if there is none: the comparison the Mode's Check makes.
func DiffPeers(have, want []Peer) string { return peerDiff(have, want) }

// syncPeers makes the entries of the VXLAN link vx exactly those of want:
// it writes (replace semantics) what is missing or different and deletes
// the permanent entries of no wanted peer. k is what the kernel holds now.
func (m *Mode) syncPeers(vx netlink.Link, want map[macKey]Peer, k *kernelEntries) error {
	idx := vx.Attrs().Index
	var errs []error
	added, removed := 0, 0
	set := func(n *netlink.Neigh) {
		if err := m.nl.NeighSet(n); err != nil {
			errs = append(errs, err)
		} else {
			added++
		}
	}
	del := func(n *netlink.Neigh) {
		if err := m.nl.NeighDel(n); err != nil {
			errs = append(errs, err)
		} else {
			removed++
		}
	}
	fdb := func(mac macKey, dst netip.Addr) *netlink.Neigh {
		return &netlink.Neigh{LinkIndex: idx, Family: syscall.AF_BRIDGE, State: netlink.NUD_PERMANENT, Flags: netlink.NTF_SELF,
			HardwareAddr: mac.mac(), IP: net.IP(dst.AsSlice())}
	}
	static := func(mac macKey) *netlink.Neigh {
		return &netlink.Neigh{LinkIndex: idx, Family: syscall.AF_BRIDGE, State: netlink.NUD_NOARP, Flags: netlink.NTF_MASTER,
			HardwareAddr: mac.mac()}
	}
	neigh := func(ip netip.Addr, mac macKey) *netlink.Neigh {
		fam := netlink.FAMILY_V4
		if ip.Is6() {
			fam = netlink.FAMILY_V6
		}
		return &netlink.Neigh{LinkIndex: idx, Family: fam, State: netlink.NUD_PERMANENT, HardwareAddr: mac.mac(), IP: net.IP(ip.AsSlice())}
	}

	have := map[macKey][]netip.Addr{}
	for _, e := range k.fdb {
		have[e.mac] = append(have[e.mac], e.dst)
	}
	// Forwarding first, so that an address the proxy answers for is
	// reachable by the time it does.
	for mac, p := range want {
		dsts := have[mac]
		if !slices.Contains(dsts, p.VTEP) {
			set(fdb(mac, p.VTEP))
		}
		for _, d := range dsts {
			if d != p.VTEP {
				del(fdb(mac, d))
			}
		}
		if !k.static[mac] {
			set(static(mac))
		}
	}
	for mac, dsts := range have {
		if _, ok := want[mac]; !ok {
			for _, d := range dsts {
				del(fdb(mac, d))
			}
		}
	}
	for mac := range k.static {
		if _, ok := want[mac]; !ok {
			del(static(mac))
		}
	}
	wantIP := map[netip.Addr]macKey{}
	for mac, p := range want {
		for _, a := range []netip.Addr{p.IPv4, p.IPv6} {
			if a.IsValid() {
				wantIP[a] = mac
			}
		}
	}
	for ip, mac := range wantIP {
		if cur, ok := k.neigh[ip]; !ok || cur != mac {
			set(neigh(ip, mac))
		}
	}
	for ip, mac := range k.neigh {
		if _, ok := wantIP[ip]; !ok {
			del(neigh(ip, mac))
		}
	}
	if added+removed > 0 {
		m.log.Info("peer entries written", "vxlan", vx.Attrs().Name, "peers", len(want), "written", added, "removed", removed)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("programming peers on %q: %w", vx.Attrs().Name, err)
	}
	return nil
}

// vxlanOf returns n's VXLAN link; a missing link gives an error wrapping
// nl.ErrLinkNotFound, a link that is not weft's for n another error.
func (m *Mode) vxlanOf(n dataplane.Network) (netlink.Link, error) {
	vx, err := m.nl.LinkByName(m.names.LinkName(n.ID))
	if err != nil {
		return nil, err
	}
	if vx.Type() != "vxlan" || !m.names.ownedBy(vx, n.ID) {
		return nil, fmt.Errorf("the interface %q is not the VXLAN link weft made for network %s", vx.Attrs().Name, dataplane.ShortID(n.ID))
	}
	return vx, nil
}

// SetPeers makes the kernel hold exactly peers as the remote endpoints of
// network networkID: per peer a permanent neighbour entry for each of its
// addresses (IP → MAC, on the VXLAN link, which answers ARP and neighbour
// solicitations for them), a permanent forwarding entry on the VXLAN link
// (MAC → the peer's VTEP) and a static entry in the bridge (MAC → the VXLAN
// port). Entries are written with replace semantics and only where the
// kernel differs; permanent entries on the link of no listed peer are
// removed. An empty list removes every peer.
//
// The list is remembered: CreateNetwork, Reconcile and Repair put the
// entries back whenever they re-create the link or find entries missing.
// A VXLAN link that is missing is re-created. A network this Mode does not
// have gives an error wrapping ErrUnknownNetwork; invalid peers (a VTEP of
// another family than this host's, a duplicate MAC or address) an error
// that names them, and nothing is changed.
func (m *Mode) SetPeers(ctx context.Context, networkID string, peers []Peer) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, ok := m.nets[networkID]
	if !ok {
		return fmt.Errorf("setting peers of network %s: %w", dataplane.ShortID(networkID), ErrUnknownNetwork)
	}
	vx, err := m.vxlanOf(n)
	if errors.Is(err, nl.ErrLinkNotFound) {
		local, _, lerr := m.local()
		if lerr != nil {
			return lerr
		}
		want, err := validatePeers(local, peers)
		if err != nil {
			return fmt.Errorf("network %s: %w", dataplane.ShortID(n.ID), err)
		}
		m.peers[n.ID] = want
		m.log.Warn("VXLAN link missing; re-creating it", "network", dataplane.ShortID(n.ID), "vxlan", m.names.LinkName(n.ID))
		return errors.Join(m.syncMembers(), m.ensureNetwork(n))
	}
	if err != nil {
		return err
	}
	local, ok := netip.AddrFromSlice(vx.(*netlink.Vxlan).SrcAddr)
	if !ok {
		return fmt.Errorf("the VXLAN link %q has no local address", vx.Attrs().Name)
	}
	want, err := validatePeers(local.Unmap(), peers)
	if err != nil {
		return fmt.Errorf("network %s: %w", dataplane.ShortID(n.ID), err)
	}
	m.peers[n.ID] = want
	// The filter first: a new peer's packets are accepted by the time
	// the peer's entries say it is there.
	if err := m.syncMembers(); err != nil {
		return err
	}
	k, err := m.readKernel(vx.Attrs().Index)
	if err != nil {
		return err
	}
	return m.syncPeers(vx, want, k)
}

// KernelPeers returns the remote endpoints the kernel holds for network
// networkID, read back from the permanent entries of its VXLAN link (see
// SetPeers), sorted by MAC. A peer whose forwarding entries are incomplete
// has no VTEP; extra destinations or addresses of a MAC come as extra
// peers holding only those; so SamePeers(KernelPeers(), desired) is false
// whenever anything differs. A missing VXLAN link holds no peers.
func (m *Mode) KernelPeers(ctx context.Context, networkID string) ([]Peer, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, ok := m.nets[networkID]
	if !ok {
		return nil, fmt.Errorf("reading peers of network %s: %w", dataplane.ShortID(networkID), ErrUnknownNetwork)
	}
	vx, err := m.vxlanOf(n)
	if errors.Is(err, nl.ErrLinkNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	k, err := m.readKernel(vx.Attrs().Index)
	if err != nil {
		return nil, err
	}
	return peersFrom(k), nil
}

// wantedPeers lists a desired peer set.
func wantedPeers(want map[macKey]Peer) []Peer {
	out := make([]Peer, 0, len(want))
	for _, p := range want {
		out = append(out, p)
	}
	slices.SortFunc(out, comparePeers)
	return out
}

// peerDiff describes the first difference between the peers the kernel
// holds and the wanted ones, or returns "" if there is none.
func peerDiff(have, want []Peer) string {
	have, want = canonical(have), canonical(want)
	for _, w := range want {
		if !slices.ContainsFunc(have, func(h Peer) bool { return comparePeers(h, w) == 0 }) {
			return fmt.Sprintf("the entries of peer %s are missing or incomplete", w)
		}
	}
	for _, h := range have {
		if !slices.ContainsFunc(want, func(w Peer) bool { return comparePeers(h, w) == 0 }) {
			return fmt.Sprintf("stale entries (%s) of no peer", h)
		}
	}
	return ""
}
