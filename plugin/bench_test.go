package plugin

import (
	"context"
	"path/filepath"
	"testing"

	dipam "github.com/docker/go-plugins-helpers/ipam"

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
