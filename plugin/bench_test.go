package plugin

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	dipam "github.com/docker/go-plugins-helpers/ipam"
	"github.com/docker/go-plugins-helpers/network"

	"github.com/weftnet/weft/ipam"
	"github.com/weftnet/weft/store"
	"github.com/weftnet/weft/store/bolt"
	"github.com/weftnet/weft/store/memstore"
)

// benchRequestAddress measures RequestAddress as dockerd calls it, including
// the durable write that happens before the answer. The pure allocator cost
// is ipam's BenchmarkRequestAddress*; the difference is the store's share.
func benchRequestAddress(b *testing.B, st store.Store, subnet string) {
	ctx := context.Background()
	d, _ := startDriver(b, st)
	pool, err := d.RequestPool(ctx, &dipam.RequestPoolRequest{AddressSpace: ipam.LocalSpace, Pool: subnet})
	if err != nil {
		b.Fatal(err)
	}
	req := &dipam.RequestAddressRequest{PoolID: pool.PoolID}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := d.RequestAddress(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}

func openBolt(b *testing.B) store.Store {
	st, err := bolt.Open(filepath.Join(b.TempDir(), "weft.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = st.Close() })
	return st
}

func BenchmarkRequestAddressV4Slash16Memory(b *testing.B) {
	benchRequestAddress(b, memstore.New(), "10.1.0.0/16")
}

func BenchmarkRequestAddressV6Slash64Memory(b *testing.B) {
	benchRequestAddress(b, memstore.New(), "fd00:1::/64")
}

func BenchmarkRequestAddressV4Slash16Bolt(b *testing.B) {
	benchRequestAddress(b, openBolt(b), "10.1.0.0/16")
}

func BenchmarkRequestAddressV6Slash64Bolt(b *testing.B) {
	benchRequestAddress(b, openBolt(b), "fd00:1::/64")
}

// BenchmarkAttachDetachGrowth replays the calls dockerd makes for one
// container (attach: RequestAddress, CreateEndpoint, Join; detach: Leave,
// DeleteEndpoint, ReleaseAddress) on a network that already holds 1 or 1000
// endpoints, with the fake mode (no kernel) and a bbolt store: what grows
// here is weft's own (issue 12). Each call's median is reported. With the
// memory store the figures are weft's CPU work alone; with bbolt they
// include the durable write (fsync), whose page count grows with the depth
// of bbolt's trees.
//
//	go test ./plugin -run '^$' -bench AttachDetachGrowth -benchtime 300x
func BenchmarkAttachDetachGrowth(b *testing.B) {
	for _, kind := range []string{"bolt", "memory"} {
		for _, n := range []int{1, 1000} {
			b.Run(kind+"/endpoints="+strconv.Itoa(n), func(b *testing.B) { benchAttachDetach(b, kind, n) })
		}
	}
}

func benchAttachDetach(b *testing.B, kind string, n int) {
	ctx := context.Background()
	var st store.Store = memstore.New()
	if kind == "bolt" {
		st = openBolt(b)
	}
	d, _ := startDriver(b, st)
	pool, err := d.RequestPool(ctx, &dipam.RequestPoolRequest{AddressSpace: ipam.LocalSpace, Pool: "10.210.0.0/20"})
	if err != nil {
		b.Fatal(err)
	}
	gw, err := d.RequestAddress(ctx, &dipam.RequestAddressRequest{PoolID: pool.PoolID, Options: map[string]string{keyRequestAddressType: valueGateway}})
	if err != nil {
		b.Fatal(err)
	}
	netID := fmt.Sprintf("%064x", 1)
	if err := d.CreateNetwork(ctx, &network.CreateNetworkRequest{
		NetworkID: netID,
		Options:   map[string]any{keyGeneric: map[string]any{}, keyEnableIPv6: false},
		IPv4Data:  []*network.IPAMData{{AddressSpace: ipam.LocalSpace, Pool: "10.210.0.0/20", Gateway: gw.Address}},
	}); err != nil {
		b.Fatal(err)
	}
	seq := 0
	times := map[string][]float64{}
	timed := func(op string, f func() error) {
		t0 := time.Now()
		if err := f(); err != nil {
			b.Fatalf("%s: %v", op, err)
		}
		times[op] = append(times[op], float64(time.Since(t0))/float64(time.Millisecond))
	}
	cycle := func(keep bool) {
		seq++
		epID := fmt.Sprintf("%012x%052d", seq, 0)
		var addr string
		timed("RequestAddress", func() error {
			r, err := d.RequestAddress(ctx, &dipam.RequestAddressRequest{PoolID: pool.PoolID})
			if err == nil {
				addr = r.Address
			}
			return err
		})
		timed("CreateEndpoint", func() error {
			_, err := d.CreateEndpoint(ctx, &network.CreateEndpointRequest{NetworkID: netID, EndpointID: epID, Interface: &network.EndpointInterface{Address: addr}})
			return err
		})
		timed("Join", func() error {
			_, err := d.Join(ctx, &network.JoinRequest{NetworkID: netID, EndpointID: epID, SandboxKey: "/var/run/docker/netns/x"})
			return err
		})
		if keep {
			return
		}
		timed("Leave", func() error { return d.Leave(ctx, &network.LeaveRequest{NetworkID: netID, EndpointID: epID}) })
		timed("DeleteEndpoint", func() error {
			return d.DeleteEndpoint(ctx, &network.DeleteEndpointRequest{NetworkID: netID, EndpointID: epID})
		})
		timed("ReleaseAddress", func() error {
			return d.ReleaseAddress(ctx, &dipam.ReleaseAddressRequest{PoolID: pool.PoolID, Address: strings.Split(addr, "/")[0]})
		})
	}
	for range n {
		cycle(true)
	}
	clear(times)
	for b.Loop() {
		cycle(false)
	}
	for _, op := range []string{"RequestAddress", "CreateEndpoint", "Join", "Leave", "DeleteEndpoint", "ReleaseAddress"} {
		v := slices.Clone(times[op])
		slices.Sort(v)
		b.ReportMetric(v[len(v)/2], op+"-ms")
	}
}
