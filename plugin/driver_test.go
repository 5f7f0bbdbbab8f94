package plugin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	dipam "github.com/docker/go-plugins-helpers/ipam"
	"github.com/docker/go-plugins-helpers/network"

	"github.com/weftnet/weft/dataplane"
	"github.com/weftnet/weft/ipam"
	"github.com/weftnet/weft/store"
	"github.com/weftnet/weft/store/memstore"
)

const (
	testEpID  = "eeee456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	testEpID2 = "ffff456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
)

type fakeRoutes []netip.Prefix

func (f fakeRoutes) HostRoutes() ([]netip.Prefix, error) { return f, nil }

func testLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// startDriver builds a started driver over st with a fresh fake mode.
func startDriver(t testing.TB, st store.Store) (*Driver, *fakeMode) {
	t.Helper()
	m := newFakeMode()
	return startDriverWith(t, st, m), m
}

// startDriverWith builds a started driver over st and m.
func startDriverWith(t testing.TB, st store.Store, m *fakeMode) *Driver {
	t.Helper()
	d, err := NewDriver(testLogger(), ScopeLocal)
	if err != nil {
		t.Fatal(err)
	}
	pools, err := ipam.ParseDefaultPools(ipam.DefaultPoolsSetting)
	if err != nil {
		t.Fatal(err)
	}
	deps := Deps{Store: st, IPAM: ipam.New(pools), Modes: map[dataplane.ModeName]dataplane.Mode{dataplane.Bridge: m}, Routes: fakeRoutes{netip.MustParsePrefix("10.208.0.0/24"), netip.MustParsePrefix("0.0.0.0/0")}}
	if err := d.Start(context.Background(), deps); err != nil {
		t.Fatal(err)
	}
	return d
}

func createReq(id string, generic map[string]any) *network.CreateNetworkRequest {
	return &network.CreateNetworkRequest{
		NetworkID: id,
		Options:   map[string]any{keyGeneric: generic, keyEnableIPv6: false},
		IPv4Data:  []*network.IPAMData{{AddressSpace: ipam.LocalSpace, Pool: "10.1.0.0/24", Gateway: "10.1.0.1/24"}},
	}
}

func epReq(netID, epID, addr, mac string) *network.CreateEndpointRequest {
	return &network.CreateEndpointRequest{NetworkID: netID, EndpointID: epID, Interface: &network.EndpointInterface{Address: addr, MacAddress: mac}}
}

func TestCreateNetworkRecordsAndIsIdempotent(t *testing.T) {
	ctx := context.Background()
	st := memstore.New()
	d, m := startDriver(t, st)
	if err := d.CreateNetwork(ctx, createReq(testNetID, nil)); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := st.Get(ctx, bucketNetworks, testNetID); !ok {
		t.Fatal("network not in the store after CreateNetwork answered")
	}
	if err := d.CreateNetwork(ctx, createReq(testNetID, nil)); err != nil {
		t.Fatalf("repeat with same content: %v", err)
	}
	err := d.CreateNetwork(ctx, createReq(testNetID, map[string]any{optEnableICC: "false"}))
	if err == nil || !strings.Contains(err.Error(), "different settings") {
		t.Fatalf("same ID, different content: %v", err)
	}
	if got := strings.Join(m.calls, ","); got != "Reconcile,CreateNetwork" {
		t.Fatalf("mode calls %s", got)
	}
}

func TestCreateNetworkFailuresLeaveNothing(t *testing.T) {
	ctx := context.Background()
	st := memstore.New()
	d, m := startDriver(t, st)

	m.fail["CreateNetwork"] = errors.New("kernel says no")
	err := d.CreateNetwork(ctx, createReq(testNetID, nil))
	if err == nil || !strings.Contains(err.Error(), "kernel says no") {
		t.Fatalf("mode failure: %v", err)
	}
	st.FailNext(errors.New("disk full"))
	err = d.CreateNetwork(ctx, createReq(testNetID, nil))
	if err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("store failure: %v", err)
	}
	if len(m.nets) != 0 {
		t.Fatalf("store failure left the kernel network behind: %v", m.calls)
	}
	if recs, _ := st.List(ctx, bucketNetworks); len(recs) != 0 {
		t.Fatalf("failed creates left records: %v", recs)
	}
	if err := d.CreateNetwork(ctx, createReq(testNetID, nil)); err != nil {
		t.Fatalf("create after failures: %v", err)
	}
}

func TestCreateNetworkConflictsAndModes(t *testing.T) {
	ctx := context.Background()
	d, _ := startDriver(t, memstore.New())
	if err := d.CreateNetwork(ctx, createReq(testNetID, map[string]any{optBridgeName: "br-same"})); err != nil {
		t.Fatal(err)
	}
	other := strings.Replace(testNetID, "0123", "9999", 1)
	err := d.CreateNetwork(ctx, createReq(other, map[string]any{optBridgeName: "br-same"}))
	if err == nil || !strings.Contains(err.Error(), `"br-same" is already used`) {
		t.Fatalf("bridge name clash: %v", err)
	}
	twin := testNetID[:12] + strings.Repeat("f", len(testNetID)-12)
	if err := d.CreateNetwork(ctx, createReq(twin, nil)); err == nil || !strings.Contains(err.Error(), "same 12 characters") {
		t.Fatalf("short-ID clash: %v", err)
	}
	mv := createReq(other, map[string]any{optMode: "macvlan", optParent: "eth0"})
	mv.IPv4Data[0].Pool, mv.IPv4Data[0].Gateway = "10.2.0.0/24", "10.2.0.1/24"
	err = d.CreateNetwork(ctx, mv)
	if err == nil || !strings.Contains(err.Error(), "mode macvlan is not available") {
		t.Fatalf("unwired mode: %v", err)
	}
}

func TestEndpointLifecycle(t *testing.T) {
	ctx := context.Background()
	st := memstore.New()
	d, m := startDriver(t, st)
	if err := d.CreateNetwork(ctx, createReq(testNetID, nil)); err != nil {
		t.Fatal(err)
	}
	resp, err := d.CreateEndpoint(ctx, epReq(testNetID, testEpID, "10.1.0.2/24", ""))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Interface == nil || resp.Interface.MacAddress == "" || resp.Interface.Address != "" {
		t.Fatalf("want only a generated MAC back, got %+v", resp.Interface)
	}
	again, err := d.CreateEndpoint(ctx, epReq(testNetID, testEpID, "10.1.0.2/24", ""))
	if err != nil || again.Interface == nil || again.Interface.MacAddress != resp.Interface.MacAddress {
		t.Fatalf("repeat CreateEndpoint: %+v %v", again, err)
	}
	given, err := d.CreateEndpoint(ctx, epReq(testNetID, testEpID2, "10.1.0.3/24", "02:42:0a:01:00:03"))
	if err != nil || given.Interface != nil {
		t.Fatalf("Docker gave a MAC: weft must echo nothing, got %+v %v", given, err)
	}
	if got := m.eps[testEpID2].MAC.String(); got != "02:42:0a:01:00:03" {
		t.Fatalf("mode got MAC %s", got)
	}
	join, err := d.Join(ctx, &network.JoinRequest{NetworkID: testNetID, EndpointID: testEpID, SandboxKey: "/var/run/docker/netns/x"})
	if err != nil {
		t.Fatal(err)
	}
	if join.InterfaceName.SrcName == "" || join.InterfaceName.DstPrefix != "eth" || join.Gateway != "10.1.0.1" {
		t.Fatalf("join = %+v", join)
	}
	if len(join.StaticRoutes) != 1 || join.StaticRoutes[0].Destination != "10.99.0.0/16" || join.StaticRoutes[0].NextHop != "10.1.0.1" {
		t.Fatalf("routes = %+v", join.StaticRoutes)
	}
	if _, err := d.Join(ctx, &network.JoinRequest{NetworkID: testNetID, EndpointID: "nope"}); err == nil {
		t.Fatal("join of unknown endpoint succeeded")
	}
	if err := d.Leave(ctx, &network.LeaveRequest{NetworkID: testNetID, EndpointID: testEpID}); err != nil {
		t.Fatal(err)
	}
	if err := d.Leave(ctx, &network.LeaveRequest{NetworkID: testNetID, EndpointID: "nope"}); err != nil {
		t.Fatalf("leave of unknown endpoint: %v", err)
	}
	if err := d.DeleteEndpoint(ctx, &network.DeleteEndpointRequest{NetworkID: testNetID, EndpointID: testEpID}); err != nil {
		t.Fatal(err)
	}
	if err := d.DeleteEndpoint(ctx, &network.DeleteEndpointRequest{NetworkID: testNetID, EndpointID: testEpID}); err != nil {
		t.Fatalf("second delete: %v", err)
	}
	if _, ok := m.eps[testEpID]; ok {
		t.Fatal("mode still has the deleted endpoint")
	}
	// testEpID2 is left for DeleteNetwork to clean (Docker may never send its delete).
	if err := d.DeleteNetwork(ctx, &network.DeleteNetworkRequest{NetworkID: testNetID}); err != nil {
		t.Fatal(err)
	}
	if len(m.eps) != 0 || len(m.nets) != 0 {
		t.Fatalf("left behind: nets %v eps %v", m.nets, m.eps)
	}
	for _, b := range []string{bucketNetworks, bucketEndpoints} {
		if recs, _ := st.List(ctx, b); len(recs) != 0 {
			t.Fatalf("bucket %s still has %v", b, recs)
		}
	}
	if err := d.DeleteNetwork(ctx, &network.DeleteNetworkRequest{NetworkID: testNetID}); err != nil {
		t.Fatalf("second DeleteNetwork: %v", err)
	}
}

func TestEndpointFailuresLeaveNothing(t *testing.T) {
	ctx := context.Background()
	st := memstore.New()
	d, m := startDriver(t, st)
	if err := d.CreateNetwork(ctx, createReq(testNetID, nil)); err != nil {
		t.Fatal(err)
	}
	if _, err := d.CreateEndpoint(ctx, epReq(strings.Repeat("9", 64), testEpID, "10.1.0.2/24", "")); err == nil || !strings.Contains(err.Error(), "not a weft network") {
		t.Fatalf("endpoint on unknown network: %v", err)
	}
	if _, err := d.CreateEndpoint(ctx, epReq(testNetID, testEpID, "10.1.0.2", "")); err == nil {
		t.Fatal("address without prefix length accepted")
	}
	st.FailNext(errors.New("disk full"))
	if _, err := d.CreateEndpoint(ctx, epReq(testNetID, testEpID, "10.1.0.2/24", "")); err == nil {
		t.Fatal("store failure not reported")
	}
	if len(m.eps) != 0 {
		t.Fatal("store failure left the endpoint's link behind")
	}
}

func TestIPAMFlow(t *testing.T) {
	ctx := context.Background()
	st := memstore.New()
	d, _ := startDriver(t, st)
	spaces := d.AddressSpaces()
	if spaces.LocalDefaultAddressSpace != ipam.LocalSpace || spaces.GlobalDefaultAddressSpace != ipam.GlobalSpace {
		t.Fatalf("spaces = %+v", spaces)
	}
	pool, err := d.RequestPool(ctx, &dipam.RequestPoolRequest{AddressSpace: ipam.LocalSpace, Pool: "10.1.0.0/24"})
	if err != nil || pool.Pool != "10.1.0.0/24" || pool.PoolID == "" {
		t.Fatalf("explicit pool: %+v %v", pool, err)
	}
	if _, err := d.RequestPool(ctx, &dipam.RequestPoolRequest{AddressSpace: ipam.LocalSpace, Pool: "10.1.0.0/16"}); err == nil || !strings.Contains(err.Error(), "10.1.0.0/16") {
		t.Fatalf("overlap: %v", err)
	}
	if _, err := d.RequestPool(ctx, &dipam.RequestPoolRequest{AddressSpace: ipam.LocalSpace, Pool: "10.1.0.0/24", Options: map[string]string{"color": "blue"}}); err == nil || !strings.Contains(err.Error(), `"color"`) {
		t.Fatalf("unknown ipam option: %v", err)
	}
	def, err := d.RequestPool(ctx, &dipam.RequestPoolRequest{AddressSpace: ipam.LocalSpace})
	if err != nil {
		t.Fatal(err)
	}
	if def.Pool == "10.208.0.0/24" {
		t.Fatal("default pool overlaps a host route")
	}
	gw, err := d.RequestAddress(ctx, &dipam.RequestAddressRequest{PoolID: pool.PoolID, Options: map[string]string{keyRequestAddressType: valueGateway}})
	if err != nil || gw.Address != "10.1.0.1/24" {
		t.Fatalf("gateway: %+v %v", gw, err)
	}
	a, err := d.RequestAddress(ctx, &dipam.RequestAddressRequest{PoolID: pool.PoolID})
	if err != nil || a.Address != "10.1.0.2/24" {
		t.Fatalf("first address: %+v %v", a, err)
	}
	if err := d.ReleaseAddress(ctx, &dipam.ReleaseAddressRequest{PoolID: pool.PoolID, Address: "10.1.0.2"}); err != nil {
		t.Fatal(err)
	}
	b, err := d.RequestAddress(ctx, &dipam.RequestAddressRequest{PoolID: pool.PoolID})
	if err != nil || b.Address != "10.1.0.3/24" {
		t.Fatalf("just-released address handed out again: %+v %v", b, err)
	}
	if _, err := d.RequestAddress(ctx, &dipam.RequestAddressRequest{PoolID: pool.PoolID, Address: "10.1.0.3"}); err == nil || !strings.Contains(err.Error(), "10.1.0.3") {
		t.Fatalf("taken address: %v", err)
	}
	if err := d.ReleaseAddress(ctx, &dipam.ReleaseAddressRequest{PoolID: pool.PoolID, Address: "10.1.0.77"}); err != nil {
		t.Fatalf("release of an address never handed out: %v", err)
	}
	if err := d.ReleasePool(ctx, &dipam.ReleasePoolRequest{PoolID: pool.PoolID}); err != nil {
		t.Fatal(err)
	}
	if recs, _ := st.List(ctx, bucketAddresses); len(recs) != 0 {
		// only the default pool's records could remain, and it has no addresses
		t.Fatalf("address records left after ReleasePool: %v", recs)
	}
	if err := d.ReleasePool(ctx, &dipam.ReleasePoolRequest{PoolID: pool.PoolID}); err != nil {
		t.Fatalf("second ReleasePool: %v", err)
	}
}

// TestRestartSameAnswers rebuilds the driver from the same store, as after a
// kill -9, and checks that it answers as the first one would have.
func TestRestartSameAnswers(t *testing.T) {
	ctx := context.Background()
	st := memstore.New()
	d1, _ := startDriver(t, st)
	pool, err := d1.RequestPool(ctx, &dipam.RequestPoolRequest{AddressSpace: ipam.LocalSpace, Pool: "10.1.0.0/24"})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 { // gateway .1 is not requested here; .1 .2 .3 handed out
		if _, err := d1.RequestAddress(ctx, &dipam.RequestAddressRequest{PoolID: pool.PoolID}); err != nil {
			t.Fatal(err)
		}
	}
	if err := d1.ReleaseAddress(ctx, &dipam.ReleaseAddressRequest{PoolID: pool.PoolID, Address: "10.1.0.2"}); err != nil {
		t.Fatal(err)
	}
	if err := d1.CreateNetwork(ctx, createReq(testNetID, nil)); err != nil {
		t.Fatal(err)
	}
	ep1, err := d1.CreateEndpoint(ctx, epReq(testNetID, testEpID, "10.1.0.3/24", ""))
	if err != nil {
		t.Fatal(err)
	}
	join1, err := d1.Join(ctx, &network.JoinRequest{NetworkID: testNetID, EndpointID: testEpID})
	if err != nil {
		t.Fatal(err)
	}

	d2, m2 := startDriver(t, st) // d1 is abandoned without any shutdown
	if len(m2.reconciledNets) != 1 || len(m2.reconciledEps) != 1 {
		t.Fatalf("reconcile got nets %v eps %v", m2.reconciledNets, m2.reconciledEps)
	}
	next, err := d2.RequestAddress(ctx, &dipam.RequestAddressRequest{PoolID: pool.PoolID})
	if err != nil || next.Address != "10.1.0.4/24" {
		t.Fatalf("after restart the next address is %+v (%v); want 10.1.0.4/24 (cursor kept, no reuse)", next, err)
	}
	if _, err := d2.RequestAddress(ctx, &dipam.RequestAddressRequest{PoolID: pool.PoolID, Address: "10.1.0.3"}); err == nil {
		t.Fatal("address held before the restart handed out again")
	}
	ep2, err := d2.CreateEndpoint(ctx, epReq(testNetID, testEpID, "10.1.0.3/24", ""))
	if err != nil || ep2.Interface.MacAddress != ep1.Interface.MacAddress {
		t.Fatalf("repeat CreateEndpoint after restart: %+v %v", ep2, err)
	}
	join2, err := d2.Join(ctx, &network.JoinRequest{NetworkID: testNetID, EndpointID: testEpID})
	if err != nil || join2.InterfaceName != join1.InterfaceName || join2.Gateway != join1.Gateway {
		t.Fatalf("join after restart %+v, before %+v (%v)", join2, join1, err)
	}
	if err := d2.CreateNetwork(ctx, createReq(testNetID, nil)); err != nil {
		t.Fatalf("network forgotten after restart: %v", err)
	}
	if _, err := d2.RequestPool(ctx, &dipam.RequestPoolRequest{AddressSpace: ipam.LocalSpace, Pool: "10.1.0.0/24"}); err == nil {
		t.Fatal("pool held before the restart granted again")
	}
}

// requestWaitsForStart checks that a request to d waits until Start has run
// (it is not answered within 50 ms), then starts d and checks that the
// request succeeds.
func requestWaitsForStart(t *testing.T, d *Driver) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- d.CreateNetwork(context.Background(), createReq(testNetID, nil)) }()
	select {
	case err := <-done:
		t.Fatalf("request answered before start: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	pools, _ := ipam.ParseDefaultPools(ipam.DefaultPoolsSetting)
	if err := d.Start(context.Background(), Deps{Store: memstore.New(), IPAM: ipam.New(pools), Modes: map[dataplane.ModeName]dataplane.Mode{dataplane.Bridge: newFakeMode()}}); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("request after start: %v", err)
	}
}

func TestRequestsWaitForStart(t *testing.T) {
	d, err := NewDriver(testLogger(), ScopeLocal)
	if err != nil {
		t.Fatal(err)
	}
	requestWaitsForStart(t, d)
}

func TestFailedStartAnswersWithTheReason(t *testing.T) {
	d, err := NewDriver(testLogger(), ScopeLocal)
	if err != nil {
		t.Fatal(err)
	}
	d.Fail(errors.New("state file /x/weft.db is locked by another weft process"))
	err = d.CreateNetwork(context.Background(), createReq(testNetID, nil))
	if err == nil || !strings.Contains(err.Error(), "locked by another weft") {
		t.Fatalf("got %v", err)
	}
}

// TestUnavailableThenStarted: while start is being retried, requests answer
// with the reason at once; once Start has run they succeed, with no restart.
func TestUnavailableThenStarted(t *testing.T) {
	d, err := NewDriver(testLogger(), ScopeLocal)
	if err != nil {
		t.Fatal(err)
	}
	d.Unavailable(errors.New("the state directory /x is not writable"))
	// Bounded, so that a request that waits instead of answering fails
	// the test with the error it got rather than hanging it.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = d.CreateNetwork(ctx, createReq(testNetID, nil))
	if err == nil || !strings.Contains(err.Error(), "/x is not writable") || !strings.Contains(err.Error(), "retries") {
		t.Fatalf("request while start is retried: got %v", err)
	}
	d.Unavailable(nil) // the store opened: requests wait for Start again
	requestWaitsForStart(t, d)
}

// TestStartForgetsDeadEndpoints: endpoints whose link vanished while weft
// was down (their container's namespace was destroyed and dockerd never sent
// DeleteEndpoint) are dropped at start; live ones are kept.
func TestStartForgetsDeadEndpoints(t *testing.T) {
	ctx := context.Background()
	st := memstore.New()
	d1, _ := startDriver(t, st)
	if err := d1.CreateNetwork(ctx, createReq(testNetID, nil)); err != nil {
		t.Fatal(err)
	}
	for i, id := range []string{testEpID, testEpID2} {
		if _, err := d1.CreateEndpoint(ctx, epReq(testNetID, id, fmt.Sprintf("10.1.0.%d/24", i+2), "")); err != nil {
			t.Fatal(err)
		}
	}
	m := newFakeMode()
	m.gone[testEpID] = true
	startDriverWith(t, st, m)
	if len(m.reconciledEps) != 1 || m.reconciledEps[0] != testEpID2 {
		t.Fatalf("reconciled endpoints %v, want only the live one", m.reconciledEps)
	}
	if _, ok, _ := st.Get(ctx, bucketEndpoints, testEpID); ok {
		t.Fatal("dead endpoint still in the store")
	}
	if _, ok, _ := st.Get(ctx, bucketEndpoints, testEpID2); !ok {
		t.Fatal("live endpoint dropped")
	}
}
