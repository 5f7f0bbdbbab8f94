package bolt

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/weftnet/weft/store"
)

// BenchmarkApply measures the durable-write cost on the request path: each
// Apply is one bbolt transaction and one fdatasync, so the figure depends on
// the disk under TMPDIR (tmpfs makes it meaningless; run it on the disk that
// will hold WEFT_STATE_DIR). Keys cycle over 1000 endpoint-sized records, so
// the file stays at a steady size like a host with 1000 endpoints.
//
//	go test ./store/bolt -run '^$' -bench Apply -benchtime 2000x
func BenchmarkApply(b *testing.B) {
	const records = 1000
	value := []byte(fmt.Sprintf(`{"endpoint":{"id":"%064x","addr":"10.0.0.2/24","mac":"02:42:0a:00:00:02","pad":"%0160d"}}`, 0, 0))
	keys := make([]string, records)
	for i := range keys {
		keys[i] = fmt.Sprintf("%064x", i)
	}

	// One small put: what a Leave or an address release costs.
	b.Run("put", func(b *testing.B) {
		s := benchStore(b)
		i := 0
		for b.Loop() {
			if err := s.Apply(b.Context(), store.Put("endpoints", keys[i%records], value)); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})

	// Three records in one Apply: what a CreateEndpoint costs.
	b.Run("put3", func(b *testing.B) {
		s := benchStore(b)
		i := 0
		for b.Loop() {
			k := keys[i%records]
			if err := s.Apply(b.Context(),
				store.Put("endpoints", k, value),
				store.Put("ipam-addresses", "pool|"+k, []byte{}),
				store.Put("networks", k, value),
			); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})

	// Many goroutines applying at once, as concurrent dockerd calls would:
	// bbolt has one writer at a time, so this shows the queueing.
	b.Run("put-parallel", func(b *testing.B) {
		s := benchStore(b)
		var n atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				k := keys[int(n.Add(1))%records]
				if err := s.Apply(b.Context(), store.Put("endpoints", k, value)); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// BenchmarkGet is the read side, for comparison: no disk I/O.
func BenchmarkGet(b *testing.B) {
	s := benchStore(b)
	if err := s.Apply(b.Context(), store.Put("endpoints", "k", make([]byte, 300))); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, _, err := s.Get(b.Context(), "endpoints", "k"); err != nil {
			b.Fatal(err)
		}
	}
}

func benchStore(b *testing.B) *Store {
	b.Helper()
	s, err := Open(b.TempDir() + "/weft.db")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	return s
}
