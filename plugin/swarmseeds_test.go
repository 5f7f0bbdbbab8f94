package plugin

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/weftnet/weft/store/memstore"
)

func TestGossipSeedsOption(t *testing.T) {
	a := func(s string) netip.Addr { return netip.MustParseAddr(s) }
	for _, c := range []struct{ in, want string }{
		{"10.0.0.1", "10.0.0.1"},
		{"10.0.0.1,fd00::1,10.0.0.1", "10.0.0.1,fd00::1"},
	} {
		got, err := parseGossipSeeds(c.in)
		if err != nil || formatGossipSeeds(netip.Addr{}, got) != c.want {
			t.Errorf("parseGossipSeeds(%q) = %v, %v; want %s", c.in, got, err, c.want)
		}
	}
	for _, bad := range []string{"", "10.0.0.1,", "host.example", "0.0.0.0", "224.0.0.1", "fe80::1%eth0", "::ffff:10.0.0.1", "010.0.0.1",
		"10.0.0.1,10.0.0.2,10.0.0.3,10.0.0.4,10.0.0.5,10.0.0.6", "10.0.0.1;rm -rf /"} {
		if _, err := parseGossipSeeds(bad); !errors.Is(err, ErrInvalidOption) {
			t.Errorf("parseGossipSeeds(%q): %v; want ErrInvalidOption", bad, err)
		}
	}
	// The newest leader first, then the earlier ones, at most five.
	earlier := []netip.Addr{a("10.0.0.2"), a("10.0.0.1"), a("10.0.0.3"), a("10.0.0.4"), a("10.0.0.5")}
	if got := formatGossipSeeds(a("10.0.0.1"), earlier); got != "10.0.0.1,10.0.0.2,10.0.0.3,10.0.0.4,10.0.0.5" {
		t.Errorf("formatGossipSeeds = %s", got)
	}
}

// TestSwarmSeedsFromTheNetwork: wefts enabled on the nodes of a swarm that
// already existed get no DiscoverNew for the other nodes. The leader's
// answer to AllocateNetwork names its gossip address; the other node joins
// it when it creates the network, and the two exchange endpoints.
func TestSwarmSeedsFromTheNetwork(t *testing.T) {
	ctx := context.Background()
	port := gossipPort(t, 2)
	w1, w2 := startSwarmNode(t, 0, port, 2*time.Second), startSwarmNode(t, 1, port, 2*time.Second)
	alloc, err := w1.d.AllocateNetwork(ctx, allocReq(swarmNet1, nil, "10.0.9.0/24"))
	if err != nil {
		t.Fatal(err)
	}
	if got := alloc.Options[optGossipSeeds]; got != "127.0.0.2" {
		t.Fatalf("the leader's answer carries gossip seeds %q; want its own gossip address 127.0.0.2", got)
	}
	for _, h := range []*vxHost{w1, w2} {
		if err := swarmCreate(h, swarmNet1, alloc.Options, "10.0.9.0/24"); err != nil {
			t.Fatalf("CreateNetwork with the leader's options: %v", err)
		}
	}
	if _, err := w1.d.CreateEndpoint(ctx, epReq(swarmNet1, swarmEP(1), "10.0.9.2/24", "")); err != nil {
		t.Fatal(err)
	}
	if _, err := w2.d.CreateEndpoint(ctx, epReq(swarmNet1, swarmEP(2), "10.0.9.3/24", "")); err != nil {
		t.Fatal(err)
	}
	awaitPeers(t, w1, swarmNet1, []string{"10.0.9.3@192.0.2.2"}, 15*time.Second)
	awaitPeers(t, w2, swarmNet1, []string{"10.0.9.2@192.0.2.1"}, 15*time.Second)
	if seeds, _ := w2.d.deps.Store.List(ctx, bucketGossipSeeds); len(seeds) != 1 || seeds["127.0.0.2"] == nil {
		t.Errorf("w2 keeps node addresses %v; want the leader's 127.0.0.2 for its restarts", seeds)
	}

	// A new leader replays the allocation: it puts itself first and keeps
	// the earlier seed; the network is the same network on every node.
	again, err := w2.d.AllocateNetwork(ctx, allocReq(swarmNet1, alloc.Options, "10.0.9.0/24"))
	if err != nil {
		t.Fatal(err)
	}
	if got := again.Options[optGossipSeeds]; got != "127.0.0.3,127.0.0.2" {
		t.Errorf("the new leader's answer carries seeds %q; want 127.0.0.3,127.0.0.2", got)
	}
	if err := swarmCreate(w1, swarmNet1, again.Options, "10.0.9.0/24"); err != nil {
		t.Errorf("CreateNetwork repeated with the new leader's seeds: %v", err)
	}

	// A local-scope weft does not know the option.
	d, _ := startDriver(t, memstore.New())
	req := createReq(swarmNet2, map[string]any{optMode: "vxlan", optVNI: "7", optGossipSeeds: "10.0.0.1"})
	if err := d.CreateNetwork(ctx, req); err == nil || !strings.Contains(err.Error(), optGossipSeeds) {
		t.Errorf("a local-scope weft given %s: %v; want it refused by name", optGossipSeeds, err)
	}
}
