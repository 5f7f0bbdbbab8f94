// Package dataplane defines what the plugin asks of the kernel, independent of
// Docker's wire types: a Mode turns validated Network and Endpoint values into
// links, addresses and firewall rules.
//
// The plugin package owns option parsing, IPAM and persistence; a Mode only
// receives fully validated values and must be idempotent: creating something
// that already exists with the same content succeeds, deleting something that
// is missing succeeds. This package never imports Docker types, and the plugin
// package never imports netlink or iptables.
package dataplane

import (
	"context"
	"fmt"
	"net"
	"net/netip"
)

// ModeName selects the kernel data plane of a network ("-o mode=...").
type ModeName string

// The modes weft knows. A mode with no implementation wired in main.go is
// refused at network creation with an error that says so.
const (
	Bridge  ModeName = "bridge"
	Macvlan ModeName = "macvlan"
	Vxlan   ModeName = "vxlan"
)

// Subnet is one IPAM pool of a network as Docker handed it to CreateNetwork.
type Subnet struct {
	// Pool is the network's subnet, e.g. 10.208.3.0/24.
	Pool netip.Prefix `json:"pool"`
	// Gateway is the gateway address; the zero Addr means none.
	Gateway netip.Addr `json:"gateway,omitempty"`
}

// BridgeOptions are the bridge-mode settings, under Docker's option names.
type BridgeOptions struct {
	// Name is the bridge link name (com.docker.network.bridge.name); never empty
	// once validated: derived from the network ID when the user gave none.
	Name string `json:"name"`
	// EnableICC allows container-to-container traffic on the bridge
	// (com.docker.network.bridge.enable_icc, default true).
	EnableICC bool `json:"enable_icc"`
	// Masquerade NATs egress to the host's address
	// (com.docker.network.bridge.enable_ip_masquerade, default true).
	Masquerade bool `json:"masquerade"`
	// HostBindingIPv4 is the default address for published ports
	// (com.docker.network.bridge.host_binding_ipv4); zero = all addresses.
	HostBindingIPv4 netip.Addr `json:"host_binding_ipv4,omitempty"`
	// GatewayModeIPv6 is how IPv6 egress leaves the network
	// (com.docker.network.bridge.gateway_mode_ipv6): GatewayModeNAT (also
	// "", the default) masquerades it when Masquerade is on;
	// GatewayModeRouted routes it unchanged.
	GatewayModeIPv6 string `json:"gateway_mode_ipv6,omitempty"`
}

// Gateway modes, under Docker's names.
const (
	GatewayModeNAT    = "nat"
	GatewayModeRouted = "routed"
)

// MacvlanOptions are the macvlan-mode settings, under Docker's option names.
type MacvlanOptions struct {
	Parent string `json:"parent,omitempty"`
	Mode   string `json:"macvlan_mode,omitempty"`
}

// VxlanOptions are the vxlan-mode settings.
type VxlanOptions struct {
	VNI  uint32 `json:"vni,omitempty"`
	Port uint16 `json:"port,omitempty"`
}

// Network is a validated network, ready for a Mode.
type Network struct {
	ID   string   `json:"id"`
	Mode ModeName `json:"mode"`
	// MTU of the network's links (com.docker.network.driver.mtu); 0 = the mode's default.
	MTU        int      `json:"mtu,omitempty"`
	IPv4       []Subnet `json:"ipv4,omitempty"`
	IPv6       []Subnet `json:"ipv6,omitempty"`
	EnableIPv6 bool     `json:"enable_ipv6,omitempty"`
	// Internal networks have no route off the network (--internal).
	Internal bool           `json:"internal,omitempty"`
	Bridge   BridgeOptions  `json:"bridge,omitzero"`
	Macvlan  MacvlanOptions `json:"macvlan,omitzero"`
	Vxlan    VxlanOptions   `json:"vxlan,omitzero"`
}

// Endpoint is one container's attachment to a network.
type Endpoint struct {
	ID        string `json:"id"`
	NetworkID string `json:"network_id"`
	// IPv4 and IPv6 carry the pool's prefix length; zero Prefix = none.
	IPv4 netip.Prefix `json:"ipv4,omitzero"`
	IPv6 netip.Prefix `json:"ipv6,omitzero"`
	// MAC of the container-side interface; always set (the plugin generates
	// one when Docker gave none).
	MAC net.HardwareAddr `json:"mac"`
}

// RouteType mirrors Docker's static route types.
type RouteType int

// Route types as Docker's Join response defines them.
const (
	RouteNextHop   RouteType = 0
	RouteConnected RouteType = 1
)

// Route is a static route to install in the container.
type Route struct {
	Destination netip.Prefix
	Type        RouteType
	NextHop     netip.Addr
}

// JoinInfo is what Docker needs to move and configure the container interface.
type JoinInfo struct {
	// SrcName is the host-namespace link Docker moves into the container.
	SrcName string
	// DstPrefix is the container-side name prefix ("eth").
	DstPrefix   string
	Gateway     netip.Addr
	GatewayIPv6 netip.Addr
	Routes      []Route
	// DisableGatewayService stops Docker from adding docker_gwbridge.
	DisableGatewayService bool
}

// Peer is one remote endpoint of a network that spans hosts (vxlan): a
// container on another host, reached through that host's VTEP.
type Peer struct {
	// VTEP is the underlay address of the peer's host.
	VTEP netip.Addr
	// MAC is the endpoint's MAC address.
	MAC net.HardwareAddr
	// IPv4 and IPv6 are the endpoint's addresses; the zero Addr = none.
	IPv4 netip.Addr
	IPv6 netip.Addr
}

func (p Peer) String() string {
	vtep := "no VTEP"
	if p.VTEP.IsValid() {
		vtep = p.VTEP.String()
	}
	s := fmt.Sprintf("%s via %s", p.MAC, vtep)
	if p.IPv4.IsValid() {
		s += " " + p.IPv4.String()
	}
	if p.IPv6.IsValid() {
		s += " " + p.IPv6.String()
	}
	return s
}

// PeerSetter is implemented by modes whose networks span hosts. The control
// plane (the plugin, following the cluster store) tells it each network's
// remote endpoints; the mode makes the kernel hold exactly those.
type PeerSetter interface {
	// VTEP is this host's underlay address, which other hosts reach its
	// containers through.
	VTEP() (netip.Addr, error)
	// SetPeers makes the kernel hold exactly peers for the network (which
	// must exist on this host). Peers on this host's own VTEP are refused.
	SetPeers(ctx context.Context, networkID string, peers []Peer) error
}

// Mode is one kernel data plane. Every method is idempotent and leaves nothing
// behind when it fails. Implementations must be safe for concurrent use: the
// plugin calls one mode for different networks at once (today it holds one
// lock across all requests, but that is the plugin's choice, not a promise
// a mode may rely on), and a mode's own background work (Checker, Drainer)
// runs beside requests.
type Mode interface {
	// CreateNetwork validates n against the kernel (name clashes, parents) and
	// makes its links and rules.
	CreateNetwork(ctx context.Context, n Network) error
	// DeleteNetwork removes what CreateNetwork made; missing objects are fine.
	DeleteNetwork(ctx context.Context, n Network) error
	// CreateEndpoint makes the endpoint's links, configured (MTU, MAC) and
	// ready to be moved into the container.
	CreateEndpoint(ctx context.Context, n Network, ep Endpoint) error
	// DeleteEndpoint removes the endpoint's links, wherever Docker left them.
	DeleteEndpoint(ctx context.Context, n Network, ep Endpoint) error
	// Join returns the interface name and routes for Docker's Join answer.
	Join(ctx context.Context, n Network, ep Endpoint) (JoinInfo, error)
	// Leave undoes Join-time work (none for most modes).
	Leave(ctx context.Context, n Network, ep Endpoint) error
	// Reconcile makes the kernel hold exactly the given networks and endpoints
	// of this mode: it re-creates missing networks and rules and removes
	// weft-owned objects of this mode that are not listed. It never touches an
	// object weft does not own.
	Reconcile(ctx context.Context, nets []Network, eps []Endpoint) error
}

// Checker is implemented by modes whose kernel objects others can remove
// behind weft's back (a firewall reload, an "iptables -F", an "ipset
// flush"). The plugin calls Check every few seconds and Repair when Check
// names something missing.
type Checker interface {
	// Check returns "" when everything the mode made is in place, or a
	// description of the first thing missing. It must be cheap: its cost
	// may not grow with the number of networks beyond in-memory work.
	Check(ctx context.Context) (string, error)
	// Repair puts back what the mode made and is missing. It removes
	// nothing: what is stale may belong to another weft instance on the
	// same host, and two instances removing each other's objects on every
	// repair would never settle (Reconcile, at start, removes what is
	// stale).
	Repair(ctx context.Context) error
}

// Drainer is implemented by modes that finish kernel work after answering
// (bridge mode deletes an endpoint's veth pair behind DeleteEndpoint's
// answer). weft calls Drain before it exits; tests call it before looking
// for leftovers.
type Drainer interface {
	// Drain waits until that work is done or ctx ends.
	Drain(ctx context.Context) error
}

// EndpointState is what the kernel shows of an endpoint's links.
type EndpointState int

const (
	// EndpointInUse: the container side is in a container (not in the host
	// namespace) and the host side, if the mode has one, is in place.
	EndpointInUse EndpointState = iota
	// EndpointGone: nothing is left; the container's namespace was destroyed
	// with the links in it.
	EndpointGone
	// EndpointDetached: the container side is in the host namespace. That is
	// so between CreateEndpoint and the moment Docker moves it into the
	// container (right after Join), and after Docker moved it back when the
	// container left (before DeleteEndpoint).
	EndpointDetached
)

// EndpointProber is implemented by modes that can tell where an endpoint's
// links are. At start the plugin uses it to find endpoints whose container
// went while weft could not hear about it (dockerd replays nothing): gone
// ones are forgotten at once, detached ones once Docker has had time to
// finish an attach that was under way.
type EndpointProber interface {
	EndpointState(ctx context.Context, n Network, ep Endpoint) (EndpointState, error)
}
