package bridge

import (
	"github.com/weftnet/weft/dataplane"
	"github.com/weftnet/weft/dataplane/fw"
)

// Chains. See the package documentation for the layout.
const (
	ChainForward     = "WEFT-FORWARD"
	ChainICC         = "WEFT-ICC"
	ChainIsolation1  = "WEFT-ISOLATION-1"
	ChainIsolation2  = "WEFT-ISOLATION-2"
	ChainBridge      = "WEFT-BRIDGE"
	ChainIngress     = "WEFT-INGRESS"
	ChainPostrouting = "WEFT-POSTROUTING"
	// ChainPorts is where port publishing puts its ACCEPT rules for DNAT'd
	// traffic into a bridge (tagged with fw.Tag like every per-network rule);
	// it is traversed after isolation and before WEFT-INGRESS drops the rest.
	ChainPorts = "WEFT-PORTS"
	// ChainDNAT (nat table) holds the DNAT rules of published ports, after
	// RETURNs for traffic that comes from a bridge (weft's or Docker's):
	// containers reach published ports through the userland proxy instead.
	ChainDNAT = "WEFT-DNAT"
	// ChainGuard (filter, IPv6 only) drops what no container may send to
	// anyone, the host included: router advertisements. It is jumped to from
	// INPUT and first thing in WEFT-FORWARD.
	ChainGuard = "WEFT-GUARD"
)

// DefaultDockerBridges returns the names (iptables interface patterns) of
// Docker's own bridges under Docker's default naming, which weft networks are
// isolated from in both directions: docker0, br-+ and docker_gwbridge.
func DefaultDockerBridges() []string { return []string{"docker0", "br-+", "docker_gwbridge"} }

// chainRef is a chain in a table.
type chainRef struct{ table, name string }

// perNetworkChains hold per-network (tagged) rules of family; Reconcile
// sweeps them.
func perNetworkChains(family fw.Family) []chainRef {
	cs := []chainRef{
		{fw.Filter, ChainICC},
		{fw.Filter, ChainIsolation1},
		{fw.Filter, ChainIsolation2},
		{fw.Filter, ChainBridge},
		{fw.Filter, ChainPorts},
		{fw.Filter, ChainIngress},
		{fw.NAT, ChainPostrouting},
		{fw.NAT, ChainDNAT},
	}
	if family == fw.IPv6 {
		cs = append(cs, chainRef{fw.Filter, ChainGuard})
	}
	return cs
}

// skeleton is WEFT-FORWARD of family, in order.
func skeleton(family fw.Family) [][]string {
	var s [][]string
	if family == fw.IPv6 {
		s = append(s, []string{"-j", ChainGuard})
	}
	return append(s,
		[]string{"-j", ChainICC},
		[]string{"-j", ChainIsolation1},
		[]string{"-j", ChainBridge},
		[]string{"-j", ChainPorts},
		[]string{"-j", ChainIngress},
	)
}

// loopback is family's loopback subnet.
func loopback(family fw.Family) string {
	if family == fw.IPv6 {
		return "::1/128"
	}
	return "127.0.0.0/8"
}

// baseJumps are the jumps from the kernel's chains into weft's, kept first.
// Published ports are DNAT'd for packets to a local address, arriving
// (PREROUTING) or sent by the host itself (OUTPUT) — except to loopback,
// which the kernel will not route to a bridge without route_localnet (a
// sysctl weft cannot set): the userland proxy answers there.
func baseJumps(family fw.Family) []fw.Rule {
	rs := []fw.Rule{
		{Table: fw.Filter, Chain: "FORWARD", Spec: []string{"-j", ChainForward}},
		{Table: fw.NAT, Chain: "POSTROUTING", Spec: []string{"-j", ChainPostrouting}},
		{Table: fw.NAT, Chain: "PREROUTING", Spec: []string{"-m", "addrtype", "--dst-type", "LOCAL", "-j", ChainDNAT}},
		{Table: fw.NAT, Chain: "OUTPUT", Spec: []string{"!", "-d", loopback(family), "-m", "addrtype", "--dst-type", "LOCAL", "-j", ChainDNAT}},
	}
	if family == fw.IPv6 {
		rs = append(rs, fw.Rule{Table: fw.Filter, Chain: "INPUT", Spec: []string{"-j", ChainGuard}})
	}
	return rs
}

// ChainDockerUser is Docker's chain for rules that must run before Docker's
// own: dockerd keeps its jump first in FORWARD and never flushes it.
const ChainDockerUser = "DOCKER-USER"

// dockerUserJump hooks weft's filter rules into DOCKER-USER. dockerd inserts
// its FORWARD rules above everyone else's whenever it creates a network or
// restarts (`-i br-X ! -o br-X -j ACCEPT` among them), which would accept
// traffic from a Docker bridge into a weft bridge before weft's isolation ran.
func dockerUserJump() fw.Rule {
	return fw.Rule{Table: fw.Filter, Chain: ChainDockerUser, Spec: []string{"-j", ChainForward}}
}

// staticRules are the untagged rules of per-network chains that exist for as
// long as the chains do: stage-2 drops into Docker's bridges, and no DNAT for
// traffic from Docker's bridges (as from weft's: see networkRules).
func staticRules(dockerBridges []string) []fw.Rule {
	var rs []fw.Rule
	for _, d := range dockerBridges {
		rs = append(rs, fw.Rule{Table: fw.Filter, Chain: ChainIsolation2, Spec: []string{"-o", d, "-j", "DROP"}})
	}
	for _, d := range dockerBridges {
		rs = append(rs, fw.Rule{Table: fw.NAT, Chain: ChainDNAT, Spec: []string{"-i", d, "-j", "RETURN"}})
	}
	return rs
}

// atTop reports whether r must be inserted above the rules already in its
// chain rather than appended: WEFT-DNAT's RETURNs precede every DNAT.
func atTop(r fw.Rule) bool {
	return r.Table == fw.NAT && r.Chain == ChainDNAT && target(r.Spec) == "RETURN"
}

// target is a spec's -j target ("" if none).
func target(spec []string) string {
	for i := len(spec) - 2; i >= 0; i-- {
		if spec[i] == "-j" {
			return spec[i+1]
		}
	}
	return ""
}

// isPortRule reports whether a rule in chain c belongs to a published port
// (managed by Publish/Unpublish/ReconcilePorts, not by the network).
func isPortRule(c chainRef, spec []string) bool {
	return c.name == ChainPorts || (c.name == ChainDNAT && target(spec) == "DNAT")
}

// families are the address families n needs firewall rules in: IPv4 always
// (isolation must hold whatever the containers send), and IPv6 whenever the
// firewall has it — on an IPv4-only network too, because bridged IPv6
// (link-local addresses need no configuration) passes ip6tables through
// br_netfilter: without the IPv6 rules, enable_icc=false and isolation would
// not hold for IPv6, and containers could send router advertisements.
// (validateNetwork refuses IPv6 networks without an IPv6 firewall.)
func (m *Mode) families(n dataplane.Network) []fw.Family {
	if hasIPv6(n) || m.fw.Has(fw.IPv6) {
		return []fw.Family{fw.IPv4, fw.IPv6}
	}
	return []fw.Family{fw.IPv4}
}

func hasIPv6(n dataplane.Network) bool { return n.EnableIPv6 || len(n.IPv6) > 0 }

// networkRules are n's rules in family, in the order they are added. Every
// rule carries n's tag and matches n's bridge, so the rules of different
// networks never depend on each other's position.
func networkRules(n dataplane.Network, family fw.Family, dockerBridges []string) []fw.Rule {
	b := bridgeName(n)
	tag := fw.Comment(fw.Tag(n.ID))
	rule := func(table, chain string, parts ...[]string) fw.Rule {
		var spec []string
		for _, p := range parts[:len(parts)-1] {
			spec = append(spec, p...)
		}
		spec = append(spec, tag...)
		spec = append(spec, parts[len(parts)-1]...)
		return fw.Rule{Table: table, Chain: chain, Spec: spec}
	}
	jump := func(target string) []string { return []string{"-j", target} }

	icc := "DROP"
	if n.Bridge.EnableICC {
		icc = "ACCEPT"
	}
	rs := []fw.Rule{
		rule(fw.Filter, ChainICC, []string{"-i", b, "-o", b}, jump(icc)),
		rule(fw.Filter, ChainIsolation1, []string{"-i", b, "!", "-o", b}, jump(ChainIsolation2)),
	}
	for _, d := range dockerBridges {
		rs = append(rs, rule(fw.Filter, ChainIsolation1, []string{"-i", d, "-o", b}, jump("DROP")))
	}
	rs = append(rs, rule(fw.Filter, ChainIsolation2, []string{"-o", b}, jump("DROP")))
	if n.Internal {
		rs = append(rs, rule(fw.Filter, ChainBridge, []string{"-i", b}, jump("DROP")))
	} else {
		rs = append(rs,
			rule(fw.Filter, ChainBridge, []string{"-i", b}, jump("ACCEPT")),
			rule(fw.Filter, ChainBridge, []string{"-o", b, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED"}, jump("ACCEPT")),
		)
	}
	rs = append(rs, rule(fw.Filter, ChainIngress, []string{"-o", b}, jump("DROP")))
	if masquerades(n, family) {
		subnets := n.IPv4
		if family == fw.IPv6 {
			subnets = n.IPv6
		}
		for _, s := range subnets {
			rs = append(rs, rule(fw.NAT, ChainPostrouting, []string{"-s", s.Pool.Masked().String(), "!", "-o", b}, jump("MASQUERADE")))
		}
	}
	// Containers reach published ports (their own included: hairpin)
	// through the userland proxy, not DNAT: DNAT'd back into b, a packet
	// would need hairpin mode on the bridge port and masquerading, and
	// DNAT'd into another bridge, isolation would drop it.
	rs = append(rs, rule(fw.NAT, ChainDNAT, []string{"-i", b}, jump("RETURN")))
	if family == fw.IPv6 {
		// CVE-2020-13401: a container's router advertisement must reach
		// neither the other containers nor the host.
		rs = append(rs, rule(fw.Filter, ChainGuard, []string{"-i", b, "-p", "ipv6-icmp", "-m", "icmp6", "--icmpv6-type", "134"}, jump("DROP")))
	}
	return rs
}

// masquerades reports whether n's egress in family is masqueraded:
// enable_ip_masquerade (default true), not internal, and for IPv6 not
// gateway_mode_ipv6=routed.
func masquerades(n dataplane.Network, family fw.Family) bool {
	if !n.Bridge.Masquerade || n.Internal {
		return false
	}
	return family == fw.IPv4 || n.Bridge.GatewayModeIPv6 != dataplane.GatewayModeRouted
}
