package bridge

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/weftnet/weft/dataplane"
	"github.com/weftnet/weft/dataplane/fw"
)

// Port publishing. A published port (dataplane.PublishedPort: one host
// address and port, one container address and port) is, in the kernel:
//
//	nat    WEFT-DNAT   [-d HOSTIP] -p P -m P --dport HOSTPORT -j DNAT --to-destination CIP:CPORT
//	filter WEFT-PORTS  -d CIP -o b -p P -m P --dport CPORT -m conntrack --ctstate DNAT
//	                   [--ctorigdst HOSTIP] --ctorigdstport HOSTPORT -j ACCEPT
//
// both tagged with the network (fw.Tag), plus a userland proxy (proxy.go)
// listening on HOSTIP:HOSTPORT. Every rule names its host address and port,
// so no two published ports share a rule and Unpublish deletes exactly what
// Publish added; adding or removing a port touches its two rules only. The
// ACCEPT matches only DNAT'd connections to that host port: publishing a
// port does not open the container's port to hosts that can route to the
// container subnet directly.
//
// There are no rules (the proxy alone serves the port) when the host
// address is a loopback address (nothing beyond the host can reach it), when
// it is IPv6 and the container has IPv4 only (DNAT cannot change families),
// or when the host does not forward the family (net.ipv4.ip_forward or
// net.ipv6.conf.all.forwarding is 0; dockerd 20.10 turns on IPv6 forwarding
// only for its own IPv6 networks): DNAT'd packets would be dropped, whereas
// the proxy works without forwarding.

// portKey identifies a published port by its host socket.
type portKey struct {
	proto dataplane.Proto
	host  netip.AddrPort
}

func keyOf(p dataplane.PublishedPort) portKey {
	return portKey{p.Proto, netip.AddrPortFrom(p.HostIP, p.HostPort)}
}

// hostPort is a published port this process holds.
type hostPort struct {
	netID, epID string
	port        dataplane.PublishedPort
	proxy       proxy
}

// hostForwards reads the host's forwarding sysctl for family; if it cannot
// be read, forwarding is assumed on.
func hostForwards(family fw.Family) bool {
	path := "/proc/sys/net/ipv4/ip_forward"
	if family == fw.IPv6 {
		path = "/proc/sys/net/ipv6/conf/all/forwarding"
	}
	b, err := os.ReadFile(path)
	return err != nil || strings.TrimSpace(string(b)) != "0"
}

func familyOf(a netip.Addr) fw.Family {
	if a.Is4() {
		return fw.IPv4
	}
	return fw.IPv6
}

// single is a as a single-address prefix, as iptables prints it.
func single(a netip.Addr) string {
	return netip.PrefixFrom(a, a.BitLen()).String()
}

// dnats reports whether p gets DNAT rules (see the comment at the top).
func dnats(p dataplane.PublishedPort, forwarding bool) bool {
	return forwarding && !p.HostIP.IsLoopback() && p.HostIP.Is4() == p.ContainerIP.Is4()
}

// portRules are p's rules on n, in p's host family; forwarding is whether
// the host forwards that family.
func portRules(n dataplane.Network, p dataplane.PublishedPort, forwarding bool) []fw.Rule {
	if !dnats(p, forwarding) {
		return nil
	}
	proto := string(p.Proto)
	tag := fw.Comment(fw.Tag(n.ID))
	var dnat []string
	if !p.HostIP.IsUnspecified() {
		dnat = append(dnat, "-d", single(p.HostIP))
	}
	dnat = append(dnat, "-p", proto, "-m", proto, "--dport", strconv.Itoa(int(p.HostPort)))
	dnat = append(dnat, tag...)
	dnat = append(dnat, "-j", "DNAT", "--to-destination", netip.AddrPortFrom(p.ContainerIP, p.ContainerPort).String())

	accept := []string{"-d", single(p.ContainerIP), "-o", bridgeName(n), "-p", proto, "-m", proto,
		"--dport", strconv.Itoa(int(p.ContainerPort)), "-m", "conntrack", "--ctstate", "DNAT"}
	if !p.HostIP.IsUnspecified() {
		accept = append(accept, "--ctorigdst", p.HostIP.String())
	}
	accept = append(accept, "--ctorigdstport", strconv.Itoa(int(p.HostPort)))
	accept = append(accept, tag...)
	accept = append(accept, "-j", "ACCEPT")
	return []fw.Rule{
		{Table: fw.NAT, Chain: ChainDNAT, Spec: dnat},
		{Table: fw.Filter, Chain: ChainPorts, Spec: accept},
	}
}

// portChains are the chains that hold published ports' rules.
func portChains() []chainRef { return []chainRef{{fw.NAT, ChainDNAT}, {fw.Filter, ChainPorts}} }

// target is one host address a binding is published on, and the container
// address behind it.
type portTarget struct {
	host, container netip.Addr
	// optional: an implied IPv6 wildcard, skipped if this host has no IPv6.
	optional bool
}

// targets expands b's host address: the one given, else the network's
// host_binding_ipv4, else all IPv4 and (unless b.NoIPv6) all IPv6 addresses.
func targets(n dataplane.Network, ep dataplane.Endpoint, b dataplane.PortBinding) ([]portTarget, error) {
	var hosts []netip.Addr
	implied := false
	switch {
	case b.HostIP.IsValid():
		hosts = []netip.Addr{b.HostIP}
	case n.Bridge.HostBindingIPv4.IsValid():
		hosts = []netip.Addr{n.Bridge.HostBindingIPv4}
	default:
		hosts = []netip.Addr{netip.IPv4Unspecified()}
		if !b.NoIPv6 {
			hosts = append(hosts, netip.IPv6Unspecified())
			implied = true
		}
	}
	var out []portTarget
	for _, h := range hosts {
		c := ep.IPv4.Addr()
		if h.Is6() && ep.IPv6.IsValid() || !ep.IPv4.IsValid() {
			c = ep.IPv6.Addr()
		}
		if !c.IsValid() {
			return nil, fmt.Errorf("endpoint %s has no address to publish ports to", dataplane.ShortID(ep.ID))
		}
		out = append(out, portTarget{host: h, container: c, optional: implied && h.Is6()})
	}
	return out, nil
}

// validateBinding checks what Publish cannot work with.
func validateBinding(b dataplane.PortBinding) error {
	switch b.Proto {
	case dataplane.TCP, dataplane.UDP, dataplane.SCTP:
	default:
		return fmt.Errorf("cannot publish protocol %q: use tcp, udp or sctp", b.Proto)
	}
	if b.Port == 0 {
		return fmt.Errorf("binding %s has no container port", b)
	}
	if b.HostPortEnd != 0 && b.HostPortEnd < b.HostPort {
		return fmt.Errorf("binding %s: the host port range ends before it starts", b)
	}
	if b.HostIP.IsValid() && (b.HostIP.Is4In6() || b.HostIP.Zone() != "") {
		return fmt.Errorf("binding %s: host address %s is not supported; give a plain IPv4 or IPv6 address", b, b.HostIP)
	}
	return nil
}

// Publish implements dataplane.PortPublisher.
func (m *Mode) Publish(ctx context.Context, n dataplane.Network, ep dataplane.Endpoint, bindings []dataplane.PortBinding) (out []dataplane.PublishedPort, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := validateEndpoint(n, ep); err != nil {
		return nil, err
	}
	if n.Internal {
		return nil, fmt.Errorf("network %s is internal (--internal): nothing outside it can reach its containers, so it cannot publish ports", dataplane.ShortID(n.ID))
	}
	for _, b := range bindings {
		if err := validateBinding(b); err != nil {
			return nil, err
		}
	}
	var u undo
	defer func() {
		if err != nil {
			u.run(m.log)
		}
	}()
	taken := map[portKey]bool{} // published by this call: not reusable by another binding of it
	for _, b := range bindings {
		ps, err := m.publishLocked(n, ep, b, taken, &u)
		if err != nil {
			return nil, err
		}
		for _, p := range ps {
			taken[keyOf(p)] = true
		}
		out = append(out, ps...)
	}
	if len(out) > 0 {
		strs := make([]string, len(out))
		for i, p := range out {
			strs[i] = p.String()
		}
		m.log.Info("ports published", "network", dataplane.ShortID(n.ID), "endpoint", dataplane.ShortID(ep.ID), "ports", strings.Join(strs, " "))
	}
	return out, nil
}

// publishLocked publishes one binding: one host port, the same on every
// host address of the binding.
func (m *Mode) publishLocked(n dataplane.Network, ep dataplane.Endpoint, b dataplane.PortBinding, taken map[portKey]bool, u *undo) ([]dataplane.PublishedPort, error) {
	ts, err := targets(n, ep, b)
	if err != nil {
		return nil, err
	}
	if ps := m.alreadyPublished(ep.ID, b, ts, taken); ps != nil {
		return ps, nil
	}
	proxies, port, err := m.openPorts(b, ts)
	if err != nil {
		return nil, err
	}
	var out []dataplane.PublishedPort
	for i, t := range ts {
		px := proxies[i]
		if px == nil { // an implied IPv6 wildcard on a host without IPv6
			continue
		}
		p := dataplane.PublishedPort{Proto: b.Proto, HostIP: t.host, HostPort: port, ContainerIP: t.container, ContainerPort: b.Port}
		key := keyOf(p)
		m.ports[key] = &hostPort{netID: n.ID, epID: ep.ID, port: p, proxy: px}
		u.add(func() error {
			delete(m.ports, key)
			return px.Close()
		})
		out = append(out, p)
	}
	for _, p := range out {
		if err := m.ensurePortRules(n, p, u); err != nil {
			return nil, err
		}
	}
	for _, px := range proxies {
		if px != nil {
			px.start()
		}
	}
	return out, nil
}

// alreadyPublished returns what ep already publishes for b (a repeated
// request), or nil; ports in taken are not considered.
func (m *Mode) alreadyPublished(epID string, b dataplane.PortBinding, ts []portTarget, taken map[portKey]bool) []dataplane.PublishedPort {
	var out []dataplane.PublishedPort
	var port uint16
	for _, t := range ts {
		var found *hostPort
		for _, hp := range m.ports {
			p := hp.port
			if !taken[keyOf(p)] && hp.epID == epID && p.Proto == b.Proto && p.HostIP == t.host && p.ContainerIP == t.container &&
				p.ContainerPort == b.Port && inRange(p.HostPort, b) && (port == 0 || p.HostPort == port) {
				found = hp
				break
			}
		}
		if found == nil {
			if t.optional {
				continue
			}
			return nil
		}
		port = found.port.HostPort
		out = append(out, found.port)
	}
	return out
}

func inRange(port uint16, b dataplane.PortBinding) bool {
	if b.HostPort == 0 {
		return true
	}
	end := max(b.HostPortEnd, b.HostPort)
	return port >= b.HostPort && port <= end
}

// maxEphemeralAttempts bounds the retries when the kernel's free ephemeral
// port for the first host address is taken on another one.
const maxEphemeralAttempts = 10

// openPorts opens b's socket on every target, on one port: b's host port,
// the first free one of its range, or a free ephemeral one. proxies[i] is
// nil for an optional target this host cannot serve (no IPv6).
func (m *Mode) openPorts(b dataplane.PortBinding, ts []portTarget) ([]proxy, uint16, error) {
	var candidates []uint16
	if b.HostPort == 0 {
		candidates = make([]uint16, maxEphemeralAttempts)
	} else {
		for p := int(b.HostPort); p <= int(max(b.HostPortEnd, b.HostPort)); p++ {
			candidates = append(candidates, uint16(p))
		}
	}
	var busy error
	for _, port := range candidates {
		proxies, got, err := m.openAll(b, ts, port)
		if err == nil {
			return proxies, got, nil
		}
		if !errors.Is(err, dataplane.ErrPortInUse) {
			return nil, 0, err
		}
		busy = err
	}
	if len(candidates) > 1 && b.HostPort != 0 {
		return nil, 0, inUse(fmt.Sprintf("every host port from %d to %d (%s) is already in use on this host; choose another range", b.HostPort, b.HostPortEnd, b.Proto))
	}
	return nil, 0, busy
}

// portInUseError is a refusal because a host port is taken; it matches
// dataplane.ErrPortInUse. The message stands alone for the docker user.
type portInUseError struct{ msg string }

func inUse(msg string) error { return &portInUseError{msg} }

func (e *portInUseError) Error() string { return e.msg }

func (e *portInUseError) Is(target error) bool { return target == dataplane.ErrPortInUse }

// openAll opens the sockets of ts on port (0: the kernel picks one for the
// first target, the others follow). On error none stays open.
func (m *Mode) openAll(b dataplane.PortBinding, ts []portTarget, port uint16) ([]proxy, uint16, error) {
	proxies := make([]proxy, len(ts))
	closeAll := func() {
		for _, p := range proxies {
			if p != nil {
				_ = p.Close()
			}
		}
	}
	for i, t := range ts {
		host := netip.AddrPortFrom(t.host, port)
		if err := m.heldByWeft(b.Proto, host); err != nil {
			closeAll()
			return nil, 0, err
		}
		px, err := m.listen(b.Proto, host, netip.AddrPortFrom(t.container, b.Port))
		switch {
		case err == nil:
		case t.optional && noIPv6(err):
			m.log.Debug("not publishing on IPv6: this host has no IPv6", "port", host.String(), "err", err)
			continue
		case errors.Is(err, syscall.EADDRINUSE):
			closeAll()
			return nil, 0, inUse(fmt.Sprintf("host port %s/%s is already in use by another program on this host; choose another host port", host, b.Proto))
		case errors.Is(err, syscall.EADDRNOTAVAIL):
			closeAll()
			return nil, 0, fmt.Errorf("cannot publish on %s: it is not an address of this host", t.host)
		case errors.Is(err, errNoSCTP):
			closeAll()
			return nil, 0, err
		default:
			closeAll()
			return nil, 0, fmt.Errorf("publishing host port %s/%s: %w", host, b.Proto, err)
		}
		proxies[i] = px
		if port == 0 {
			port = px.boundPort()
		}
	}
	return proxies, port, nil
}

// noIPv6 reports whether err means the host cannot open IPv6 sockets.
func noIPv6(err error) bool {
	return errors.Is(err, syscall.EAFNOSUPPORT) || errors.Is(err, syscall.EADDRNOTAVAIL) || errors.Is(err, syscall.EPROTONOSUPPORT)
}

// heldByWeft explains a conflict with a port weft itself publishes (the
// kernel would refuse the bind too, with a less helpful message).
func (m *Mode) heldByWeft(proto dataplane.Proto, host netip.AddrPort) error {
	if host.Port() == 0 {
		return nil
	}
	for k, hp := range m.ports {
		if k.proto != proto || k.host.Port() != host.Port() || k.host.Addr().Is4() != host.Addr().Is4() {
			continue
		}
		if k.host.Addr() == host.Addr() || k.host.Addr().IsUnspecified() || host.Addr().IsUnspecified() {
			return inUse(fmt.Sprintf("host port %s/%s is already published for another container (endpoint %s on network %s); choose another host port",
				host, proto, dataplane.ShortID(hp.epID), dataplane.ShortID(hp.netID)))
		}
	}
	return nil
}

// ensurePortRules adds p's rules; undo removes the ones this call added.
func (m *Mode) ensurePortRules(n dataplane.Network, p dataplane.PublishedPort, u *undo) error {
	fam := familyOf(p.HostIP)
	for _, r := range portRules(n, p, m.forwarding(fam)) {
		added, err := m.fw.EnsureRule(fam, r)
		if err != nil {
			return fmt.Errorf("publishing %s: %w", p, err)
		}
		if added {
			u.add(func() error { return m.fw.DeleteRule(fam, r) })
		}
	}
	return nil
}

// deletePortRules removes every rule p can have (whatever the forwarding
// state was when it was published); missing rules are fine.
func (m *Mode) deletePortRules(n dataplane.Network, p dataplane.PublishedPort) error {
	fam := familyOf(p.HostIP)
	if !m.fw.Has(fam) {
		return nil
	}
	var errs []error
	for _, r := range portRules(n, p, true) {
		errs = append(errs, m.fw.DeleteRule(fam, r))
	}
	return errors.Join(errs...)
}

// Unpublish implements dataplane.PortPublisher.
func (m *Mode) Unpublish(ctx context.Context, n dataplane.Network, ep dataplane.Endpoint, ports []dataplane.PublishedPort) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var errs []error
	for _, p := range ports {
		errs = append(errs, m.unpublishLocked(n, ep.ID, p))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("unpublishing ports of endpoint %s: %w", dataplane.ShortID(ep.ID), err)
	}
	if len(ports) > 0 {
		m.log.Info("ports unpublished", "network", dataplane.ShortID(n.ID), "endpoint", dataplane.ShortID(ep.ID), "count", len(ports))
	}
	return nil
}

// unpublishLocked removes p's rules and, if this endpoint holds it, its proxy.
func (m *Mode) unpublishLocked(n dataplane.Network, epID string, p dataplane.PublishedPort) error {
	err := m.deletePortRules(n, p)
	key := keyOf(p)
	if hp, ok := m.ports[key]; ok && hp.epID == epID {
		delete(m.ports, key)
		err = errors.Join(err, hp.proxy.Close())
	}
	return err
}

// unpublishEndpointLocked removes every port ep publishes (DeleteEndpoint:
// Docker may not have revoked them, e.g. when it cleans up after a restart).
func (m *Mode) unpublishEndpointLocked(n dataplane.Network, epID string) error {
	var errs []error
	for _, hp := range m.ports {
		if hp.epID == epID {
			errs = append(errs, m.unpublishLocked(n, epID, hp.port))
		}
	}
	return errors.Join(errs...)
}

// ReconcilePorts implements dataplane.PortPublisher: it runs at start, after
// Reconcile, with every published port of every bridge network.
func (m *Mode) ReconcilePorts(ctx context.Context, published []dataplane.EndpointPorts) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	type wanted struct {
		n    dataplane.Network
		epID string
		p    dataplane.PublishedPort
	}
	var errs []error
	want := map[portKey]wanted{}
	wantRules := map[fw.Family]map[string]bool{fw.IPv4: {}, fw.IPv6: {}}
	for _, e := range published {
		for _, p := range e.Ports {
			if _, dup := want[keyOf(p)]; dup {
				errs = append(errs, fmt.Errorf("host port %s/%s is recorded for two endpoints; keeping the first", netip.AddrPortFrom(p.HostIP, p.HostPort), p.Proto))
				continue
			}
			want[keyOf(p)] = wanted{e.Network, e.Endpoint.ID, p}
			fam := familyOf(p.HostIP)
			for _, r := range portRules(e.Network, p, m.forwarding(fam)) {
				wantRules[fam][r.String()] = true
				if _, err := m.fw.EnsureRule(fam, r); err != nil {
					errs = append(errs, err)
				}
			}
		}
	}
	for key, hp := range m.ports {
		if w, ok := want[key]; !ok || w.epID != hp.epID || w.p != hp.port {
			delete(m.ports, key)
			errs = append(errs, hp.proxy.Close())
		}
	}
	reopened := 0
	for key, w := range want {
		if _, ok := m.ports[key]; ok {
			continue
		}
		px, err := m.listen(w.p.Proto, key.host, netip.AddrPortFrom(w.p.ContainerIP, w.p.ContainerPort))
		if err != nil {
			// Its rules stay: other hosts still reach the container.
			errs = append(errs, fmt.Errorf("re-opening published port %s (endpoint %s): %w", w.p, dataplane.ShortID(w.epID), err))
			continue
		}
		px.start()
		m.ports[key] = &hostPort{netID: w.n.ID, epID: w.epID, port: w.p, proxy: px}
		reopened++
	}
	for _, fam := range m.firewallFamilies() {
		errs = append(errs, m.sweepPortRules(fam, wantRules[fam]))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("reconciling published ports: %w", err)
	}
	m.log.Info("published ports reconciled", "ports", len(want), "reopened", reopened)
	return nil
}

// sweepPortRules deletes weft-tagged published-port rules of family that are
// not in want.
func (m *Mode) sweepPortRules(family fw.Family, want map[string]bool) error {
	var errs []error
	for _, c := range portChains() {
		rules, err := m.fw.Rules(family, c.table, c.name)
		if fw.IsNotExist(err) {
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, spec := range rules {
			if _, tagged := fw.TagOf(spec); !tagged || !isPortRule(c, spec) {
				continue
			}
			r := fw.Rule{Table: c.table, Chain: c.name, Spec: spec}
			if !want[r.String()] {
				m.log.Info("removing rule of a port no longer published", "family", family, "rule", r.String())
				errs = append(errs, m.fw.DeleteRule(family, r))
			}
		}
	}
	return errors.Join(errs...)
}

// publishedBy lists what m publishes for an endpoint, sorted (tests).
func (m *Mode) publishedBy(epID string) []dataplane.PublishedPort {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []dataplane.PublishedPort
	for _, hp := range m.ports {
		if hp.epID == epID {
			out = append(out, hp.port)
		}
	}
	slices.SortFunc(out, func(a, b dataplane.PublishedPort) int { return strings.Compare(a.String(), b.String()) })
	return out
}
