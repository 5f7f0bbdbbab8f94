package plugin

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/go-plugins-helpers/network"

	"github.com/weftnet/weft/dataplane"
	"github.com/weftnet/weft/ipam"
	"github.com/weftnet/weft/store/memstore"
)

var testGossipKey = []byte("0123456789abcdef0123456789abcdef")

// gossipPort finds a port free on the loopback addresses the test's nodes
// use (127.0.0.2 and up: every weft of a swarm gossips on one port, so
// the nodes need addresses of their own).
func gossipPort(t *testing.T, nodes int) uint16 {
	t.Helper()
	for range 20 {
		l, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)})
		if err != nil {
			t.Fatal(err)
		}
		port := uint16(l.Addr().(*net.TCPAddr).Port)
		free := true
		var held []interface{ Close() error }
		held = append(held, l)
		for i := range nodes {
			ip := net.IPv4(127, 0, 0, byte(2+i))
			if u, err := net.ListenUDP("udp", &net.UDPAddr{IP: ip, Port: int(port)}); err == nil {
				held = append(held, u)
			} else {
				free = false
			}
			if i > 0 {
				if l2, err := net.ListenTCP("tcp", &net.TCPAddr{IP: ip, Port: int(port)}); err == nil {
					held = append(held, l2)
				} else {
					free = false
				}
			}
		}
		for _, h := range held {
			_ = h.Close()
		}
		if free {
			return port
		}
	}
	t.Fatal("no free port on 127.0.0.2 and up")
	return 0
}

// startSwarmNode starts a global-scope weft whose gossip listens on
// 127.0.0.<2+i>:port, with a fake vxlan mode whose VTEP is 192.0.2.<1+i>.
func startSwarmNode(t *testing.T, i int, port uint16, ttl time.Duration) *vxHost {
	t.Helper()
	d, err := NewDriver(testLogger(), ScopeGlobal)
	if err != nil {
		t.Fatal(err)
	}
	m := &fakeVxlan{fakeMode: newFakeMode(), vtep: netip.AddrFrom4([4]byte{192, 0, 2, byte(1 + i)}), peers: map[string][]dataplane.Peer{}}
	deps := Deps{Store: memstore.New(), IPAM: ipam.New(nil), LeaseTTL: ttl,
		Modes:  map[dataplane.ModeName]dataplane.Mode{dataplane.Bridge: m.fakeMode, dataplane.Vxlan: m},
		Gossip: &GossipSettings{Key: testGossipKey, Port: port, Bind: netip.AddrFrom4([4]byte{127, 0, 0, byte(2 + i)}), Fast: true}}
	return runVxHost(t, d, m, deps)
}

// swarmCreate is a worker's CreateNetwork for a swarm network: the options
// are AllocateNetwork's answer, the pool Docker's default IPAM's.
func swarmCreate(h *vxHost, id string, opts map[string]string, subnet string) error {
	generic := map[string]any{}
	for k, v := range opts {
		generic[k] = v
	}
	req := createReq(id, generic)
	req.IPv4Data = []*network.IPAMData{{AddressSpace: "GlobalDefault", Pool: subnet}}
	return h.d.CreateNetwork(context.Background(), req)
}

func discover(h *vxHost, addr string, self bool) error {
	return h.d.DiscoverNew(context.Background(), &network.DiscoveryNotification{DiscoveryType: 1,
		DiscoveryData: map[string]any{"Address": addr, "BindAddress": "0.0.0.0", "Self": self}})
}

// TestSwarmNodesShareEndpointsByGossip: a swarm network allocated on the
// leader and created on two workers; the workers, told of each other only
// through DiscoverNew, each get the other's containers as peers; a removal
// is withdrawn; a stopped node's containers stay for the grace period and
// then go.
func TestSwarmNodesShareEndpointsByGossip(t *testing.T) {
	ctx := context.Background()
	const ttl = 2 * time.Second
	port := gossipPort(t, 2)
	w1, w2 := startSwarmNode(t, 0, port, ttl), startSwarmNode(t, 1, port, ttl)

	alloc, err := w1.d.AllocateNetwork(ctx, allocReq(swarmNet1, nil, "10.0.9.0/24"))
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []*vxHost{w1, w2} {
		if err := swarmCreate(h, swarmNet1, alloc.Options, "10.0.9.0/24"); err != nil {
			t.Fatalf("CreateNetwork on a worker: %v", err)
		}
		if got := h.network(swarmNet1).Vxlan.VNI; got != 4095 {
			t.Fatalf("worker's network has vni %d; want the manager's 4095", got)
		}
	}
	// dockerd sends each node itself and every other node.
	for _, ev := range []struct {
		h    *vxHost
		addr string
		self bool
	}{{w1, "127.0.0.2", true}, {w1, "127.0.0.3", false}, {w2, "127.0.0.3", true}, {w2, "127.0.0.2", false}} {
		if err := discover(ev.h, ev.addr, ev.self); err != nil {
			t.Fatal(err)
		}
	}
	// Each node lets the other's VTEP through the VXLAN port's filter
	// before either has a container.
	for _, c := range []struct {
		h    *vxHost
		want string
	}{{w1, "192.0.2.2"}, {w2, "192.0.2.1"}} {
		deadline := time.Now().Add(15 * time.Second)
		for !slices.Equal(c.h.m.knownVTEPs(), []string{c.want}) {
			if time.Now().After(deadline) {
				t.Fatalf("known VTEPs %v; want [%s]", c.h.m.knownVTEPs(), c.want)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	// Endpoints with the leader's static addresses.
	if _, err := w1.d.CreateEndpoint(ctx, epReq(swarmNet1, swarmEP(1), "10.0.9.2/24", "")); err != nil {
		t.Fatal(err)
	}
	if _, err := w2.d.CreateEndpoint(ctx, epReq(swarmNet1, swarmEP(2), "10.0.9.3/24", "")); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	awaitPeers(t, w1, swarmNet1, []string{"10.0.9.3@192.0.2.2"}, 15*time.Second)
	awaitPeers(t, w2, swarmNet1, []string{"10.0.9.2@192.0.2.1"}, 15*time.Second)
	t.Logf("each worker has the other's endpoint as peer %s after the endpoints were made", time.Since(t0).Round(time.Millisecond))
	w1.m.pmu.Lock()
	mac := w1.m.peers[swarmNet1][0].MAC.String()
	w1.m.pmu.Unlock()
	if mac != "02:42:0a:00:09:03" {
		t.Errorf("peer MAC %s; want 02:42:0a:00:09:03 (from its address)", mac)
	}

	// A second endpoint, then its removal, reach the other node.
	if _, err := w2.d.CreateEndpoint(ctx, epReq(swarmNet1, swarmEP(3), "10.0.9.4/24", "")); err != nil {
		t.Fatal(err)
	}
	awaitPeers(t, w1, swarmNet1, []string{"10.0.9.3@192.0.2.2", "10.0.9.4@192.0.2.2"}, 15*time.Second)
	if err := w2.d.DeleteEndpoint(ctx, &network.DeleteEndpointRequest{NetworkID: swarmNet1, EndpointID: swarmEP(3)}); err != nil {
		t.Fatal(err)
	}
	awaitPeers(t, w1, swarmNet1, []string{"10.0.9.3@192.0.2.2"}, 15*time.Second)

	// The node addresses are kept for a restart.
	if seeds, _ := w1.d.deps.Store.List(ctx, bucketGossipSeeds); len(seeds) != 1 || seeds["127.0.0.3"] == nil {
		t.Errorf("w1's kept node addresses %v; want only 127.0.0.3 (not itself)", seeds)
	}

	// w2 stops: its endpoint stays on w1 for the grace period, then goes.
	w2.stop()
	stopped := time.Now()
	time.Sleep(ttl / 2)
	if got := w1.m.peerIPs(swarmNet1); len(got) != 1 {
		t.Errorf("w2's endpoint left w1 %s after w2 stopped; it must stay for the grace period (%s): %v", time.Since(stopped).Round(time.Millisecond), ttl, got)
	}
	awaitPeers(t, w1, swarmNet1, nil, ttl+10*time.Second)
	t.Logf("w2's endpoint left w1's peers %s after w2 stopped (grace %s)", time.Since(stopped).Round(time.Millisecond), ttl)
}

// TestSwarmNodeThatLeftIsDropped: a node dockerd says left the swarm
// (DiscoverDelete) — whose weft still gossips, as after `docker swarm
// leave` — loses its endpoints and its known VTEP on the other node after
// the grace period, and has them back when dockerd announces it again.
func TestSwarmNodeThatLeftIsDropped(t *testing.T) {
	ctx := context.Background()
	const ttl = 2 * time.Second
	port := gossipPort(t, 2)
	w1, w2 := startSwarmNode(t, 0, port, ttl), startSwarmNode(t, 1, port, ttl)
	alloc, err := w1.d.AllocateNetwork(ctx, allocReq(swarmNet1, nil, "10.0.9.0/24"))
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []*vxHost{w1, w2} {
		if err := swarmCreate(h, swarmNet1, alloc.Options, "10.0.9.0/24"); err != nil {
			t.Fatal(err)
		}
	}
	// Both ways, as dockerd does: a join sent before the other weft
	// listens fails, and the other's join then connects them.
	if err := discover(w1, "127.0.0.3", false); err != nil {
		t.Fatal(err)
	}
	if err := discover(w2, "127.0.0.2", false); err != nil {
		t.Fatal(err)
	}
	if _, err := w2.d.CreateEndpoint(ctx, epReq(swarmNet1, swarmEP(2), "10.0.9.3/24", "")); err != nil {
		t.Fatal(err)
	}
	awaitPeers(t, w1, swarmNet1, []string{"10.0.9.3@192.0.2.2"}, 15*time.Second)
	left := func(h *vxHost) []string {
		recs, _ := h.d.deps.Store.List(ctx, bucketGossipLeft)
		var out []string
		for a := range recs {
			out = append(out, a)
		}
		return out
	}

	del := &network.DiscoveryNotification{DiscoveryType: 1, DiscoveryData: map[string]any{"Address": "127.0.0.3", "Self": false}}
	if err := w1.d.DiscoverDelete(ctx, del); err != nil {
		t.Fatal(err)
	}
	deleted := time.Now()
	if got := left(w1); !slices.Equal(got, []string{"127.0.0.3"}) {
		t.Errorf("w1 keeps %v as the nodes that left; want [127.0.0.3]", got)
	}
	time.Sleep(ttl / 2)
	if got := w1.m.peerIPs(swarmNet1); len(got) != 1 {
		t.Errorf("w2's endpoint left w1 %s after DiscoverDelete; it must stay for the grace period (%s): %v", time.Since(deleted).Round(time.Millisecond), ttl, got)
	}
	awaitPeers(t, w1, swarmNet1, nil, ttl+10*time.Second)
	if got := w1.m.knownVTEPs(); len(got) != 0 {
		t.Errorf("w1 still lets %v through its VXLAN filter after w2 left the swarm", got)
	}
	t.Logf("w2's endpoint and VTEP left w1 %s after DiscoverDelete (grace %s), w2's weft still gossiping", time.Since(deleted).Round(time.Millisecond), ttl)

	if err := discover(w1, "127.0.0.3", false); err != nil {
		t.Fatal(err)
	}
	awaitPeers(t, w1, swarmNet1, []string{"10.0.9.3@192.0.2.2"}, 15*time.Second)
	if got := w1.m.knownVTEPs(); !slices.Equal(got, []string{"192.0.2.2"}) {
		t.Errorf("known VTEPs %v after w2 was announced again; want [192.0.2.2]", got)
	}
	if got := left(w1); len(got) != 0 {
		t.Errorf("w1 still keeps %v as nodes that left after DiscoverNew", got)
	}
}

func (f *fakeVxlan) SetKnownVTEPs(_ context.Context, vteps []netip.Addr) error {
	f.pmu.Lock()
	defer f.pmu.Unlock()
	f.known = slices.Clone(vteps)
	return nil
}

func (f *fakeVxlan) knownVTEPs() []string {
	f.pmu.Lock()
	defer f.pmu.Unlock()
	var out []string
	for _, a := range f.known {
		out = append(out, a.String())
	}
	slices.Sort(out)
	return out
}

// swarmEP is an endpoint ID unique in its first 12 characters.
func swarmEP(n int) string { return fmt.Sprintf("%012x", 0xe0+n) + strings.Repeat("0", 52) }

func awaitPeers(t *testing.T, h *vxHost, netID string, want []string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		got := h.m.peerIPs(netID)
		if slices.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) {
			var view string
			if g, _ := h.d.gossip.status(); g != nil {
				view = fmt.Sprintf("; gossip members %+v, records %+v", g.Members(), g.Peers())
			}
			t.Fatalf("peers of %s: %v after %s; want %v%s", dataplane.ShortID(netID), got, d, want, view)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestSwarmVxlanRefusals: a global-scope weft without a gossip key, or a
// swarm network without a vni, is refused with what to do.
func TestSwarmVxlanRefusals(t *testing.T) {
	ctx := context.Background()
	d, err := NewDriver(testLogger(), ScopeGlobal)
	if err != nil {
		t.Fatal(err)
	}
	m := &fakeVxlan{fakeMode: newFakeMode(), vtep: netip.MustParseAddr("192.0.2.1"), peers: map[string][]dataplane.Peer{}}
	if err := d.Start(ctx, Deps{Store: memstore.New(), IPAM: ipam.New(nil),
		Modes: map[dataplane.ModeName]dataplane.Mode{dataplane.Bridge: m.fakeMode, dataplane.Vxlan: m}}); err != nil {
		t.Fatal(err)
	}
	h := &vxHost{d: d, m: m}
	err = swarmCreate(h, swarmNet1, map[string]string{optMode: "vxlan", optVNI: "4095"}, "10.0.9.0/24")
	if !errors.Is(err, ErrInvalidOption) || !strings.Contains(err.Error(), "WEFT_GOSSIP_KEY") {
		t.Errorf("no gossip key: got %v; want a refusal naming WEFT_GOSSIP_KEY", err)
	}
	d.deps.Gossip = &GossipSettings{Key: testGossipKey, Port: 1}
	err = swarmCreate(h, swarmNet1, map[string]string{optMode: "vxlan"}, "10.0.9.0/24")
	if !errors.Is(err, ErrInvalidOption) || !strings.Contains(err.Error(), "manager") {
		t.Errorf("no vni: got %v; want a refusal saying to create it on a manager", err)
	}
	// The gossip failing to start: refused with why.
	h.d.gossip.set(nil, errors.New("listen udp 0.0.0.0:7947: bind: address already in use"))
	err = swarmCreate(h, swarmNet1, map[string]string{optMode: "vxlan", optVNI: "4095"}, "10.0.9.0/24")
	if err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Errorf("gossip not running: got %v", err)
	}
	if len(m.nets) != 0 {
		t.Errorf("refused creates left %d networks in the kernel", len(m.nets))
	}
	// Node discovery: bad addresses refused, other types ignored.
	for _, data := range []any{map[string]any{"Address": "not-an-ip"}, map[string]any{"Address": "0.0.0.0"}, map[string]any{}, "x"} {
		if err := d.DiscoverNew(ctx, &network.DiscoveryNotification{DiscoveryType: 1, DiscoveryData: data}); err == nil {
			t.Errorf("DiscoverNew %v: accepted", data)
		}
	}
	if err := d.DiscoverNew(ctx, &network.DiscoveryNotification{DiscoveryType: 2, DiscoveryData: "keys"}); err != nil {
		t.Errorf("an encryption-key event: %v; want it ignored", err)
	}
	if seeds, _ := d.deps.Store.List(ctx, bucketGossipSeeds); len(seeds) != 0 {
		t.Errorf("refused discoveries kept %v", seeds)
	}
}
