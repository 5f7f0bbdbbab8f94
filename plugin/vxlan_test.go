package plugin

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	dipam "github.com/docker/go-plugins-helpers/ipam"
	"github.com/docker/go-plugins-helpers/network"

	"github.com/weftnet/weft/dataplane"
	"github.com/weftnet/weft/ipam"
	"github.com/weftnet/weft/store"
	"github.com/weftnet/weft/store/memstore"
)

// fakeVxlan is a fakeMode that also takes peers, as the vxlan mode does.
type fakeVxlan struct {
	*fakeMode
	vtep  netip.Addr
	pmu   sync.Mutex
	peers map[string][]dataplane.Peer
	known []netip.Addr // SetKnownVTEPs
	// failPeers, when set, is what SetPeers returns (under pmu).
	failPeers error
}

var _ dataplane.PeerSetter = (*fakeVxlan)(nil)

func (f *fakeVxlan) VTEP() (netip.Addr, error) { return f.vtep, nil }

func (f *fakeVxlan) SetPeers(_ context.Context, id string, peers []dataplane.Peer) error {
	f.mu.Lock()
	_, ok := f.nets[id]
	f.mu.Unlock()
	if !ok {
		return fmt.Errorf("no vxlan network %s", id)
	}
	for _, p := range peers {
		if p.VTEP == f.vtep {
			return fmt.Errorf("peer %s on this host's VTEP", p)
		}
	}
	f.pmu.Lock()
	defer f.pmu.Unlock()
	if f.failPeers != nil {
		return f.failPeers
	}
	f.peers[id] = slices.Clone(peers)
	return nil
}

// peerIPs lists the IPv4 addresses of a network's peers, sorted.
func (f *fakeVxlan) peerIPs(id string) []string {
	f.pmu.Lock()
	defer f.pmu.Unlock()
	var out []string
	for _, p := range f.peers[id] {
		out = append(out, p.IPv4.String()+"@"+p.VTEP.String())
	}
	slices.Sort(out)
	return out
}

type vxHost struct {
	d    *Driver
	m    *fakeVxlan
	pool string
	stop func()
}

func startVxHost(t *testing.T, name, vtep string, cl store.Cluster, ttl time.Duration) *vxHost {
	t.Helper()
	d, err := NewDriver(testLogger(), ScopeLocal)
	if err != nil {
		t.Fatal(err)
	}
	link := NewClusterLink("etcd at test")
	link.Connected(cl)
	m := &fakeVxlan{fakeMode: newFakeMode(), vtep: netip.MustParseAddr(vtep), peers: map[string][]dataplane.Peer{}}
	deps := Deps{Store: memstore.New(), IPAM: ipam.New(nil), HostName: name, Cluster: link, LeaseTTL: ttl,
		Modes: map[dataplane.ModeName]dataplane.Mode{dataplane.Bridge: m.fakeMode, dataplane.Vxlan: m}}
	return runVxHost(t, d, m, deps)
}

// runVxHost starts d over deps and runs its background work until the test
// ends or the host's stop is called.
func runVxHost(t *testing.T, d *Driver, m *fakeVxlan, deps Deps) *vxHost {
	t.Helper()
	if err := d.Start(context.Background(), deps); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); d.Run(ctx) }()
	var once sync.Once
	h := &vxHost{d: d, m: m}
	h.stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(h.stop)
	return h
}

// vxNetwork creates a vxlan network on h as dockerd does.
func (h *vxHost) vxNetwork(id, subnet string, opts map[string]any) error {
	ctx := context.Background()
	pool, err := h.d.RequestPool(ctx, &dipam.RequestPoolRequest{AddressSpace: ipam.LocalSpace, Pool: subnet})
	if err != nil {
		return err
	}
	h.pool = pool.PoolID
	generic := map[string]any{optMode: "vxlan"}
	for k, v := range opts {
		generic[k] = v
	}
	req := createReq(id, generic)
	req.IPv4Data = []*network.IPAMData{{AddressSpace: ipam.LocalSpace, Pool: subnet}}
	if err := h.d.CreateNetwork(ctx, req); err != nil {
		_ = h.d.ReleasePool(ctx, &dipam.ReleasePoolRequest{PoolID: pool.PoolID})
		return err
	}
	return nil
}

// container attaches an endpoint with a fresh cluster-wide address.
func (h *vxHost) container(t *testing.T, netID, epID string) string {
	t.Helper()
	ctx := context.Background()
	r, err := h.d.RequestAddress(ctx, &dipam.RequestAddressRequest{PoolID: h.pool})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.d.CreateEndpoint(ctx, epReq(netID, epID, r.Address, "")); err != nil {
		t.Fatal(err)
	}
	return netip.MustParsePrefix(r.Address).Addr().String()
}

func (h *vxHost) network(id string) dataplane.Network {
	h.d.mu.Lock()
	defer h.d.mu.Unlock()
	return h.d.nets[id].Network
}

func epID(n int) string { return fmt.Sprintf("%064x", n+0xe0) }

// TestVxlanAcrossHosts: two hosts create the same subnet: one VNI, chosen
// below 4096; each gets the other's endpoints as peers (MAC from the IP);
// a conflicting definition is refused by name; an endpoint's removal and a
// host whose lease ends withdraw its peers; when every host deleted the
// network, the cluster holds nothing of it.
func TestVxlanAcrossHosts(t *testing.T) {
	cl := memstore.New()
	a := startVxHost(t, "a", "192.0.2.1", cl, 2*time.Second)
	b := startVxHost(t, "b", "192.0.2.2", cl, 2*time.Second)
	const subnet = "10.90.0.0/24"
	if err := a.vxNetwork(testNetID, subnet, nil); err != nil {
		t.Fatal(err)
	}
	if err := b.vxNetwork(testNetID2, subnet, nil); err != nil {
		t.Fatal(err)
	}
	vniA, vniB := a.network(testNetID).Vxlan.VNI, b.network(testNetID2).Vxlan.VNI
	if vniA == 0 || vniA != vniB || vniA > lastAutoVNI {
		t.Fatalf("VNIs %d and %d: want one VNI below 4096 on both hosts", vniA, vniB)
	}

	ipA := a.container(t, testNetID, epID(1))
	ipB := b.container(t, testNetID2, epID(2))
	if ipA == ipB {
		t.Fatalf("both hosts handed out %s", ipA)
	}
	eventually(t, "each host has the other's endpoint as its peer", func() bool {
		return slices.Equal(a.m.peerIPs(testNetID), []string{ipB + "@192.0.2.2"}) &&
			slices.Equal(b.m.peerIPs(testNetID2), []string{ipA + "@192.0.2.1"})
	})
	a.m.pmu.Lock()
	mac := a.m.peers[testNetID][0].MAC.String()
	a.m.pmu.Unlock()
	if want := vxlanMAC(dataplane.Endpoint{IPv4: netip.MustParsePrefix(ipB + "/24")}).String(); mac != want {
		t.Errorf("peer MAC %s, want %s (derived from the IP)", mac, want)
	}

	// The same subnet with another VNI, and the VNI with another subnet.
	c := startVxHost(t, "c", "192.0.2.3", cl, 2*time.Second)
	err := c.vxNetwork(testNetID, subnet, map[string]any{optVNI: fmt.Sprint(vniA + 1)})
	if !errors.Is(err, ErrInvalidOption) || !strings.Contains(err.Error(), fmt.Sprintf("vni %d", vniA)) {
		t.Fatalf("same subnet, other vni: %v, want refused naming vni %d", err, vniA)
	}
	err = c.vxNetwork(testNetID, "10.91.0.0/24", map[string]any{optVNI: fmt.Sprint(vniA)})
	if !errors.Is(err, ErrInvalidOption) || !strings.Contains(err.Error(), subnet) {
		t.Fatalf("same vni, other subnet: %v, want refused naming %s", err, subnet)
	}
	if err := c.vxNetwork(testNetID, "10.92.0.0/24", nil); err != nil {
		t.Fatal(err)
	}
	if got := c.network(testNetID).Vxlan.VNI; got == vniA || got == 0 {
		t.Fatalf("a second subnet got vni %d (the first has %d)", got, vniA)
	}

	// b's endpoint goes: a's peers follow.
	if err := b.d.DeleteEndpoint(context.Background(), &network.DeleteEndpointRequest{NetworkID: testNetID2, EndpointID: epID(2)}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "host a drops the removed endpoint", func() bool { return len(a.m.peerIPs(testNetID)) == 0 })

	// A host that stops: its endpoints go when its lease ends.
	b.container(t, testNetID2, epID(3))
	eventually(t, "host a sees b's new endpoint", func() bool { return len(a.m.peerIPs(testNetID)) == 1 })
	b.stop()
	deadline := time.Now().Add(15 * time.Second)
	for len(a.m.peerIPs(testNetID)) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("a stopped host's endpoints stayed after its lease's TTL")
		}
		time.Sleep(20 * time.Millisecond)
	}

	// Every host deletes the network: no definition, VNI or endpoint stays.
	for _, h := range []struct {
		*vxHost
		id string
	}{{a, testNetID}, {c, testNetID}} {
		ctx := context.Background()
		h.d.mu.Lock()
		var eps []string
		for id, r := range h.d.eps {
			if r.Endpoint.NetworkID == h.id {
				eps = append(eps, id)
			}
		}
		h.d.mu.Unlock()
		for _, ep := range eps {
			if err := h.d.DeleteEndpoint(ctx, &network.DeleteEndpointRequest{NetworkID: h.id, EndpointID: ep}); err != nil {
				t.Fatal(err)
			}
		}
		if err := h.d.DeleteNetwork(ctx, &network.DeleteNetworkRequest{NetworkID: h.id}); err != nil {
			t.Fatal(err)
		}
	}
	// b is stopped: its membership stays until it comes back and deletes.
	eventually(t, "only b's membership of the first network is left", func() bool {
		ctx := context.Background()
		nets, _ := cl.List(ctx, bucketVxlanNets)
		vnis, _ := cl.List(ctx, bucketVxlanVNIs)
		eps, _ := cl.List(ctx, bucketVxlanEPs)
		return len(nets) == 1 && len(vnis) == 1 && len(eps) == 0
	})
}

// TestVxlanNeedsTheClusterStore: without WEFT_STORE, or without weft's
// IPAM, a vxlan network is refused with the reason.
func TestVxlanNeedsTheClusterStore(t *testing.T) {
	m := &fakeVxlan{fakeMode: newFakeMode(), vtep: netip.MustParseAddr("192.0.2.1"), peers: map[string][]dataplane.Peer{}}
	d, err := NewDriver(testLogger(), ScopeLocal)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(context.Background(), Deps{Store: memstore.New(), IPAM: ipam.New(nil),
		Modes: map[dataplane.ModeName]dataplane.Mode{dataplane.Vxlan: m}}); err != nil {
		t.Fatal(err)
	}
	h := &vxHost{d: d, m: m}
	if err := h.vxNetwork(testNetID, "10.90.0.0/24", nil); err == nil || !strings.Contains(err.Error(), "WEFT_STORE") {
		t.Fatalf("vxlan without a cluster store: %v, want refused naming WEFT_STORE", err)
	}
	cl := startVxHost(t, "a", "192.0.2.1", memstore.New(), 0)
	req := createReq(testNetID, map[string]any{optMode: "vxlan"})
	req.IPv4Data = []*network.IPAMData{{AddressSpace: "", Pool: "10.90.0.0/24"}} // Docker's default IPAM
	if err := cl.d.CreateNetwork(context.Background(), req); err == nil || !strings.Contains(err.Error(), "--ipam-driver weft") {
		t.Fatalf("vxlan on another IPAM driver: %v, want refused naming --ipam-driver weft", err)
	}
	if len(m.nets) != 0 || len(cl.m.nets) != 0 {
		t.Fatal("a refused vxlan network reached the mode")
	}
}
