// Package bridge is weft's bridge mode: what Docker's built-in "bridge" driver
// does, as a dataplane.Mode. A network is a Linux bridge on this host with the
// network's gateway address(es); an endpoint is a veth pair whose host end is a
// port of the bridge and whose other end Docker moves into the container.
//
// # Kernel objects and ownership
//
//   - Bridge: n.Bridge.Name (DefaultName(n.ID) = "weft-" + 10 ID characters
//     when the user chose none), MTU n.MTU (0 = 1500), a fixed MAC derived from
//     the network ID (so the gateway MAC never changes as ports come and go),
//     alias "weft:<network id>".
//   - Endpoint: veth "wh<12 ID chars>" (host end, on the bridge, up) and
//     "wc<12 ID chars>" (container end: MTU, MAC = ep.MAC, down, left in the
//     host namespace for Docker), both with alias "weft:<network id>".
//   - A link called n.Bridge.Name that weft did not create (no alias
//     "weft:<n.ID>") is never adopted, changed or deleted: CreateNetwork
//     refuses it, naming it. The one exception is a bridge without alias that
//     has n's default name, derived from n's ID: weft made it and died before
//     setting the alias (the kernel ignores an alias given at creation), so it
//     is adopted. Reconcile deletes only bridges with a "weft:" alias (or no
//     alias and a "weft-<10>" name) and veths named "wh<12>"/"wc<12>" (with a
//     "weft:" alias or none).
//
// # Firewall: two designs
//
// dockerd sets the FORWARD policy to DROP and br_netfilter sends bridged
// frames through FORWARD too, so everything weft allows it must ACCEPT
// explicitly. All weft rules live in WEFT-* chains.
//
// The set design (sets.go; the default, chosen in main when the kernel
// answers ipset requests) has a fixed rule set: networks differ only in
// their bridge's device group (tag 0x7765 in the upper 16 bits, bit 0 =
// enable_icc, bit 1 = --internal) and in ipset members (weft-net4/6:
// "<subnet>,<bridge>" of every network; weft-masq4/6: subnets to
// masquerade), both set through netlink. W is "any weft bridge" as a
// devgroup value/mask, W+ICC and W+INT the same with the bit set:
//
//	filter FORWARD        -j WEFT-FORWARD               (kept at position 1)
//	filter INPUT          -j WEFT-GUARD                 (IPv6 only)
//	filter WEFT-FORWARD   -j WEFT-GUARD                 (IPv6 only)
//	                      -m physdev --physdev-is-bridged --src-group W+ICC -j ACCEPT
//	                      -m physdev --physdev-is-bridged --src-group W -j DROP
//	                      src,src and src,dst in weft-netN --src-group W+ICC -j ACCEPT
//	                      src,src and src,dst in weft-netN --src-group W -j DROP
//	                      --src-group W --dst-group W -j DROP   (between weft networks)
//	                      -o docker0 --src-group W -j DROP      (one per Docker pattern)
//	                      -i docker0 --dst-group W -j DROP      (one per Docker pattern)
//	                      --src-group W+INT -j DROP             (no egress from --internal)
//	                      --src-group W -j ACCEPT               (egress)
//	                      --dst-group W, not INT, RELATED,ESTABLISHED -j ACCEPT
//	                      -j WEFT-PORTS                         (published ports, ports.go)
//	                      --dst-group W -j DROP                 (nothing else in)
//	filter WEFT-GUARD     -p ipv6-icmp --src-group W --icmpv6-type 134 -j DROP
//	nat PREROUTING        -m addrtype --dst-type LOCAL ! --src-group W -j WEFT-DNAT
//	nat OUTPUT            as in the rule design
//	nat WEFT-POSTROUTING  -m set --match-set weft-masqN src ! --dst-group W -j MASQUERADE
//	nat WEFT-DNAT         -i docker0 -j RETURN (one per pattern), then the DNATs
//
// The first two rules decide traffic inside one bridge (bridged frames
// only ever stay in their bridge); the two set rules decide routed traffic
// that comes from a network's subnet on its bridge and goes back out of the
// same bridge (in and out both that network's bridge). Device-group matches
// are restricted to hooks: --src-group in PREROUTING, INPUT and FORWARD,
// --dst-group in FORWARD, OUTPUT and POSTROUTING (the legacy back-end
// refuses other uses), which is why the DNAT skip is on the PREROUTING jump
// and masquerading tests the set rather than the source bridge.
//
// Check (check.go), run by the plugin every few seconds, compares all of it
// with what Mode made (one iptables-save per family, one dump per set, one
// of the links), and Repair puts back what is missing without removing
// anything (another weft instance on the host shares the fixed rules and
// the sets).
// Moving between designs is part of building the base: the set design
// removes the rule design's chains and PREROUTING jump, the rule design the
// set design's jump and fixed rules; tagged per-network rules are swept as
// those of no network.
//
// The rule design (no ipset in the kernel) keeps a few rules per network,
// each carrying the comment "weft:<12 ID chars>" (fw.Tag). Tables and
// chains (b = bridge):
//
//	filter FORWARD        1: -j WEFT-FORWARD           (kept at position 1)
//	filter INPUT          1: -j WEFT-GUARD             (IPv6 only)
//	filter WEFT-FORWARD   fixed, in this order:
//	                      -j WEFT-GUARD                (IPv6 only)
//	                      -j WEFT-ICC
//	                      -j WEFT-ISOLATION-1
//	                      -j WEFT-BRIDGE
//	                      -j WEFT-PORTS
//	                      -j WEFT-INGRESS
//	WEFT-GUARD            -i b -p ipv6-icmp --icmpv6-type 134 -j DROP
//	                      (router advertisements from containers)
//	WEFT-ICC              -i b -o b -j ACCEPT|DROP     (enable_icc)
//	WEFT-ISOLATION-1      -i b ! -o b -j WEFT-ISOLATION-2
//	                      -i docker0 -o b -j DROP      (one per Docker bridge pattern)
//	                      -i br-+ -o b -j DROP
//	WEFT-ISOLATION-2      -o b -j DROP
//	                      -o docker0 -j DROP           (static, one per pattern)
//	                      -o br-+ -j DROP
//	WEFT-BRIDGE           -i b -j ACCEPT               (egress; internal: -j DROP)
//	                      -o b -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
//	                                                   (replies; not for internal)
//	WEFT-PORTS            one ACCEPT per published port (ports.go): DNAT'd
//	                      connections to that host port only
//	WEFT-INGRESS          -o b -j DROP                 (anything else into b)
//	nat POSTROUTING       1: -j WEFT-POSTROUTING
//	nat PREROUTING        1: -m addrtype --dst-type LOCAL -j WEFT-DNAT
//	nat OUTPUT            1: ! -d 127.0.0.0/8 (::1) -m addrtype --dst-type LOCAL -j WEFT-DNAT
//	nat WEFT-POSTROUTING  -s <pool> ! -o b -j MASQUERADE
//	                      (enable_ip_masquerade and not internal; one per pool;
//	                      IPv6 pools not with gateway_mode_ipv6=routed)
//	nat WEFT-DNAT         -i b -j RETURN               (inserted at the top)
//	                      -i docker0 -j RETURN         (static, one per pattern)
//	                      one DNAT per published port (appended)
//
// Why this shape:
//
//   - Traffic inside one bridge is decided first and only by WEFT-ICC, so
//     nothing later (isolation, a user bridge name that matches "br-+") can
//     interfere with it, and nothing earlier can accept it.
//
//   - Isolation comes before any ACCEPT: "egress from b is accepted" must not
//     accept b → another weft bridge or b → docker0. Like Docker's
//     DOCKER-ISOLATION-STAGE-1/2, stage 1 picks packets leaving a weft bridge
//     and stage 2 drops them if they enter another weft bridge or a Docker
//     bridge. Packets from a Docker bridge into a weft bridge are dropped in
//     stage 1 directly (sending them to stage 2 would also drop Docker-to-Docker
//     traffic, which is Docker's business). Both directions are covered, and a
//     new network adds O(1) rules.
//
//   - Every category lives in its own chain, and every per-network rule matches
//     only its own bridge, so rules of different networks never depend on each
//     other's order: a network is added by appending its ~7 rules and removed
//     by deleting them; no chain is ever rewritten for a network change. Only
//     the fixed WEFT-FORWARD skeleton is order-sensitive; it is rebuilt only if
//     someone damaged it.
//
//   - --internal: WEFT-BRIDGE drops whatever leaves b for another interface,
//     WEFT-INGRESS drops whatever enters it from one, there is no MASQUERADE
//     rule and Join returns no gateway. Containers can still reach each other
//     (per enable_icc) and the bridge's own address, as with Docker.
//
//   - The base jumps are inserted at position 1 and moved back there by
//     Reconcile if dockerd inserted its own above them (delete, then insert:
//     deleting by position could hit someone else's rule).
//
//   - Published ports (ports.go) are DNAT'd only for traffic that does not
//     come from a bridge: WEFT-DNAT returns early for every weft and Docker
//     bridge, so containers — the publishing one included (hairpin) — reach
//     published ports through the userland proxy (proxy.go), which needs
//     neither hairpin mode on the bridge ports nor a masquerade rule per
//     port, and is not stopped by isolation. The RETURNs are inserted at the
//     top and the DNATs appended, so the order holds without rewriting.
//
// # IPv6
//
// Every network gets the filter rules in ip6tables too, not only networks
// with IPv6: a container of an IPv4-only network still has an IPv6
// link-local address, and br_netfilter passes bridged IPv6 through
// ip6tables FORWARD, whose policy dockerd 20.10 leaves at ACCEPT. Without
// them, enable_icc=false and isolation would not hold for IPv6. WEFT-GUARD
// drops router advertisements sent by containers (CVE-2020-13401): they reach
// neither the other containers (FORWARD) nor the host (INPUT), so no
// container can become anyone's router. Networks with IPv6 also get
// MASQUERADE for their IPv6 pools (unless gateway_mode_ipv6=routed) and are
// refused when the firewall has no IPv6 family. None of this depends on a
// sysctl: inside a managed plugin /proc/sys is read-only, and a container
// interface's sysctls are reset when dockerd moves it into the container.
//
// Duplicate address detection is not on the attach path: dockerd adds
// container addresses with IFA_F_NODAD, and nothing in weft waits for the
// gateway address. The bridge's IPv6 gateway itself is still tentative for
// about two seconds after the first container attaches (the bridge has no
// carrier before), during which containers' IPv6 traffic beyond their
// network is not answered; adding it with IFA_F_NODAD (dataplane/nl) would
// remove that window.
//
// When the last weft network is deleted (no per-network rule left in any weft
// chain), the WEFT-* chains and the base jumps are removed too, so a host that
// no longer has weft networks carries no weft rules. A chain that still holds
// a rule weft does not recognise is left, with everything it needs.
//
// Docker's own bridges are recognised by name: "docker0" and "br-+" (Docker's
// default names) and "docker_gwbridge"; see WithDockerBridges.
//
// Mode serialises its own calls (one mutex), so it is safe for concurrent use.
// It never switches namespaces: all netlink work goes through the nl.Handle it
// was given, all iptables work through the fw.Firewall.
package bridge
