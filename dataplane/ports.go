package dataplane

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
)

// Proto is the transport protocol of a published port.
type Proto string

// The protocols `docker run -p` publishes.
const (
	TCP  Proto = "tcp"
	UDP  Proto = "udp"
	SCTP Proto = "sctp"
)

// PortBinding is one `-p` request as Docker sent it, validated.
type PortBinding struct {
	Proto Proto `json:"proto"`
	// Port is the container port.
	Port uint16 `json:"port"`
	// HostIP is the host address to publish on; the zero Addr means the
	// network's default (com.docker.network.bridge.host_binding_ipv4), or all
	// host addresses, IPv4 and IPv6, when the network has none.
	HostIP netip.Addr `json:"host_ip,omitzero"`
	// HostPort..HostPortEnd is the range to take one free host port from
	// (the first free one, as Docker does); HostPort 0 asks for any free
	// ephemeral port. HostPortEnd is never below HostPort once validated.
	HostPort    uint16 `json:"host_port,omitempty"`
	HostPortEnd uint16 `json:"host_port_end,omitempty"`
	// NoIPv6 leaves out the IPv6 host addresses an unspecified HostIP would
	// include: another of the container's networks serves IPv6 (Docker's
	// com.docker.network.driver.private.no_proxy_6to4).
	NoIPv6 bool `json:"no_ipv6,omitempty"`
}

func (b PortBinding) String() string {
	host := "*"
	if b.HostIP.IsValid() {
		host = b.HostIP.String()
	}
	hp := fmt.Sprint(b.HostPort)
	if b.HostPortEnd > b.HostPort {
		hp = fmt.Sprintf("%d-%d", b.HostPort, b.HostPortEnd)
	}
	return fmt.Sprintf("%s:%s->%d/%s", host, hp, b.Port, b.Proto)
}

// PublishedPort is one published host port, as a PortPublisher made it: one
// host address (all addresses of a family are 0.0.0.0 or ::) and one port,
// forwarded to one container address and port. A binding for all addresses
// becomes one PublishedPort per family, on the same port.
type PublishedPort struct {
	Proto    Proto      `json:"proto"`
	HostIP   netip.Addr `json:"host_ip"`
	HostPort uint16     `json:"host_port"`
	// ContainerIP is the endpoint address traffic goes to: of HostIP's
	// family when the endpoint has one, else (IPv6 host address, IPv4-only
	// container) its IPv4 address, reached through the userland proxy only.
	ContainerIP   netip.Addr `json:"container_ip"`
	ContainerPort uint16     `json:"container_port"`
}

func (p PublishedPort) String() string {
	return fmt.Sprintf("%s->%s/%s",
		netip.AddrPortFrom(p.HostIP, p.HostPort), netip.AddrPortFrom(p.ContainerIP, p.ContainerPort), p.Proto)
}

// EndpointPorts are the published ports of one endpoint, for ReconcilePorts.
type EndpointPorts struct {
	Network  Network
	Endpoint Endpoint
	Ports    []PublishedPort
}

// ErrPortInUse is wrapped by Publish's error when a requested host port is
// taken (by another container or another program); the message says which.
var ErrPortInUse = errors.New("port is already in use")

// PortPublisher is implemented by modes that publish container ports on the
// host (`docker run -p`). The plugin finds it with a type assertion on the
// Mode; modes without it refuse port bindings. Calls are idempotent like the
// Mode's, and serialised by the plugin.
type PortPublisher interface {
	// Publish makes bindings reachable on the host and returns what it
	// published: one entry per host address and family, with the host port
	// it chose. Everything it made is removed again if it fails; a port held
	// by someone else fails with an error wrapping ErrPortInUse. Bindings
	// ep already has published are found and returned again.
	Publish(ctx context.Context, n Network, ep Endpoint, bindings []PortBinding) ([]PublishedPort, error)
	// Unpublish removes exactly what Publish returned for ep; ports that are
	// already gone are fine.
	Unpublish(ctx context.Context, n Network, ep Endpoint, ports []PublishedPort) error
	// ReconcilePorts makes the host publish exactly these ports (all of the
	// mode's published ports, after a restart): it re-opens what is missing
	// on the same host ports and removes published ports that are not listed.
	ReconcilePorts(ctx context.Context, published []EndpointPorts) error
}
