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

// sharedMode says whether a mode's networks share their subnets with other
// hosts: macvlan (a LAN's subnet) and vxlan (one network across hosts).
func sharedMode(m dataplane.ModeName) bool { return m == dataplane.Macvlan || m == dataplane.Vxlan }

// clusterReservations lists the gateway and aux addresses a shared network
// reserves in the cluster store: those of a macvlan or vxlan network whose
// weft pools are in the local space (and so shared, sharePoolsLocked), when
// a cluster store is configured. The request has already been validated.
func (d *Driver) clusterReservations(n dataplane.Network, req *network.CreateNetworkRequest) ([]reservedAddr, error) {
	if d.deps.Cluster == nil || !sharedMode(n.Mode) || weftAddressSpace(req) != ipam.LocalSpace {
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

// clusterJoin is what a new network holds in the cluster store.
type clusterJoin struct {
	keys     []string // gateway and aux reservations
	vxlanKey string   // the vxlan definition this host is in
}

// joinCluster reserves a new shared network's gateway and aux addresses in
// the cluster store and, for a vxlan network, agrees on its definition (n
// comes back with its VNI), after cancelling the pending removals this host
// still had from a network deleted before. d.mu is not held.
func (d *Driver) joinCluster(ctx context.Context, n dataplane.Network, addrs []reservedAddr) (dataplane.Network, clusterJoin, error) {
	var j clusterJoin
	vx := n.Mode == dataplane.Vxlan && d.deps.Cluster != nil
	if len(addrs) == 0 && !vx {
		return n, j, nil
	}
	d.clMu.Lock()
	defer d.clMu.Unlock()
	d.mu.Lock()
	old, exists := d.nets[n.ID]
	var ops []store.Op
	var cancelled []string
	cancel := func(key string) {
		if p, ok := d.cl.pending[key]; ok && (p.Unreserve || p.LeaveVxlan) {
			ops = append(ops, store.Delete(bucketClusterPending, key))
			cancelled = append(cancelled, key)
		}
	}
	for _, r := range addrs {
		cancel(r.key())
	}
	var vkey string
	if vx {
		var err error
		if vkey, err = vxlanKey(n); err != nil {
			d.mu.Unlock()
			return n, j, err
		}
		cancel(vkey)
	}
	if !exists && len(ops) > 0 {
		if err := d.save(ctx, ops...); err != nil {
			d.mu.Unlock()
			return n, j, err
		}
		for _, k := range cancelled {
			delete(d.cl.pending, k)
		}
	}
	d.mu.Unlock()
	if exists {
		// A repeat: CreateNetwork answers it, with the VNI it has.
		if vx && n.Vxlan.VNI == 0 {
			n.Vxlan.VNI = old.Network.Vxlan.VNI
		}
		return n, j, nil
	}
	if err := d.reserveInCluster(ctx, addrs); err != nil {
		return n, j, err
	}
	for _, r := range addrs {
		j.keys = append(j.keys, r.key())
	}
	if vx {
		var err error
		if n, j.vxlanKey, err = d.defineVxlan(ctx, n); err != nil {
			d.giveUpLocked(ctx, clusterJoin{keys: j.keys})
			return n, clusterJoin{}, err
		}
	}
	return n, j, nil
}

// giveUpLocked undoes joinCluster after a failed create; clMu is held.
func (d *Driver) giveUpLocked(ctx context.Context, j clusterJoin) {
	cl, err := d.deps.Cluster.get()
	if err == nil {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), clusterTimeout)
		defer cancel()
		for _, k := range j.keys {
			if uerr := d.unreserve(cctx, cl, k); uerr != nil {
				err = uerr
			}
		}
		if j.vxlanKey != "" {
			if lerr := d.leaveVxlan(cctx, cl, j.vxlanKey); lerr != nil {
				err = lerr
			}
		}
	}
	if err != nil {
		d.log.Error("undoing the cluster records of a network that could not be created failed", "keys", j.keys, "vxlan", j.vxlanKey, "err", err)
	}
}

// giveUp is giveUpLocked taking clMu.
func (d *Driver) giveUp(ctx context.Context, j clusterJoin) {
	d.clMu.Lock()
	defer d.clMu.Unlock()
	d.giveUpLocked(ctx, j)
}

// leaveOps records, in ops to be saved with the deletion of a network, the
// removal of this host from the network's cluster records (reservations,
// vxlan definition); the cluster worker does it once saved (leftLocked).
func leaveOps(r *networkRecord) ([]store.Op, error) {
	var ops []store.Op
	for k, p := range leavePending(r) {
		op, err := putJSON(bucketClusterPending, k, p)
		if err != nil {
			return nil, err
		}
		ops = append(ops, op)
	}
	return ops, nil
}

func leavePending(r *networkRecord) map[string]pendingCluster {
	out := map[string]pendingCluster{}
	for _, k := range r.ClusterKeys {
		out[k] = pendingCluster{Unreserve: true}
	}
	if r.VxlanKey != "" {
		out[r.VxlanKey] = pendingCluster{LeaveVxlan: true}
	}
	return out
}

// leftLocked follows saved leaveOps.
func (d *Driver) leftLocked(r *networkRecord) {
	p := leavePending(r)
	for k, v := range p {
		d.cl.pending[k] = v
	}
	if len(p) > 0 {
		d.kickCluster()
	}
}
