// Package vxlan is weft's vxlan mode, the kernel side of one L2 network
// spanning many hosts: per network a Linux bridge and a VXLAN link in the
// host namespace, per container a veth pair as in bridge mode, and per
// remote container (a peer, on another host) static neighbour and
// forwarding entries. Which peers a network has is decided elsewhere (the
// control plane, through SetPeers); this package only makes the kernel hold
// exactly what it is told, reads it back (KernelPeers), and repairs it.
//
// # Kernel objects and ownership
//
//   - Bridge "wxb-" + 10 network-ID characters, MTU as below, up, no
//     address.
//   - VXLAN link "wxv-" + 10 network-ID characters: VNI n.Vxlan.VNI, UDP
//     port n.Vxlan.Port (DefaultPort 4789 when 0), local = this host's VTEP
//     address (WithVTEP, else DefaultVTEP: the default route's source),
//     learning off, proxy on (the kernel answers ARP and neighbour
//     solicitations from its neighbour table, so none crosses the tunnel),
//     no L2/L3-miss notifications, no group and no all-zero forwarding
//     entry (nothing is flooded to other hosts), a port of the bridge with
//     learning off on that port, up.
//   - Endpoint: veth "wxh" + 12 endpoint-ID characters (host end, a port of
//     the bridge, up) and "wxc" + 12 (container end: MTU, MAC = ep.MAC,
//     down, left in the host namespace for Docker to move).
//   - Every link carries the alias "weft-vxlan:<network ID>" (AliasPrefix).
//     It is deliberately not "weft:<id>": the bridge mode deletes every
//     bridge aliased "weft:..." that is not one of its networks, and the
//     names are chosen to match none of the bridge and macvlan modes' sweep
//     patterns, so each mode's Reconcile removes only its own links.
//     Reconcile here deletes only links with this alias (or none, and one
//     of this mode's names: a crash before the alias was set).
//   - These are the names of the Local flavour, a local-scope weft's. A
//     global-scope weft on the same node uses the Swarm flavour's ("wsb-",
//     "wsv-", "wsh", "wsc", alias "weft-swarm:", its own ipsets and rule
//     comments; WithFlavour), so neither instance's Reconcile, Repair or
//     sweep touches the other's objects; a network may not use a UDP port
//     the other instance's networks use (see firewall.go).
//
// # MTU
//
// The underlay link is the one holding the VTEP address. The network's MTU
// (bridge, VXLAN link, veths) is the underlay's less 50 (less 70 when the
// VTEP is IPv6) unless com.docker.network.driver.mtu sets it; a larger value
// is refused, and so is an MTU below 1280 on a network with IPv6.
//
// # Peers
//
// SetPeers(network, peers) writes, for each peer:
//
//	ip neigh replace IPv4 lladdr MAC dev wxv-... nud permanent   (and IPv6)
//	bridge fdb replace MAC dev wxv-... dst VTEP self permanent
//	bridge fdb replace MAC dev wxv-... master static
//
// only where the kernel differs, and deletes the permanent entries of the
// VXLAN link (and the bridge's static entries for its port) that belong to
// no listed peer. The bridge entry keeps frames for a remote MAC from being
// flooded to every local container (learning is off on the VXLAN port, so
// a remote container cannot claim a local MAC either). Remote MACs should be
// derived from the IP (Docker's 02:42:<IPv4>): a container that moves to
// another host then only changes its forwarding entry.
//
// The desired set is remembered per network: CreateNetwork, Reconcile,
// Repair (Checker) and a SetPeers that finds the VXLAN link gone put it
// back. A network for which SetPeers has not been called since this Mode
// was made (a restart) keeps the entries it has until the first SetPeers.
// KernelPeers reads the entries back as peers, and Check compares them with
// the desired set with three dumps in all (IPv4 and IPv6 neighbours, FDB),
// whatever the number of networks.
//
// # Egress
//
// Join returns no gateway and no routes: Docker then also connects the
// container to docker_gwbridge, which gives it egress and published ports,
// as for Docker's own overlay networks; an --internal network gets neither
// (DisableGatewayService).
//
// # Firewall
//
// See firewall.go (WithFirewall): one FORWARD rule per family accepting
// frames bridged within vxlan bridges (without it, dockerd's FORWARD policy
// DROP and br_netfilter stop all container traffic), and the known-VTEP
// filter on the UDP port(s), an ipset of peer and known VTEPs and one DROP
// rule per port.
//
// # Checksum offload
//
// WithChecksumOffload: on keeps the VXLAN link's transmit checksum offload
// (the kernel's default), off turns it off (ethtool -K wxv-... tx off, the
// flannel/Calico workaround for kernels before 5.7 and for NICs such as
// vmxnet3 that miscompute checksums of encapsulated packets), auto (the
// default) is off on kernels before 5.7 and on otherwise. The outer UDP
// checksum is left at the kernel's default.
//
// Mode serialises its own calls (one mutex), so it is safe for concurrent
// use. All netlink work goes through the nl.Handle it was given; the one
// ioctl (checksum offload) is made in WithNamespace's namespace, else the
// calling thread's; iptables runs in the calling thread's namespace.
package vxlan
