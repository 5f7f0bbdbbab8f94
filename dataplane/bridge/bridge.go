package bridge

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"

	"github.com/vishvananda/netlink"

	"github.com/weftnet/weft/dataplane"
	"github.com/weftnet/weft/dataplane/fw"
	"github.com/weftnet/weft/dataplane/nl"
)

// Mode is the bridge data plane. It is safe for concurrent use: calls are
// serialised by one mutex (they share the firewall chains).
type Mode struct {
	mu            sync.Mutex
	nl            *nl.Handle
	fw            *fw.Firewall
	log           *slog.Logger
	dockerBridges []string

	// ports are the published ports this process holds, by host socket.
	ports map[portKey]*hostPort
	// dial reaches containers for the userland proxy.
	dial dialFunc
	// listen opens a published port's host socket (listenPort; tests
	// replace it).
	listen func(proto dataplane.Proto, host, target netip.AddrPort) (proxy, error)
	// forwarding reports whether the host forwards family (a sysctl weft
	// reads but never writes); see portRules.
	forwarding func(fw.Family) bool
	// baseBuilt records the families whose chains, skeleton, static rules
	// and base jumps buildBase has put in place since they were last torn
	// down; ensureBase then only checks them (see there).
	baseBuilt map[fw.Family]bool
	// sets, when set, selects the set design (sets.go); nil keeps one set
	// of rules per network (rules.go).
	sets Sets
	// nets are the networks this Mode made or reconciled and has not
	// deleted since: what Check compares the kernel with.
	nets map[string]dataplane.Network
	// deleting maps the link names of veth pairs DeleteEndpoint answered
	// for but the kernel is still deleting (detach.go) to a channel closed
	// when that is done; background counts those deletions (Drain).
	deleting   map[string]chan struct{}
	background sync.WaitGroup
}

var (
	_ dataplane.Mode          = (*Mode)(nil)
	_ dataplane.PortPublisher = (*Mode)(nil)
	_ dataplane.Drainer       = (*Mode)(nil)
)

// Option configures New.
type Option func(*Mode)

// WithDockerBridges replaces DefaultDockerBridges(): the iptables interface names
// or patterns ("br-+") of Docker's own bridges, which weft networks are isolated
// from. Changing the list on a host with weft networks needs a restart
// (Reconcile) to take effect for existing networks.
func WithDockerBridges(names ...string) Option {
	return func(m *Mode) { m.dockerBridges = append([]string(nil), names...) }
}

// New returns the bridge mode acting through h (the host namespace's netlink
// handle) and f. log may be nil.
func New(h *nl.Handle, f *fw.Firewall, log *slog.Logger, opts ...Option) *Mode {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := &Mode{
		nl: h, fw: f, log: log.With("mode", string(dataplane.Bridge)), dockerBridges: DefaultDockerBridges(),
		ports: map[portKey]*hostPort{}, dial: (&net.Dialer{}).DialContext, forwarding: hostForwards,
		baseBuilt: map[fw.Family]bool{}, nets: map[string]dataplane.Network{},
		deleting: map[string]chan struct{}{},
	}
	m.listen = func(proto dataplane.Proto, host, target netip.AddrPort) (proxy, error) {
		return listenPort(proto, host, target, m.dial, m.log)
	}
	for _, o := range opts {
		o(m)
	}
	return m
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

// validateNetwork checks n before anything is changed.
func (m *Mode) validateNetwork(n dataplane.Network) error {
	if n.Mode != dataplane.Bridge {
		return fmt.Errorf("network %s has mode %q, not %q", dataplane.ShortID(n.ID), n.Mode, dataplane.Bridge)
	}
	if dataplane.CheckID(n.ID) != nil {
		return fmt.Errorf("invalid network ID %q", n.ID)
	}
	if err := dataplane.CheckLinkName(bridgeName(n)); err != nil {
		return fmt.Errorf("bridge name %q: %w", bridgeName(n), err)
	}
	if n.MTU != 0 && (n.MTU < 68 || n.MTU > 65535) {
		return fmt.Errorf("MTU %d: want a number between 68 and 65535", n.MTU)
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
	if hasIPv6(n) && !m.fw.Has(fw.IPv6) {
		return errors.New("IPv6 networks need ip6tables, which weft could not use on this host; install ip6tables or create the network without --ipv6")
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

// gateways are the addresses the bridge carries: each subnet's gateway with
// the subnet's prefix length.
func gateways(n dataplane.Network) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range append(append([]dataplane.Subnet(nil), n.IPv4...), n.IPv6...) {
		if s.Gateway.IsValid() {
			out = append(out, netip.PrefixFrom(s.Gateway, s.Pool.Bits()))
		}
	}
	return out
}

// ownershipError explains why an existing link called name cannot be n's
// bridge, or returns nil if it is n's bridge.
func ownershipError(l netlink.Link, n dataplane.Network) error {
	a := l.Attrs()
	switch {
	case a.Alias == ownerAlias(n.ID) && l.Type() == "bridge":
		return nil
	case strings.HasPrefix(a.Alias, dataplane.OwnerAliasPrefix):
		other := strings.TrimPrefix(a.Alias, dataplane.OwnerAliasPrefix)
		return fmt.Errorf("the name %q is already used by weft network %s; choose another name with -o com.docker.network.bridge.name=NAME",
			a.Name, dataplane.ShortID(other))
	default:
		return fmt.Errorf("a network interface named %q (%s) already exists on this host and was not created by weft; choose another name with -o com.docker.network.bridge.name=NAME",
			a.Name, l.Type())
	}
}

// adoptable reports whether l is a bridge with no alias and n's default name:
// weft made it for n (the name derives from n's ID) and was interrupted before
// it could set the alias.
func adoptable(l netlink.Link, n dataplane.Network) bool {
	a := l.Attrs()
	return l.Type() == "bridge" && a.Alias == "" && a.Name == DefaultName(n.ID)
}

// CreateNetwork creates n's bridge (address, MTU, up) and firewall rules. A
// link with the bridge's name that weft did not create for n is refused and
// left alone. On failure, everything this call made is removed.
func (m *Mode) CreateNetwork(ctx context.Context, n dataplane.Network) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.validateNetwork(n); err != nil {
		return err
	}
	if err := m.ensureNetwork(n, true); err != nil {
		return err
	}
	m.nets[n.ID] = n
	m.log.Info("network ready", "network", dataplane.ShortID(n.ID), "bridge", bridgeName(n))
	return nil
}

// ensureNetwork creates or repairs n; withBase also ensures the shared chains
// and jumps (Reconcile does that once for all networks).
func (m *Mode) ensureNetwork(n dataplane.Network, withBase bool) (err error) {
	name := bridgeName(n)
	if l, err := m.nl.LinkByName(name); err == nil {
		if adoptable(l, n) {
			// Made by weft for n, which died before setting the alias (the
			// kernel ignores an alias given at creation).
			m.log.Info("adopting bridge without owner alias", "network", dataplane.ShortID(n.ID), "bridge", name)
			if err := m.nl.SetAlias(l, ownerAlias(n.ID)); err != nil {
				return err
			}
		} else if err := ownershipError(l, n); err != nil {
			return err
		}
	} else if !errors.Is(err, nl.ErrLinkNotFound) {
		return err
	}

	var u undo
	defer func() {
		if err != nil {
			u.run(m.log)
		}
	}()
	if withBase {
		for _, fam := range m.families(n) {
			u.add(func() error { return m.teardownIfIdle(fam) })
			if err := m.ensureBase(fam); err != nil {
				return err
			}
		}
	}
	br, created, err := m.nl.EnsureBridge(name, mtuOf(n), ownerAlias(n.ID))
	if err != nil {
		return fmt.Errorf("bridge %q: %w", name, err)
	}
	if created {
		u.add(func() error { return m.nl.DeleteLinkByName(name) })
		m.log.Debug("created bridge", "network", dataplane.ShortID(n.ID), "bridge", name)
	}
	if g := bridgeGroup(n); br.Attrs().Group != g {
		if err := m.nl.SetGroup(br, g); err != nil {
			return err
		}
	}
	if mac := bridgeMAC(n.ID); !bytes.Equal(br.Attrs().HardwareAddr, mac) {
		if err := m.nl.SetHardwareAddr(br, mac); err != nil {
			return err
		}
	}
	for _, a := range gateways(n) {
		added, err := m.nl.EnsureAddr(br, a)
		if err != nil {
			return err
		}
		if added && !created {
			u.add(func() error { return m.nl.DeleteAddr(br, a) })
		}
	}
	return m.ensureRules(n, &u)
}

// DeleteNetwork removes n's bridge (if weft made it for n) and rules; missing
// objects are fine. The last network's deletion also removes weft's chains.
func (m *Mode) DeleteNetwork(ctx context.Context, n dataplane.Network) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if dataplane.CheckID(n.ID) != nil {
		return fmt.Errorf("invalid network ID %q", n.ID)
	}
	name := bridgeName(n)
	var errs []error
	l, err := m.nl.LinkByName(name)
	switch {
	case err == nil && ownershipError(l, n) == nil:
		errs = append(errs, m.nl.DeleteLink(l))
	case err == nil:
		m.log.Warn("not deleting a bridge weft did not create for this network", "network", dataplane.ShortID(n.ID), "link", name, "alias", l.Attrs().Alias)
	case !errors.Is(err, nl.ErrLinkNotFound):
		errs = append(errs, err)
	}
	delete(m.nets, n.ID)
	errs = append(errs, m.deleteRules(n))
	for _, fam := range m.families(n) {
		errs = append(errs, m.teardownIfIdle(fam))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("deleting network %s: %w", dataplane.ShortID(n.ID), err)
	}
	m.log.Info("network deleted", "network", dataplane.ShortID(n.ID), "bridge", name)
	return nil
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

// CreateEndpoint creates ep's veth pair: the host end on n's bridge and up, the
// container end with n's MTU and ep.MAC, down, left for Docker to move.
func (m *Mode) CreateEndpoint(ctx context.Context, n dataplane.Network, ep dataplane.Endpoint) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := validateEndpoint(n, ep); err != nil {
		return err
	}
	name := bridgeName(n)
	br, err := m.nl.LinkByName(name)
	if errors.Is(err, nl.ErrLinkNotFound) {
		return fmt.Errorf("the bridge %q of network %s is missing; restart the weft plugin to re-create it", name, dataplane.ShortID(n.ID))
	}
	if err != nil {
		return err
	}
	if err := ownershipError(br, n); err != nil {
		return err
	}
	host, cont := VethNames(ep.ID)
	if err := m.awaitDeletionLocked(ctx, host, cont); err != nil {
		return fmt.Errorf("endpoint %s: %w", dataplane.ShortID(ep.ID), err)
	}
	created, err := m.nl.EnsureVethPair(nl.VethPair{
		Name: host, PeerName: cont, MTU: mtuOf(n), PeerMAC: ep.MAC,
		MasterIndex: br.Attrs().Index, Alias: ownerAlias(n.ID),
	})
	if err != nil {
		return fmt.Errorf("endpoint %s: %w", dataplane.ShortID(ep.ID), err)
	}
	if created {
		m.log.Info("endpoint ready", "network", dataplane.ShortID(n.ID), "endpoint", dataplane.ShortID(ep.ID), "veth", host+"/"+cont)
	}
	return nil
}

// ownedVeth reports whether l is a veth weft made: the weft name and the weft
// alias, or the weft name alone (a crash before the alias was set).
func ownedVeth(l netlink.Link) bool {
	a := l.Attrs()
	return l.Type() == "veth" && vethName.MatchString(a.Name) &&
		(a.Alias == "" || strings.HasPrefix(a.Alias, dataplane.OwnerAliasPrefix))
}

// DeleteEndpoint takes ep's published ports down and has the kernel delete
// its veth pair after answering (detach.go): the pair is down and off every
// container by now, and deleting it is most of a detach's time. If neither
// end is in the host namespace (the container's namespace died with it),
// there is nothing to delete.
func (m *Mode) DeleteEndpoint(ctx context.Context, n dataplane.Network, ep dataplane.Endpoint) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if dataplane.CheckID(ep.ID) != nil {
		return fmt.Errorf("invalid endpoint ID %q", ep.ID)
	}
	if err := m.unpublishEndpointLocked(n, ep.ID); err != nil {
		return fmt.Errorf("endpoint %s: %w", dataplane.ShortID(ep.ID), err)
	}
	host, cont := VethNames(ep.ID)
	m.deleteVethLocked(n, ep, host, cont)
	return nil
}

// Join returns the container end for Docker to move and the gateways; an
// internal network has none (Docker then adds no default route and, because
// the network is internal, no docker_gwbridge either).
func (m *Mode) Join(ctx context.Context, n dataplane.Network, ep dataplane.Endpoint) (dataplane.JoinInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := validateEndpoint(n, ep); err != nil {
		return dataplane.JoinInfo{}, err
	}
	_, cont := VethNames(ep.ID)
	if _, err := m.nl.LinkByName(cont); err != nil {
		if errors.Is(err, nl.ErrLinkNotFound) {
			return dataplane.JoinInfo{}, fmt.Errorf("the interface %q of endpoint %s is missing; disconnect the container from the network and connect it again", cont, dataplane.ShortID(ep.ID))
		}
		return dataplane.JoinInfo{}, err
	}
	info := dataplane.JoinInfo{SrcName: cont, DstPrefix: "eth"}
	if !n.Internal {
		info.Gateway = gatewayFor(n.IPv4, ep.IPv4)
		info.GatewayIPv6 = gatewayFor(n.IPv6, ep.IPv6)
	}
	return info, nil
}

// gatewayFor returns the gateway of the subnet holding addr (the first subnet
// with a gateway if none holds it); none if the endpoint has no address.
func gatewayFor(subnets []dataplane.Subnet, addr netip.Prefix) netip.Addr {
	if !addr.IsValid() {
		return netip.Addr{}
	}
	var first netip.Addr
	for _, s := range subnets {
		if !s.Gateway.IsValid() {
			continue
		}
		if s.Pool.Contains(addr.Addr()) {
			return s.Gateway
		}
		if !first.IsValid() {
			first = s.Gateway
		}
	}
	return first
}

// Leave has nothing to undo in bridge mode.
func (m *Mode) Leave(ctx context.Context, n dataplane.Network, ep dataplane.Endpoint) error {
	return nil
}
