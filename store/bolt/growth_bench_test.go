package bolt

import (
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/weftnet/weft/store"
)

// BenchmarkAttachCycle replays the store writes of one container's attach
// and detach as the plugin makes them (RequestAddress, CreateEndpoint,
// DeleteEndpoint, ReleaseAddress), on a file that already holds n
// endpoints (issue 12). It reports bbolt's page writes per cycle: they
// grow with n (about 5 per commit with 1 endpoint, 9.5 with 1000) because
// the buckets, and their revision records in meta/revs, go from inline to
// two-level trees. WEFT_BENCH_NOSYNC=1 leaves fsync out (CPU only);
// WEFT_BENCH_NOFREELIST=1 sets bbolt's NoFreelistSync.
//
//	go test ./store/bolt -run '^$' -bench AttachCycle -benchtime 500x
func BenchmarkAttachCycle(b *testing.B) {
	for _, n := range []int{1, 1000} {
		b.Run("endpoints="+strconv.Itoa(n), func(b *testing.B) {
			s := benchStore(b)
			s.db.NoSync = os.Getenv("WEFT_BENCH_NOSYNC") != ""
			s.db.NoFreelistSync = os.Getenv("WEFT_BENCH_NOFREELIST") != ""
			ctx := b.Context()
			epValue := func(i int) []byte {
				return fmt.Appendf(nil, `{"endpoint":{"id":"%064x","network_id":"%064x","ipv4":"10.210.%d.%d/20","mac":"02:42:0a:00:00:02"},"mac_generated":true}`, i, 1, i/256, i%256)
			}
			pool := []byte(`{"id":"weft-local/10.210.0.0/20","space":"weft-local","subnet":"10.210.0.0/20","cursor":"10.210.3.232"}`)
			cycle := func(i int) {
				key := fmt.Sprintf("%064x", i)
				addr := "weft-local/10.210.0.0/20|10.210." + strconv.Itoa(i/256%16) + "." + strconv.Itoa(i%256)
				res := []byte(strconv.FormatInt(time.Now().UnixNano(), 10))
				steps := [][]store.Op{
					{store.Put("ipam-addresses", addr, []byte{}), store.Put("ipam-pools", "weft-local/10.210.0.0/20", pool), store.Put("ipam-reservations", addr, res)},
					{store.Put("endpoints", key, epValue(i)), store.Delete("ipam-reservations", addr)},
				}
				for _, ops := range steps {
					if err := s.Apply(ctx, ops...); err != nil {
						b.Fatal(err)
					}
				}
			}
			release := func(i int) {
				key := fmt.Sprintf("%064x", i)
				addr := "weft-local/10.210.0.0/20|10.210." + strconv.Itoa(i/256%16) + "." + strconv.Itoa(i%256)
				for _, ops := range [][]store.Op{
					{store.Delete("endpoints", key)},
					{store.Delete("ipam-addresses", addr), store.Delete("ipam-reservations", addr)},
				} {
					if err := s.Apply(ctx, ops...); err != nil {
						b.Fatal(err)
					}
				}
			}
			for i := range n {
				cycle(i)
			}
			i := n
			before := s.db.Stats()
			b.ResetTimer()
			for b.Loop() {
				cycle(i)
				release(i)
				i++
				if i >= 4000 {
					i = n
				}
			}
			b.StopTimer()
			st := s.db.Stats()
			d := st.TxStats.Sub(&before.TxStats)
			b.ReportMetric(float64(d.GetWrite())/float64(b.N), "pagewrites/cycle")
			b.ReportMetric(float64(st.FreelistInuse), "freelist-bytes")
			b.ReportMetric(float64(st.FreePageN+st.PendingPageN), "freepages")
			if fi, err := os.Stat(s.path); err == nil {
				b.ReportMetric(float64(fi.Size())/1024, "file-KiB")
			}
		})
	}
}
