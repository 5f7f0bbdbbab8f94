package plugin

import (
	"context"
	"fmt"
	"testing"

	dipam "github.com/docker/go-plugins-helpers/ipam"
	"github.com/docker/go-plugins-helpers/network"

	"github.com/weftnet/weft/ipam"
	"github.com/weftnet/weft/store/memstore"
)

// benchNetworkCreate measures the calls dockerd makes for one `docker
// network create` and `rm` (RequestPool, RequestAddress for the gateway,
// CreateNetwork; DeleteNetwork, ReleaseAddress, ReleasePool) with others
// networks already in place, over the in-memory store and the fake mode: the
// plugin's and IPAM's own cost, which must not grow with the number of
// networks (compare the 1 and 1000 figures).
func benchNetworkCreate(b *testing.B, others int) {
	ctx := context.Background()
	d, _ := startDriver(b, memstore.New())
	create := func(id, subnet string) (poolID, gw string) {
		pool, err := d.RequestPool(ctx, &dipam.RequestPoolRequest{AddressSpace: ipam.LocalSpace, Pool: subnet})
		if err != nil {
			b.Fatal(err)
		}
		addr, err := d.RequestAddress(ctx, &dipam.RequestAddressRequest{PoolID: pool.PoolID, Options: map[string]string{keyRequestAddressType: valueGateway}})
		if err != nil {
			b.Fatal(err)
		}
		err = d.CreateNetwork(ctx, &network.CreateNetworkRequest{
			NetworkID: id,
			Options:   map[string]any{keyGeneric: map[string]any{}, keyEnableIPv6: false},
			IPv4Data:  []*network.IPAMData{{AddressSpace: ipam.LocalSpace, Pool: subnet, Gateway: addr.Address}},
		})
		if err != nil {
			b.Fatal(err)
		}
		return pool.PoolID, addr.Address
	}
	for i := range others {
		create(fmt.Sprintf("%010x", i+1)+testNetID[10:], fmt.Sprintf("10.%d.%d.0/24", 64+i/256, i%256))
	}
	id := "ffffffffff" + testNetID[10:]
	b.ReportAllocs()
	for b.Loop() {
		pool, gw := create(id, "10.200.0.0/24")
		if err := d.DeleteNetwork(ctx, &network.DeleteNetworkRequest{NetworkID: id}); err != nil {
			b.Fatal(err)
		}
		if err := d.ReleaseAddress(ctx, &dipam.ReleaseAddressRequest{PoolID: pool, Address: gw}); err != nil {
			b.Fatal(err)
		}
		if err := d.ReleasePool(ctx, &dipam.ReleasePoolRequest{PoolID: pool}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkNetworkCreateAmong1(b *testing.B)    { benchNetworkCreate(b, 1) }
func BenchmarkNetworkCreateAmong1000(b *testing.B) { benchNetworkCreate(b, 1000) }
