package bridge

import (
	"slices"

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
)

// DefaultDockerBridges returns the names (iptables interface patterns) of
// Docker's own bridges under Docker's default naming, which weft networks are
// isolated from in both directions: docker0, br-+ and docker_gwbridge.
func DefaultDockerBridges() []string { return []string{"docker0", "br-+", "docker_gwbridge"} }

// chainRef is a chain in a table.
type chainRef struct{ table, name string }

// perNetworkChains hold per-network (tagged) rules; Reconcile sweeps them.
var perNetworkChains = []chainRef{
	{fw.Filter, ChainICC},
	{fw.Filter, ChainIsolation1},
	{fw.Filter, ChainIsolation2},
	{fw.Filter, ChainBridge},
	{fw.Filter, ChainPorts},
	{fw.Filter, ChainIngress},
	{fw.NAT, ChainPostrouting},
}

// skeleton is WEFT-FORWARD, in order.
func skeleton() [][]string {
	return [][]string{
		{"-j", ChainICC},
		{"-j", ChainIsolation1},
		{"-j", ChainBridge},
		{"-j", ChainPorts},
		{"-j", ChainIngress},
	}
}

// baseJumps are the jumps from the kernel's chains into weft's, kept first.
func baseJumps() []fw.Rule {
	return []fw.Rule{
		{Table: fw.Filter, Chain: "FORWARD", Spec: []string{"-j", ChainForward}},
		{Table: fw.NAT, Chain: "POSTROUTING", Spec: []string{"-j", ChainPostrouting}},
	}
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
// long as the chains do: stage-2 drops into Docker's bridges.
func staticRules(dockerBridges []string) []fw.Rule {
	var rs []fw.Rule
	for _, d := range dockerBridges {
		rs = append(rs, fw.Rule{Table: fw.Filter, Chain: ChainIsolation2, Spec: []string{"-o", d, "-j", "DROP"}})
	}
	return rs
}

// isStatic reports whether spec in chain is one of the static rules.
func isStatic(c chainRef, spec []string, dockerBridges []string) bool {
	for _, r := range staticRules(dockerBridges) {
		if r.Table == c.table && r.Chain == c.name && slices.Equal(r.Spec, spec) {
			return true
		}
	}
	return false
}

// families are the address families n needs firewall rules in: IPv4 always
// (isolation must hold whatever the containers send), IPv6 when n has IPv6.
func families(n dataplane.Network) []fw.Family {
	if hasIPv6(n) {
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
	if n.Bridge.Masquerade && !n.Internal {
		subnets := n.IPv4
		if family == fw.IPv6 {
			subnets = n.IPv6
		}
		for _, s := range subnets {
			rs = append(rs, rule(fw.NAT, ChainPostrouting, []string{"-s", s.Pool.Masked().String(), "!", "-o", b}, jump("MASQUERADE")))
		}
	}
	return rs
}
