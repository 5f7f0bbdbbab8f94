package plugin

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	dipam "github.com/docker/go-plugins-helpers/ipam"
	"github.com/docker/go-plugins-helpers/network"

	"github.com/weftnet/weft/ipam"
	"github.com/weftnet/weft/store"
	"github.com/weftnet/weft/store/memstore"
)

// storeDump lists every record of every bucket the driver writes, so a test
// can tell that a refused request wrote nothing.
func storeDump(t testing.TB, st store.Store) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, b := range append(stateBuckets(), bucketReservations) {
		recs, err := st.List(context.Background(), b)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range recs {
			out[b+"/"+k] = string(v)
		}
	}
	return out
}

func sameDump(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestHostileNetworkRequestsRefusedBeforeSideEffects sends CreateNetwork
// requests a hostile or careless user could make (through -o, --subnet,
// --gateway, another IPAM driver, or straight on the socket): each is refused
// with a message naming what was wrong, and neither the kernel (the fake
// mode) nor the store saw anything.
func TestHostileNetworkRequestsRefusedBeforeSideEffects(t *testing.T) {
	v4 := func(pool, gw string) []*network.IPAMData {
		return []*network.IPAMData{{AddressSpace: "LocalDefault", Pool: pool, Gateway: gw}}
	}
	tests := []struct {
		name    string
		id      string
		generic map[string]any
		ipv4    []*network.IPAMData
		ipv6    []*network.IPAMData
		want    []string
	}{
		{name: "bridge name iptables wildcard", generic: map[string]any{optBridgeName: "br+"}, want: []string{optBridgeName, `'+'`}},
		{name: "bridge name printf verb", generic: map[string]any{optBridgeName: "br%d"}, want: []string{optBridgeName, `'%'`}},
		{name: "bridge name negation", generic: map[string]any{optBridgeName: "br!x"}, want: []string{`'!'`}},
		{name: "bridge name leading dash", generic: map[string]any{optBridgeName: "-j"}, want: []string{"start with", `'-'`}},
		{name: "bridge name non-ASCII", generic: map[string]any{optBridgeName: "brü"}, want: []string{`'\u00fc'`}},
		{name: "bridge name control char", generic: map[string]any{optBridgeName: "br\x1b[31m"}, want: []string{`'\x1b'`}},
		{name: "bridge name NUL", generic: map[string]any{optBridgeName: "br\x00"}, want: []string{`'\x00'`}},
		{name: "bridge name dotdot", generic: map[string]any{optBridgeName: ".."}, want: []string{"start with"}},
		{name: "macvlan parent wildcard", generic: map[string]any{optMode: "macvlan", optParent: "eth+"}, want: []string{optParent, `'+'`}},
		{name: "macvlan parent verb", generic: map[string]any{optMode: "macvlan", optParent: "%s"}, want: []string{optParent, `'%'`}},
		{name: "default route with gateway", ipv4: v4("0.0.0.0/0", "10.0.0.1/0"), want: []string{"0.0.0.0/0", "every address"}},
		{name: "half the internet", ipv4: v4("0.0.0.0/1", "10.0.0.1/1"), want: []string{"0.0.0.0/1", "0.0.0.0/8"}},
		{name: "loopback", ipv4: v4("127.0.0.0/24", "127.0.0.1/24"), want: []string{"127.0.0.0/24", "loopback"}},
		{name: "link-local", ipv4: v4("169.254.169.0/24", ""), want: []string{"link-local"}},
		{name: "multicast", ipv4: v4("224.1.0.0/24", ""), want: []string{"multicast"}},
		{name: "reserved", ipv4: v4("240.0.0.0/24", ""), want: []string{"reserved"}},
		{name: "broadcast", ipv4: v4("255.255.255.255/32", ""), want: []string{"255.255.255.255"}},
		{name: "v6 default route", ipv6: []*network.IPAMData{{Pool: "::/0", Gateway: "fd00::1/0"}}, want: []string{"::/0", "every address"}},
		{name: "v6 loopback", ipv6: []*network.IPAMData{{Pool: "::1/128"}}, want: []string{"loopback"}},
		{name: "v6 multicast", ipv6: []*network.IPAMData{{Pool: "ff02::/64"}}, want: []string{"multicast"}},
		{name: "v6 link-local", ipv6: []*network.IPAMData{{Pool: "fe80::/64"}}, want: []string{"link-local"}},
		{name: "v6 mapped", ipv6: []*network.IPAMData{{Pool: "::ffff:10.0.0.0/120"}}, want: []string{"IPv4-mapped"}},
		{name: "v6 zone", ipv6: []*network.IPAMData{{Pool: "fd00::%eth0/64"}}, want: []string{"fd00::"}},
		{name: "gateway is network address", ipv4: v4("10.9.0.0/24", "10.9.0.0/24"), want: []string{"10.9.0.0", "network address"}},
		{name: "gateway is broadcast", ipv4: v4("10.9.0.0/24", "10.9.0.255/24"), want: []string{"10.9.0.255", "broadcast"}},
		{name: "gateway with zone", ipv6: []*network.IPAMData{{Pool: "fd00:9::/64", Gateway: "fd00:9::1%eth0/64"}}, want: []string{"fd00:9::1%eth0/64", "not an IP address"}},
		{name: "empty ID", id: "-", want: []string{"network ID"}},
		{name: "short ID", id: "abc", want: []string{"network ID", "12 to 64"}},
		{name: "ID with path", id: "0123456789ab/../../etc", want: []string{"network ID", `'/'`}},
		{name: "ID with verb", id: "0123456789ab%d", want: []string{"network ID", `'%'`}},
		{name: "ID too long", id: strings.Repeat("a", 65), want: []string{"network ID", "12 to 64"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			st := memstore.New()
			d, m := startDriver(t, st)
			before := storeDump(t, st)
			calls := len(m.calls) // Start's Reconcile
			req := createReq(testNetID, tt.generic)
			switch tt.id {
			case "":
			case "-":
				req.NetworkID = ""
			default:
				req.NetworkID = tt.id
			}
			if tt.ipv4 != nil {
				req.IPv4Data = tt.ipv4
			}
			if tt.ipv6 != nil {
				req.IPv6Data = tt.ipv6
				req.Options[keyEnableIPv6] = true
			}
			err := d.CreateNetwork(ctx, req)
			if err == nil {
				t.Fatal("accepted")
			}
			if !errors.Is(err, ErrInvalidOption) {
				t.Errorf("error %q does not wrap ErrInvalidOption", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if strings.ContainsAny(err.Error(), "\x00\x1b") {
				t.Errorf("error %q carries raw control characters", err)
			}
			if len(m.calls) != calls {
				t.Errorf("the kernel was touched: %v", m.calls[calls:])
			}
			if after := storeDump(t, st); !sameDump(before, after) {
				t.Errorf("the store changed: %v", after)
			}
		})
	}
}

// TestLiteralNamesAccepted is the positive control of the refusals above.
func TestLiteralNamesAccepted(t *testing.T) {
	for _, name := range []string{"br0", "br-data", "my_br.10", "A1"} {
		d, _ := startDriver(t, memstore.New())
		if err := d.CreateNetwork(context.Background(), createReq(testNetID, map[string]any{optBridgeName: name})); err != nil {
			t.Errorf("bridge name %q refused: %v", name, err)
		}
	}
	d, _ := startDriver(t, memstore.New())
	req := createReq(testNetID, nil)
	req.IPv4Data = []*network.IPAMData{{AddressSpace: ipam.LocalSpace, Pool: "10.9.0.0/31", Gateway: "10.9.0.0/31"}}
	if err := d.CreateNetwork(context.Background(), req); err != nil {
		t.Errorf("a /31 gateway on its first address was refused: %v", err)
	}
}

// TestOverlappingNetworksRefused: two bridge networks never overlap, whatever
// IPAM gave their subnets; other modes only when in the same address space.
func TestOverlappingNetworksRefused(t *testing.T) {
	ctx := context.Background()
	st := memstore.New()
	d, m := startDriver(t, st)
	if err := d.CreateNetwork(ctx, createReq(testNetID, nil)); err != nil {
		t.Fatal(err)
	}
	other := strings.Replace(testNetID, "0123", "7777", 1)
	req := createReq(other, nil)
	req.IPv4Data = []*network.IPAMData{{AddressSpace: "LocalDefault", Pool: "10.1.0.128/25", Gateway: "10.1.0.129/25"}}
	calls := len(m.calls)
	before := storeDump(t, st)
	err := d.CreateNetwork(ctx, req)
	if err == nil || !strings.Contains(err.Error(), "10.1.0.128/25 overlaps subnet 10.1.0.0/24") || !strings.Contains(err.Error(), testNetID[:12]) {
		t.Fatalf("overlapping bridge accepted or badly worded: %v", err)
	}
	if len(m.calls) != calls || !sameDump(before, storeDump(t, st)) {
		t.Fatalf("a refused overlap had side effects: %v", m.calls[calls:])
	}
	req.IPv4Data = []*network.IPAMData{{AddressSpace: "LocalDefault", Pool: "10.1.1.0/24", Gateway: "10.1.1.1/24"}}
	if err := d.CreateNetwork(ctx, req); err != nil {
		t.Fatalf("a neighbouring subnet was refused: %v", err)
	}
}

// TestIDsAndAddressesCanonical: an ID in uppercase names the same network; an
// address released in its IPv4-mapped spelling stays released after a restart.
func TestIDsAndAddressesCanonical(t *testing.T) {
	ctx := context.Background()
	st := memstore.New()
	d, _ := startDriver(t, st)
	pool, err := d.RequestPool(ctx, &dipam.RequestPoolRequest{AddressSpace: ipam.LocalSpace, Pool: "10.7.0.0/24"})
	if err != nil {
		t.Fatal(err)
	}
	addr, err := d.RequestAddress(ctx, &dipam.RequestAddressRequest{PoolID: pool.PoolID, Address: "10.7.0.5"})
	if err != nil || addr.Address != "10.7.0.5/24" {
		t.Fatalf("RequestAddress: %v %v", addr, err)
	}
	if err := d.ReleaseAddress(ctx, &dipam.ReleaseAddressRequest{PoolID: pool.PoolID, Address: "::ffff:10.7.0.5"}); err != nil {
		t.Fatal(err)
	}
	if err := d.ReleaseAddress(ctx, &dipam.ReleaseAddressRequest{PoolID: pool.PoolID, Address: "fe80::1%eth0"}); err == nil {
		t.Fatal("a zoned address was accepted")
	}
	d2 := startDriverWith(t, st, newFakeMode())
	if _, err := d2.RequestAddress(ctx, &dipam.RequestAddressRequest{PoolID: pool.PoolID, Address: "10.7.0.5"}); err != nil {
		t.Fatalf("address released as ::ffff:10.7.0.5 is still held after a restart: %v", err)
	}

	if err := d2.CreateNetwork(ctx, createReq(strings.ToUpper(testNetID), nil)); err != nil {
		t.Fatal(err)
	}
	if _, ok := d2.nets[testNetID]; !ok {
		t.Fatalf("network kept under a non-canonical ID: %v", d2.nets)
	}
	if err := d2.DeleteNetwork(ctx, &network.DeleteNetworkRequest{NetworkID: strings.ToUpper(testNetID)}); err != nil {
		t.Fatal(err)
	}
	if len(d2.nets) != 0 {
		t.Fatal("DeleteNetwork with the uppercase ID left the network")
	}
}

// TestEndpointRefusals: short-ID twins, foreign addresses and impossible MACs
// are refused before the kernel is touched.
func TestEndpointRefusals(t *testing.T) {
	ctx := context.Background()
	st := memstore.New()
	d, m := startDriver(t, st)
	if err := d.CreateNetwork(ctx, createReq(testNetID, nil)); err != nil {
		t.Fatal(err)
	}
	if _, err := d.CreateEndpoint(ctx, epReq(testNetID, testEpID, "10.1.0.2/24", "")); err != nil {
		t.Fatal(err)
	}
	calls := len(m.calls)
	before := storeDump(t, st)
	twin := testEpID[:12] + strings.Repeat("0", len(testEpID)-12)
	for _, tt := range []struct {
		name string
		req  *network.CreateEndpointRequest
		want string
	}{
		{"short-ID twin", epReq(testNetID, twin, "10.1.0.3/24", ""), "same 12 characters"},
		{"address outside the network", epReq(testNetID, testEpID2, "10.99.0.3/24", ""), "in no subnet"},
		{"IPv6 address as IPv4", epReq(testNetID, testEpID2, "fd00::3/64", ""), "not an IPv4 address"},
		{"mapped address", epReq(testNetID, testEpID2, "::ffff:10.1.0.3/120", ""), "IPv4-mapped"},
		{"multicast MAC", epReq(testNetID, testEpID2, "10.1.0.3/24", "01:00:5e:00:00:01"), "multicast"},
		{"zero MAC", epReq(testNetID, testEpID2, "10.1.0.3/24", "00:00:00:00:00:00"), "all-zero"},
		{"hostile endpoint ID", epReq(testNetID, "wh%d+"+strings.Repeat("a", 12), "10.1.0.3/24", ""), "endpoint ID"},
	} {
		_, err := d.CreateEndpoint(ctx, tt.req)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: got %v, want an error mentioning %q", tt.name, err, tt.want)
		}
	}
	if len(m.calls) != calls {
		t.Errorf("refused endpoints touched the kernel: %v", m.calls[calls:])
	}
	if !sameDump(before, storeDump(t, st)) {
		t.Error("refused endpoints changed the store")
	}
}

// TestCallerGoneCallFinishes: a DeleteNetwork whose caller has already hung
// up still removes both the kernel objects and the record, so the network
// does not come back at the next start.
func TestCallerGoneCallFinishes(t *testing.T) {
	st := memstore.New()
	d, m := startDriver(t, st)
	if err := d.CreateNetwork(context.Background(), createReq(testNetID, nil)); err != nil {
		t.Fatal(err)
	}
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	if err := d.DeleteNetwork(gone, &network.DeleteNetworkRequest{NetworkID: testNetID}); err != nil {
		t.Fatalf("DeleteNetwork with a gone caller: %v", err)
	}
	if _, ok, _ := st.Get(context.Background(), bucketNetworks, testNetID); ok {
		t.Fatal("the record outlived a DeleteNetwork whose caller went away")
	}
	if len(m.nets) != 0 {
		t.Fatal("the kernel network outlived a DeleteNetwork whose caller went away")
	}
	d2, m2 := startDriver(t, st)
	if len(d2.nets) != 0 || len(m2.reconciledNets) != 0 {
		t.Fatal("the network came back at the next start")
	}
}

// TestUnclaimedReservationsReleased: pools and addresses dockerd reserved for
// a network or container it then failed to create are released after the
// grace, across a restart too; claimed ones are kept.
func TestUnclaimedReservationsReleased(t *testing.T) {
	ctx := context.Background()
	st := memstore.New()
	d, _ := startDriver(t, st)
	grace := d.deps.ReservationGrace
	if grace <= 0 {
		grace = DefaultReservationGrace
		d.deps.ReservationGrace = grace
	}
	gwOpts := map[string]string{keyRequestAddressType: valueGateway}
	// A network that was created: pool and gateway claimed.
	used, err := d.RequestPool(ctx, &dipam.RequestPoolRequest{AddressSpace: ipam.LocalSpace, Pool: "10.1.0.0/24"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.RequestAddress(ctx, &dipam.RequestAddressRequest{PoolID: used.PoolID, Options: gwOpts}); err != nil {
		t.Fatal(err)
	}
	if err := d.CreateNetwork(ctx, createReq(testNetID, nil)); err != nil {
		t.Fatal(err)
	}
	// A container that started: its address claimed.
	a1, err := d.RequestAddress(ctx, &dipam.RequestAddressRequest{PoolID: used.PoolID})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.CreateEndpoint(ctx, epReq(testNetID, testEpID, a1.Address, "")); err != nil {
		t.Fatal(err)
	}
	// A container dockerd failed to start, and a network it failed to create.
	lost, err := d.RequestAddress(ctx, &dipam.RequestAddressRequest{PoolID: used.PoolID})
	if err != nil {
		t.Fatal(err)
	}
	orphan, err := d.RequestPool(ctx, &dipam.RequestPoolRequest{AddressSpace: ipam.LocalSpace, Pool: "10.2.0.0/24"})
	if err != nil {
		t.Fatal(err)
	}
	if n := d.reservationCountLocked(); n != 2 {
		t.Fatalf("%d unclaimed reservations, want 2 (one address, one pool)", n)
	}

	// A restart keeps the reservations' times.
	d = startDriverWith(t, st, newFakeMode())
	d.deps.ReservationGrace = grace
	d.mu.Lock()
	d.sweepReservationsLocked(ctx, time.Now().Add(grace/2))
	d.mu.Unlock()
	if _, ok := d.deps.IPAM.Pool(orphan.PoolID); !ok {
		t.Fatal("a reservation was released before its grace ended")
	}
	d.mu.Lock()
	d.sweepReservationsLocked(ctx, time.Now().Add(grace+time.Second))
	d.mu.Unlock()
	if _, ok := d.deps.IPAM.Pool(orphan.PoolID); ok {
		t.Error("the pool of a network never created is still held")
	}
	lostAddr, _ := parseAddrOrPrefix(lost.Address)
	if d.deps.IPAM.IsAllocated(used.PoolID, lostAddr) {
		t.Error("the address of a container never created is still held")
	}
	a1Addr, _ := parseAddrOrPrefix(a1.Address)
	if !d.deps.IPAM.IsAllocated(used.PoolID, a1Addr) {
		t.Error("a claimed endpoint address was released")
	}
	if _, ok := d.deps.IPAM.Pool(used.PoolID); !ok {
		t.Error("a claimed pool was released")
	}
	if n := d.reservationCountLocked(); n != 0 {
		t.Errorf("%d reservations left", n)
	}
	if _, err := d.RequestPool(ctx, &dipam.RequestPoolRequest{AddressSpace: ipam.LocalSpace, Pool: "10.2.0.0/24"}); err != nil {
		t.Errorf("the released subnet cannot be requested again: %v", err)
	}
	// The sweep is durable: a restart does not bring them back.
	d = startDriverWith(t, st, newFakeMode())
	if d.deps.IPAM.IsAllocated(used.PoolID, lostAddr) {
		t.Error("the released address came back after a restart")
	}
}

// TestReleasedNetworkRemoved: a network whose pool dockerd released without a
// DeleteNetwork (weft killed after recording it, before answering) is deleted
// after the grace, or at once by a new network over the same subnet.
func TestReleasedNetworkRemoved(t *testing.T) {
	ctx := context.Background()
	for _, viaSweep := range []bool{true, false} {
		st := memstore.New()
		d, m := startDriver(t, st)
		d.deps.ReservationGrace = time.Minute
		pool, err := d.RequestPool(ctx, &dipam.RequestPoolRequest{AddressSpace: ipam.LocalSpace, Pool: "10.1.0.0/24"})
		if err != nil {
			t.Fatal(err)
		}
		if err := d.CreateNetwork(ctx, createReq(testNetID, nil)); err != nil {
			t.Fatal(err)
		}
		// dockerd saw the create fail and released what it had reserved.
		if err := d.ReleasePool(ctx, &dipam.ReleasePoolRequest{PoolID: pool.PoolID}); err != nil {
			t.Fatal(err)
		}
		if viaSweep {
			d = startDriverWith(t, st, m) // the mark survives a restart
			d.deps.ReservationGrace = time.Minute
			d.mu.Lock()
			d.sweepReservationsLocked(ctx, time.Now().Add(2*time.Minute))
			d.mu.Unlock()
		} else {
			again := strings.Replace(testNetID, "0123", "5555", 1)
			if _, err := d.RequestPool(ctx, &dipam.RequestPoolRequest{AddressSpace: ipam.LocalSpace, Pool: "10.1.0.0/24"}); err != nil {
				t.Fatal(err)
			}
			if err := d.CreateNetwork(ctx, createReq(again, nil)); err != nil {
				t.Fatalf("re-creating the network after the failed create: %v", err)
			}
		}
		if _, ok := d.nets[testNetID]; ok {
			t.Errorf("viaSweep=%v: the released network is still there", viaSweep)
		}
		if _, ok := m.nets[testNetID]; ok {
			t.Errorf("viaSweep=%v: the released network's kernel objects are still there", viaSweep)
		}
		if _, ok, _ := st.Get(ctx, bucketNetworks, testNetID); ok {
			t.Errorf("viaSweep=%v: the released network's record is still there", viaSweep)
		}
	}
}
