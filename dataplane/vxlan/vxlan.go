package vxlan

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"syscall"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/weftnet/weft/dataplane"
	"github.com/weftnet/weft/dataplane/fw"
	"github.com/weftnet/weft/dataplane/nl"
)

// ErrUnknownNetwork is wrapped by SetPeers' and KernelPeers' error for a
// network this Mode has not created or reconciled (or has deleted since).
var ErrUnknownNetwork = errors.New("no such vxlan network on this host")

// ErrVNIInUse is wrapped by CreateNetwork's error when the kernel already has
// a VXLAN link with the network's VNI on its UDP port.
var ErrVNIInUse = errors.New("VNI already in use on this host")

// ErrPortInUse is wrapped by CreateNetwork's error when the network's UDP
// port is bound by a socket that is not the kernel's VXLAN one.
var ErrPortInUse = errors.New("UDP port in use on this host")

// refusal is an error for the person at the docker prompt that also matches
// its kind (ErrVNIInUse, ErrPortInUse) and the kernel's answer with errors.Is.
type refusal struct {
	msg         string
	kind, cause error
}

func (r *refusal) Error() string   { return r.msg }
func (r *refusal) Unwrap() []error { return []error{r.kind, r.cause} }

// Mode is the vxlan data plane. It is safe for concurrent use: calls are
// serialised by one mutex.
type Mode struct {
	mu  sync.Mutex
	nl  *nl.Handle
	log *slog.Logger
	// vtep is the configured VTEP address; zero = DefaultVTEP.
	vtep    netip.Addr
	offload Offload
	// ns is the namespace nl acts in, for the ethtool ioctl; closed (-1)
	// = the calling thread's.
	ns netns.NsHandle
	// release is the kernel release (uname -r), for OffloadAuto.
	release string

	// nets are the networks made or reconciled and not deleted since.
	nets map[string]dataplane.Network
	// eps are the endpoints made or reconciled and not deleted since, by
	// network (their host veths go back on a re-created bridge).
	eps map[string]map[string]dataplane.Endpoint
	// peers is the desired peer set of each network in nets for which
	// SetPeers was called; a network without an entry has its kernel
	// entries left as they are.
	peers map[string]map[macKey]Peer

	// names are this instance's kernel names, alias, sets and rule
	// comments (WithFlavour; default Local).
	names Flavour

	// fw programs the known-VTEP filter (firewall.go); nil = no filter.
	fw *fw.Firewall
	// known are the VTEPs given to SetKnownVTEPs.
	known map[netip.Addr]bool
	// filterPorts are the ports whose filter rule this Mode applied, by
	// family.
	filterPorts map[fw.Family]map[uint16]bool
}

var (
	_ dataplane.Mode           = (*Mode)(nil)
	_ dataplane.Checker        = (*Mode)(nil)
	_ dataplane.EndpointProber = (*Mode)(nil)
	_ dataplane.PeerSetter     = (*Mode)(nil)
)

// New returns the vxlan mode acting through h (the host namespace's netlink
// handle). log may be nil.
func New(h *nl.Handle, log *slog.Logger, opts ...Option) *Mode {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := &Mode{
		nl: h, log: log.With("mode", string(dataplane.Vxlan)), offload: OffloadAuto, ns: netns.None(), names: Local(),
		release: kernelRelease(),
		nets:    map[string]dataplane.Network{}, eps: map[string]map[string]dataplane.Endpoint{}, peers: map[string]map[macKey]Peer{},
		known: map[netip.Addr]bool{}, filterPorts: map[fw.Family]map[uint16]bool{},
	}
	for _, o := range opts {
		o(m)
	}
	return m
}

// undo collects the reversal of each completed step of a multi-step change.
type undo struct{ steps []func() error }

func (u *undo) add(f func() error) { u.steps = append(u.steps, f) }

// run reverses the steps, newest first; failures are logged, not returned.
func (u *undo) run(log *slog.Logger) {
	for i := len(u.steps) - 1; i >= 0; i-- {
		if err := u.steps[i](); err != nil {
			log.Error("undoing a failed change", "err", err)
		}
	}
	u.steps = nil
}

// Validate checks n as far as it can without the kernel.
func Validate(n dataplane.Network) error {
	if n.Mode != dataplane.Vxlan {
		return fmt.Errorf("network %s has mode %q, not %q", dataplane.ShortID(n.ID), n.Mode, dataplane.Vxlan)
	}
	if dataplane.CheckID(n.ID) != nil {
		return fmt.Errorf("invalid network ID %q", n.ID)
	}
	if n.Vxlan.VNI < 1 || n.Vxlan.VNI > MaxVNI {
		return fmt.Errorf("VNI %d: want a number between 1 and %d", n.Vxlan.VNI, MaxVNI)
	}
	if n.MTU != 0 && (n.MTU < minMTU || n.MTU > 65535) {
		return fmt.Errorf("MTU %d: want a number between %d and 65535", n.MTU, minMTU)
	}
	for _, s := range n.IPv4 {
		if err := validSubnet(s, true); err != nil {
			return err
		}
	}
	for _, s := range n.IPv6 {
		if err := validSubnet(s, false); err != nil {
			return err
		}
	}
	return nil
}

func validSubnet(s dataplane.Subnet, v4 bool) error {
	fam := "IPv6"
	if v4 {
		fam = "IPv4"
	}
	if !s.Pool.IsValid() || s.Pool.Addr().Is4() != v4 {
		return fmt.Errorf("invalid %s subnet %v", fam, s.Pool)
	}
	if s.Gateway.IsValid() && (s.Gateway.Is4() != v4 || !s.Pool.Contains(s.Gateway)) {
		return fmt.Errorf("gateway %s is not in subnet %s", s.Gateway, s.Pool)
	}
	return nil
}

// local returns this host's VTEP address and the link that carries it.
func (m *Mode) local() (netip.Addr, netlink.Link, error) {
	vtep := m.vtep
	if !vtep.IsValid() {
		var err error
		if vtep, err = DefaultVTEP(m.nl); err != nil {
			return netip.Addr{}, nil, err
		}
	}
	if err := checkVTEP(vtep); err != nil {
		return netip.Addr{}, nil, err
	}
	l, err := underlay(m.nl, vtep)
	if err != nil {
		return netip.Addr{}, nil, err
	}
	return vtep, l, nil
}

// Flavour returns the names this Mode gives what it makes (WithFlavour).
func (m *Mode) Flavour() Flavour { return m.names }

// VTEP returns the VTEP address this Mode uses: the configured one, or
// DefaultVTEP. The control plane publishes it as this host's.
func (m *Mode) VTEP() (netip.Addr, error) {
	a, _, err := m.local()
	return a, err
}

// CreateNetwork makes n's bridge and VXLAN link (a port of the bridge) and,
// if SetPeers was called for n since, its peers' entries. Links with n's
// names that weft did not make for n are refused and left alone. On failure,
// everything this call made is removed.
func (m *Mode) CreateNetwork(ctx context.Context, n dataplane.Network) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := Validate(n); err != nil {
		return err
	}
	_, existed := m.nets[n.ID]
	if !existed {
		if err := m.checkPortFree(n); err != nil {
			return err
		}
	}
	if err := m.ensureNetwork(n); err != nil {
		return err
	}
	m.nets[n.ID] = n
	if err := m.syncFilter(false, false); err != nil {
		if !existed {
			delete(m.nets, n.ID)
			if derr := m.deleteLinks(n); derr != nil {
				m.log.Error("undoing a failed change", "err", derr)
			}
		}
		return err
	}
	m.log.Info("network ready", "network", dataplane.ShortID(n.ID), "bridge", m.names.BridgeName(n.ID), "vxlan", m.names.LinkName(n.ID), "vni", n.Vxlan.VNI, "port", portOf(n))
	return nil
}

// checkName verifies that an existing link called name (of kind typ) is n's,
// adopting one weft made for n before it could set the alias; nil if there
// is no such link.
func (m *Mode) checkName(n dataplane.Network, name, typ string) error {
	l, err := m.nl.LinkByName(name)
	if errors.Is(err, nl.ErrLinkNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	a := l.Attrs()
	switch {
	case a.Alias == m.names.ownerAlias(n.ID) && l.Type() == typ:
		return nil
	case a.Alias == "" && l.Type() == typ:
		// Made by weft for n (the name derives from n's ID), which died
		// before setting the alias.
		m.log.Info("adopting link without owner alias", "network", dataplane.ShortID(n.ID), "link", name)
		return m.nl.SetAlias(l, m.names.ownerAlias(n.ID))
	}
	if other, ok := m.names.aliasNetwork(a.Alias); ok {
		return fmt.Errorf("the interface name %q is already used by weft vxlan network %s (its ID starts like this one's); remove that network first", name, dataplane.ShortID(other))
	}
	return fmt.Errorf("a network interface named %q (%s) already exists on this host and was not created by weft for network %s; remove it",
		name, l.Type(), dataplane.ShortID(n.ID))
}

// ensureNetwork creates or repairs n's links, settings and (if known) peers.
// On failure what it created is removed.
func (m *Mode) ensureNetwork(n dataplane.Network) (err error) {
	vtep, ul, err := m.local()
	if err != nil {
		return fmt.Errorf("network %s: %w", dataplane.ShortID(n.ID), err)
	}
	mtu, err := mtuFor(n, ul.Attrs().Name, ul.Attrs().MTU, vtep.Is6())
	if err != nil {
		return err
	}
	offloadOn, err := m.offload.resolve(m.release)
	if err != nil {
		return err
	}
	brName, vxName := m.names.BridgeName(n.ID), m.names.LinkName(n.ID)
	if err := m.checkName(n, brName, "bridge"); err != nil {
		return err
	}
	if err := m.checkName(n, vxName, "vxlan"); err != nil {
		return err
	}

	var u undo
	defer func() {
		if err != nil {
			u.run(m.log)
		}
	}()
	br, brCreated, err := m.nl.EnsureBridge(brName, mtu, m.names.ownerAlias(n.ID))
	if err != nil {
		return fmt.Errorf("bridge %q: %w", brName, err)
	}
	if brCreated {
		u.add(func() error { return m.nl.DeleteLinkByName(brName) })
		m.log.Debug("created bridge", "network", dataplane.ShortID(n.ID), "bridge", brName)
	}
	spec := nl.Vxlan{
		Name: vxName, VNI: n.Vxlan.VNI, Port: portOf(n), Local: vtep, Learning: false, Proxy: true,
		MTU: mtu, MasterIndex: br.Attrs().Index, Alias: m.names.ownerAlias(n.ID),
	}
	vx, vxCreated, err := m.nl.EnsureVxlan(spec)
	if errors.Is(err, nl.ErrLinkConflict) {
		// weft's own link for n with other settings (the VTEP address or
		// the port changed): make it again.
		m.log.Info("re-creating VXLAN link whose settings changed", "network", dataplane.ShortID(n.ID), "vxlan", vxName, "err", err)
		if err := m.nl.DeleteLinkByName(vxName); err != nil {
			return err
		}
		vx, vxCreated, err = m.nl.EnsureVxlan(spec)
	}
	if err != nil {
		return m.explainVxlanError(n, vtep, err)
	}
	if vxCreated {
		u.add(func() error { return m.nl.DeleteLinkByName(vxName) })
		m.log.Debug("created VXLAN link", "network", dataplane.ShortID(n.ID), "vxlan", vxName, "vni", n.Vxlan.VNI, "local", vtep)
	}
	// Remote MACs are never learned, by the VXLAN link or by the bridge
	// from its VXLAN port: SetPeers writes them.
	if err := m.nl.SetLearning(vx, false); err != nil {
		return err
	}
	if err := inNamespace(m.ns, func() error {
		was, err := txChecksum(vxName, &offloadOn)
		if err == nil && was != offloadOn {
			m.log.Info("set checksum offload", "vxlan", vxName, "offload", onOff(offloadOn), "setting", string(m.offload))
		}
		return err
	}); err != nil {
		return err
	}
	for _, ep := range m.eps[n.ID] {
		host, _ := m.names.VethNames(ep.ID)
		if err := m.reattach(br, host); err != nil {
			return err
		}
	}
	if want, ok := m.peers[n.ID]; ok {
		k, err := m.readKernel(vx.Attrs().Index)
		if err != nil {
			return err
		}
		if err := m.syncPeers(vx, want, k); err != nil {
			return err
		}
	}
	return nil
}

// explainVxlanError turns the kernel's refusals of n's VXLAN link into
// errors for the person at the docker prompt.
func (m *Mode) explainVxlanError(n dataplane.Network, vtep netip.Addr, err error) error {
	vni, port := n.Vxlan.VNI, portOf(n)
	switch {
	case errors.Is(err, nl.ErrLinkKindUnsupported):
		return fmt.Errorf("this host's kernel has no VXLAN support (vxlan module): %w", err)
	case errors.Is(err, syscall.EEXIST):
		return &refusal{kind: ErrVNIInUse, cause: err, msg: fmt.Sprintf(
			"VNI %d on UDP port %d is already used on this host by %s; create the network with another -o vni=N (the same on every host), or another -o vxlan_port=P (kernel: %v)",
			vni, port, m.vniHolder(n), errors.Unwrap(err))}
	case errors.Is(err, syscall.EADDRINUSE):
		return &refusal{kind: ErrPortInUse, cause: err, msg: fmt.Sprintf(
			"UDP port %d cannot carry VXLAN on this host: a program, or a VXLAN interface with other settings, has it open (see ss -ulpn sport = :%d); choose another port with -o vxlan_port=P (the same on every host) (kernel: %v)",
			port, port, syscall.EADDRINUSE)}
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return fmt.Errorf("the VTEP address %s cannot be used as the VXLAN source address on this host: %w", vtep, err)
	}
	return fmt.Errorf("network %s: VXLAN link %q: %w", dataplane.ShortID(n.ID), m.names.LinkName(n.ID), err)
}

// vniHolder names the link that holds n's VNI on n's port, as far as this
// namespace shows it (it is only called after the kernel refused a link).
func (m *Mode) vniHolder(n dataplane.Network) string {
	links, err := m.nl.LinkList()
	if err == nil {
		for _, l := range links {
			vx, ok := l.(*netlink.Vxlan)
			if !ok || uint32(vx.VxlanId) != n.Vxlan.VNI || vx.Port != int(portOf(n)) {
				continue
			}
			if other, ok := m.names.aliasNetwork(vx.Alias); ok {
				return fmt.Sprintf("weft vxlan network %s (interface %q)", dataplane.ShortID(other), vx.Name)
			}
			if o, other, ok := m.names.otherFlavourLink(vx); ok {
				return fmt.Sprintf("the %s weft's vxlan network %s (interface %q)", o.instance, dataplane.ShortID(other), vx.Name)
			}
			return fmt.Sprintf("the VXLAN interface %q, which weft did not create", vx.Name)
		}
	}
	return "a VXLAN interface that is no longer in the host's network namespace (Docker's swarm overlay moves its VXLAN interfaces into namespaces of their own and uses VNIs from 4096 up)"
}

// DeleteNetwork removes n's VXLAN link and bridge (with them every peer
// entry) if weft made them for n; missing links are fine.
func (m *Mode) DeleteNetwork(ctx context.Context, n dataplane.Network) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if dataplane.CheckID(n.ID) != nil {
		return fmt.Errorf("invalid network ID %q", n.ID)
	}
	errs := []error{m.deleteLinks(n)}
	delete(m.nets, n.ID)
	delete(m.peers, n.ID)
	delete(m.eps, n.ID)
	errs = append(errs, m.syncFilter(false, true))
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("deleting network %s: %w", dataplane.ShortID(n.ID), err)
	}
	m.log.Info("network deleted", "network", dataplane.ShortID(n.ID))
	return nil
}

// deleteLinks deletes n's VXLAN link and bridge if weft made them for n.
func (m *Mode) deleteLinks(n dataplane.Network) error {
	var errs []error
	for _, name := range []string{m.names.LinkName(n.ID), m.names.BridgeName(n.ID)} {
		l, err := m.nl.LinkByName(name)
		switch {
		case errors.Is(err, nl.ErrLinkNotFound):
		case err != nil:
			errs = append(errs, err)
		case m.names.ownedBy(l, n.ID):
			errs = append(errs, m.nl.DeleteLink(l))
		default:
			m.log.Warn("not deleting a link weft did not create for this network", "network", dataplane.ShortID(n.ID), "link", name, "alias", l.Attrs().Alias)
		}
	}
	return errors.Join(errs...)
}

// ownedBy reports whether l is a link this flavour made for network id: its
// alias names id, or it has none and id's name (a crash before the alias).
func (f Flavour) ownedBy(l netlink.Link, id string) bool {
	a := l.Attrs()
	switch l.Type() {
	case "bridge":
		return a.Alias == f.ownerAlias(id) || a.Alias == "" && a.Name == f.BridgeName(id)
	case "vxlan":
		return a.Alias == f.ownerAlias(id) || a.Alias == "" && a.Name == f.LinkName(id)
	case "veth":
		return f.isVethName(a.Name) && (a.Alias == f.ownerAlias(id) || a.Alias == "")
	}
	return false
}

// validateEndpoint checks ep (and that it belongs to n).
func validateEndpoint(n dataplane.Network, ep dataplane.Endpoint) error {
	if dataplane.CheckID(n.ID) != nil {
		return fmt.Errorf("invalid network ID %q", n.ID)
	}
	if dataplane.CheckID(ep.ID) != nil {
		return fmt.Errorf("invalid endpoint ID %q", ep.ID)
	}
	if ep.NetworkID != "" && ep.NetworkID != n.ID {
		return fmt.Errorf("endpoint %s belongs to network %s, not %s", dataplane.ShortID(ep.ID), dataplane.ShortID(ep.NetworkID), dataplane.ShortID(n.ID))
	}
	if ep.MAC != nil && (len(ep.MAC) != 6 || ep.MAC[0]&1 != 0) {
		return fmt.Errorf("MAC address %s: want a 6-byte unicast address", ep.MAC)
	}
	return nil
}

// bridgeOf returns n's bridge, refusing a missing or foreign one.
func (m *Mode) bridgeOf(n dataplane.Network) (netlink.Link, error) {
	name := m.names.BridgeName(n.ID)
	br, err := m.nl.LinkByName(name)
	if errors.Is(err, nl.ErrLinkNotFound) {
		return nil, fmt.Errorf("the bridge %q of network %s is missing; restart the weft plugin to re-create it", name, dataplane.ShortID(n.ID))
	}
	if err != nil {
		return nil, err
	}
	if br.Type() != "bridge" || !m.names.ownedBy(br, n.ID) {
		return nil, fmt.Errorf("the interface %q is not the bridge weft made for network %s; restart the weft plugin to repair it", name, dataplane.ShortID(n.ID))
	}
	return br, nil
}

// CreateEndpoint creates ep's veth pair: the host end a port of n's bridge
// and up, the container end with the network's MTU and ep.MAC, down, left
// for Docker to move.
func (m *Mode) CreateEndpoint(ctx context.Context, n dataplane.Network, ep dataplane.Endpoint) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := validateEndpoint(n, ep); err != nil {
		return err
	}
	br, err := m.bridgeOf(n)
	if err != nil {
		return err
	}
	host, cont := m.names.VethNames(ep.ID)
	created, err := m.nl.EnsureVethPair(nl.VethPair{
		Name: host, PeerName: cont, MTU: br.Attrs().MTU, PeerMAC: ep.MAC,
		MasterIndex: br.Attrs().Index, Alias: m.names.ownerAlias(n.ID),
	})
	if err != nil {
		return fmt.Errorf("endpoint %s: %w", dataplane.ShortID(ep.ID), err)
	}
	ep.NetworkID = n.ID
	if m.eps[n.ID] == nil {
		m.eps[n.ID] = map[string]dataplane.Endpoint{}
	}
	m.eps[n.ID][ep.ID] = ep
	if created {
		m.log.Info("endpoint ready", "network", dataplane.ShortID(n.ID), "endpoint", dataplane.ShortID(ep.ID), "veth", host+"/"+cont)
	}
	return nil
}

// DeleteEndpoint deletes ep's veth pair through whichever end is in the host
// namespace; if neither is (the container's namespace died with it), there
// is nothing to do.
func (m *Mode) DeleteEndpoint(ctx context.Context, n dataplane.Network, ep dataplane.Endpoint) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if dataplane.CheckID(ep.ID) != nil {
		return fmt.Errorf("invalid endpoint ID %q", ep.ID)
	}
	delete(m.eps[n.ID], ep.ID)
	host, cont := m.names.VethNames(ep.ID)
	for _, name := range []string{host, cont} {
		l, err := m.nl.LinkByName(name)
		if errors.Is(err, nl.ErrLinkNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		if !m.names.ownedVeth(l) {
			m.log.Warn("not deleting a link weft did not create", "endpoint", dataplane.ShortID(ep.ID), "link", name, "type", l.Type())
			continue
		}
		if err := m.nl.DeleteLink(l); err != nil {
			return fmt.Errorf("endpoint %s: %w", dataplane.ShortID(ep.ID), err)
		}
		m.log.Info("endpoint deleted", "network", dataplane.ShortID(n.ID), "endpoint", dataplane.ShortID(ep.ID))
		return nil
	}
	return nil
}

// ownedVeth reports whether l is a veth this flavour made: its name, and its
// alias or none (a crash before the alias was set).
func (f Flavour) ownedVeth(l netlink.Link) bool {
	a := l.Attrs()
	_, ours := f.aliasNetwork(a.Alias)
	return l.Type() == "veth" && f.isVethName(a.Name) && (ours || a.Alias == "")
}

// Join hands Docker the container end. There is no gateway on a vxlan
// network: Docker then connects the container to docker_gwbridge too, for
// egress and published ports, as it does for its own overlay networks (an
// internal network gets neither).
func (m *Mode) Join(ctx context.Context, n dataplane.Network, ep dataplane.Endpoint) (dataplane.JoinInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := validateEndpoint(n, ep); err != nil {
		return dataplane.JoinInfo{}, err
	}
	_, cont := m.names.VethNames(ep.ID)
	if _, err := m.nl.LinkByName(cont); err != nil {
		if errors.Is(err, nl.ErrLinkNotFound) {
			return dataplane.JoinInfo{}, fmt.Errorf("the interface %q of endpoint %s is missing; disconnect the container from the network and connect it again", cont, dataplane.ShortID(ep.ID))
		}
		return dataplane.JoinInfo{}, err
	}
	return dataplane.JoinInfo{SrcName: cont, DstPrefix: "eth", DisableGatewayService: n.Internal}, nil
}

// Leave has nothing to undo in vxlan mode.
func (m *Mode) Leave(ctx context.Context, n dataplane.Network, ep dataplane.Endpoint) error {
	return nil
}

// EndpointState looks for ep's veths in the host namespace (see the bridge
// mode's: the host end never leaves it, the container end is there only
// before Docker moves it into the container and after it moved it back).
func (m *Mode) EndpointState(_ context.Context, _ dataplane.Network, ep dataplane.Endpoint) (dataplane.EndpointState, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	host, cont := m.names.VethNames(ep.ID)
	for i, name := range []string{host, cont} {
		_, err := m.nl.LinkByName(name)
		switch {
		case err == nil && i == 1:
			return dataplane.EndpointDetached, nil
		case err == nil:
		case !errors.Is(err, nl.ErrLinkNotFound):
			return dataplane.EndpointInUse, err
		case i == 0:
			return dataplane.EndpointGone, nil
		}
	}
	return dataplane.EndpointInUse, nil
}
