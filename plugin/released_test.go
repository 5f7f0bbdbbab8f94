package plugin

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	dipam "github.com/docker/go-plugins-helpers/ipam"
	"github.com/docker/go-plugins-helpers/network"

	"github.com/weftnet/weft/ipam"
	"github.com/weftnet/weft/store/memstore"
)

// createTestNetwork reserves subnet and creates network id over it, as
// dockerd does (RequestPool, the gateway, CreateNetwork).
func createTestNetwork(t *testing.T, d *Driver, id, subnet string) string {
	t.Helper()
	ctx := context.Background()
	pool, err := d.RequestPool(ctx, &dipam.RequestPoolRequest{AddressSpace: ipam.LocalSpace, Pool: subnet})
	if err != nil {
		t.Fatal(err)
	}
	gw, err := d.RequestAddress(ctx, &dipam.RequestAddressRequest{PoolID: pool.PoolID, Options: map[string]string{keyRequestAddressType: valueGateway}})
	if err != nil {
		t.Fatal(err)
	}
	err = d.CreateNetwork(ctx, &network.CreateNetworkRequest{
		NetworkID: id,
		Options:   map[string]any{keyGeneric: map[string]any{}, keyEnableIPv6: false},
		IPv4Data:  []*network.IPAMData{{AddressSpace: ipam.LocalSpace, Pool: subnet, Gateway: gw.Address}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return pool.PoolID
}

// TestReleasedNetworksLookup: the networks marked released are found the
// same way whether the marks are looked up among the unclaimed reservations
// (fewer than the networks, as usual) or among the networks (when many
// reservations stay unclaimed); a mark of a network weft does not hold is
// not one. A new network overlapping a released one removes it either way.
func TestReleasedNetworksLookup(t *testing.T) {
	ctx := context.Background()
	for _, manyPending := range []bool{false, true} {
		d, m := startDriver(t, memstore.New())
		var ids, pools []string
		for i := range 4 {
			id := fmt.Sprintf("%02x", i+1) + testNetID[2:]
			ids = append(ids, id)
			pools = append(pools, createTestNetwork(t, d, id, fmt.Sprintf("10.9.%d.0/24", i)))
		}
		// dockerd released the pool of network 1 (weft killed before it
		// answered CreateNetwork), and of nothing else.
		if err := d.ReleasePool(ctx, &dipam.ReleasePoolRequest{PoolID: pools[1]}); err != nil {
			t.Fatal(err)
		}
		d.mu.Lock()
		d.pending[releasedKey("ff"+testNetID[2:])] = d.pending[releasedKey(ids[1])] // a mark with no network
		if manyPending {
			for i := range 20 {
				d.pending[fmt.Sprintf("%s|10.9.0.%d", pools[0], 100+i)] = d.pending[releasedKey(ids[1])]
			}
		}
		if got := len(d.pending) > len(d.nets); got != manyPending {
			t.Fatalf("manyPending=%v: %d reservations, %d networks: the test does not take the path it means to", manyPending, len(d.pending), len(d.nets))
		}
		got := d.releasedNetworksLocked()
		d.mu.Unlock()
		if !slices.Equal(got, []string{ids[1]}) {
			t.Fatalf("manyPending=%v: released networks %v; want only %s", manyPending, got, ids[1])
		}

		// The user creates the network again over the same subnet.
		again := "ee" + testNetID[2:]
		createTestNetwork(t, d, again, "10.9.1.0/24")
		if _, ok := d.nets[ids[1]]; ok {
			t.Errorf("manyPending=%v: the released network is still there", manyPending)
		}
		if _, ok := m.nets[ids[1]]; ok {
			t.Errorf("manyPending=%v: the released network's kernel objects are still there", manyPending)
		}
		for _, id := range []string{ids[0], ids[2], ids[3], again} {
			if _, ok := d.nets[id]; !ok {
				t.Errorf("manyPending=%v: network %s is gone", manyPending, id[:2])
			}
		}
	}
}

// TestCreateNetworkStillRefusesOverlaps: the overlap, bridge-name and short
// ID checks against every other network still refuse what they refused.
func TestCreateNetworkStillRefusesOverlaps(t *testing.T) {
	ctx := context.Background()
	d, _ := startDriver(t, memstore.New())
	for i := range 50 {
		createTestNetwork(t, d, fmt.Sprintf("%04x", i+1)+testNetID[4:], fmt.Sprintf("10.%d.0.0/16", 100+i))
	}
	refused := func(id, subnet string, generic map[string]any, why string) {
		t.Helper()
		err := d.CreateNetwork(ctx, &network.CreateNetworkRequest{
			NetworkID: id,
			Options:   map[string]any{keyGeneric: generic, keyEnableIPv6: false},
			IPv4Data:  []*network.IPAMData{{AddressSpace: "other", Pool: subnet}},
		})
		if err == nil || !strings.Contains(err.Error(), why) {
			t.Errorf("network %s over %s (%v): %v; want an error saying %q", id[:4], subnet, generic, err, why)
		}
	}
	fresh := "ffff" + testNetID[4:]
	refused(fresh, "10.120.7.0/24", map[string]any{}, "overlaps")                                                 // inside network 21's /16
	refused(fresh, "10.0.0.0/8", map[string]any{}, "overlaps")                                                    // around all of them
	refused(fresh, "10.149.0.0/16", map[string]any{}, "overlaps")                                                 // the last one's, exactly
	refused("0001"+testNetID[4:16]+"ff"+testNetID[18:], "192.168.0.0/24", map[string]any{}, "same 12 characters") // same short ID as network 1
	first := d.nets["0001"+testNetID[4:]].Network.Bridge.Name
	refused(fresh, "192.168.0.0/24", map[string]any{optBridgeName: first}, "bridge name") // network 1's bridge
	if err := d.CreateNetwork(ctx, &network.CreateNetworkRequest{
		NetworkID: fresh,
		Options:   map[string]any{keyGeneric: map[string]any{}, keyEnableIPv6: false},
		IPv4Data:  []*network.IPAMData{{AddressSpace: "other", Pool: "10.150.0.0/16"}},
	}); err != nil {
		t.Errorf("a network next to the others was refused: %v", err)
	}
}
