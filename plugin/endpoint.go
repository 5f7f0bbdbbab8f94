package plugin

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/docker/go-plugins-helpers/network"

	"github.com/weftnet/weft/dataplane"
	"github.com/weftnet/weft/store"
)

// keyPortMap is the sandbox option carrying `docker run -p` bindings.
const keyPortMap = "com.docker.network.portmap"

// CreateEndpoint makes the endpoint's interface and records it. Docker has
// already assigned the addresses; weft returns a MAC only when Docker gave
// none, because echoing any field Docker set fails the request.
func (d *Driver) CreateEndpoint(ctx context.Context, req *network.CreateEndpointRequest) (*network.CreateEndpointResponse, error) {
	if err := d.wait(ctx); err != nil {
		return nil, err
	}
	ep, generated, err := parseEndpoint(req)
	if err != nil {
		return nil, err
	}
	ctx, cancel := detach(ctx)
	defer cancel()
	d.mu.Lock()
	defer d.mu.Unlock()
	nr, ok := d.nets[ep.NetworkID]
	if !ok {
		return nil, fmt.Errorf("network %s is not a weft network (%w); was it created before weft's state was reset?", dataplane.ShortID(ep.NetworkID), errNotFound)
	}
	n := nr.Network
	if err := checkEndpointAddrs(n, ep); err != nil {
		return nil, err
	}
	if generated && n.Mode == dataplane.Vxlan {
		ep.MAC = vxlanMAC(ep)
	}
	if old, ok := d.eps[ep.ID]; ok {
		delete(d.detached, ep.ID) // Docker is attaching it after all
		if old.Endpoint.NetworkID != ep.NetworkID || old.Endpoint.IPv4 != ep.IPv4 || old.Endpoint.IPv6 != ep.IPv6 {
			return nil, fmt.Errorf("endpoint %s already exists with different settings", dataplane.ShortID(ep.ID))
		}
		return endpointResponse(old), nil
	}
	// Kernel links carry the first 12 characters of the endpoint ID: a
	// second endpoint sharing them would take over the first one's veth.
	if id, ok := d.shortIDTakenLocked(ep.ID); ok {
		return nil, fmt.Errorf("endpoint ID %s starts with the same 12 characters as endpoint %s, and weft names links after them; start the container again to get a new endpoint ID", ep.ID, id)
	}
	mode, err := d.mode(n.Mode)
	if err != nil {
		return nil, err
	}
	rec := &endpointRecord{Endpoint: ep, MACGenerated: generated}
	op, err := putJSON(bucketEndpoints, ep.ID, rec)
	if err != nil {
		return nil, err
	}
	claims := d.claimEndpointLocked(nr, ep)
	if err := mode.CreateEndpoint(ctx, n, ep); err != nil {
		return nil, fmt.Errorf("creating endpoint %s on network %s: %w", dataplane.ShortID(ep.ID), dataplane.ShortID(n.ID), err)
	}
	crashPoint("CreateEndpoint/kernel")
	if err := d.save(ctx, append(claimOps(claims), op)...); err != nil {
		d.undo("endpoint", ep.ID, mode.DeleteEndpoint(ctx, n, ep))
		return nil, err
	}
	crashPoint("CreateEndpoint/saved")
	d.claimedLocked(claims)
	d.eps[ep.ID] = rec
	if d.epShort != nil {
		d.epShort[dataplane.ShortID(ep.ID)] = ep.ID
	}
	if n.Mode == dataplane.Vxlan {
		d.kickCluster() // publish it
	}
	d.log.Info("endpoint created", "network", dataplane.ShortID(n.ID), "endpoint", dataplane.ShortID(ep.ID), "ipv4", ep.IPv4, "ipv6", ep.IPv6)
	return endpointResponse(rec), nil
}

// shortIDTakenLocked returns the known endpoint whose ID starts with the
// same 12 characters as id (dataplane.ShortID), if there is one. It looks
// in d.epShort rather than at every endpoint, so that a CreateEndpoint does
// not cost more on a host with many endpoints. The index is built on first
// use (after Start has loaded every endpoint) and kept by CreateEndpoint and
// DeleteEndpoint; endpoints removed elsewhere (orphans, DeleteNetwork) leave
// stale entries, which a lookup checks against d.eps, falling back to a
// full scan, and which a rebuild clears once they outnumber the endpoints.
func (d *Driver) shortIDTakenLocked(id string) (string, bool) {
	if d.epShort == nil || len(d.epShort) > 2*len(d.eps)+64 {
		d.epShort = make(map[string]string, len(d.eps))
		for other := range d.eps {
			d.epShort[dataplane.ShortID(other)] = other
		}
	}
	short := dataplane.ShortID(id)
	other, ok := d.epShort[short]
	if !ok {
		return "", false
	}
	if _, live := d.eps[other]; live && other != id {
		return other, true
	}
	// Stale: the indexed endpoint is gone, but another one sharing the
	// prefix (only a store written before weft refused them can hold two)
	// may not be indexed.
	delete(d.epShort, short)
	for other := range d.eps {
		if other != id && dataplane.ShortID(other) == short {
			d.epShort[short] = other
			return other, true
		}
	}
	return "", false
}

// parseEndpoint reads the IDs, the addresses Docker assigned and the MAC,
// each in its canonical form.
func parseEndpoint(req *network.CreateEndpointRequest) (dataplane.Endpoint, bool, error) {
	ep := dataplane.Endpoint{ID: dataplane.CanonicalID(req.EndpointID), NetworkID: dataplane.CanonicalID(req.NetworkID)}
	if err := checkID("endpoint", ep.ID); err != nil {
		return ep, false, err
	}
	if err := checkID("network", ep.NetworkID); err != nil {
		return ep, false, err
	}
	var mac string
	if in := req.Interface; in != nil {
		var err error
		if ep.IPv4, err = parseEndpointPrefix(in.Address, false); err != nil {
			return ep, false, fmt.Errorf("%w: endpoint address %q: %w", ErrInvalidOption, in.Address, err)
		}
		if ep.IPv6, err = parseEndpointPrefix(in.AddressIPv6, true); err != nil {
			return ep, false, fmt.Errorf("%w: endpoint address %q: %w", ErrInvalidOption, in.AddressIPv6, err)
		}
		mac = in.MacAddress
	}
	if mac != "" {
		hw, err := net.ParseMAC(mac)
		if err != nil || len(hw) != 6 {
			return ep, false, fmt.Errorf("%w: MAC address %q is not a valid Ethernet address", ErrInvalidOption, mac)
		}
		if hw[0]&1 != 0 || [6]byte(hw) == [6]byte{} {
			return ep, false, fmt.Errorf("%w: MAC address %s is a multicast or all-zero address, which an interface cannot have; use a unicast MAC such as 02:42:ac:11:00:02", ErrInvalidOption, hw)
		}
		ep.MAC = hw
		return ep, false, nil
	}
	ep.MAC = endpointMAC(ep.ID)
	return ep, true, nil
}

// parseEndpointPrefix reads an interface address ("10.1.0.2/24") of one
// family; an empty string means none.
func parseEndpointPrefix(s string, v6 bool) (netip.Prefix, error) {
	if s == "" {
		return netip.Prefix{}, nil
	}
	p, err := netip.ParsePrefix(s)
	switch {
	case err != nil:
		return p, errors.New("not an IP address with prefix length")
	case p.Addr().Zone() != "" || p.Addr().Is4In6():
		return p, errors.New("a zoned or IPv4-mapped address cannot be an interface address")
	case p.Addr().Is6() != v6:
		if v6 {
			return p, errors.New("not an IPv6 address")
		}
		return p, errors.New("not an IPv4 address")
	}
	return p, nil
}

// checkEndpointAddrs refuses an endpoint address outside every subnet of its
// network's family: the kernel would route it nowhere, or somewhere else.
func checkEndpointAddrs(n dataplane.Network, ep dataplane.Endpoint) error {
	for _, c := range []struct {
		addr    netip.Prefix
		subnets []dataplane.Subnet
	}{{ep.IPv4, n.IPv4}, {ep.IPv6, n.IPv6}} {
		if !c.addr.IsValid() || len(c.subnets) == 0 {
			continue
		}
		if !slices.ContainsFunc(c.subnets, func(s dataplane.Subnet) bool { return s.Pool.Contains(c.addr.Addr()) }) {
			return fmt.Errorf("%w: endpoint address %s is in no subnet of network %s", ErrInvalidOption, c.addr, dataplane.ShortID(n.ID))
		}
	}
	return nil
}

// endpointMAC derives a stable, locally administered unicast MAC from the
// endpoint ID, so a repeated CreateEndpoint (or a restart) yields the same one.
func endpointMAC(endpointID string) net.HardwareAddr {
	sum := sha256.Sum256([]byte(endpointID))
	mac := net.HardwareAddr(sum[:6])
	mac[0] = mac[0]&0xfe | 0x02
	return mac
}

func endpointResponse(r *endpointRecord) *network.CreateEndpointResponse {
	if !r.MACGenerated {
		return &network.CreateEndpointResponse{}
	}
	return &network.CreateEndpointResponse{Interface: &network.EndpointInterface{MacAddress: r.Endpoint.MAC.String()}}
}

// EndpointInfo answers EndpointOperInfo. Docker cannot read port data from a
// remote driver here (protocol.md §2.7), so the answer is small and fast.
func (d *Driver) EndpointInfo(ctx context.Context, req *network.InfoRequest) (*network.InfoResponse, error) {
	if err := d.wait(ctx); err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	r, ok := d.eps[dataplane.CanonicalID(req.EndpointID)]
	if !ok {
		return &network.InfoResponse{Value: map[string]string{}}, nil
	}
	return &network.InfoResponse{Value: map[string]string{"mac": r.Endpoint.MAC.String()}}, nil
}

// DeleteEndpoint removes the endpoint's interface and record; unknown is fine.
func (d *Driver) DeleteEndpoint(ctx context.Context, req *network.DeleteEndpointRequest) error {
	if err := d.wait(ctx); err != nil {
		return err
	}
	ctx, cancel := detach(ctx)
	defer cancel()
	d.mu.Lock()
	defer d.mu.Unlock()
	id := dataplane.CanonicalID(req.EndpointID)
	r, ok := d.eps[id]
	if !ok {
		return nil
	}
	n := d.nets[r.Endpoint.NetworkID].Network
	mode, err := d.mode(n.Mode)
	if err != nil {
		return err
	}
	if err := mode.DeleteEndpoint(ctx, n, r.Endpoint); err != nil {
		return fmt.Errorf("deleting endpoint %s: %w", dataplane.ShortID(id), err)
	}
	crashPoint("DeleteEndpoint/kernel")
	if err := d.save(ctx, store.Delete(bucketEndpoints, id)); err != nil {
		return err
	}
	crashPoint("DeleteEndpoint/saved")
	delete(d.eps, id)
	delete(d.detached, id)
	if d.epShort[dataplane.ShortID(id)] == id {
		delete(d.epShort, dataplane.ShortID(id))
	}
	if n.Mode == dataplane.Vxlan {
		d.kickCluster() // withdraw it
	}
	d.log.Info("endpoint deleted", "network", dataplane.ShortID(n.ID), "endpoint", dataplane.ShortID(id))
	return nil
}

// lookupLocked returns an endpoint and its network.
func (d *Driver) lookupLocked(networkID, endpointID string) (dataplane.Network, dataplane.Endpoint, dataplane.Mode, error) {
	networkID, endpointID = dataplane.CanonicalID(networkID), dataplane.CanonicalID(endpointID)
	r, ok := d.eps[endpointID]
	if !ok || r.Endpoint.NetworkID != networkID {
		return dataplane.Network{}, dataplane.Endpoint{}, nil, fmt.Errorf("endpoint %s of network %s: %w", dataplane.ShortID(endpointID), dataplane.ShortID(networkID), errNotFound)
	}
	n := d.nets[networkID].Network
	mode, err := d.mode(n.Mode)
	return n, r.Endpoint, mode, err
}

// Join tells Docker which link to move into the container and how to route.
func (d *Driver) Join(ctx context.Context, req *network.JoinRequest) (*network.JoinResponse, error) {
	if err := d.wait(ctx); err != nil {
		return nil, err
	}
	ctx, cancel := detach(ctx)
	defer cancel()
	d.mu.Lock()
	defer d.mu.Unlock()
	n, ep, mode, err := d.lookupLocked(req.NetworkID, req.EndpointID)
	if err != nil {
		return nil, err
	}
	delete(d.detached, ep.ID) // an attach that weft's restart interrupted goes on
	info, err := mode.Join(ctx, n, ep)
	if err != nil {
		return nil, fmt.Errorf("joining endpoint %s: %w", dataplane.ShortID(ep.ID), err)
	}
	crashPoint("Join/kernel")
	resp := &network.JoinResponse{
		InterfaceName:         network.InterfaceName{SrcName: info.SrcName, DstPrefix: info.DstPrefix},
		DisableGatewayService: info.DisableGatewayService,
	}
	if info.Gateway.IsValid() {
		resp.Gateway = info.Gateway.String()
	}
	if info.GatewayIPv6.IsValid() {
		resp.GatewayIPv6 = info.GatewayIPv6.String()
	}
	for _, r := range info.Routes {
		sr := &network.StaticRoute{Destination: r.Destination.String(), RouteType: int(r.Type)}
		if r.NextHop.IsValid() {
			sr.NextHop = r.NextHop.String()
		}
		resp.StaticRoutes = append(resp.StaticRoutes, sr)
	}
	return resp, nil
}

// Leave undoes Join-time work; an unknown endpoint has nothing to undo.
func (d *Driver) Leave(ctx context.Context, req *network.LeaveRequest) error {
	if err := d.wait(ctx); err != nil {
		return err
	}
	ctx, cancel := detach(ctx)
	defer cancel()
	d.mu.Lock()
	defer d.mu.Unlock()
	n, ep, mode, err := d.lookupLocked(req.NetworkID, req.EndpointID)
	if err != nil {
		return nil //nolint:nilerr // Leave of an unknown endpoint succeeds (idempotent)
	}
	if err := mode.Leave(ctx, n, ep); err != nil {
		return err
	}
	crashPoint("Leave/kernel")
	return nil
}

// ProgramExternalConnectivity publishes the container's ports (`docker run
// -p`); Docker sends it to the endpoint that is the container's gateway. See
// ports.go.
func (d *Driver) ProgramExternalConnectivity(ctx context.Context, req *network.ProgramExternalConnectivityRequest) error {
	if err := d.wait(ctx); err != nil {
		return err
	}
	bindings, err := parsePortBindings(req.Options)
	if err != nil {
		return err
	}
	ctx, cancel := detach(ctx)
	defer cancel()
	d.mu.Lock()
	defer d.mu.Unlock()
	netID, epID := dataplane.CanonicalID(req.NetworkID), dataplane.CanonicalID(req.EndpointID)
	if err := checkID("endpoint", epID); err != nil {
		return err
	}
	return d.programPortsLocked(ctx, netID, epID, bindings)
}

// RevokeExternalConnectivity removes exactly what ProgramExternalConnectivity
// published; an endpoint without published ports has nothing to revoke.
func (d *Driver) RevokeExternalConnectivity(ctx context.Context, req *network.RevokeExternalConnectivityRequest) error {
	if err := d.wait(ctx); err != nil {
		return err
	}
	ctx, cancel := detach(ctx)
	defer cancel()
	d.mu.Lock()
	defer d.mu.Unlock()
	id := dataplane.CanonicalID(req.EndpointID)
	if _, ok := d.eps[id]; !ok && dataplane.CheckID(id) != nil {
		return nil // not an ID: it cannot have published ports
	}
	rec, err := d.getPortsLocked(ctx, id)
	if err != nil || rec == nil {
		return err
	}
	return d.revokePortsLocked(ctx, rec)
}
