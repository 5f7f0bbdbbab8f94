package plugin

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"slices"

	"github.com/docker/go-plugins-helpers/network"

	"github.com/weftnet/weft/dataplane"
	"github.com/weftnet/weft/ipam"
	"github.com/weftnet/weft/store"
)

// CapabilitiesResponse is NetworkDriver.GetCapabilities' answer.
// go-plugins-helpers' type lacks GwAllocChecker (Docker 28, moby#49372).
type CapabilitiesResponse struct {
	Scope             string
	ConnectivityScope string
	// GwAllocChecker asks Docker ≥ 28 to call GwAllocCheck before it
	// reserves gateway addresses; older engines ignore the field.
	GwAllocChecker bool
}

// Capabilities answers NetworkDriver.GetCapabilities.
func (d *Driver) Capabilities() *CapabilitiesResponse {
	return &CapabilitiesResponse{Scope: d.scope, ConnectivityScope: d.scope, GwAllocChecker: true}
}

// GwAllocCheckResponse is GwAllocCheck's answer: which families need no
// gateway address reserved.
type GwAllocCheckResponse struct {
	SkipIPv4 bool
	SkipIPv6 bool
}

// GwAllocCheck answers NetworkDriver.GwAllocCheck, which Docker ≥ 28 sends
// before it asks IPAM for a network's gateway addresses; opts is the map
// CreateNetwork will get. A network whose containers have no gateway needs
// no address set aside for one, so that address stays free for a container:
//   - macvlan without a parent: the network is a private segment with no
//     way out (its containers get no default route);
//   - --internal macvlan or vxlan: no traffic leaves the network.
//
// A bridge always needs its gateway: it is the bridge's own address. A
// gateway the user gave with --gateway is reserved whatever the answer (that
// is Docker's rule). Engines before 28 never call this and reserve a gateway
// for every network, which weft then leaves unused in these cases.
func (d *Driver) GwAllocCheck(ctx context.Context, opts map[string]any) (GwAllocCheckResponse, error) {
	if err := d.wait(ctx); err != nil {
		return GwAllocCheckResponse{}, err
	}
	skip, err := gatewayless(opts)
	return GwAllocCheckResponse{SkipIPv4: skip, SkipIPv6: skip}, err
}

// CreateNetwork validates the request, builds the network in the kernel and
// records it. A repeat with the same ID and content succeeds; the same ID with
// different content is refused.
func (d *Driver) CreateNetwork(ctx context.Context, req *network.CreateNetworkRequest) error {
	if err := d.wait(ctx); err != nil {
		return err
	}
	var seeds []netip.Addr
	if d.usesGossip() {
		opts, s, err := takeGossipSeeds(req.Options)
		if err != nil {
			return err
		}
		r := *req
		r.Options, req, seeds = opts, &r, s
	}
	n, err := parseNetwork(networkRequest{
		ID: req.NetworkID, Options: req.Options,
		IPv4: toIPAMData(req.IPv4Data), IPv6: toIPAMData(req.IPv6Data),
	})
	if err != nil {
		return err
	}
	if err := d.checkVxlan(&networkRecord{Network: n, AddressSpace: weftAddressSpace(req)}); err != nil {
		return err
	}
	reserve, err := d.clusterReservations(n, req)
	if err != nil {
		return err
	}
	ctx, cancel := detach(ctx)
	defer cancel()
	// The cluster store is reached before the state lock is taken, so that
	// other networks' requests never wait on it.
	n, joined, err := d.joinCluster(ctx, n, reserve)
	if err != nil {
		return err
	}
	if err := d.createNetwork(ctx, n, req, joined); err != nil {
		if len(joined.keys) > 0 || joined.vxlanKey != "" {
			d.giveUp(ctx, joined)
		}
		return err
	}
	if n.Mode == dataplane.Vxlan {
		d.kickCluster() // program its peers
	}
	if err := d.addGossipSeeds(ctx, seeds); err != nil {
		// The network works; the nodes are found through DiscoverNew and
		// the next network's seeds.
		d.log.Warn("keeping the swarm network's gossip seeds failed", "network", dataplane.ShortID(n.ID), "err", err)
	}
	return nil
}

func (d *Driver) createNetwork(ctx context.Context, n dataplane.Network, req *network.CreateNetworkRequest, joined clusterJoin) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if old, ok := d.nets[n.ID]; ok {
		if reflect.DeepEqual(old.Network, n) {
			return nil
		}
		return fmt.Errorf("network %s already exists with different settings", dataplane.ShortID(n.ID))
	}
	rec := &networkRecord{Network: n, AddressSpace: weftAddressSpace(req), Spaces: subnetSpaces(req),
		ClusterKeys: joined.keys, VxlanKey: joined.vxlanKey}
	if err := d.dropReleasedOverlapsLocked(ctx, rec); err != nil {
		return err
	}
	if err := d.checkConflictsLocked(rec); err != nil {
		return err
	}
	mode, err := d.mode(n.Mode)
	if err != nil {
		return err
	}
	op, err := putJSON(bucketNetworks, n.ID, rec)
	if err != nil {
		return err
	}
	shared, poolOps, err := d.sharePoolsLocked(rec)
	if err != nil {
		return err
	}
	claims := d.claimNetworkLocked(rec)
	if err := mode.CreateNetwork(ctx, n); err != nil {
		d.unshareLocked(shared)
		return fmt.Errorf("creating %s network %s: %w", n.Mode, dataplane.ShortID(n.ID), err)
	}
	crashPoint("CreateNetwork/kernel")
	if err := d.save(ctx, append(append(poolOps, claimOps(claims)...), op)...); err != nil {
		d.unshareLocked(shared)
		d.undo("network", n.ID, mode.DeleteNetwork(ctx, n))
		return err
	}
	crashPoint("CreateNetwork/saved")
	d.claimedLocked(claims)
	d.nets[n.ID] = rec
	if len(shared) > 0 && d.deps.Cluster != nil {
		d.holdRemoteLocked() // other hosts' addresses in the newly shared pools
	}
	d.log.Info("network created", "network", dataplane.ShortID(n.ID), "mode", n.Mode)
	return nil
}

// weftAddressSpace returns the weft IPAM address space all of the network's
// pools are in, or "" if another IPAM driver (or none) gave them.
func weftAddressSpace(req *network.CreateNetworkRequest) string {
	space := ""
	for _, data := range append(slices.Clone(req.IPv4Data), req.IPv6Data...) {
		if data == nil || (data.AddressSpace != ipam.LocalSpace && data.AddressSpace != ipam.GlobalSpace) ||
			(space != "" && data.AddressSpace != space) {
			return ""
		}
		space = data.AddressSpace
	}
	return space
}

// sharePoolsLocked holds the weft IPAM pools of a macvlan network in the
// global address space too (ipam.Allocator.Share): its subnet is a LAN's, which
// other hosts hand out addresses from as well, so it must be addressable as
// one cluster-wide pool. It returns the IDs it shared and the store ops that
// record them; on error nothing is shared. A global-scope weft shares
// nothing: its networks' local pools mirror the pools swarm's allocator
// holds in the global space (swarmipam.go), and it keeps them unique.
func (d *Driver) sharePoolsLocked(rec *networkRecord) ([]string, []store.Op, error) {
	n := rec.Network
	if !sharedMode(n.Mode) || rec.AddressSpace != ipam.LocalSpace || d.scope == ScopeGlobal {
		return nil, nil, nil
	}
	var shared []string
	var ops []store.Op
	for _, s := range append(slices.Clone(n.IPv4), n.IPv6...) {
		pool, ok := d.poolOfLocked(rec.AddressSpace, s.Pool)
		if !ok || pool.Shared {
			continue
		}
		p, err := d.deps.IPAM.Share(pool.ID)
		if err != nil {
			d.unshareLocked(shared)
			return nil, nil, err
		}
		shared = append(shared, p.ID)
		op, err := putJSON(bucketPools, p.ID, p)
		if err != nil {
			d.unshareLocked(shared)
			return nil, nil, err
		}
		ops = append(ops, op)
	}
	return shared, ops, nil
}

// unshareLocked undoes sharePoolsLocked in memory (its records were not saved).
func (d *Driver) unshareLocked(ids []string) {
	for _, id := range ids {
		d.deps.IPAM.Unshare(id)
	}
}

// subnetSpaces maps each subnet of the request to the address space its IPAM
// driver put it in.
func subnetSpaces(req *network.CreateNetworkRequest) map[string]string {
	out := map[string]string{}
	for _, data := range append(slices.Clone(req.IPv4Data), req.IPv6Data...) {
		if data == nil {
			continue
		}
		if p, err := netip.ParsePrefix(data.Pool); err == nil {
			out[p.Masked().String()] = data.AddressSpace
		}
	}
	return out
}

// checkConflictsLocked refuses settings that collide with another weft network.
//
// It compares rec with every network, without allocating: at 1000 networks
// that is about 0.1 ms, against milliseconds for the durable writes and the
// kernel work of every create.
func (d *Driver) checkConflictsLocked(rec *networkRecord) error {
	n := rec.Network
	short := dataplane.ShortID(n.ID)
	for id, r := range d.nets {
		o := r.Network
		// Kernel objects and firewall rules carry the short ID; two networks
		// sharing it would share rules. Docker's random IDs make this a
		// one-in-2^48 event, but it must fail loudly rather than mix networks.
		if dataplane.ShortID(id) == short {
			return fmt.Errorf("network ID %s starts with the same 12 characters as weft network %s; remove and create the network again to get a new ID", n.ID, id)
		}
		if n.Mode == dataplane.Bridge && o.Mode == dataplane.Bridge && o.Bridge.Name == n.Bridge.Name {
			return fmt.Errorf("%w: bridge name %q is already used by weft network %s", ErrInvalidOption, n.Bridge.Name, dataplane.ShortID(id))
		}
		if err := overlapConflict(rec, r); err != nil {
			return fmt.Errorf("%w (weft network %s); choose another --subnet", err, dataplane.ShortID(id))
		}
	}
	return nil
}

// overlapConflict refuses a subnet overlapping one of another network that
// shares its address space. Two bridge networks always share one: both put
// their subnets in the host's routing table, so an overlap would send one
// network's traffic to the other (Docker's bridge driver refuses it too).
// Other networks share a space when their IPAM drivers put both subnets in
// the same one.
func overlapConflict(a, b *networkRecord) error {
	bothBridges := a.Network.Mode == dataplane.Bridge && b.Network.Mode == dataplane.Bridge
	// Indexing, not append(IPv4, IPv6...): this runs against every network
	// on each create, and must not allocate.
	as := [2][]dataplane.Subnet{a.Network.IPv4, a.Network.IPv6}
	bs := [2][]dataplane.Subnet{b.Network.IPv4, b.Network.IPv6}
	for _, fa := range as {
		for _, sa := range fa {
			for _, fb := range bs {
				for _, sb := range fb {
					if !sa.Pool.Overlaps(sb.Pool) {
						continue
					}
					spaceA, spaceB := a.Spaces[sa.Pool.String()], b.Spaces[sb.Pool.String()]
					if bothBridges || (spaceA != "" && spaceA == spaceB) {
						return fmt.Errorf("%w: subnet %s overlaps subnet %s", ErrInvalidOption, sa.Pool, sb.Pool)
					}
				}
			}
		}
	}
	return nil
}

// DeleteNetwork removes the network's kernel objects and records, including
// endpoints Docker never deleted. An unknown network is already deleted.
func (d *Driver) DeleteNetwork(ctx context.Context, req *network.DeleteNetworkRequest) error {
	if err := d.wait(ctx); err != nil {
		return err
	}
	ctx, cancel := detach(ctx)
	defer cancel()
	d.mu.Lock()
	defer d.mu.Unlock()
	r, ok := d.nets[dataplane.CanonicalID(req.NetworkID)]
	if !ok {
		return nil // unknown (or not an ID at all): nothing to delete
	}
	return d.deleteNetworkLocked(ctx, r)
}

// deleteNetworkLocked removes a network, the endpoints Docker never deleted,
// and its pending-deletion mark. The records go first: a weft killed half-way
// then forgets the network, and reconciliation at the next start removes the
// kernel objects no record owns; the other order would bring a network Docker
// no longer has back to life, rules and all. A kernel error after the write
// is reported, and the same reconciliation removes what is left.
func (d *Driver) deleteNetworkLocked(ctx context.Context, r *networkRecord) error {
	n := r.Network
	mode, err := d.mode(n.Mode)
	if err != nil {
		return err
	}
	ops := []store.Op{store.Delete(bucketNetworks, n.ID), store.Delete(bucketReservations, releasedKey(n.ID))}
	leave, err := leaveOps(r)
	if err != nil {
		return err
	}
	ops = append(ops, leave...)
	var leftover []dataplane.Endpoint
	for id, ep := range d.eps {
		if ep.Endpoint.NetworkID == n.ID {
			ops = append(ops, store.Delete(bucketEndpoints, id))
			leftover = append(leftover, ep.Endpoint)
		}
	}
	if err := d.save(ctx, ops...); err != nil {
		return err
	}
	crashPoint("DeleteNetwork/saved")
	d.leftLocked(r)
	for _, ep := range leftover {
		delete(d.eps, ep.ID)
		delete(d.detached, ep.ID)
	}
	delete(d.nets, n.ID)
	delete(d.pending, releasedKey(n.ID))
	var errs []error
	for _, ep := range leftover {
		if err := mode.DeleteEndpoint(ctx, n, ep); err != nil {
			errs = append(errs, fmt.Errorf("removing leftover endpoint %s of network %s: %w", dataplane.ShortID(ep.ID), dataplane.ShortID(n.ID), err))
		}
	}
	if err := mode.DeleteNetwork(ctx, n); err != nil {
		errs = append(errs, fmt.Errorf("deleting %s network %s: %w", n.Mode, dataplane.ShortID(n.ID), err))
	}
	crashPoint("DeleteNetwork/kernel")
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w; weft removes what is left when it next starts", err)
	}
	d.log.Info("network deleted", "network", dataplane.ShortID(n.ID), "leftover_endpoints", len(leftover))
	return nil
}

func toIPAMData(in []*network.IPAMData) []ipamData {
	out := make([]ipamData, 0, len(in))
	for _, d := range in {
		if d != nil {
			out = append(out, ipamData{AddressSpace: d.AddressSpace, Pool: d.Pool, Gateway: d.Gateway})
		}
	}
	return out
}

// undo logs a failed rollback step; the original error is what the user sees.
func (d *Driver) undo(what, id string, err error) {
	if err != nil {
		d.log.Error("rollback failed; reconciliation at next start will clean up", "object", what, "id", dataplane.ShortID(id), "err", err)
	}
}
