package ipam

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
)

// The fuzz world: small default bases (4 IPv4 and 16 IPv6 default pools) and
// explicit pools chosen to collide with them and with each other, in both
// spaces, with ranges and the point-to-point sizes.
const fuzzDefaults = "base=10.0.0.0/26,size=28;base=fd00::/120,size=124"

var fuzzExplicit = []PoolRequest{
	local("10.0.0.0/28"),
	local("10.0.0.0/27"),
	localRange("10.9.0.0/29", "10.9.0.4/30"),
	local("10.9.0.0/30"),
	local("10.9.0.8/31"),
	local("10.9.0.10/32"),
	{Space: GlobalSpace, Pool: pfx("10.9.0.0/29")},
	{Space: GlobalSpace, Pool: pfx("10.0.0.16/28")},
	local("192.168.0.0/24"),
	localRange("192.168.0.0/24", "192.168.0.128/25"),
	local("fd00::/124"),
	localRange("fd00:1::/125", "fd00:1::4/126"),
	local("fd00:1::8/127"),
	local("fd00:1::a/128"),
	{Space: GlobalSpace, Pool: pfx("fd00::/124")},
}

var fuzzAvoid = [][]netip.Prefix{nil, {pfx("10.0.0.16/28")}, {pfx("10.0.0.5/32"), pfx("fd00::10/124")}, {pfx("fd00::/122")}}

// bytes hands out the fuzz input one byte at a time, zeros when exhausted.
type bytes struct {
	data []byte
	i    int
}

func (b *bytes) next() int {
	if b.i >= len(b.data) {
		return 0
	}
	b.i++
	return int(b.data[b.i-1])
}

// runOps interprets data as a sequence of operations, applies each to the
// allocator and to the model, and checks that they agree and that the
// invariants hold after every step.
func runOps(t testing.TB, data []byte) {
	defaults, err := ParseDefaultPools(fuzzDefaults)
	if err != nil {
		t.Fatal(err)
	}
	a, m := New(defaults), newModel(defaults)
	lastReleased := map[string]netip.Addr{}
	in := &bytes{data: data}
	for step := 0; in.i < len(in.data); step++ {
		b := in.next() // one byte per operation: low 3 bits the operation, the rest its argument
		op, arg := b&7, b>>3
		ids := append(m.ids(), "weft-local/203.0.113.0/24") // plus one unknown
		touched := ""                                       // the one pool an address operation changed
		pick := func() string {
			touched = ids[arg%len(ids)]
			return touched
		}
		switch op {
		case 0: // default pool
			space := LocalSpace
			if arg&1 != 0 {
				space = GlobalSpace
			}
			req := PoolRequest{Space: space, V6: arg&2 != 0, Avoid: fuzzAvoid[(arg>>2)%len(fuzzAvoid)]}
			got, err := a.RequestPool(req)
			want, wantErr := m.requestPool(req)
			if got != want || kindOf(err) != wantErr {
				t.Fatalf("step %d RequestPool(%+v) = %+v, %v; model %+v, %v", step, req, got, err, want, wantErr)
			}
		case 1: // explicit pool
			req := fuzzExplicit[arg%len(fuzzExplicit)]
			got, err := a.RequestPool(req)
			want, wantErr := m.requestPool(req)
			if got != want || kindOf(err) != wantErr {
				t.Fatalf("step %d RequestPool(%+v) = %+v, %v; model %+v, %v", step, req, got, err, want, wantErr)
			}
			if err != nil && !mentionsAll(err.Error(), req.Pool.String(), req.Space) {
				t.Fatalf("step %d: error %q does not name pool and space", step, err)
			}
		case 2:
			id := pick()
			if err := a.ReleasePool(id); err != nil {
				t.Fatalf("step %d ReleasePool(%s): %v", step, id, err)
			}
			m.releasePool(id)
		case 3, 4: // dynamic, gateway
			id := pick()
			var cursor netip.Addr
			if p, ok := m.pools[id]; ok {
				cursor = p.rec.Cursor
			}
			got, err := a.RequestAddress(id, netip.Addr{}, op == 4)
			want, wantErr := m.requestAddress(id, netip.Addr{}, op == 4)
			if got != want || kindOf(err) != wantErr {
				t.Fatalf("step %d RequestAddress(%s, gateway=%v) = %v, %v; model %v, %v", step, id, op == 4, got, err, want, wantErr)
			}
			if err != nil && !mentionsAll(err.Error(), prefixOfID(m, id)) {
				t.Fatalf("step %d: error %q does not name the pool", step, err)
			}
			if op == 3 && err == nil && got.Addr() == lastReleased[id] && cursor.IsValid() && !cursor.Less(got.Addr()) {
				// A released address at or behind the cursor comes back only
				// after the search wrapped: nothing after the cursor was free.
				for _, c := range m.pools[id].usable() {
					if r := m.pools[id].rec.Range; (!r.IsValid() || r.Contains(c)) && cursor.Less(c) && !m.pools[id].used[c] {
						t.Fatalf("step %d: %s reused at once although %s was free", step, got, c)
					}
				}
			}
		case 5, 6: // exact address, release address
			id := pick()
			addr := netip.MustParseAddr("10.0.0.0")
			if p, ok := m.pools[id]; ok {
				addr = p.rec.Prefix.Addr()
			}
			off := in.next() // a second byte: offset into the pool, gateway flag
			for range off % 20 {
				addr = addr.Next()
			}
			if op == 6 {
				if err := a.ReleaseAddress(id, addr); err != nil {
					t.Fatalf("step %d ReleaseAddress: %v", step, err)
				}
				m.releaseAddress(id, addr)
				lastReleased[id] = addr
				break
			}
			gateway := off&0x80 != 0
			got, err := a.RequestAddress(id, addr, gateway)
			want, wantErr := m.requestAddress(id, addr, gateway)
			if got != want || kindOf(err) != wantErr {
				t.Fatalf("step %d RequestAddress(%s, %s) = %v, %v; model %v, %v", step, id, addr, got, err, want, wantErr)
			}
			if err != nil && !mentionsAll(err.Error(), addr.String(), prefixOfID(m, id)) {
				t.Fatalf("step %d: error %q does not name address and pool", step, err)
			}
		case 7: // persist and restore into a fresh allocator
			pools, addrs := snapshot(a)
			b := New(defaults)
			if err := b.Restore(pools, addrs); err != nil {
				t.Fatalf("step %d Restore: %v", step, err)
			}
			a = b
		}
		// Check what the operation can have changed; everything after a
		// restore and at the end. Cheap checks keep the fuzzer fast.
		switch op {
		case 3, 4, 5, 6:
			checkPool(t, step, a, m, touched)
		case 7:
			checkInvariants(t, step, a, m, true)
		default:
			checkInvariants(t, step, a, m, false)
		}
	}
	checkInvariants(t, len(data), a, m, true)
}

// prefixOfID is how messages name a pool: its prefix if held, else the ID.
func prefixOfID(m *model, id string) string {
	if p, ok := m.pools[id]; ok {
		return p.rec.Prefix.String()
	}
	return id
}

// checkInvariants compares the pool records with the model, checks that no
// two pools of a space overlap and, with addrs, compares every pool's addresses.
func checkInvariants(t testing.TB, step int, a *Allocator, m *model, addrs bool) {
	pools := a.Pools()
	var want []Pool
	for _, id := range m.ids() {
		want = append(want, m.pools[id].rec)
	}
	if !slices.Equal(pools, want) {
		t.Fatalf("step %d: Pools = %v, model %v", step, pools, want)
	}
	for i, p := range pools {
		if addrs {
			checkPool(t, step, a, m, p.ID)
		}
		for _, q := range pools[i+1:] {
			if p.Space == q.Space && p.Prefix.Overlaps(q.Prefix) {
				t.Fatalf("step %d: pools %s and %s overlap", step, p.ID, q.ID)
			}
		}
	}
}

// checkPool compares one pool with the model: record (cursor included) and
// allocated addresses, each once, each assignable.
func checkPool(t testing.TB, step int, a *Allocator, m *model, id string) {
	mp, held := m.pools[id]
	rec, ok := a.Pool(id)
	if ok != held || (held && rec != mp.rec) {
		t.Fatalf("step %d: Pool(%s) = %+v, %v; model %+v, %v", step, id, rec, ok, mp, held)
	}
	if !held {
		return
	}
	got := a.Allocated(id)
	if !slices.Equal(got, m.allocated(id)) {
		t.Fatalf("step %d: Allocated(%s) = %v, model %v", step, id, got, m.allocated(id))
	}
	for j, x := range got {
		if j > 0 && !got[j-1].Less(x) {
			t.Fatalf("step %d: %s allocated twice or unsorted in %s", step, x, id)
		}
		if !mp.isUsable(x) {
			t.Fatalf("step %d: reserved or foreign address %s allocated in %s", step, x, id)
		}
	}
}

// TestInvariantsRandom runs long random operation sequences through runOps.
func TestInvariantsRandom(t *testing.T) {
	for seed := range uint64(16) {
		rng := rand.New(rand.NewPCG(seed, 99))
		data := make([]byte, 3000)
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		// Bias towards address operations so that pools fill up and wrap.
		for i := range data {
			if rng.IntN(2) == 0 {
				data[i] = data[i]&^7 | byte(3+rng.IntN(4))
			}
		}
		runOps(t, data)
	}
}

func FuzzAllocator(f *testing.F) {
	// op encodes one operation byte: the operation and its argument.
	op := func(o, arg int) byte { return byte(o | arg<<3) }
	const (
		defaultPool, explicitPool, releasePool, dynamic, gateway, exact, releaseAddr, restore = 0, 1, 2, 3, 4, 5, 6, 7
	)
	f.Add([]byte{})
	f.Add([]byte{op(defaultPool, 0), op(dynamic, 0), op(dynamic, 0), op(gateway, 0), op(restore, 0), op(dynamic, 0)})
	// ip-range pool: fill the range, free one, wrap onto it, restore, refill.
	f.Add([]byte{
		op(explicitPool, 2), op(gateway, 0), op(dynamic, 0), op(dynamic, 0), op(dynamic, 0), op(dynamic, 0),
		op(releaseAddr, 0), 5, op(dynamic, 0), op(exact, 0), 0x87, op(restore, 0), op(dynamic, 0),
	})
	// Overlaps across spaces and families, defaults skipping explicit pools.
	f.Add([]byte{
		op(explicitPool, 0), op(explicitPool, 1), op(explicitPool, 7), op(defaultPool, 0), op(defaultPool, 1),
		op(defaultPool, 2), op(defaultPool, 4), op(explicitPool, 10), op(explicitPool, 14), op(releasePool, 0),
		op(defaultPool, 0), op(restore, 0), op(defaultPool, 3),
	})
	// Point-to-point sizes and reserved addresses.
	f.Add([]byte{
		op(explicitPool, 4), op(explicitPool, 5), op(explicitPool, 12), op(explicitPool, 13),
		op(gateway, 0), op(dynamic, 0), op(dynamic, 1), op(exact, 2), 0, op(exact, 3), 0x80,
		op(releaseAddr, 1), 1, op(dynamic, 1), op(restore, 0),
	})
	// A /24 with an upper-half range, explicit addresses outside it.
	f.Add([]byte{
		op(explicitPool, 9), op(exact, 0), 3, op(exact, 0), 0x13, op(dynamic, 0), op(dynamic, 0),
		op(releaseAddr, 0), 3, op(exact, 0), 3, op(releasePool, 0), op(explicitPool, 8), op(dynamic, 0),
	})
	f.Fuzz(func(t *testing.T, data []byte) {
		// ~80 operations fill and wrap the small pools; longer inputs only
		// slow down the minimiser, which is quadratic in the input length
		// (TestInvariantsRandom covers long sequences).
		if len(data) > 96 {
			data = data[:96]
		}
		runOps(t, data)
	})
}
