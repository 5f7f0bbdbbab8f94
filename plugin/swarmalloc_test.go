package plugin

import (
	"context"
	"errors"
	"maps"
	"strings"
	"testing"

	"github.com/docker/go-plugins-helpers/network"
	"github.com/weftnet/weft/dataplane"
	"github.com/weftnet/weft/ipam"
	"github.com/weftnet/weft/store"
	"github.com/weftnet/weft/store/memstore"
)

// Swarm IDs are 25 lowercase letters and digits.
const (
	swarmNet1 = "k3jr6pmdxfzq0l9w2c8a4e7tb"
	swarmNet2 = "p0q8ztw3mx5hn6c2yb9ka4r1s"
	swarmNet3 = "a1b2c3d4e5f6g7h8i9j0k1l2m"
)

func startGlobalDriver(t *testing.T, st store.Store) *Driver {
	t.Helper()
	d, err := NewDriver(testLogger(), ScopeGlobal)
	if err != nil {
		t.Fatal(err)
	}
	pools, err := ipam.ParseDefaultPools(ipam.DefaultPoolsSetting)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(context.Background(), Deps{Store: st, IPAM: ipam.New(pools), Modes: map[dataplane.ModeName]dataplane.Mode{dataplane.Bridge: newFakeMode()}}); err != nil {
		t.Fatal(err)
	}
	return d
}

func allocReq(id string, opts map[string]string, pool string) *network.AllocateNetworkRequest {
	return &network.AllocateNetworkRequest{NetworkID: id, Options: opts,
		IPv4Data: []network.IPAMData{{Pool: pool, Gateway: strings.TrimSuffix(pool, "0/24") + "1/24"}}}
}

func TestAllocateNetworkGivesUniqueVNIsAndIsIdempotent(t *testing.T) {
	ctx := context.Background()
	st := memstore.New()
	d := startGlobalDriver(t, st)

	r1, err := d.AllocateNetwork(ctx, allocReq(swarmNet1, nil, "10.0.9.0/24"))
	if err != nil {
		t.Fatal(err)
	}
	if r1.Options[optVNI] != "4095" || r1.Options[optMode] != "vxlan" {
		t.Fatalf("first network's options %v; want vni 4095 (the top of weft's automatic range) and mode vxlan", r1.Options)
	}
	r2, err := d.AllocateNetwork(ctx, allocReq(swarmNet2, map[string]string{optVxlanPort: "4790"}, "10.0.10.0/24"))
	if err != nil {
		t.Fatal(err)
	}
	if r2.Options[optVNI] != "4094" || r2.Options[optVxlanPort] != "4790" {
		t.Fatalf("second network's options %v; want vni 4094 and the user's vxlan_port kept", r2.Options)
	}
	// Swarm replays with the user's options merged with our answer, after
	// a leader change: the same answer.
	again, err := d.AllocateNetwork(ctx, allocReq(swarmNet1, r1.Options, "10.0.9.0/24"))
	if err != nil || !maps.Equal(again.Options, r1.Options) {
		t.Fatalf("replay: %v, %v; want %v", again, err, r1.Options)
	}
	// A replay without our answer still gets it (the record).
	again, err = d.AllocateNetwork(ctx, allocReq(swarmNet1, nil, "10.0.9.0/24"))
	if err != nil || again.Options[optVNI] != "4095" {
		t.Fatalf("replay without options: %v, %v; want vni 4095", again, err)
	}

	// A new leader (another weft, empty store) learns the VNIs in use
	// from swarm's replays before it allocates anything new.
	d2 := startGlobalDriver(t, memstore.New())
	for _, r := range []struct {
		id   string
		opts map[string]string
		pool string
	}{{swarmNet1, r1.Options, "10.0.9.0/24"}, {swarmNet2, r2.Options, "10.0.10.0/24"}} {
		got, err := d2.AllocateNetwork(ctx, allocReq(r.id, r.opts, r.pool))
		if err != nil || !maps.Equal(got.Options, r.opts) {
			t.Fatalf("replay on the new leader: %v, %v; want %v", got, err, r.opts)
		}
	}
	r3, err := d2.AllocateNetwork(ctx, allocReq(swarmNet3, nil, "10.0.11.0/24"))
	if err != nil || r3.Options[optVNI] != "4093" {
		t.Fatalf("a new network on the new leader: %v, %v; want vni 4093", r3, err)
	}

	// A user's vni taken by another network is refused, naming it.
	_, err = d.AllocateNetwork(ctx, allocReq(swarmNet3, map[string]string{optVNI: "4094"}, "10.0.11.0/24"))
	if !errors.Is(err, ErrInvalidOption) || !strings.Contains(err.Error(), dataplane.ShortID(swarmNet2)) {
		t.Fatalf("taken vni: got %v; want a refusal naming network %s", err, dataplane.ShortID(swarmNet2))
	}

	// FreeNetwork gives the VNI back; freeing twice, or a network this weft
	// never saw, is fine.
	for range 2 {
		if err := d.FreeNetwork(ctx, &network.FreeNetworkRequest{NetworkID: swarmNet2}); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.FreeNetwork(ctx, &network.FreeNetworkRequest{NetworkID: swarmNet3}); err != nil {
		t.Fatal(err)
	}
	r4, err := d.AllocateNetwork(ctx, allocReq(swarmNet3, map[string]string{optVNI: "4094"}, "10.0.11.0/24"))
	if err != nil || r4.Options[optVNI] != "4094" {
		t.Fatalf("vni 4094 after its network was freed: %v, %v", r4, err)
	}
	if recs, _ := st.List(ctx, bucketSwarmNets); len(recs) != 2 {
		t.Errorf("%d swarm network records; want 2 (%s and %s)", len(recs), swarmNet1, swarmNet3)
	}
}

func TestAllocateNetworkRefusesBadRequests(t *testing.T) {
	ctx := context.Background()
	st := memstore.New()
	d := startGlobalDriver(t, st)
	for name, req := range map[string]*network.AllocateNetworkRequest{
		"bridge mode":    allocReq(swarmNet1, map[string]string{optMode: "bridge"}, "10.0.9.0/24"),
		"unknown option": allocReq(swarmNet1, map[string]string{"parent": "eth0"}, "10.0.9.0/24"),
		"bad vni":        allocReq(swarmNet1, map[string]string{optVNI: "16777216"}, "10.0.9.0/24"),
		"bad port":       allocReq(swarmNet1, map[string]string{optVxlanPort: "0"}, "10.0.9.0/24"),
		"bad mtu":        allocReq(swarmNet1, map[string]string{optMTU: "12"}, "10.0.9.0/24"),
		"bad pool":       allocReq(swarmNet1, nil, "10.0.9.0/33"),
		"no subnet":      {NetworkID: swarmNet1},
		"bad ID":         allocReq("../../etc", nil, "10.0.9.0/24"),
		"short ID":       allocReq("abc", nil, "10.0.9.0/24"),
	} {
		if _, err := d.AllocateNetwork(ctx, req); err == nil {
			t.Errorf("%s: allocated", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
	if recs, _ := st.List(ctx, bucketSwarmNets); len(recs) != 0 {
		t.Errorf("refused requests left %d records", len(recs))
	}
	if err := d.FreeNetwork(ctx, &network.FreeNetworkRequest{NetworkID: "x/y"}); err == nil {
		t.Error("FreeNetwork took a malformed ID")
	}

	// A local-scope weft is not a swarm network allocator.
	local, _ := startDriver(t, memstore.New())
	if _, err := local.AllocateNetwork(ctx, allocReq(swarmNet1, nil, "10.0.9.0/24")); err == nil || !strings.Contains(err.Error(), "WEFT_SCOPE=global") {
		t.Errorf("local scope: got %v; want a refusal that says how to install a global-scope weft", err)
	}
}
