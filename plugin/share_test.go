package plugin

import (
	"context"
	"errors"
	"net/netip"
	"testing"

	dipam "github.com/docker/go-plugins-helpers/ipam"
	"github.com/docker/go-plugins-helpers/network"

	"github.com/weftnet/weft/dataplane"
	"github.com/weftnet/weft/ipam"
	"github.com/weftnet/weft/store"
	"github.com/weftnet/weft/store/memstore"
)

const testNetID2 = "1123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// startModes starts a driver over st with m serving both the bridge and the
// macvlan mode.
func startModes(t *testing.T, st store.Store, m *fakeMode) *Driver {
	t.Helper()
	d, err := NewDriver(testLogger(), ScopeLocal)
	if err != nil {
		t.Fatal(err)
	}
	deps := Deps{Store: st, IPAM: ipam.New(nil), Modes: map[dataplane.ModeName]dataplane.Mode{dataplane.Bridge: m, dataplane.Macvlan: m}}
	if err := d.Start(context.Background(), deps); err != nil {
		t.Fatal(err)
	}
	return d
}

// networkWithPool reserves subnet in weft's IPAM as dockerd does and creates
// network id on it with the given -o options; it returns the pool ID.
func networkWithPool(t *testing.T, d *Driver, id, subnet string, generic map[string]any) (string, error) {
	t.Helper()
	ctx := context.Background()
	pool, err := d.RequestPool(ctx, &dipam.RequestPoolRequest{AddressSpace: ipam.LocalSpace, Pool: subnet})
	if err != nil {
		t.Fatal(err)
	}
	req := createReq(id, generic)
	req.IPv4Data = []*network.IPAMData{{AddressSpace: ipam.LocalSpace, Pool: subnet}}
	return pool.PoolID, d.CreateNetwork(ctx, req)
}

func (d *Driver) poolShared(t *testing.T, id string) bool {
	t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	p, ok := d.deps.IPAM.Pool(id)
	if !ok {
		t.Fatalf("pool %s is not held", id)
	}
	return p.Shared
}

// TestMacvlanPoolIsShared: a macvlan network's weft pool is held in the
// global address space too (two hosts on one LAN must not hand out the same
// address), a bridge network's is not; the mark survives a restart.
func TestMacvlanPoolIsShared(t *testing.T) {
	ctx := context.Background()
	st := memstore.New()
	d := startModes(t, st, newFakeMode())
	lan, err := networkWithPool(t, d, testNetID, "192.168.1.0/24", map[string]any{optMode: "macvlan"})
	if err != nil {
		t.Fatal(err)
	}
	br, err := networkWithPool(t, d, testNetID2, "10.1.0.0/24", nil)
	if err != nil {
		t.Fatal(err)
	}
	if !d.poolShared(t, lan) || d.poolShared(t, br) {
		t.Fatalf("shared: macvlan pool %v, bridge pool %v; want true, false", d.poolShared(t, lan), d.poolShared(t, br))
	}
	_, err = d.RequestPool(ctx, &dipam.RequestPoolRequest{AddressSpace: ipam.GlobalSpace, Pool: "192.168.0.0/16"})
	if !errors.Is(err, ipam.ErrPoolOverlap) {
		t.Fatalf("a global pool overlapping the LAN's: %v, want refused", err)
	}
	if _, err := d.RequestPool(ctx, &dipam.RequestPoolRequest{AddressSpace: ipam.GlobalSpace, Pool: "10.1.0.0/24"}); err != nil {
		t.Fatalf("a global pool with a bridge network's subnet: %v", err)
	}
	d2 := startModes(t, st, newFakeMode())
	if !d2.poolShared(t, lan) || d2.poolShared(t, br) {
		t.Fatal("the shared mark did not survive the restart")
	}
}

// TestMacvlanShareRefusedLeavesNothing: a macvlan network whose subnet a
// global pool overlaps is refused before anything is made, and a network
// whose mode fails to create leaves its pool unshared.
func TestMacvlanShareRefusedLeavesNothing(t *testing.T) {
	ctx := context.Background()
	m := newFakeMode()
	d := startModes(t, memstore.New(), m)
	if _, err := d.RequestPool(ctx, &dipam.RequestPoolRequest{AddressSpace: ipam.GlobalSpace, Pool: "192.168.0.0/16"}); err != nil {
		t.Fatal(err)
	}
	lan, err := networkWithPool(t, d, testNetID, "192.168.1.0/24", map[string]any{optMode: "macvlan"})
	if !errors.Is(err, ipam.ErrPoolOverlap) {
		t.Fatalf("CreateNetwork: %v, want the overlap with the global pool", err)
	}
	if d.poolShared(t, lan) || len(m.nets) != 0 {
		t.Fatalf("after the refusal: pool shared %v, networks made %v", d.poolShared(t, lan), m.nets)
	}
	m.fail["CreateNetwork"] = errors.New("parent eth9 does not exist")
	other, err := networkWithPool(t, d, testNetID2, "10.5.0.0/24", map[string]any{optMode: "macvlan"})
	if err == nil {
		t.Fatal("CreateNetwork succeeded although the mode failed")
	}
	if d.poolShared(t, other) {
		t.Fatal("the pool of a network that failed to create stayed shared")
	}
	if _, err := d.RequestPool(ctx, &dipam.RequestPoolRequest{AddressSpace: ipam.GlobalSpace, Pool: netip.MustParsePrefix("10.5.0.0/16").String()}); err != nil {
		t.Fatalf("the unshared pool still blocks the global space: %v", err)
	}
}
