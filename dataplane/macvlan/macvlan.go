package macvlan

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"syscall"

	"github.com/vishvananda/netlink"

	"github.com/weftnet/weft/dataplane"
	"github.com/weftnet/weft/dataplane/nl"
)

// ErrVLANUnsupported is wrapped by the error CreateNetwork returns when
// parent=<link>.<VLAN ID> needs a sub-interface and the kernel has no 802.1Q
// support.
var ErrVLANUnsupported = errors.New("this host's kernel has no 802.1Q VLAN support")

// Mode is the macvlan data plane. It is safe for concurrent use: calls are
// serialised by one mutex.
type Mode struct {
	mu  sync.Mutex
	nl  *nl.Handle
	log *slog.Logger
	// known holds every macvlan network weft has: set by Reconcile, then
	// kept up to date by CreateNetwork and DeleteNetwork. It answers "who
	// else uses this parent" (overlapping subnets, passthru, the last user
	// of a VLAN sub-interface) without a kernel scan.
	known map[string]dataplane.Network
}

var _ dataplane.Mode = (*Mode)(nil)

// New returns the macvlan mode acting through h (the host namespace's netlink
// handle). log may be nil.
func New(h *nl.Handle, log *slog.Logger) *Mode {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Mode{
		nl:    h,
		log:   log.With("mode", string(dataplane.Macvlan)),
		known: map[string]dataplane.Network{},
	}
}

// undo collects the reversal of each completed step of a multi-step change.
type undo struct{ steps []func() error }

func (u *undo) add(f func() error) { u.steps = append(u.steps, f) }

// run reverses the steps, newest first; failures are logged, not returned: the
// caller reports the error that made it undo.
func (u *undo) run(log *slog.Logger) {
	for i := len(u.steps) - 1; i >= 0; i-- {
		if err := u.steps[i](); err != nil {
			log.Error("undoing a failed change", "err", err)
		}
	}
	u.steps = nil
}

// CreateNetwork checks n against the host and the other macvlan networks and
// makes what n needs: for an isolated network its parent bridge, for
// parent=<link>.<VLAN ID> the sub-interface if it does not exist. An existing
// parent is only checked, never changed. On failure nothing is left behind.
func (m *Mode) CreateNetwork(ctx context.Context, n dataplane.Network) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := Validate(n); err != nil {
		return err
	}
	for _, o := range m.known {
		if err := conflict(n, o); err != nil {
			return err
		}
	}
	if err := m.ensureNetwork(n); err != nil {
		return err
	}
	m.known[n.ID] = n
	m.log.Info("network ready", "network", dataplane.ShortID(n.ID), "parent", parentName(n), "macvlan_mode", modeOf(n))
	return nil
}

// ensureNetwork makes or checks n's parent.
func (m *Mode) ensureNetwork(n dataplane.Network) (err error) {
	if isolated(n) {
		return m.ensureIsolated(n)
	}
	var u undo
	defer func() {
		if err != nil {
			u.run(m.log)
		}
	}()
	name := n.Macvlan.Parent
	l, err := m.nl.LinkByName(name)
	if errors.Is(err, nl.ErrLinkNotFound) {
		l, err = m.createVLAN(n, &u)
	}
	if err != nil {
		return err
	}
	if err := parentError(l); err != nil {
		return err
	}
	_, err = mtuFor(n, l)
	return err
}

// ensureIsolated creates or repairs n's parent bridge: no ports, up, MTU n.MTU
// (1500 if none).
func (m *Mode) ensureIsolated(n dataplane.Network) error {
	name := IsolatedParentName(n.ID)
	if l, err := m.nl.LinkByName(name); err == nil {
		if adoptableIsolated(l, n) {
			m.log.Info("adopting isolated parent without owner alias", "network", dataplane.ShortID(n.ID), "bridge", name)
			if err := m.nl.SetAlias(l, isolatedAlias(n.ID)); err != nil {
				return err
			}
		} else if l.Attrs().Alias != isolatedAlias(n.ID) || l.Type() != "bridge" {
			return fmt.Errorf("a network interface named %q (%s) already exists on this host and was not created by weft for network %s; remove it, or give the network a parent",
				name, l.Type(), dataplane.ShortID(n.ID))
		}
	} else if !errors.Is(err, nl.ErrLinkNotFound) {
		return err
	}
	mtu := n.MTU
	if mtu == 0 {
		mtu = 1500
	}
	_, created, err := m.nl.EnsureBridge(name, mtu, isolatedAlias(n.ID))
	if err != nil {
		return fmt.Errorf("isolated network parent %q: %w", name, err)
	}
	if created {
		m.log.Debug("created isolated parent bridge", "network", dataplane.ShortID(n.ID), "bridge", name)
	}
	return nil
}

// adoptableIsolated reports whether l is a bridge with n's isolated-parent
// name and no alias: weft made it for n and died before setting the alias.
func adoptableIsolated(l netlink.Link, n dataplane.Network) bool {
	return l.Type() == "bridge" && l.Attrs().Alias == "" && l.Attrs().Name == IsolatedParentName(n.ID)
}

// createVLAN makes the missing parent n.Macvlan.Parent when it names a VLAN
// sub-interface (<link>.<VLAN ID>) of an existing link; anything else missing
// is an error that says what to do.
func (m *Mode) createVLAN(n dataplane.Network, u *undo) (netlink.Link, error) {
	name := n.Macvlan.Parent
	base, vid, err := splitVLAN(name)
	if err != nil {
		return nil, fmt.Errorf("parent interface %q does not exist on this host: name an existing interface (see \"ip link\"), or <interface>.<VLAN ID> to have weft create an 802.1Q sub-interface, or leave parent out for an isolated network", name)
	}
	lower, err := m.nl.LinkByName(base)
	if errors.Is(err, nl.ErrLinkNotFound) {
		return nil, fmt.Errorf("parent %q would be VLAN %d on interface %q, which does not exist on this host: name an existing interface (see \"ip link\")", name, vid, base)
	}
	if err != nil {
		return nil, err
	}
	if err := parentError(lower); err != nil {
		return nil, fmt.Errorf("VLAN parent %q: %w", name, err)
	}
	if n.MTU > lower.Attrs().MTU {
		return nil, mtuError(n.MTU, lower)
	}
	if other, err := m.vlanOn(lower, vid); err != nil {
		return nil, err
	} else if other != "" {
		return nil, fmt.Errorf("interface %q already has VLAN %d, as %q: use -o parent=%s", base, vid, other, other)
	}
	l, created, err := m.nl.EnsureVlan(nl.Vlan{Name: name, ParentIndex: lower.Attrs().Index, ID: vid, Alias: VLANAlias})
	if errors.Is(err, nl.ErrLinkKindUnsupported) {
		return nil, fmt.Errorf("cannot create the VLAN sub-interface %q: %w (no 8021q module); use an existing VLAN interface as parent, or load the module (modprobe 8021q) on a kernel that has it: %w",
			name, ErrVLANUnsupported, err)
	}
	if err != nil {
		return nil, fmt.Errorf("creating VLAN sub-interface %q: %w", name, err)
	}
	if created {
		u.add(func() error { return m.nl.DeleteLink(l) })
		m.log.Info("created VLAN sub-interface", "network", dataplane.ShortID(n.ID), "link", name, "vlan", vid)
	}
	return l, nil
}

// vlanOn returns the name of lower's VLAN sub-interface with ID vid, if any
// (the kernel allows one per ID and lower link).
func (m *Mode) vlanOn(lower netlink.Link, vid int) (string, error) {
	links, err := m.nl.LinkList()
	if err != nil {
		return "", err
	}
	return findVLAN(links, lower.Attrs().Index, vid), nil
}

func findVLAN(links []netlink.Link, lowerIndex, vid int) string {
	for _, l := range links {
		if v, ok := l.(*netlink.Vlan); ok && v.ParentIndex == lowerIndex && v.VlanId == vid {
			return v.Name
		}
	}
	return ""
}

// isVxlanAlias reports whether alias is that of a vxlan network's link, of
// either weft instance a node may run.
func isVxlanAlias(alias string) bool {
	_, ok := dataplane.VxlanAliasNetwork(alias)
	return ok
}

// parentError explains why l cannot be a macvlan parent, or returns nil:
// links weft made for other purposes (a bridge network's bridge, an isolated
// network's parent, an endpoint) and non-Ethernet links are refused. A VLAN
// sub-interface weft made is a fine parent.
func parentError(l netlink.Link) error {
	a := l.Attrs()
	const instead = "use a physical interface, a bond or a VLAN interface as parent, or leave parent out for an isolated network"
	switch {
	case l.Type() == "vlan" && a.Alias == VLANAlias:
	case strings.HasPrefix(a.Alias, IsolatedAliasPrefix):
		return fmt.Errorf("parent %q is the parent of isolated weft network %s, which reaches nothing else; %s",
			a.Name, dataplane.ShortID(strings.TrimPrefix(a.Alias, IsolatedAliasPrefix)), instead)
	case l.Type() == "bridge" && strings.HasPrefix(a.Alias, dataplane.OwnerAliasPrefix):
		return fmt.Errorf("parent %q is the bridge of weft network %s; a macvlan network cannot hang off another weft network: %s",
			a.Name, dataplane.ShortID(strings.TrimPrefix(a.Alias, dataplane.OwnerAliasPrefix)), instead)
	case isVxlanAlias(a.Alias):
		id, _ := dataplane.VxlanAliasNetwork(a.Alias)
		return fmt.Errorf("parent %q is a %s interface weft made for vxlan network %s; %s",
			a.Name, l.Type(), dataplane.ShortID(id), instead)
	case strings.HasPrefix(a.Alias, dataplane.OwnerAliasPrefix):
		return fmt.Errorf("parent %q is a %s interface weft made for network %s; %s",
			a.Name, l.Type(), dataplane.ShortID(strings.TrimPrefix(a.Alias, dataplane.OwnerAliasPrefix)), instead)
	case l.Type() == "macvlan" && endpointName.MatchString(a.Name):
		return fmt.Errorf("parent %q is a container interface weft made; %s", a.Name, instead)
	}
	if a.EncapType != "ether" || a.Flags&net.FlagLoopback != 0 {
		kind := a.EncapType
		if kind == "" || kind == "none" {
			kind = l.Type()
		}
		return fmt.Errorf("parent %q is a %s interface, not an Ethernet one; macvlan needs an Ethernet interface, a bond or a VLAN interface as parent",
			a.Name, kind)
	}
	return nil
}

// mtuFor is the MTU of n's endpoints on parent: n.MTU, or the parent's; an
// MTU larger than the parent's is refused.
func mtuFor(n dataplane.Network, parent netlink.Link) (int, error) {
	pm := parent.Attrs().MTU
	if n.MTU == 0 {
		return pm, nil
	}
	if n.MTU > pm {
		return 0, mtuError(n.MTU, parent)
	}
	return n.MTU, nil
}

func mtuError(mtu int, parent netlink.Link) error {
	pm := parent.Attrs().MTU
	return fmt.Errorf("MTU %d is larger than the MTU %d of parent %q: a macvlan interface cannot exceed its parent's; use -o com.docker.network.driver.mtu=%d or less, or leave it out to use the parent's",
		mtu, pm, parent.Attrs().Name, pm)
}

// DeleteNetwork removes what CreateNetwork made for n: an isolated network's
// parent bridge (and with it any endpoint links on it), and a VLAN
// sub-interface weft created that no other known network uses. Links weft did
// not create are never deleted; missing ones are fine.
func (m *Mode) DeleteNetwork(ctx context.Context, n dataplane.Network) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if dataplane.CheckID(n.ID) != nil {
		return fmt.Errorf("invalid network ID %q", n.ID)
	}
	delete(m.known, n.ID)
	var err error
	if isolated(n) {
		err = m.deleteIsolated(n)
	} else {
		err = m.deleteVLANIfUnused(n.Macvlan.Parent)
	}
	if err != nil {
		return fmt.Errorf("deleting network %s: %w", dataplane.ShortID(n.ID), err)
	}
	m.log.Info("network deleted", "network", dataplane.ShortID(n.ID), "parent", parentName(n))
	return nil
}

func (m *Mode) deleteIsolated(n dataplane.Network) error {
	name := IsolatedParentName(n.ID)
	l, err := m.nl.LinkByName(name)
	switch {
	case errors.Is(err, nl.ErrLinkNotFound):
		return nil
	case err != nil:
		return err
	case l.Type() == "bridge" && (l.Attrs().Alias == isolatedAlias(n.ID) || adoptableIsolated(l, n)):
		return m.nl.DeleteLink(l)
	}
	m.log.Warn("not deleting a link weft did not create for this network", "network", dataplane.ShortID(n.ID), "link", name, "alias", l.Attrs().Alias)
	return nil
}

// deleteVLANIfUnused deletes the link called parent if it is a VLAN
// sub-interface weft created and no known network uses it.
func (m *Mode) deleteVLANIfUnused(parent string) error {
	if _, _, err := splitVLAN(parent); err != nil {
		return nil // not a name weft would create
	}
	for _, o := range m.known {
		if o.Macvlan.Parent == parent {
			return nil
		}
	}
	l, err := m.nl.LinkByName(parent)
	if errors.Is(err, nl.ErrLinkNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if l.Type() != "vlan" || l.Attrs().Alias != VLANAlias {
		return nil // the user's
	}
	m.log.Info("deleting VLAN sub-interface no weft network uses", "link", parent)
	return m.nl.DeleteLink(l)
}

// parentLink returns the existing parent of n for a new endpoint.
func (m *Mode) parentLink(n dataplane.Network) (netlink.Link, error) {
	name := parentName(n)
	l, err := m.nl.LinkByName(name)
	if errors.Is(err, nl.ErrLinkNotFound) {
		if isolated(n) {
			return nil, fmt.Errorf("the parent bridge %q of isolated network %s is missing; restart the weft plugin to re-create it", name, dataplane.ShortID(n.ID))
		}
		if _, _, verr := splitVLAN(name); verr == nil {
			return nil, fmt.Errorf("the VLAN sub-interface %q of network %s is missing; restart the weft plugin to re-create it", name, dataplane.ShortID(n.ID))
		}
		return nil, fmt.Errorf("the parent interface %q of network %s no longer exists on this host; re-create it, or re-create the network with another parent", name, dataplane.ShortID(n.ID))
	}
	if err != nil {
		return nil, err
	}
	if isolated(n) {
		if l.Type() != "bridge" || l.Attrs().Alias != isolatedAlias(n.ID) {
			return nil, fmt.Errorf("the interface %q is not the parent weft made for isolated network %s; restart the weft plugin to repair it", name, dataplane.ShortID(n.ID))
		}
		return l, nil
	}
	return l, parentError(l)
}

// CreateEndpoint creates ep's macvlan link on n's parent, in n's mode, with
// the MTU (n's, or the parent's) and ep.MAC, down, left in the host namespace
// for Docker to move into the container.
func (m *Mode) CreateEndpoint(ctx context.Context, n dataplane.Network, ep dataplane.Endpoint) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := Validate(n); err != nil {
		return err
	}
	if err := validateEndpoint(n, ep); err != nil {
		return err
	}
	parent, err := m.parentLink(n)
	if err != nil {
		return err
	}
	mtu, err := mtuFor(n, parent)
	if err != nil {
		return err
	}
	name := EndpointLinkName(ep.ID)
	if l, err := m.nl.LinkByName(name); err == nil && l.Type() == "macvlan" && l.Attrs().Alias == "" {
		// Made by weft for ep, which died before setting the alias.
		if err := m.nl.SetAlias(l, ownerAlias(n.ID)); err != nil {
			return err
		}
	}
	created, err := m.nl.EnsureMacvlan(nl.Macvlan{
		Name: name, ParentIndex: parent.Attrs().Index, Mode: kernelMode(modeOf(n)),
		MTU: mtu, MAC: ep.MAC, Alias: ownerAlias(n.ID),
	})
	if errors.Is(err, syscall.EINVAL) {
		return m.refusedByParent(n, parent, err)
	}
	if err != nil {
		return fmt.Errorf("endpoint %s: %w", dataplane.ShortID(ep.ID), err)
	}
	if created {
		m.log.Info("endpoint ready", "network", dataplane.ShortID(n.ID), "endpoint", dataplane.ShortID(ep.ID), "link", name, "parent", parent.Attrs().Name)
	}
	return nil
}

// refusedByParent explains the kernel's EINVAL for a new macvlan link on
// parent: with the MTU checked beforehand, it means passthru is in the way.
func (m *Mode) refusedByParent(n dataplane.Network, parent netlink.Link, err error) error {
	p := parent.Attrs().Name
	if modeOf(n) == ModePassthru {
		return fmt.Errorf("network %s is in passthru mode and its parent %q already carries a macvlan interface: a passthru network takes one container at a time; disconnect the other container first: %w",
			dataplane.ShortID(n.ID), p, err)
	}
	return fmt.Errorf("parent %q refused a new macvlan interface: it is given whole to another interface in passthru mode; choose another parent: %w", p, err)
}

// ownedEndpoint reports whether l is an endpoint link weft made: the weft name
// and a weft alias, or the weft name alone (a crash before the alias was set).
func ownedEndpoint(l netlink.Link) bool {
	a := l.Attrs()
	return l.Type() == "macvlan" && endpointName.MatchString(a.Name) &&
		(a.Alias == "" || strings.HasPrefix(a.Alias, dataplane.OwnerAliasPrefix))
}

// DeleteEndpoint deletes ep's macvlan link if it is in the host namespace (Docker
// moves it back before calling); if it is not (the container's namespace died
// with it), there is nothing to do.
func (m *Mode) DeleteEndpoint(ctx context.Context, n dataplane.Network, ep dataplane.Endpoint) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if dataplane.CheckID(ep.ID) != nil {
		return fmt.Errorf("invalid endpoint ID %q", ep.ID)
	}
	name := EndpointLinkName(ep.ID)
	l, err := m.nl.LinkByName(name)
	if errors.Is(err, nl.ErrLinkNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if !ownedEndpoint(l) {
		m.log.Warn("not deleting a link weft did not create", "endpoint", dataplane.ShortID(ep.ID), "link", name, "type", l.Type())
		return nil
	}
	if err := m.nl.DeleteLink(l); err != nil {
		return err
	}
	m.log.Info("endpoint deleted", "network", dataplane.ShortID(n.ID), "endpoint", dataplane.ShortID(ep.ID))
	return nil
}

// Join hands Docker the endpoint's link and the LAN's gateways: the router
// given with --gateway (nothing is configured on the host for it, and there
// is no NAT). An internal network has no gateway; an isolated one has none
// either, and also keeps Docker from adding docker_gwbridge, so its
// containers reach each other and nothing else.
func (m *Mode) Join(ctx context.Context, n dataplane.Network, ep dataplane.Endpoint) (dataplane.JoinInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := validateEndpoint(n, ep); err != nil {
		return dataplane.JoinInfo{}, err
	}
	name := EndpointLinkName(ep.ID)
	if _, err := m.nl.LinkByName(name); err != nil {
		if errors.Is(err, nl.ErrLinkNotFound) {
			return dataplane.JoinInfo{}, fmt.Errorf("the interface %q of endpoint %s is missing; disconnect the container from the network and connect it again", name, dataplane.ShortID(ep.ID))
		}
		return dataplane.JoinInfo{}, err
	}
	info := dataplane.JoinInfo{SrcName: name, DstPrefix: "eth"}
	switch {
	case isolated(n):
		info.DisableGatewayService = true
	case !n.Internal:
		info.Gateway = gatewayFor(n.IPv4, ep.IPv4)
		info.GatewayIPv6 = gatewayFor(n.IPv6, ep.IPv6)
	}
	return info, nil
}

// Leave has nothing to undo in macvlan mode.
func (m *Mode) Leave(ctx context.Context, n dataplane.Network, ep dataplane.Endpoint) error {
	return nil
}
