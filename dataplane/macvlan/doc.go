// Package macvlan is weft's macvlan mode: what Docker's built-in "macvlan"
// driver does, as a dataplane.Mode. Each container gets a macvlan interface on
// a parent link of this host, with a MAC address of its own, and so appears on
// the parent's LAN (or VLAN) as a host of its own, addressed from the LAN's
// subnet and routed by the LAN's router.
//
// # Options (docker network create -d weft -o mode=macvlan ...)
//
//   - parent=IFACE: an existing Ethernet interface (NIC, bond, VLAN
//     interface, or a bridge that is not weft's). parent=IFACE.VID (e.g.
//     eth0.100) names the 802.1Q sub-interface for VLAN VID (1 to 4094) on
//     IFACE: if it does not exist, weft creates it and deletes it again when
//     the last weft network that uses it is removed. An interface weft did not
//     create is never changed or deleted.
//   - No parent: an isolated network. Its containers reach each other and
//     nothing else: not the host, not the LAN, not the internet (Docker
//     adds no docker_gwbridge either).
//   - macvlan_mode=bridge (default): containers on the same parent talk to
//     each other directly. private: they cannot talk to each other at all.
//     vepa: their traffic to each other goes out to the switch, which must
//     send it back (802.1Qbg "hairpin"/reflective relay). passthru: the
//     parent is given whole to one container (the network takes one container
//     at a time; while it is attached, the parent carries the container's MAC
//     address, and gets its own back when the container goes).
//   - --gateway: the LAN's router, used as the containers' default route.
//     Nothing is configured on the host for it and there is no NAT: the LAN
//     sees the containers' own addresses. --internal: no default route.
//   - MTU (com.docker.network.driver.mtu): the parent's by default; larger than
//     the parent's is refused.
//
// Several macvlan networks may share a parent if their subnets do not overlap
// (a passthru network needs its parent to itself).
//
// # Containers cannot reach their own host through the parent
//
// This is how macvlan works in the Linux kernel, with Docker's driver as with
// weft's: frames between a macvlan interface and its own parent are not
// delivered. A container on a macvlan network reaches every machine on the LAN
// except the host it runs on, and that host cannot reach it through the
// parent's address either. Other machines are not affected.
//
// The workaround is a macvlan "shim" interface for the host on the same
// parent, in bridge mode, with an address of the LAN the network does not hand
// out (keep it out of --ip-range, or use --aux-address), and a route to the
// containers through it. For parent eth0, containers in 192.168.1.192/27 and a
// free LAN address 192.168.1.250:
//
//	ip link add weft-shim link eth0 type macvlan mode bridge
//	ip addr add 192.168.1.250/32 dev weft-shim
//	ip link set weft-shim up
//	ip route add 192.168.1.192/27 dev weft-shim
//
// The host then reaches the containers (and they reach the host) at
// 192.168.1.250. These commands do not survive a reboot; make them part of the
// host's network configuration. weft does not create the shim itself: it would
// be a host address on the LAN that the user did not ask for.
//
// # IPv6 on IPv4-only networks
//
// On a network without IPv6, IPv6 must be off on the container's interface, or
// the container joins the LAN's IPv6 (router advertisements, SLAAC, neighbour
// discovery) behind the user's back (CVE-2024-32473). A plugin cannot do this
// before handing the interface over: when a link moves to another network
// namespace the kernel drops its IPv6 settings (disable_ipv6,
// addr_gen_mode) and re-creates them from the destination's
// net.ipv6.conf.default, so nothing set on the host side survives the move
// (TestNetnsIPv6SettingsDoNotSurviveMove). dockerd does it in the container's
// namespace after the move, for every driver: releases before 26 disable IPv6
// on all of a new container's interfaces and enable it only on those given an
// IPv6 address; 26.0.2 and later disable it on each interface that has no IPv6
// address. Only 26.0.0 and 26.0.1 do neither: upgrade those.
//
// # Kernel objects and ownership
//
//   - Endpoint: macvlan link "wv" + 12 endpoint-ID characters on the parent,
//     alias "weft:<network id>", MTU and MAC set, down, left in the host
//     namespace for Docker to move.
//   - Isolated network: a bridge with no ports, "wm-" + 10 network-ID
//     characters, up, alias "weft-macvlan:<network id>" (not "weft:": the
//     bridge mode sweeps bridges with "weft:" aliases that are not its own).
//     Dummy links would do, but are absent on some kernels.
//   - VLAN sub-interface: the parent's name, up, alias "weft:vlan" (it may
//     serve several networks). The kernel ignores an alias given at creation,
//     so it is set right after; a weft that dies in between leaves a VLAN
//     interface without alias, which is then treated as the user's and kept.
//   - A parent that is a weft link of another kind (a bridge network's bridge,
//     another isolated network's parent, an endpoint) is refused, and so is a
//     parent that is not Ethernet.
//   - Reconcile deletes macvlan links named "wv<12>" with a "weft:" alias (or
//     none) that belong to no listed endpoint, "weft-macvlan:" bridges of no
//     listed isolated network, and "weft:vlan" links no listed network uses.
//
// The mode keeps the set of macvlan networks in memory (Reconcile sets it,
// CreateNetwork and DeleteNetwork keep it current) to check a new network
// against the others on its parent and to know when a VLAN sub-interface has
// no user left, without scanning the kernel on every request.
//
// The mode adds no firewall rules: traffic of a macvlan interface does not
// pass through the host's IP stack.
//
// Mode serialises its own calls (one mutex), so it is safe for concurrent use.
// It never switches namespaces: all netlink work goes through the nl.Handle it
// was given. It imports dataplane and dataplane/nl, never Docker types; the
// plugin package must not import it (it pulls in netlink): main.go wires it.
package macvlan
