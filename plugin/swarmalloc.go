package plugin

// Swarm's side of a global-scope weft (WEFT_SCOPE=global): the raft leader's
// dockerd calls AllocateNetwork once per swarm network and again for every
// network after each leader change or manager restart (swarmkit keeps its
// allocator in memory), and FreeNetwork on `docker network rm`. The options
// AllocateNetwork returns replace the network's driver options: they are
// what every worker's CreateNetwork receives, so the VNI chosen here is the
// one every node's VXLAN link uses (moby: daemon/libnetwork/cnmallocator,
// drivers/overlay/ovmanager).

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"strconv"

	"github.com/docker/go-plugins-helpers/network"
	"github.com/weftnet/weft/dataplane"
	"github.com/weftnet/weft/store"
)

// bucketSwarmNets (host-local) holds one swarmNet per swarm network this
// weft allocated as leader, keyed by the swarm network ID.
const bucketSwarmNets = "swarm-networks"

// swarmNet is what AllocateNetwork decided for a network.
type swarmNet struct {
	VNI     uint32            `json:"vni"`
	Options map[string]string `json:"options"`
}

// AllocateNetwork validates a swarm network's options and gives it a VNI,
// unique among the swarm's weft networks: the one in its options when
// given (the user's -o vni, or this function's own answer replayed by
// swarm), else the highest free one below Docker's overlay range (4096 and
// up), counting down so that a local-scope weft on the same hosts, which
// counts up from 1, meets it last. It answers the same for the same
// network every time.
func (d *Driver) AllocateNetwork(ctx context.Context, req *network.AllocateNetworkRequest) (*network.AllocateNetworkResponse, error) {
	if err := d.wait(ctx); err != nil {
		return nil, err
	}
	if d.scope != ScopeGlobal {
		return nil, fmt.Errorf("this weft announces scope %s, so it cannot serve swarm networks; install weft a second time for swarm with `docker plugin install --alias weft-swarm ... WEFT_SCOPE=global`", d.scope)
	}
	id := dataplane.CanonicalID(req.NetworkID)
	if err := checkID("network", id); err != nil {
		return nil, err
	}
	opts, n, seeds, err := parseSwarmNetwork(id, req)
	if err != nil {
		return nil, err
	}

	d.mu.Lock()
	defer d.mu.Unlock()
	recs, err := d.deps.Store.List(ctx, bucketSwarmNets)
	if err != nil {
		return nil, fmt.Errorf("reading weft's swarm networks: %w", err)
	}
	used := map[uint32]string{}
	for other, b := range recs {
		var sn swarmNet
		if json.Unmarshal(b, &sn) == nil && other != id {
			used[sn.VNI] = other
		}
	}
	if prev, ok := recs[id]; ok && n.Vxlan.VNI == 0 {
		// A replay without the options of our first answer (swarm
		// merges them in; this is belt and braces).
		var sn swarmNet
		if json.Unmarshal(prev, &sn) == nil {
			n.Vxlan.VNI = sn.VNI
		}
	}
	vni := n.Vxlan.VNI
	if vni == 0 {
		for v := uint32(lastAutoVNI); v >= firstAutoVNI; v-- {
			if _, taken := used[v]; !taken {
				vni = v
				break
			}
		}
		if vni == 0 {
			return nil, fmt.Errorf("%w: every automatic vni (%d to %d) is taken by a swarm network; give one with -o vni=N (4096 and up collide with Docker swarm's overlays)",
				ErrInvalidOption, firstAutoVNI, lastAutoVNI)
		}
	} else if other, taken := used[vni]; taken {
		return nil, fmt.Errorf("%w: %s=%d is already used by swarm network %s; choose another vni or leave it out to have one chosen",
			ErrInvalidOption, optVNI, vni, dataplane.ShortID(other))
	}
	opts[optVNI] = strconv.FormatUint(uint64(vni), 10)
	self, err := d.gossipAdvertise()
	if err != nil {
		d.log.Warn("this weft's gossip address is not known yet; the swarm network carries no seed of it", "network", dataplane.ShortID(id), "err", err)
	}
	if s := formatGossipSeeds(self, seeds); s != "" {
		opts[optGossipSeeds] = s
	}
	rec, err := json.Marshal(swarmNet{VNI: vni, Options: opts})
	if err != nil {
		return nil, err
	}
	if err := d.deps.Store.Apply(ctx, store.Put(bucketSwarmNets, id, rec)); err != nil {
		return nil, fmt.Errorf("recording swarm network %s: %w", dataplane.ShortID(id), err)
	}
	d.log.Info("swarm network allocated", "network", dataplane.ShortID(id), "vni", vni)
	return &network.AllocateNetworkResponse{Options: opts}, nil
}

// FreeNetwork forgets what AllocateNetwork decided; its VNI is free again.
// A network this weft never allocated (another manager was leader) is fine.
func (d *Driver) FreeNetwork(ctx context.Context, req *network.FreeNetworkRequest) error {
	if err := d.wait(ctx); err != nil {
		return err
	}
	id := dataplane.CanonicalID(req.NetworkID)
	if err := checkID("network", id); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.deps.Store.Apply(ctx, store.Delete(bucketSwarmNets, id)); err != nil {
		return fmt.Errorf("forgetting swarm network %s: %w", dataplane.ShortID(id), err)
	}
	d.log.Info("swarm network freed", "network", dataplane.ShortID(id))
	return nil
}

// parseSwarmNetwork validates AllocateNetwork's options as CreateNetwork
// will on every worker, so a bad option is refused at `docker network
// create` rather than when the first task lands (an unknown option
// included). Swarm networks of weft are vxlan networks: mode may be left
// out. It returns the options to keep (the user's, with mode set, without
// the gossip seeds), the parsed network and the seeds of an earlier answer
// (swarmseeds.go).
func parseSwarmNetwork(id string, req *network.AllocateNetworkRequest) (map[string]string, dataplane.Network, []netip.Addr, error) {
	opts := maps.Clone(req.Options)
	if opts == nil {
		opts = map[string]string{}
	}
	var seeds []netip.Addr
	if v, ok := opts[optGossipSeeds]; ok {
		var err error
		if seeds, err = parseGossipSeeds(v); err != nil {
			return nil, dataplane.Network{}, nil, err
		}
		delete(opts, optGossipSeeds)
	}
	if m, ok := opts[optMode]; ok && m != string(dataplane.Vxlan) {
		return nil, dataplane.Network{}, nil, fmt.Errorf("%w: %s=%q: swarm networks of weft are vxlan networks (leave mode out, or use mode=vxlan); for macvlan on swarm nodes use a local-scope weft with --config-only/--config-from",
			ErrInvalidOption, optMode, m)
	}
	opts[optMode] = string(dataplane.Vxlan)
	generic := make(map[string]any, len(opts))
	for k, v := range opts {
		generic[k] = v
	}
	nr := networkRequest{ID: id, Options: map[string]any{keyGeneric: generic}}
	for _, d := range req.IPv4Data {
		nr.IPv4 = append(nr.IPv4, ipamData{Pool: d.Pool, Gateway: d.Gateway})
	}
	for _, d := range req.IPv6Data {
		nr.IPv6 = append(nr.IPv6, ipamData{Pool: d.Pool, Gateway: d.Gateway})
	}
	if len(nr.IPv6) > 0 {
		nr.Options[keyEnableIPv6] = true
	}
	n, err := parseNetwork(nr)
	if err != nil {
		return nil, n, nil, err
	}
	if len(n.IPv4) == 0 && len(n.IPv6) == 0 {
		return nil, n, nil, fmt.Errorf("%w: swarm network %s has no subnet", ErrInvalidOption, dataplane.ShortID(id))
	}
	return opts, n, seeds, nil
}
