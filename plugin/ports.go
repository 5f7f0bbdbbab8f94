package plugin

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"reflect"

	"github.com/weftnet/weft/dataplane"
	"github.com/weftnet/weft/store"
)

// Port publishing (`docker run -p`). Because weft answers Join with a
// gateway, Docker leaves publishing to weft (protocol.md §2.11): it sends the
// bindings in ProgramExternalConnectivity and takes them back with
// RevokeExternalConnectivity. What a mode published is recorded per endpoint
// in bucketPorts, so a restarted weft publishes the same host ports again
// (reconcilePortsLocked) and a revoke removes exactly those.
//
// Docker cannot show these ports in `docker port` or `docker inspect`: it
// reads them from a remote driver's EndpointOperInfo as a map and its type
// assertion to port bindings fails (protocol.md §2.7).

// Keys of ProgramExternalConnectivity's options.
const (
	// keyNoProxy6to4 (engine ≥ 28) says another network of the container is
	// its IPv6 gateway and publishes the IPv6 side.
	keyNoProxy6to4 = "com.docker.network.driver.private.no_proxy_6to4"
)

// bucketPorts holds one portsRecord per endpoint with published ports.
const bucketPorts = "published-ports"

// portsRecord is what the store keeps per endpoint with published ports.
type portsRecord struct {
	NetworkID  string `json:"network_id"`
	EndpointID string `json:"endpoint_id"`
	// Requested is the validated request, to recognise a repeat.
	Requested []dataplane.PortBinding `json:"requested"`
	// Published is what the mode made: the host ports to restore after a
	// restart and to remove on revoke.
	Published []dataplane.PublishedPort `json:"published"`
}

// wirePortBinding is one entry of com.docker.network.portmap.
type wirePortBinding struct {
	Proto       int
	IP          string
	Port        int
	HostIP      string
	HostPort    int
	HostPortEnd int
}

// protoNames maps IANA protocol numbers, as Docker sends them, to names.
var protoNames = map[int]dataplane.Proto{6: dataplane.TCP, 17: dataplane.UDP, 132: dataplane.SCTP}

// parsePortBindings validates the port map of a ProgramExternalConnectivity
// request. Errors say which binding is wrong and why.
func parsePortBindings(opts map[string]any) ([]dataplane.PortBinding, error) {
	raw, ok := opts[keyPortMap]
	if !ok || raw == nil {
		return nil, nil
	}
	b, err := json.Marshal(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", keyPortMap, err)
	}
	var wire []wirePortBinding
	if err := json.Unmarshal(b, &wire); err != nil {
		return nil, fmt.Errorf("%s is not a list of port bindings: %w", keyPortMap, err)
	}
	noIPv6, _ := opts[keyNoProxy6to4].(bool)
	out := make([]dataplane.PortBinding, 0, len(wire))
	for _, w := range wire {
		pb, err := parsePortBinding(w)
		if err != nil {
			return nil, err
		}
		pb.NoIPv6 = noIPv6
		out = append(out, pb)
	}
	return out, nil
}

func parsePortBinding(w wirePortBinding) (dataplane.PortBinding, error) {
	var pb dataplane.PortBinding
	desc := fmt.Sprintf("port binding %s:%d-%d->%d (protocol %d)", w.HostIP, w.HostPort, w.HostPortEnd, w.Port, w.Proto)
	proto, ok := protoNames[w.Proto]
	if !ok {
		return pb, fmt.Errorf("%s: weft publishes tcp, udp and sctp ports only", desc)
	}
	validPort := func(p int) bool { return p >= 0 && p <= 65535 }
	if w.Port < 1 || w.Port > 65535 {
		return pb, fmt.Errorf("%s: container port %d is not between 1 and 65535", desc, w.Port)
	}
	if !validPort(w.HostPort) || !validPort(w.HostPortEnd) {
		return pb, fmt.Errorf("%s: host ports must be between 0 and 65535", desc)
	}
	end := w.HostPortEnd
	if end == 0 {
		end = w.HostPort
	}
	if w.HostPort == 0 && end != 0 || end < w.HostPort {
		return pb, fmt.Errorf("%s: the host port range %d-%d is not valid", desc, w.HostPort, w.HostPortEnd)
	}
	pb = dataplane.PortBinding{Proto: proto, Port: uint16(w.Port), HostPort: uint16(w.HostPort), HostPortEnd: uint16(end)}
	if w.HostIP != "" {
		a, err := netip.ParseAddr(w.HostIP)
		if err != nil || a.Zone() != "" {
			return pb, fmt.Errorf("%s: host address %q is not an IP address", desc, w.HostIP)
		}
		pb.HostIP = a.Unmap()
	}
	return pb, nil
}

// getPortsLocked reads an endpoint's ports record; nil if it has none.
func (d *Driver) getPortsLocked(ctx context.Context, endpointID string) (*portsRecord, error) {
	raw, ok, err := d.deps.Store.Get(ctx, bucketPorts, endpointID)
	if err != nil || !ok {
		return nil, err
	}
	var r portsRecord
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, fmt.Errorf("the published-ports record of endpoint %s is unreadable: %w", dataplane.ShortID(endpointID), err)
	}
	return &r, nil
}

// publisher returns the mode of a network as a PortPublisher.
func (d *Driver) publisher(n dataplane.Network) (dataplane.PortPublisher, error) {
	mode, err := d.mode(n.Mode)
	if err != nil {
		return nil, err
	}
	pp, ok := mode.(dataplane.PortPublisher)
	if !ok {
		return nil, fmt.Errorf("weft's %s mode cannot publish ports (-p/--publish); use a bridge network, or publish through another network", n.Mode)
	}
	return pp, nil
}

// programPortsLocked publishes bindings for an endpoint: kernel first, then
// the record; undone if the record cannot be written. A repeat of the same
// request answers from the record; a different one replaces it.
func (d *Driver) programPortsLocked(ctx context.Context, networkID, endpointID string, bindings []dataplane.PortBinding) error {
	old, err := d.getPortsLocked(ctx, endpointID)
	if err != nil {
		return err
	}
	if len(bindings) == 0 && old == nil {
		return nil
	}
	if old != nil && reflect.DeepEqual(old.Requested, bindings) && old.NetworkID == networkID {
		return nil
	}
	n, ep, _, err := d.lookupLocked(networkID, endpointID)
	if err != nil {
		return err
	}
	pp, err := d.publisher(n)
	if err != nil {
		return err
	}
	if old != nil {
		// The gateway endpoint was programmed again with other bindings:
		// replace them.
		if err := d.revokePortsLocked(ctx, old); err != nil {
			return err
		}
	}
	if len(bindings) == 0 {
		return nil
	}
	pub, err := pp.Publish(ctx, n, ep, bindings)
	if err != nil {
		return fmt.Errorf("publishing ports of endpoint %s: %w", dataplane.ShortID(ep.ID), err)
	}
	rec := portsRecord{NetworkID: n.ID, EndpointID: ep.ID, Requested: bindings, Published: pub}
	op, err := putJSON(bucketPorts, ep.ID, rec)
	if err == nil {
		err = d.save(ctx, op)
	}
	if err != nil {
		d.undo("published ports", ep.ID, pp.Unpublish(ctx, n, ep, pub))
		return err
	}
	d.log.Info("ports published", "network", dataplane.ShortID(n.ID), "endpoint", dataplane.ShortID(ep.ID), "count", len(pub))
	return nil
}

// revokePortsLocked removes what rec published, then the record. If the
// record cannot be deleted, the ports are published again so that kernel and
// record agree.
func (d *Driver) revokePortsLocked(ctx context.Context, rec *portsRecord) error {
	nr, ok := d.nets[rec.NetworkID]
	if !ok {
		// The network is gone, and with it the rules.
		return d.save(ctx, store.Delete(bucketPorts, rec.EndpointID))
	}
	n := nr.Network
	ep := dataplane.Endpoint{ID: rec.EndpointID, NetworkID: n.ID}
	if r, ok := d.eps[rec.EndpointID]; ok {
		ep = r.Endpoint
	}
	pp, err := d.publisher(n)
	if err != nil {
		return err
	}
	if err := pp.Unpublish(ctx, n, ep, rec.Published); err != nil {
		return err
	}
	if err := d.save(ctx, store.Delete(bucketPorts, rec.EndpointID)); err != nil {
		if _, perr := pp.Publish(ctx, n, ep, exactBindings(rec.Published)); perr != nil {
			d.undo("published ports", ep.ID, perr)
		}
		return err
	}
	d.log.Info("ports unpublished", "network", dataplane.ShortID(n.ID), "endpoint", dataplane.ShortID(ep.ID), "count", len(rec.Published))
	return nil
}

// exactBindings turns published ports back into requests for exactly them.
func exactBindings(ps []dataplane.PublishedPort) []dataplane.PortBinding {
	out := make([]dataplane.PortBinding, len(ps))
	for i, p := range ps {
		out[i] = dataplane.PortBinding{Proto: p.Proto, Port: p.ContainerPort, HostIP: p.HostIP, HostPort: p.HostPort, HostPortEnd: p.HostPort}
	}
	return out
}

// reconcilePortsLocked runs at start, after the modes reconciled networks and
// endpoints: it forgets records of endpoints weft no longer knows and has
// every PortPublisher publish exactly the recorded ports again. Failures are
// logged, like the rest of reconciliation.
func (d *Driver) reconcilePortsLocked(ctx context.Context) {
	raw, err := d.deps.Store.List(ctx, bucketPorts)
	if err != nil {
		d.log.Error("reading published ports failed", "err", err)
		return
	}
	byMode := map[dataplane.ModeName][]dataplane.EndpointPorts{}
	var stale []store.Op
	for id, b := range raw {
		var r portsRecord
		if err := json.Unmarshal(b, &r); err != nil || r.EndpointID != id {
			d.log.Error("dropping unreadable published-ports record", "endpoint", dataplane.ShortID(id), "err", err)
			stale = append(stale, store.Delete(bucketPorts, id))
			continue
		}
		er, ok := d.eps[id]
		if !ok || er.Endpoint.NetworkID != r.NetworkID {
			stale = append(stale, store.Delete(bucketPorts, id))
			continue
		}
		n := d.nets[r.NetworkID].Network
		byMode[n.Mode] = append(byMode[n.Mode], dataplane.EndpointPorts{Network: n, Endpoint: er.Endpoint, Ports: r.Published})
	}
	if len(stale) > 0 {
		if err := d.deps.Store.Apply(ctx, stale...); err != nil {
			d.log.Error("dropping published ports of endpoints that no longer exist failed", "err", err)
		} else {
			d.log.Info("dropped published ports of endpoints that no longer exist", "count", len(stale))
		}
	}
	for name, mode := range d.deps.Modes {
		pp, ok := mode.(dataplane.PortPublisher)
		if !ok {
			continue
		}
		if err := pp.ReconcilePorts(ctx, byMode[name]); err != nil {
			d.log.Error("reconciling published ports failed", "mode", name, "err", err)
		}
	}
}
