package plugin

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dipam "github.com/docker/go-plugins-helpers/ipam"
	"github.com/docker/go-plugins-helpers/network"

	"github.com/weftnet/weft/dataplane"
	"github.com/weftnet/weft/ipam"
	"github.com/weftnet/weft/store"
	"github.com/weftnet/weft/store/memstore"
)

// clusterHost is one weft of a test cluster: its own local store, the
// shared cluster store, and its background work running.
type clusterHost struct {
	d     *Driver
	local *memstore.Store
	pool  string // the shared network's pool ID
	stop  func()
}

// startClusterHost starts a driver over local with cl as its cluster store
// (nil: the link never connects).
func startClusterHost(t *testing.T, name string, local *memstore.Store, cl store.Cluster) *clusterHost {
	t.Helper()
	d, err := NewDriver(testLogger(), ScopeLocal)
	if err != nil {
		t.Fatal(err)
	}
	link := NewClusterLink("etcd at test-" + name)
	if cl != nil {
		link.Connected(cl)
	} else {
		link.Failed(errors.New("connection refused"))
	}
	m := newFakeMode()
	deps := Deps{Store: local, IPAM: ipam.New(nil), HostName: name, Cluster: link,
		Modes: map[dataplane.ModeName]dataplane.Mode{dataplane.Bridge: m, dataplane.Macvlan: m}}
	if err := d.Start(context.Background(), deps); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); d.Run(ctx) }()
	h := &clusterHost{d: d, local: local}
	var once sync.Once
	h.stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(h.stop)
	return h
}

const lanSubnet = "192.168.50.0/24"

// lanNetwork creates the shared macvlan network on h as dockerd does: pool,
// gateway, then CreateNetwork.
func (h *clusterHost) lanNetwork(t *testing.T, id string) error {
	t.Helper()
	return h.lanNetworkOn(t, id, lanSubnet)
}

// lanNetworkOn is lanNetwork on another subnet with the same gateway.
func (h *clusterHost) lanNetworkOn(t *testing.T, id, subnet string) error {
	t.Helper()
	ctx := context.Background()
	pool, err := h.d.RequestPool(ctx, &dipam.RequestPoolRequest{AddressSpace: ipam.LocalSpace, Pool: subnet})
	if err != nil {
		t.Fatal(err)
	}
	h.pool = pool.PoolID
	if _, err := h.d.RequestAddress(ctx, &dipam.RequestAddressRequest{PoolID: pool.PoolID, Address: "192.168.50.1",
		Options: map[string]string{keyRequestAddressType: valueGateway}}); err != nil {
		t.Fatal(err)
	}
	req := createReq(id, map[string]any{optMode: "macvlan"})
	bits := netip.MustParsePrefix(subnet).Bits()
	req.IPv4Data = []*network.IPAMData{{AddressSpace: ipam.LocalSpace, Pool: subnet, Gateway: fmt.Sprintf("192.168.50.1/%d", bits)}}
	return h.d.CreateNetwork(ctx, req)
}

func (h *clusterHost) address(want string) (string, error) {
	r, err := h.d.RequestAddress(context.Background(), &dipam.RequestAddressRequest{PoolID: h.pool, Address: want})
	if err != nil {
		return "", err
	}
	return r.Address, nil
}

func (h *clusterHost) release(t *testing.T, addr string) {
	t.Helper()
	if err := h.d.ReleaseAddress(context.Background(), &dipam.ReleaseAddressRequest{PoolID: h.pool, Address: addr}); err != nil {
		t.Fatal(err)
	}
}

// clusterKeys lists the claims and reservations in the cluster store.
func clusterKeys(t *testing.T, cl store.Cluster) map[string]string {
	t.Helper()
	items, _, err := cl.ListItems(context.Background(), bucketClusterAddrs)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, it := range items {
		out[it.Key] = string(it.Value)
	}
	return out
}

func eventually(t *testing.T, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10 s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestClusterAddressesUniqueAcrossHosts: two hosts with the same macvlan
// subnet, 2 × 60 parallel requests: every address is handed out once; a
// --ip another host has is refused naming that; the gateway is reserved
// once for both; released addresses become free for the other host; and
// when both are done, the cluster store holds nothing.
func TestClusterAddressesUniqueAcrossHosts(t *testing.T) {
	cl := memstore.New()
	a := startClusterHost(t, "a", memstore.New(), cl)
	b := startClusterHost(t, "b", memstore.New(), cl)
	if err := a.lanNetwork(t, testNetID); err != nil {
		t.Fatal(err)
	}
	if err := b.lanNetwork(t, testNetID2); err != nil {
		t.Fatal(err)
	}
	const per = 60
	var mu sync.Mutex
	got := map[string]string{}
	var wg sync.WaitGroup
	errs := make(chan error, 2*per)
	for _, h := range []*clusterHost{a, b} {
		for range per {
			wg.Add(1)
			go func() {
				defer wg.Done()
				addr, err := h.address("")
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				defer mu.Unlock()
				if other, dup := got[addr]; dup {
					errs <- fmt.Errorf("%s handed out by host %s and host %s", addr, other, h.d.deps.HostName)
				}
				got[addr] = h.d.deps.HostName
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if len(got) != 2*per || got["192.168.50.1/24"] != "" {
		t.Fatalf("%d distinct addresses (gateway among them: %v), want %d", len(got), got["192.168.50.1/24"] != "", 2*per)
	}
	keys := clusterKeys(t, cl)
	if len(keys) != 2*per+1 || !strings.Contains(keys[clusterKey(netip.MustParseAddr("192.168.50.1"))], `"reserved":true`) {
		t.Fatalf("cluster store has %d records (want %d claims + the gateway reserved once)", len(keys), 2*per)
	}

	// --ip of an address host a has, on host b.
	var ofA string
	for addr, host := range got {
		if host == "a" {
			ofA = addr
			break
		}
	}
	ip := netip.MustParsePrefix(ofA).Addr().String()
	if _, err := b.address(ip); err == nil || !strings.Contains(err.Error(), "already in use on another host") || !errors.Is(err, ipam.ErrAddressInUse) {
		t.Fatalf("--ip %s of host a on host b: %v, want refused as in use on another host", ip, err)
	}
	if _, err := b.address("192.168.50.1"); err == nil || !strings.Contains(err.Error(), "already in use") {
		t.Fatalf("--ip of the gateway: %v, want refused", err)
	}

	// a releases it; b may then have it (once a's pending deletion ran and
	// b's watch saw it).
	a.release(t, ofA)
	eventually(t, "host b gets the address host a released", func() bool {
		got, err := b.address(ip)
		return err == nil && got == ofA
	})

	// Release everything and delete both networks: nothing stays.
	for addr, host := range got {
		h := a
		if host == "b" {
			h = b
		}
		if addr == ofA {
			h = b
		}
		h.release(t, addr)
	}
	for _, h := range []struct {
		*clusterHost
		id string
	}{{a, testNetID}, {b, testNetID2}} {
		if err := h.d.DeleteNetwork(context.Background(), &network.DeleteNetworkRequest{NetworkID: h.id}); err != nil {
			t.Fatal(err)
		}
		if err := h.d.ReleasePool(context.Background(), &dipam.ReleasePoolRequest{PoolID: h.pool}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "the cluster store is empty", func() bool { return len(clusterKeys(t, cl)) == 0 })
	for _, h := range []*clusterHost{a, b} {
		eventually(t, "no pending cluster write on "+h.d.deps.HostName, func() bool {
			pending, err := h.local.List(context.Background(), bucketClusterPending)
			return err == nil && len(pending) == 0
		})
	}
}

// stallingCluster, once down, answers nothing until the caller gives up:
// etcd unreachable.
type stallingCluster struct {
	store.Cluster
	down *atomic.Bool
}

func (s stallingCluster) Create(ctx context.Context, op store.Op) (int64, error) {
	if s.down.Load() {
		<-ctx.Done()
		return 0, fmt.Errorf("creating in the etcd store: etcd did not answer in time (%w)", ctx.Err())
	}
	return s.Cluster.Create(ctx, op)
}

func (s stallingCluster) GetItem(ctx context.Context, b, k string) (store.Item, bool, int64, error) {
	if s.down.Load() {
		<-ctx.Done()
		return store.Item{}, false, 0, ctx.Err()
	}
	return s.Cluster.GetItem(ctx, b, k)
}

// TestClusterOutage: with the cluster store not answering, a shared
// network's address request fails within clusterTimeout with an error naming
// the store, while a bridge network's requests go on at once; with the
// store never reached, the request fails at once with the reason.
func TestClusterOutage(t *testing.T) {
	down := &atomic.Bool{}
	h := startClusterHost(t, "down", memstore.New(), stallingCluster{memstore.New(), down})
	if err := h.lanNetwork(t, testNetID); err != nil {
		t.Fatal(err)
	}
	down.Store(true)

	done := make(chan error, 1)
	start := time.Now()
	go func() {
		_, err := h.address("")
		done <- err
	}()
	// Meanwhile a bridge network and its addresses do not wait.
	ctx := context.Background()
	bstart := time.Now()
	pool, err := h.d.RequestPool(ctx, &dipam.RequestPoolRequest{AddressSpace: ipam.LocalSpace, Pool: "10.1.0.0/24"})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.d.CreateNetwork(ctx, createReq(testNetID2, nil)); err != nil {
		t.Fatal(err)
	}
	if _, err := h.d.RequestAddress(ctx, &dipam.RequestAddressRequest{PoolID: pool.PoolID}); err != nil {
		t.Fatal(err)
	}
	bridgeTook := time.Since(bstart)
	err = <-done
	took := time.Since(start)
	if err == nil || !strings.Contains(err.Error(), "etcd store") || !strings.Contains(err.Error(), "containers already running are not affected") {
		t.Fatalf("address with the store down: %v, want an error naming the store", err)
	}
	if took > clusterTimeout+2*time.Second {
		t.Fatalf("the failing request took %v, want about %v", took, clusterTimeout)
	}
	if bridgeTook > clusterTimeout/2 {
		t.Fatalf("the bridge network's requests took %v while the store was down: they waited on it", bridgeTook)
	}
	// Nothing stays held by the failed request.
	h.d.mu.Lock()
	n := len(h.d.deps.IPAM.Allocated(h.pool))
	h.d.mu.Unlock()
	if n != 1 { // the gateway
		t.Fatalf("%d addresses held after the failed request, want only the gateway", n)
	}

	// Never connected: at once, with the reason.
	never := startClusterHost(t, "b", memstore.New(), nil)
	start = time.Now()
	err = never.lanNetwork(t, testNetID)
	if !errors.Is(err, ErrClusterUnavailable) || !strings.Contains(err.Error(), "connection refused") || time.Since(start) > time.Second {
		t.Fatalf("a shared network with the store never reached: %v after %v, want ErrClusterUnavailable at once", err, time.Since(start))
	}
	never.d.mu.Lock()
	nets := len(never.d.nets)
	never.d.mu.Unlock()
	if nets != 0 {
		t.Fatal("a refused shared network was recorded")
	}
}

// TestClusterLeftoverClaimRemoved: a claim of this host that no local record
// knows (weft killed between claiming and recording) is removed at start,
// and a recorded claim the store lost is made again.
func TestClusterLeftoverClaimRemoved(t *testing.T) {
	cl := memstore.New()
	local := memstore.New()
	h := startClusterHost(t, "a", local, cl)
	if err := h.lanNetwork(t, testNetID); err != nil {
		t.Fatal(err)
	}
	kept, err := h.address("")
	if err != nil {
		t.Fatal(err)
	}
	h.stop()
	ctx := context.Background()
	leftover := clusterKey(netip.MustParseAddr("192.168.50.77"))
	if _, err := cl.Create(ctx, store.Put(bucketClusterAddrs, leftover, []byte(`{"host":"`+h.d.cl.hostID+`"}`))); err != nil {
		t.Fatal(err)
	}
	lost := clusterKey(netip.MustParsePrefix(kept).Addr())
	if err := cl.Apply(ctx, store.Delete(bucketClusterAddrs, lost)); err != nil {
		t.Fatal(err)
	}
	startClusterHost(t, "a", local, cl)
	eventually(t, "the leftover claim removed and the lost one made again", func() bool {
		keys := clusterKeys(t, cl)
		_, left := keys[leftover]
		_, back := keys[lost]
		return !left && back
	})
}

func TestClusterKeyRoundTrip(t *testing.T) {
	for _, addr := range []string{"10.1.2.3", "fd00:1::5"} {
		a := netip.MustParseAddr(addr)
		if got, ok := splitClusterKey(clusterKey(a)); !ok || got != a {
			t.Errorf("%s: %v %v", addr, got, ok)
		}
	}
	for _, bad := range []string{"", "10.0.0.0-8|10.0.0.1", "fe80::1%eth0", "010.0.0.1", "FD00::1", "x"} {
		if _, ok := splitClusterKey(bad); ok {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestClusterOverlappingSubnets: one host's shared subnet is a /24, the
// other's the /25 inside it: addresses are still never handed out twice.
func TestClusterOverlappingSubnets(t *testing.T) {
	cl := memstore.New()
	a := startClusterHost(t, "a", memstore.New(), cl)
	b := startClusterHost(t, "b", memstore.New(), cl)
	if err := a.lanNetworkOn(t, testNetID, "192.168.50.0/24"); err != nil {
		t.Fatal(err)
	}
	if err := b.lanNetworkOn(t, testNetID2, "192.168.50.0/25"); err != nil {
		t.Fatal(err)
	}
	seen := map[netip.Addr]string{}
	for i := range 40 {
		h, name := a, "a"
		if i%2 == 1 {
			h, name = b, "b"
		}
		got, err := h.address("")
		if err != nil {
			t.Fatal(err)
		}
		addr := netip.MustParsePrefix(got).Addr()
		if other, dup := seen[addr]; dup {
			t.Fatalf("%s handed out by host %s and host %s", addr, other, name)
		}
		seen[addr] = name
	}
}
