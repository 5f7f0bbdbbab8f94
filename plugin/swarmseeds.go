package plugin

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"

	"github.com/weftnet/weft/store"
)

// Gossip seeds carried by the network itself.
//
// dockerd tells a global-scope driver of the other swarm nodes (DiscoverNew)
// only as their entries arrive in its own gossip: a weft enabled on a node
// of a swarm that already exists hears of nobody but itself (moby
// daemon/libnetwork/agent.go sends a newly registered driver only the
// node's own address) until its dockerd restarts. So the leader's weft puts
// its own gossip address in the options AllocateNetwork returns, which swarm
// hands to every node's CreateNetwork; a node's weft joins it there, and
// through it every other member. A new leader adds itself on its replay;
// the last few leaders' addresses are kept, newest first.

// optGossipSeeds is the option that carries them: comma-separated addresses
// of wefts in the swarm's gossip, on WEFT_GOSSIP_PORT.
const optGossipSeeds = "gossip_seeds"

// maxGossipSeeds bounds the list (a few past leaders suffice to find the
// gossip; the option is shown by docker network inspect).
const maxGossipSeeds = 5

// parseGossipSeeds reads the option: unicast addresses, canonical, distinct.
func parseGossipSeeds(v string) ([]netip.Addr, error) {
	var out []netip.Addr
	for _, s := range strings.Split(v, ",") {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" || a.Is4In6() || a.IsUnspecified() || a.IsMulticast() {
			return nil, fmt.Errorf("%w: %s=%q: want comma-separated IP addresses of swarm nodes (weft sets this option itself)", ErrInvalidOption, optGossipSeeds, v)
		}
		if a.String() != s {
			return nil, fmt.Errorf("%w: %s=%q: address %q is not written canonically (%s)", ErrInvalidOption, optGossipSeeds, v, s, a)
		}
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	if len(out) > maxGossipSeeds {
		return nil, fmt.Errorf("%w: %s=%q: at most %d addresses", ErrInvalidOption, optGossipSeeds, v, maxGossipSeeds)
	}
	return out, nil
}

// formatGossipSeeds writes the option: self first, then the earlier seeds,
// at most maxGossipSeeds.
func formatGossipSeeds(self netip.Addr, earlier []netip.Addr) string {
	seeds := []string{}
	if self.IsValid() {
		seeds = append(seeds, self.String())
	}
	for _, a := range earlier {
		if a != self && len(seeds) < maxGossipSeeds {
			seeds = append(seeds, a.String())
		}
	}
	return strings.Join(seeds, ",")
}

// takeGossipSeeds returns a CreateNetwork request's options without the
// seeds option (a copy; the request is not changed) and the seeds. The
// seeds are not part of the network: a later leader sends others for the
// same network.
func takeGossipSeeds(opts map[string]any) (map[string]any, []netip.Addr, error) {
	generic, ok := opts[keyGeneric].(map[string]any)
	if !ok {
		return opts, nil, nil
	}
	raw, ok := generic[optGossipSeeds]
	if !ok {
		return opts, nil, nil
	}
	v, ok := raw.(string)
	if !ok {
		return nil, nil, fmt.Errorf("%w: %s has a value of type %T, want a string", ErrInvalidOption, optGossipSeeds, raw)
	}
	seeds, err := parseGossipSeeds(v)
	if err != nil {
		return nil, nil, err
	}
	out := maps.Clone(opts)
	g := maps.Clone(generic)
	delete(g, optGossipSeeds)
	out[keyGeneric] = g
	return out, seeds, nil
}

// gossipAdvertise is the address this weft's gossip is reached at
// (GossipSettings.listen).
func (d *Driver) gossipAdvertise() (netip.Addr, error) {
	if d.deps.Gossip == nil {
		return netip.Addr{}, fmt.Errorf("this weft has no gossip (WEFT_GOSSIP_KEY is not set)")
	}
	ps, ok := d.peerSetter()
	if !ok {
		return netip.Addr{}, fmt.Errorf("this weft has no vxlan mode")
	}
	vtep, err := ps.VTEP()
	if err != nil {
		return netip.Addr{}, err
	}
	_, adv := d.deps.Gossip.listen(vtep)
	return adv, nil
}

// addGossipSeeds records node addresses to join (kept for restarts, as
// DiscoverNew's are) and wakes the gossip worker with each; its own address
// is left out.
func (d *Driver) addGossipSeeds(ctx context.Context, seeds []netip.Addr) error {
	self, _ := d.gossipAdvertise()
	var ops []store.Op
	var add []string
	for _, a := range seeds {
		if a != self {
			ops = append(ops, store.Put(bucketGossipSeeds, a.String(), []byte("{}")))
			add = append(add, a.String())
		}
	}
	if len(ops) == 0 {
		return nil
	}
	d.mu.Lock()
	err := d.save(ctx, ops...)
	d.mu.Unlock()
	if err != nil {
		return err
	}
	for _, a := range add {
		select {
		case d.gossip.seeds <- a:
		default: // the worker joins every seed at its next re-sync
		}
	}
	return nil
}
