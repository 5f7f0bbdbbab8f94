package plugin

// The vxlan control plane of a global-scope weft (WEFT_SCOPE=global, swarm),
// where there is no cluster store: this weft publishes its vxlan endpoints
// and learns the other nodes' through weft-to-weft gossip (cluster/gossip),
// seeded with the node addresses dockerd sends in DiscoverNew. What the
// gossip delivers goes through the same path as the store's endpoints
// (d.cl.vxAll, programPeers): one data-plane model, two sources of peers.

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/docker/go-plugins-helpers/network"

	"github.com/weftnet/weft/cluster/gossip"
	"github.com/weftnet/weft/dataplane"
	"github.com/weftnet/weft/store"
)

// bucketGossipSeeds (host-local) keeps the node addresses dockerd sent in
// DiscoverNew: dockerd sends them once, when a node joins, and a weft that
// restarts must still find the swarm.
const bucketGossipSeeds = "gossip-seeds"

// bucketGossipLeft (host-local) keeps the addresses of the nodes dockerd
// said left the swarm (DiscoverDelete) until it says they are back
// (DiscoverNew): their wefts may still gossip — `docker swarm leave` leaves
// the plugin running — and a restarted weft must still keep them out.
const bucketGossipLeft = "gossip-left"

// gossipResync is how often the gossip worker publishes and programs
// everything again, whether or not anything told it of a change.
const gossipResync = 30 * time.Second

// GossipSettings configure the gossip of a global-scope weft.
type GossipSettings struct {
	// Key is the key every weft of the swarm shares (WEFT_GOSSIP_KEY).
	Key []byte
	// Port is the TCP and UDP port of every weft's gossip (WEFT_GOSSIP_PORT).
	Port uint16
	// Bind, when valid, is the one address to listen on and advertise
	// (tests); else every address, advertising the VTEP.
	Bind netip.Addr
	// Fast selects short failure-detection timings (tests).
	Fast bool
}

// listen is where the gossip of a node whose VTEP is vtep listens, and the
// address it advertises: every address of the VTEP's family, advertising
// the VTEP (the underlay address the other nodes reach this one at), or
// Bind for both when set.
func (s *GossipSettings) listen(vtep netip.Addr) (bind netip.AddrPort, adv netip.Addr) {
	if s.Bind.IsValid() {
		return netip.AddrPortFrom(s.Bind, s.Port), s.Bind
	}
	all := netip.IPv4Unspecified()
	if vtep.Is6() {
		all = netip.IPv6Unspecified()
	}
	return netip.AddrPortFrom(all, s.Port), vtep
}

// ParseGossipKey reads WEFT_GOSSIP_KEY: 16, 24 or 32 bytes in standard
// base64 (AES-128, -192 or -256). Empty is no key.
func ParseGossipKey(v string) ([]byte, error) {
	if v == "" {
		return nil, nil
	}
	k, err := base64.StdEncoding.DecodeString(v)
	if err != nil || (len(k) != 16 && len(k) != 24 && len(k) != 32) {
		return nil, errors.New("WEFT_GOSSIP_KEY is not valid: use 32 random bytes in base64, the same on every node, for example the output of `head -c 32 /dev/urandom | base64`")
	}
	return k, nil
}

// ParseGossipPort reads WEFT_GOSSIP_PORT.
func ParseGossipPort(v string) (uint16, error) {
	p, err := strconv.ParseUint(v, 10, 16)
	if err != nil || p == 0 {
		return 0, fmt.Errorf("WEFT_GOSSIP_PORT %q is not valid: use a port from 1 to 65535, the same on every node (default %d; 7946 is Docker's own)", v, gossip.DefaultPort)
	}
	return uint16(p), nil
}

// gossipState is the gossip worker's view, shared with requests.
type gossipState struct {
	mu sync.Mutex
	// err is why the gossip could not start (nil while it starts and
	// once it runs).
	err error
	// g is the running member, or nil.
	g *gossip.Gossip
	// seeds wakes the worker with a node address to join.
	seeds chan string
}

func newGossipState() *gossipState {
	return &gossipState{seeds: make(chan string, 64)}
}

func (s *gossipState) set(g *gossip.Gossip, err error) {
	s.mu.Lock()
	s.g, s.err = g, err
	s.mu.Unlock()
}

func (s *gossipState) status() (*gossip.Gossip, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.g, s.err
}

// usesGossip says whether vxlan peers come from the gossip.
func (d *Driver) usesGossip() bool { return d.scope == ScopeGlobal && d.deps.Gossip != nil }

// checkSwarmVxlan refuses a vxlan network of a global-scope weft that could
// not reach the other nodes.
func (d *Driver) checkSwarmVxlan(n dataplane.Network) error {
	if d.deps.Gossip == nil {
		return fmt.Errorf("%w: swarm networks of weft find the other nodes by gossip, which needs a key: set the same WEFT_GOSSIP_KEY on every node "+
			"(docker plugin set weft-swarm WEFT_GOSSIP_KEY=$(head -c 32 /dev/urandom | base64))", ErrInvalidOption)
	}
	if n.Vxlan.VNI == 0 {
		return fmt.Errorf("%w: this network has no vni: swarm networks of weft get theirs from the swarm manager; create the network on a manager (docker network create -d weft-swarm ...)", ErrInvalidOption)
	}
	if _, err := d.gossip.status(); err != nil {
		return fmt.Errorf("the other swarm nodes cannot be reached (weft retries): %w", err)
	}
	return nil
}

// gossipRun is the gossip worker of a global-scope weft: it starts the
// member (retrying while the port is taken or the VTEP unknown), joins the
// known nodes, and publishes and programs endpoints on every change.
func (d *Driver) gossipRun(ctx context.Context) {
	if d.waitStarted(ctx) != nil || !d.usesGossip() {
		return
	}
	ps, ok := d.peerSetter()
	if !ok {
		d.gossip.set(nil, errors.New("this weft has no vxlan mode"))
		return
	}
	changed := make(chan struct{}, 1)
	var g *gossip.Gossip
	for wait := time.Second; g == nil; wait = min(2*wait, 30*time.Second) {
		vtep, err := ps.VTEP()
		if err == nil {
			bind, adv := d.deps.Gossip.listen(vtep)
			g, err = gossip.Start(gossip.Config{
				Node: d.cl.hostID, Bind: bind, Advertise: adv, Key: d.deps.Gossip.Key, VTEP: vtep,
				Grace: d.leaseTTL(), Fast: d.deps.Gossip.Fast, Log: d.log.With("part", "gossip"),
				OnChange: func() { kickChan(changed) },
			})
		}
		if err != nil {
			d.gossip.set(nil, err)
			d.log.Error("weft's gossip could not start; retrying", "err", err, "retry_in", wait)
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
		}
	}
	defer func() {
		d.gossip.set(nil, errors.New("weft's gossip has stopped"))
		if err := g.Close(2 * time.Second); err != nil {
			d.log.Warn("leaving weft's gossip", "err", err)
		}
	}()
	d.gossip.set(g, nil)
	d.log.Info("weft's gossip started", "addr", g.Addr(), "node", d.cl.hostID)
	if left, err := d.deps.Store.List(ctx, bucketGossipLeft); err != nil {
		d.log.Warn("reading the nodes that left the swarm", "err", err)
	} else {
		for a := range left {
			if addr, err := netip.ParseAddr(a); err == nil {
				g.Evict(addr)
			}
		}
	}
	go d.joinSeeds(ctx, g)
	d.publishGossip(g)
	d.programGossip(ctx, g)
	resync := time.NewTicker(gossipResync)
	defer resync.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case addr := <-d.gossip.seeds:
			go d.joinGossip(g, addr)
		case <-d.cl.kick:
			d.publishGossip(g)
			d.programGossip(ctx, g)
		case <-changed:
			d.programGossip(ctx, g)
		case <-resync.C:
			if len(g.Members()) == 0 {
				go d.joinSeeds(ctx, g)
			}
			d.publishGossip(g)
			d.programGossip(ctx, g)
		}
	}
}

// joinSeeds joins every node address dockerd has sent.
func (d *Driver) joinSeeds(ctx context.Context, g *gossip.Gossip) {
	seeds, err := d.deps.Store.List(ctx, bucketGossipSeeds)
	if err != nil {
		d.log.Warn("reading the swarm's node addresses", "err", err)
		return
	}
	for addr := range seeds {
		d.joinGossip(g, addr)
	}
}

func (d *Driver) joinGossip(g *gossip.Gossip, addr string) {
	target := net.JoinHostPort(addr, strconv.Itoa(int(d.deps.Gossip.Port)))
	if _, err := g.Join([]string{target}); err != nil {
		// The node may not run a global-scope weft (yet); it joins us when
		// it does.
		d.log.Debug("joining a swarm node's weft", "node_addr", target, "err", err)
	}
}

// publishGossip makes this node's gossip record hold exactly its vxlan
// endpoints.
func (d *Driver) publishGossip(g *gossip.Gossip) {
	d.mu.Lock()
	eps := make([]gossip.Endpoint, 0, len(d.eps))
	for id, r := range d.eps {
		nr := d.nets[r.Endpoint.NetworkID]
		if nr == nil || nr.Network.Mode != dataplane.Vxlan || nr.Network.Vxlan.VNI == 0 {
			continue
		}
		ep := r.Endpoint
		eps = append(eps, gossip.Endpoint{VNI: nr.Network.Vxlan.VNI, ID: id, MAC: ep.MAC.String(), IPv4: ep.IPv4.Addr(), IPv6: ep.IPv6.Addr()})
	}
	d.mu.Unlock()
	if err := g.SetEndpoints(eps); err != nil {
		d.log.Error("publishing this node's vxlan endpoints", "err", err)
	}
}

// knownVTEPSetter is the vxlan mode's known-VTEP filter (dataplane/vxlan).
type knownVTEPSetter interface {
	SetKnownVTEPs(ctx context.Context, vteps []netip.Addr) error
}

// programGossip takes the other nodes' endpoints from the gossip and
// programs them. Every node's VTEP is also let through the known-VTEP
// filter, endpoints or not: the nodes of a swarm also send Docker's own
// overlay traffic to the VXLAN port, and a node without weft containers
// must not have it dropped.
func (d *Driver) programGossip(ctx context.Context, g *gossip.Gossip) {
	all := map[string]vxlanEntry{}
	var vteps []netip.Addr
	for _, r := range g.Peers() {
		vteps = append(vteps, r.VTEP)
		for _, e := range r.Endpoints {
			all[vxlanEPKey(e.VNI, e.ID)] = vxlanEntry{rec: vxlanEndpoint{Host: r.Node, VTEP: r.VTEP, MAC: e.MAC, IPv4: e.IPv4, IPv6: e.IPv6}}
		}
	}
	d.mu.Lock()
	d.cl.vxAll = all
	d.mu.Unlock()
	if ks, ok := d.deps.Modes[dataplane.Vxlan].(knownVTEPSetter); ok {
		if err := ks.SetKnownVTEPs(ctx, vteps); err != nil {
			d.log.Error("letting the swarm nodes' VTEPs through the VXLAN port's filter failed; retrying at the next change", "nodes", len(vteps), "err", err)
		}
	}
	d.programPeers(ctx)
}

// DiscoverNew carries swarm node events. A global-scope weft keeps each
// other node's address and joins its gossip there; everything else is
// acknowledged and ignored (a local-scope weft's cluster membership comes
// from its own store).
func (d *Driver) DiscoverNew(ctx context.Context, req *network.DiscoveryNotification) error {
	if err := d.wait(ctx); err != nil {
		return err
	}
	addr, ok, err := swarmNode(req)
	if err != nil || !ok || !d.usesGossip() {
		return err
	}
	// Announced again: no longer one that left.
	d.mu.Lock()
	err = d.save(ctx, store.Delete(bucketGossipLeft, addr.String()))
	d.mu.Unlock()
	if err != nil {
		return err
	}
	if g, _ := d.gossip.status(); g != nil {
		g.Admit(addr)
	}
	return d.addGossipSeeds(ctx, []netip.Addr{addr})
}

// DiscoverDelete forgets a node that left the swarm, and keeps it out of
// the gossip's peers: its weft may go on gossiping (`docker swarm leave`
// does not stop the plugin), but after the grace period its endpoints leave
// this node's tables and its VTEP the known-VTEP filter, until dockerd
// announces it again (DiscoverNew). The node is matched by the address
// dockerd gives (its swarm advertise address) against the address its weft
// gossips from and its VTEP.
func (d *Driver) DiscoverDelete(ctx context.Context, req *network.DiscoveryNotification) error {
	if err := d.wait(ctx); err != nil {
		return err
	}
	addr, ok, err := swarmNode(req)
	if err != nil || !ok || !d.usesGossip() {
		return err
	}
	d.mu.Lock()
	err = d.save(ctx, store.Delete(bucketGossipSeeds, addr.String()), store.Put(bucketGossipLeft, addr.String(), []byte("{}")))
	d.mu.Unlock()
	if err != nil {
		return err
	}
	if g, _ := d.gossip.status(); g != nil {
		g.Evict(addr)
	}
	return nil
}

// nodeDiscovery is discoverapi.NodeDiscovery, the only discovery type
// dockerd forwards to remote drivers.
const nodeDiscovery = 1

// swarmNode reads another node's address from a node discovery event; ok
// is false for other events and for this node itself.
func swarmNode(req *network.DiscoveryNotification) (netip.Addr, bool, error) {
	if req.DiscoveryType != nodeDiscovery {
		return netip.Addr{}, false, nil
	}
	data, _ := req.DiscoveryData.(map[string]any)
	if self, _ := data["Self"].(bool); self {
		return netip.Addr{}, false, nil
	}
	s, _ := data["Address"].(string)
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" || a.IsUnspecified() || a.IsMulticast() {
		return netip.Addr{}, false, fmt.Errorf("%w: node discovery address %q is not a unicast IP address", ErrInvalidOption, s)
	}
	return a.Unmap(), true, nil
}

func kickChan(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}
