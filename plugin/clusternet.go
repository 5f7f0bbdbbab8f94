package plugin

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sort"

	"github.com/docker/go-plugins-helpers/network"

	"github.com/weftnet/weft/dataplane"
	"github.com/weftnet/weft/ipam"
	"github.com/weftnet/weft/store"
)

// clusterReservations lists the gateway and aux addresses a shared network
// reserves in the cluster store: those of a macvlan network whose weft pools
// are in the local space (and so shared, sharePoolsLocked), when a cluster
// store is configured. The request has already been validated.
func (d *Driver) clusterReservations(n dataplane.Network, req *network.CreateNetworkRequest) ([]reservedAddr, error) {
	if d.deps.Cluster == nil || n.Mode != dataplane.Macvlan || weftAddressSpace(req) != ipam.LocalSpace {
		return nil, nil
	}
	var out []reservedAddr
	for _, data := range append(slices.Clone(req.IPv4Data), req.IPv6Data...) {
		if data == nil {
			continue
		}
		subnet, err := netip.ParsePrefix(data.Pool)
		if err != nil {
			return nil, fmt.Errorf("%w: subnet %q is not a CIDR subnet", ErrInvalidOption, data.Pool)
		}
		subnet = subnet.Masked()
		var raw []string
		if data.Gateway != "" {
			raw = append(raw, data.Gateway)
		}
		names := make([]string, 0, len(data.AuxAddresses))
		for name := range data.AuxAddresses {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			s, ok := data.AuxAddresses[name].(string)
			if !ok {
				return nil, fmt.Errorf("%w: --aux-address %s is not an address", ErrInvalidOption, name)
			}
			raw = append(raw, s)
		}
		for _, s := range raw {
			a, err := parseAddrOrPrefix(s)
			if err != nil || !subnet.Contains(a) {
				return nil, fmt.Errorf("%w: gateway or --aux-address %q is not an address of subnet %s", ErrInvalidOption, s, subnet)
			}
			r := reservedAddr{subnet: subnet, addr: a}
			if !slices.Contains(out, r) {
				out = append(out, r)
			}
		}
	}
	return out, nil
}

// reserveForNetwork reserves a new shared network's gateway and aux
// addresses in the cluster store, after cancelling the pending removal of
// any of them this host still had from a network deleted before. It returns
// the keys it reserved.
func (d *Driver) reserveForNetwork(ctx context.Context, id string, addrs []reservedAddr) ([]string, error) {
	if len(addrs) == 0 {
		return nil, nil
	}
	d.clMu.Lock()
	defer d.clMu.Unlock()
	d.mu.Lock()
	_, exists := d.nets[id]
	var ops []store.Op
	var cancelled []string
	for _, r := range addrs {
		if p, ok := d.cl.pending[r.key()]; ok && p.Unreserve {
			ops = append(ops, store.Delete(bucketClusterPending, r.key()))
			cancelled = append(cancelled, r.key())
		}
	}
	if !exists && len(ops) > 0 {
		if err := d.save(ctx, ops...); err != nil {
			d.mu.Unlock()
			return nil, err
		}
		for _, k := range cancelled {
			delete(d.cl.pending, k)
		}
	}
	d.mu.Unlock()
	if exists {
		return nil, nil // a repeat: CreateNetwork answers it
	}
	if err := d.reserveInCluster(ctx, addrs); err != nil {
		return nil, err
	}
	keys := make([]string, len(addrs))
	for i, r := range addrs {
		keys[i] = r.key()
	}
	return keys, nil
}

// unreserveLater records, in ops to be saved with the change that gives
// the reservations up, the removal of this host from them; the cluster
// worker does it once saved (unreservedLocked).
func unreserveOps(keys []string) ([]store.Op, error) {
	var ops []store.Op
	for _, k := range keys {
		op, err := putJSON(bucketClusterPending, k, pendingCluster{Unreserve: true})
		if err != nil {
			return nil, err
		}
		ops = append(ops, op)
	}
	return ops, nil
}

// unreservedLocked follows a saved unreserveOps.
func (d *Driver) unreservedLocked(keys []string) {
	for _, k := range keys {
		d.cl.pending[k] = pendingCluster{Unreserve: true}
	}
	if len(keys) > 0 {
		d.kickCluster()
	}
}
