package plugin

import (
	"context"
	"net/netip"
	"testing"
	"time"

	dipam "github.com/docker/go-plugins-helpers/ipam"
	"github.com/docker/go-plugins-helpers/network"

	"github.com/weftnet/weft/dataplane"
	"github.com/weftnet/weft/ipam"
	"github.com/weftnet/weft/store"
	"github.com/weftnet/weft/store/memstore"
)

const testEpID3 = "dddd456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// orphanWorld is a weft-IPAM network with three endpoints, each with an
// address from weft's pool, made the way dockerd makes them; the first has a
// published port.
type orphanWorld struct {
	st     store.Store
	poolID string
	addrs  map[string]netip.Addr // by endpoint
}

func newOrphanWorld(t *testing.T) orphanWorld {
	t.Helper()
	ctx := context.Background()
	w := orphanWorld{st: memstore.New(), addrs: map[string]netip.Addr{}}
	d := startPublishingWith(t, w.st, newFakePublisher(), 0)
	pool, err := d.RequestPool(ctx, &dipam.RequestPoolRequest{AddressSpace: ipam.LocalSpace, Pool: "10.1.0.0/24"})
	if err != nil {
		t.Fatal(err)
	}
	w.poolID = pool.PoolID
	if _, err := d.RequestAddress(ctx, &dipam.RequestAddressRequest{PoolID: w.poolID, Address: "10.1.0.1", Options: map[string]string{keyRequestAddressType: valueGateway}}); err != nil {
		t.Fatal(err)
	}
	if err := d.CreateNetwork(ctx, createReq(testNetID, nil)); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{testEpID, testEpID2, testEpID3} {
		a, err := d.RequestAddress(ctx, &dipam.RequestAddressRequest{PoolID: w.poolID})
		if err != nil {
			t.Fatal(err)
		}
		p := netip.MustParsePrefix(a.Address)
		w.addrs[id] = p.Addr()
		if _, err := d.CreateEndpoint(ctx, epReq(testNetID, id, a.Address, "")); err != nil {
			t.Fatal(err)
		}
		if _, err := d.Join(ctx, &network.JoinRequest{NetworkID: testNetID, EndpointID: id}); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.ProgramExternalConnectivity(ctx, pec(testNetID, testEpID, portmap(t, `[{"Proto":6,"Port":80,"HostPort":8080,"HostPortEnd":8080}]`))); err != nil {
		t.Fatal(err)
	}
	return w
}

// startPublishingWith starts a driver over st and m with the given grace
// period for detached endpoints.
func startPublishingWith(t *testing.T, st store.Store, m *fakePublisher, grace time.Duration) *Driver {
	t.Helper()
	d, err := NewDriver(testLogger(), ScopeLocal)
	if err != nil {
		t.Fatal(err)
	}
	pools, _ := ipam.ParseDefaultPools(ipam.DefaultPoolsSetting)
	deps := Deps{Store: st, IPAM: ipam.New(pools), Modes: map[dataplane.ModeName]dataplane.Mode{dataplane.Bridge: m}, DetachedGrace: grace}
	if err := d.Start(context.Background(), deps); err != nil {
		t.Fatal(err)
	}
	return d
}

func (w orphanWorld) allocated(d *Driver, id string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.deps.IPAM.IsAllocated(w.poolID, w.addrs[id])
}

func (w orphanWorld) stored(t *testing.T, bucket, key string) bool {
	t.Helper()
	_, ok, err := w.st.Get(context.Background(), bucket, key)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

// TestGoneEndpointsReleaseTheirAddresses: an endpoint whose links vanished
// while weft was down is forgotten at start with its address (dockerd's
// ReleaseAddress could not reach weft either) and its published port.
func TestGoneEndpointsReleaseTheirAddresses(t *testing.T) {
	w := newOrphanWorld(t)
	m := newFakePublisher()
	m.gone[testEpID] = true
	d := startPublishingWith(t, w.st, m, time.Hour)
	if w.allocated(d, testEpID) || w.stored(t, bucketAddresses, addressKey(w.poolID, w.addrs[testEpID])) {
		t.Errorf("the gone endpoint's address %s is still allocated", w.addrs[testEpID])
	}
	if w.stored(t, bucketEndpoints, testEpID) || w.stored(t, bucketPorts, testEpID) {
		t.Error("the gone endpoint's records (endpoint, published ports) are still stored")
	}
	if len(m.reconciled) != 0 {
		t.Errorf("ports of a gone endpoint published again: %+v", m.reconciled)
	}
	for _, id := range []string{testEpID2, testEpID3} {
		if !w.allocated(d, id) || !w.stored(t, bucketEndpoints, id) {
			t.Errorf("live endpoint %s lost its record or address", id[:4])
		}
	}
}

// TestAddressOfAnotherEndpointKept: if Docker did release the address and
// gave it to a new container, the gone endpoint's release must not free it.
func TestAddressOfAnotherEndpointKept(t *testing.T) {
	w := newOrphanWorld(t)
	// The gone endpoint's record claims the address endpoint 2 has.
	d := startPublishingWith(t, w.st, newFakePublisher(), time.Hour)
	d.mu.Lock()
	r := *d.eps[testEpID]
	r.Endpoint.IPv4 = netip.PrefixFrom(w.addrs[testEpID2], 24)
	op, err := putJSON(bucketEndpoints, testEpID, r)
	if err == nil {
		err = d.save(context.Background(), op)
	}
	d.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	m := newFakePublisher()
	m.gone[testEpID] = true
	d = startPublishingWith(t, w.st, m, time.Hour)
	if !w.allocated(d, testEpID2) {
		t.Fatalf("address %s of a live endpoint was released with a gone endpoint that recorded it too", w.addrs[testEpID2])
	}
	if !w.allocated(d, testEpID) {
		t.Errorf("address %s, recorded by no endpoint any more, was released: the gone endpoint did not record it", w.addrs[testEpID])
	}
}

// TestDetachedEndpointsRemovedAfterGrace: endpoints whose container side is
// back in the host namespace are removed once the grace period is over —
// links, published ports, address and record — unless Docker joins them
// (an attach weft's restart interrupted) or deletes them meanwhile.
func TestDetachedEndpointsRemovedAfterGrace(t *testing.T) {
	ctx := context.Background()
	w := newOrphanWorld(t)
	m := newFakePublisher()
	for _, id := range []string{testEpID, testEpID2, testEpID3} {
		m.detached[id] = true
	}
	const grace = 200 * time.Millisecond
	d := startPublishingWith(t, w.st, m, grace)
	runCtx, stop := context.WithCancel(ctx)
	ran := make(chan struct{})
	go func() { defer close(ran); d.Run(runCtx) }()
	t.Cleanup(func() { stop(); <-ran })
	if !w.stored(t, bucketEndpoints, testEpID) || !w.allocated(d, testEpID) {
		t.Fatal("a detached endpoint was removed before the grace period ended")
	}
	if len(m.reconciled) != 1 || m.reconciled[0].Endpoint.ID != testEpID {
		t.Fatalf("the detached endpoint's port is not held during the grace period: %+v", m.reconciled)
	}
	// Docker goes on with endpoint 2 (its Join was interrupted) and deletes 3.
	if _, err := d.Join(ctx, &network.JoinRequest{NetworkID: testNetID, EndpointID: testEpID2}); err != nil {
		t.Fatal(err)
	}
	if err := d.DeleteEndpoint(ctx, &network.DeleteEndpointRequest{NetworkID: testNetID, EndpointID: testEpID3}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for w.stored(t, bucketEndpoints, testEpID) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if w.stored(t, bucketEndpoints, testEpID) {
		t.Fatal("the detached endpoint is still recorded after the grace period")
	}
	if w.allocated(d, testEpID) || w.stored(t, bucketPorts, testEpID) {
		t.Error("the detached endpoint's address or published port outlived it")
	}
	m.pmu.Lock()
	unpublished := len(m.unpublish)
	m.pmu.Unlock()
	if unpublished != 1 {
		t.Errorf("Unpublish called %d times, want once for the detached endpoint's port", unpublished)
	}
	m.mu.Lock()
	_, linksLeft := m.eps[testEpID]
	m.mu.Unlock()
	if linksLeft {
		t.Error("the detached endpoint's links were not deleted")
	}
	if !w.stored(t, bucketEndpoints, testEpID2) || !w.allocated(d, testEpID2) {
		t.Error("an endpoint Docker joined after the restart was removed")
	}
}

// TestRunStopsWithItsContext: Run returns once its context ends, with the
// detached endpoints' removal still waiting for its grace period not done.
func TestRunStopsWithItsContext(t *testing.T) {
	w := newOrphanWorld(t)
	m := newFakePublisher()
	m.detached[testEpID] = true
	d := startPublishingWith(t, w.st, m, time.Hour)
	ctx, stop := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() { defer close(ran); d.Run(ctx) }()
	time.Sleep(50 * time.Millisecond) // let every piece of work start waiting
	stop()
	select {
	case <-ran:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	if !w.stored(t, bucketEndpoints, testEpID) {
		t.Error("a detached endpoint was removed before its grace period ended")
	}
}
