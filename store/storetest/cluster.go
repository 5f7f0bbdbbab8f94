package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/weftnet/weft/store"
)

// Compactor is what ClusterSuite needs besides store.Cluster to test that a
// watch reports compaction: drop the history up to and including rev.
// etcd's Compact and the local stores' Compact do that.
type Compactor interface {
	Compact(ctx context.Context, rev int64) error
}

// ClusterSuite describes a store.Cluster under test. Its Run runs the
// store.Store suite (Suite) on the same stores, then the cluster subtests.
type ClusterSuite struct {
	// Open returns a new, empty store; the suite closes it. It must also
	// implement Compactor.
	Open func(t *testing.T) store.Cluster
	// Reopen, if not nil, is as in Suite.
	Reopen func(t *testing.T, s store.Store) store.Store
	// Wait bounds every wait for something the store does by itself
	// (a lease running out, an event arriving). Zero means 30 s: generous,
	// because a loaded 2-core CI machine running etcd can be slow, and a
	// passing test does not wait for it.
	Wait time.Duration
}

func (s ClusterSuite) wait() time.Duration {
	if s.Wait > 0 {
		return s.Wait
	}
	return 30 * time.Second
}

// Run runs the store.Store suite, then every cluster subtest.
func (s ClusterSuite) Run(t *testing.T) {
	t.Helper()
	if s.Open == nil {
		t.Fatal("storetest: ClusterSuite.Open is nil")
	}
	t.Run("Store", func(t *testing.T) {
		Suite{Open: func(t *testing.T) store.Store { return s.Open(t) }, Reopen: s.Reopen}.Run(t)
	})
	tests := []struct {
		name string
		fn   func(t *testing.T, s ClusterSuite)
	}{
		{"Revisions", testRevisions},
		{"CreateOnly", testCreateOnly},
		{"CreateRace", testCreateRace},
		{"CompareOnRevision", testCompareOnRevision},
		{"CompareRace", testCompareRace},
		{"TxnLimits", testTxnLimits},
		{"LargeApply", testLargeApply},
		{"Watch", testWatch},
		{"WatchResume", testWatchResume},
		{"WatchCompacted", testWatchCompacted},
		{"WatchEndsWithContext", testWatchEndsWithContext},
		{"LeaseRevoke", testLeaseRevoke},
		{"LeaseExpiry", testLeaseExpiry},
		{"LeaseKeepAlive", testLeaseKeepAlive},
		{"UnknownLease", testUnknownLease},
		{"ClusterDoneContext", testClusterDoneContext},
		{"ClusterInvalidNames", testClusterInvalidNames},
		{"ClusterCopyInOut", testClusterCopyInOut},
		{"ClusterClose", testClusterClose},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, s) })
	}
}

func (s ClusterSuite) open(t *testing.T) store.Cluster {
	t.Helper()
	st := s.Open(t)
	if st == nil {
		t.Fatal("ClusterSuite.Open returned nil")
	}
	closeAtEnd(t, st)
	return st
}

// ctx returns a context that ends with the test or after the suite's wait.
func (s ClusterSuite) ctx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), s.wait())
	t.Cleanup(cancel)
	return ctx
}

func getItem(t *testing.T, st store.Cluster, bucket, key string) (store.Item, bool, int64) {
	t.Helper()
	it, ok, rev, err := st.GetItem(t.Context(), bucket, key)
	if err != nil {
		t.Fatalf("GetItem(%q, %q): %v", bucket, key, err)
	}
	if ok && it.Value == nil {
		t.Fatalf("GetItem(%q, %q) returned a nil value for an existing key", bucket, key)
	}
	if rev <= 0 && ok {
		t.Fatalf("GetItem(%q, %q) returned store revision %d", bucket, key, rev)
	}
	return it, ok, rev
}

func txn(t *testing.T, st store.Cluster, conds []store.Cond, ops ...store.Op) int64 {
	t.Helper()
	rev, err := st.Txn(t.Context(), conds, ops...)
	if err != nil {
		t.Fatalf("Txn(%s): %v", describe(ops), err)
	}
	return rev
}

func testRevisions(t *testing.T, s ClusterSuite) {
	st := s.open(t)
	_, ok, rev0 := getItem(t, st, "b", "k")
	if ok {
		t.Fatal("a new store has b/k")
	}
	rev1 := txn(t, st, nil, store.Put("b", "k", []byte("1")), store.Put("b", "j", []byte("j")))
	if rev1 <= rev0 {
		t.Fatalf("write returned revision %d, not after the revision %d read before it", rev1, rev0)
	}
	it, ok, rev := getItem(t, st, "b", "k")
	if !ok || string(it.Value) != "1" || it.ModRev != rev1 || rev < rev1 || it.Key != "k" {
		t.Fatalf("GetItem after a write at %d = %+v, %v, store revision %d", rev1, it, ok, rev)
	}
	// A plain Apply moves revisions too.
	apply(t, st, store.Put("b", "k", []byte("2")))
	it2, _, rev2 := getItem(t, st, "b", "k")
	if it2.ModRev <= rev1 || rev2 < it2.ModRev {
		t.Fatalf("after Apply: ModRev %d (was %d), store revision %d", it2.ModRev, rev1, rev2)
	}
	items, lrev, err := st.ListItems(t.Context(), "b")
	if err != nil {
		t.Fatal(err)
	}
	if lrev < rev2 || len(items) != 2 || items[0].Key != "j" || items[1].Key != "k" ||
		items[0].ModRev != rev1 || items[1].ModRev != it2.ModRev || string(items[1].Value) != "2" {
		t.Fatalf("ListItems = %+v at %d; want j@%d, k@%d sorted, at >= %d", items, lrev, rev1, it2.ModRev, rev2)
	}
	// Writes to other buckets move the store revision, not this key's.
	rev3 := txn(t, st, nil, store.Put("other", "k", []byte("x")))
	it3, _, rev4 := getItem(t, st, "b", "k")
	if it3.ModRev != it2.ModRev || rev4 < rev3 || rev3 <= rev2 {
		t.Fatalf("after writing another bucket at %d: b/k ModRev %d (want %d), store revision %d", rev3, it3.ModRev, it2.ModRev, rev4)
	}
	items, _, err = st.ListItems(t.Context(), "never-written")
	if err != nil || items == nil || len(items) != 0 {
		t.Fatalf("ListItems of a missing bucket = %#v, %v; want an empty, non-nil slice", items, err)
	}
}

func testCreateOnly(t *testing.T, s ClusterSuite) {
	st := s.open(t)
	ctx := t.Context()
	rev, err := st.Create(ctx, store.Put("vnis", "4096", []byte("net-a")))
	if err != nil {
		t.Fatalf("Create of a new key: %v", err)
	}
	it, _, _ := getItem(t, st, "vnis", "4096")
	if it.ModRev != rev {
		t.Fatalf("Create returned revision %d, the key has ModRev %d", rev, it.ModRev)
	}
	if _, err := st.Create(ctx, store.Put("vnis", "4096", []byte("net-b"))); !errors.Is(err, store.ErrExists) {
		t.Fatalf("Create of an existing key: err = %v, want one wrapping store.ErrExists", err)
	}
	wantValue(t, st, "vnis", "4096", "net-a")
	// Once deleted, it can be created again.
	apply(t, st, store.Delete("vnis", "4096"))
	if _, err := st.Create(ctx, store.Put("vnis", "4096", []byte("net-c"))); err != nil {
		t.Fatalf("Create after delete: %v", err)
	}
	wantValue(t, st, "vnis", "4096", "net-c")
	if _, err := st.Create(ctx, store.Delete("vnis", "x")); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("Create of a delete: err = %v, want store.ErrInvalid", err)
	}
}

// testCreateRace has many goroutines Create the same keys: each key has
// exactly one winner, and its value is the winner's.
func testCreateRace(t *testing.T, s ClusterSuite) {
	st := s.open(t)
	const (
		racers = 16
		keys   = 5
	)
	ctx := s.ctx(t)
	var (
		mu      sync.Mutex
		winners = map[string][]int{}
		wg      sync.WaitGroup
		start   = make(chan struct{})
		errs    = make(chan error, racers*keys)
	)
	for r := range racers {
		wg.Go(func() {
			<-start
			for k := range keys {
				key := fmt.Sprintf("10.0.0.%d", k)
				_, err := st.Create(ctx, store.Put("addresses", key, fmt.Appendf(nil, "racer %d", r)))
				switch {
				case err == nil:
					mu.Lock()
					winners[key] = append(winners[key], r)
					mu.Unlock()
				case errors.Is(err, store.ErrExists):
				default:
					errs <- fmt.Errorf("racer %d: Create(%s): %w", r, key, err)
				}
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for k := range keys {
		key := fmt.Sprintf("10.0.0.%d", k)
		w := winners[key]
		if len(w) != 1 {
			t.Fatalf("key %s had winners %v, want exactly one", key, w)
		}
		wantValue(t, st, "addresses", key, fmt.Sprintf("racer %d", w[0]))
	}
}

func testCompareOnRevision(t *testing.T, s ClusterSuite) {
	st := s.open(t)
	ctx := t.Context()
	rev1 := txn(t, st, nil, store.Put("pools", "p", []byte("v1")), store.Put("pools", "q", []byte("q1")))
	rev2 := txn(t, st, []store.Cond{store.Unchanged("pools", "p", rev1)}, store.Put("pools", "p", []byte("v2")))
	if rev2 <= rev1 {
		t.Fatalf("conditional write returned revision %d, not after %d", rev2, rev1)
	}
	// The stale revision is refused and nothing of the Txn is written.
	_, err := st.Txn(ctx, []store.Cond{store.Unchanged("pools", "q", rev1), store.Unchanged("pools", "p", rev1)},
		store.Put("pools", "p", []byte("v3")), store.Put("pools", "new", []byte("x")), store.Delete("pools", "q"))
	if !errors.Is(err, store.ErrConflict) {
		t.Fatalf("Txn on a stale revision: err = %v, want one wrapping store.ErrConflict", err)
	}
	wantList(t, st, "pools", map[string]string{"p": "v2", "q": "q1"})
	// Absent holds only while the key is absent.
	if _, err := st.Txn(ctx, []store.Cond{store.Absent("pools", "p")}, store.Put("pools", "r", []byte("x"))); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("Txn with Absent on an existing key: err = %v, want store.ErrConflict", err)
	}
	// Unchanged on a missing key fails.
	if _, err := st.Txn(ctx, []store.Cond{store.Unchanged("pools", "missing", rev1)}, store.Put("pools", "r", []byte("x"))); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("Txn with Unchanged on a missing key: err = %v, want store.ErrConflict", err)
	}
	txn(t, st, []store.Cond{store.Absent("pools", "r"), store.Unchanged("pools", "p", rev2), store.Unchanged("pools", "q", rev1)},
		store.Put("pools", "r", []byte("r")), store.Delete("pools", "q"), store.Put("pools", "p", []byte("v3")))
	wantList(t, st, "pools", map[string]string{"p": "v3", "r": "r"})
	// Conditions on one bucket, writes to another.
	it, _, _ := getItem(t, st, "pools", "p")
	txn(t, st, []store.Cond{store.Unchanged("pools", "p", it.ModRev)}, store.Put("addresses", "a", []byte("in p")))
	wantValue(t, st, "addresses", "a", "in p")
	// Conditions alone, writing nothing, still check.
	if _, err := st.Txn(ctx, []store.Cond{store.Unchanged("pools", "p", rev1)}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("Txn of conditions only, stale: err = %v, want store.ErrConflict", err)
	}
	txn(t, st, []store.Cond{store.Unchanged("pools", "p", it.ModRev)})
}

// testCompareRace has goroutines increment one counter by read, then
// compare-and-write, retrying on ErrConflict: no increment is lost.
func testCompareRace(t *testing.T, s ClusterSuite) {
	st := s.open(t)
	const (
		workers = 6
		incs    = 5
	)
	ctx := s.ctx(t)
	apply(t, st, store.Put("c", "n", []byte("0")))
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for range incs {
				for {
					it, _, _, err := st.GetItem(ctx, "c", "n")
					if err != nil {
						errs <- fmt.Errorf("worker %d: %w", w, err)
						return
					}
					var n int
					fmt.Sscan(string(it.Value), &n)
					_, err = st.Txn(ctx, []store.Cond{store.Unchanged("c", "n", it.ModRev)}, store.Put("c", "n", fmt.Appendf(nil, "%d", n+1)))
					if err == nil {
						break
					}
					if !errors.Is(err, store.ErrConflict) {
						errs <- fmt.Errorf("worker %d: %w", w, err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	wantValue(t, st, "c", "n", fmt.Sprint(workers*incs))
}

func testTxnLimits(t *testing.T, s ClusterSuite) {
	st := s.open(t)
	ctx := t.Context()
	var ops []store.Op
	var conds []store.Cond
	for i := range store.MaxTxnKeys {
		ops = append(ops, store.Put("b", fmt.Sprint(i), []byte("v")))
		conds = append(conds, store.Absent("b", fmt.Sprint(i)))
	}
	// The same key written twice counts once.
	ops = append(ops, store.Put("b", "0", []byte("again")))
	txn(t, st, conds, ops...)
	items, _, err := st.ListItems(ctx, "b")
	if err != nil || len(items) != store.MaxTxnKeys {
		t.Fatalf("after a Txn of %d keys: %d items, %v", store.MaxTxnKeys, len(items), err)
	}
	wantValue(t, st, "b", "0", "again")
	tooMany := append(slices.Clone(ops), store.Put("b", "one too many", []byte("v")))
	if _, err := st.Txn(ctx, nil, tooMany...); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("Txn of %d keys: err = %v, want store.ErrInvalid", store.MaxTxnKeys+1, err)
	}
	if _, err := st.Txn(ctx, append(slices.Clone(conds), store.Absent("b", "x"))); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("Txn of %d conditions: err = %v, want store.ErrInvalid", store.MaxTxnKeys+1, err)
	}
	wantMissing(t, st, "b", "one too many")
}

// testLargeApply writes and deletes 1000 records in one Apply each, mixed
// with a put and a delete of the same key (the last op wins), and checks
// the watch sees every change once, in op order.
func testLargeApply(t *testing.T, s ClusterSuite) {
	st := s.open(t)
	ctx := s.ctx(t)
	_, rev0, err := st.ListItems(ctx, "endpoints")
	if err != nil {
		t.Fatal(err)
	}
	w := st.Watch(ctx, "endpoints", rev0+1)
	const n = 1000
	var puts, deletes []store.Op
	want := map[string]string{}
	for i := range n {
		k := fmt.Sprintf("%064x", i)
		v := fmt.Sprintf(`{"endpoint":%d,"pad":"%0200d"}`, i, i)
		puts = append(puts, store.Put("endpoints", k, []byte(v)))
		deletes = append(deletes, store.Delete("endpoints", k))
		want[k] = v
	}
	puts = append(puts, store.Put("endpoints", fmt.Sprintf("%064x", 0), []byte("last wins")))
	want[fmt.Sprintf("%064x", 0)] = "last wins"
	apply(t, st, puts...)
	wantList(t, st, "endpoints", want)
	apply(t, st, deletes...)
	wantList(t, st, "endpoints", map[string]string{})

	evs := collect(t, s, w, 2*n)
	for i, ev := range evs {
		k := fmt.Sprintf("%064x", i%n)
		wantType := store.EventPut
		if i >= n {
			wantType = store.EventDelete
		}
		if ev.Key != k || ev.Type != wantType {
			t.Fatalf("event %d = %s %q, want %s %q", i, ev.Type, ev.Key, wantType, k)
		}
		if i == 0 && string(ev.Value) != "last wins" {
			t.Fatalf("event 0 has value %q, want the last put's", ev.Value)
		}
	}
}

// collect reads n events from w, failing on an error or a timeout.
func collect(t *testing.T, s ClusterSuite, w <-chan store.WatchResponse, n int) []store.Event {
	t.Helper()
	var evs []store.Event
	timeout := time.NewTimer(s.wait())
	defer timeout.Stop()
	for len(evs) < n {
		select {
		case resp, ok := <-w:
			if !ok {
				t.Fatalf("watch closed after %d of %d events", len(evs), n)
			}
			if resp.Err != nil {
				t.Fatalf("watch failed after %d of %d events: %v", len(evs), n, resp.Err)
			}
			evs = append(evs, resp.Events...)
		case <-timeout.C:
			t.Fatalf("watch gave %d of %d events in %s", len(evs), n, s.wait())
		}
	}
	if len(evs) > n {
		t.Fatalf("watch gave %d events, want %d: %+v", len(evs), n, evs[n:])
	}
	return evs
}

type wantEv struct {
	typ   store.EventType
	key   string
	value string
}

func checkEvents(t *testing.T, evs []store.Event, want []wantEv) {
	t.Helper()
	for i, w := range want {
		ev := evs[i]
		if ev.Type != w.typ || ev.Key != w.key || string(ev.Value) != w.value {
			t.Fatalf("event %d = %s %q %q, want %s %q %q", i, ev.Type, ev.Key, ev.Value, w.typ, w.key, w.value)
		}
		if w.typ == store.EventPut && ev.Value == nil {
			t.Fatalf("event %d: a put with a nil value", i)
		}
		if w.typ == store.EventDelete && ev.Value != nil {
			t.Fatalf("event %d: a delete with value %q", i, ev.Value)
		}
		if i > 0 && ev.ModRev < evs[i-1].ModRev {
			t.Fatalf("event %d has revision %d, before the previous event's %d", i, ev.ModRev, evs[i-1].ModRev)
		}
	}
}

// watchNow watches bucket from the store's current revision + 1, so it
// misses nothing written after it returns.
func watchNow(t *testing.T, ctx context.Context, st store.Cluster, bucket string) <-chan store.WatchResponse {
	t.Helper()
	_, rev, err := st.ListItems(ctx, bucket)
	if err != nil {
		t.Fatalf("ListItems(%q): %v", bucket, err)
	}
	return st.Watch(ctx, bucket, rev+1)
}

func testWatch(t *testing.T, s ClusterSuite) {
	st := s.open(t)
	ctx := s.ctx(t)
	apply(t, st, store.Put("hosts", "before", []byte("not seen")))
	w := watchNow(t, ctx, st, "hosts")
	other := watchNow(t, ctx, st, "hostsx")
	r1 := txn(t, st, nil, store.Put("hosts", "h1", []byte("a")), store.Put("hostsx", "h1", []byte("other bucket")))
	r2 := txn(t, st, nil, store.Put("hosts", "h2", []byte("b")), store.Put("hosts", "h1", []byte("a2")))
	apply(t, st, store.Delete("hosts", "h1"), store.Delete("hosts", "never-there"))
	apply(t, st, store.Put("hosts", "h3", []byte{}))
	evs := collect(t, s, w, 5)
	checkEvents(t, evs, []wantEv{
		{store.EventPut, "h1", "a"},
		{store.EventPut, "h2", "b"},
		{store.EventPut, "h1", "a2"},
		{store.EventDelete, "h1", ""},
		{store.EventPut, "h3", ""},
	})
	if evs[0].ModRev != r1 || evs[1].ModRev != r2 || evs[2].ModRev != r2 || evs[3].ModRev <= r2 {
		t.Fatalf("event revisions %d %d %d %d; writes were at %d, %d", evs[0].ModRev, evs[1].ModRev, evs[2].ModRev, evs[3].ModRev, r1, r2)
	}
	if evs[4].Value == nil {
		t.Fatal("a put of an empty value arrived as a nil value")
	}
	oevs := collect(t, s, other, 1)
	checkEvents(t, oevs, []wantEv{{store.EventPut, "h1", "other bucket"}})
}

// testWatchResume lists, writes, then watches from the listed revision + 1
// (it misses nothing) and from the middle (it starts there).
func testWatchResume(t *testing.T, s ClusterSuite) {
	st := s.open(t)
	ctx := s.ctx(t)
	apply(t, st, store.Put("peers", "p0", []byte("0")))
	_, rev, err := st.ListItems(ctx, "peers")
	if err != nil {
		t.Fatal(err)
	}
	r1 := txn(t, st, nil, store.Put("peers", "p1", []byte("1")))
	txn(t, st, nil, store.Put("peers", "p2", []byte("2")))
	txn(t, st, nil, store.Delete("peers", "p0"))
	all := collect(t, s, st.Watch(ctx, "peers", rev+1), 3)
	checkEvents(t, all, []wantEv{{store.EventPut, "p1", "1"}, {store.EventPut, "p2", "2"}, {store.EventDelete, "p0", ""}})
	// Resume after the first event: the rest, then new changes.
	w := st.Watch(ctx, "peers", r1+1)
	txn(t, st, nil, store.Put("peers", "p3", []byte("3")))
	rest := collect(t, s, w, 3)
	checkEvents(t, rest, []wantEv{{store.EventPut, "p2", "2"}, {store.EventDelete, "p0", ""}, {store.EventPut, "p3", "3"}})
}

func testWatchCompacted(t *testing.T, s ClusterSuite) {
	st := s.open(t)
	c, ok := st.(Compactor)
	if !ok {
		t.Fatalf("%T does not implement storetest.Compactor", st)
	}
	ctx := s.ctx(t)
	r1 := txn(t, st, nil, store.Put("peers", "p1", []byte("1")))
	txn(t, st, nil, store.Put("peers", "p2", []byte("2")))
	r3 := txn(t, st, nil, store.Put("peers", "p3", []byte("3")))
	// A watch already running from before the compaction point.
	if err := c.Compact(ctx, r3); err != nil {
		t.Fatalf("Compact(%d): %v", r3, err)
	}
	resp, ok := <-st.Watch(ctx, "peers", r1)
	if !ok || !errors.Is(resp.Err, store.ErrCompacted) {
		t.Fatalf("Watch from compacted revision %d: first response %+v (open %v), want one whose Err wraps store.ErrCompacted", r1, resp, ok)
	}
	if _, ok := <-st.Watch(ctx, "peers", r1); !ok {
		t.Fatal("Watch from a compacted revision closed without saying why")
	}
	// From after the compaction point works.
	w := st.Watch(ctx, "peers", r3+1)
	txn(t, st, nil, store.Put("peers", "p4", []byte("4")))
	checkEvents(t, collect(t, s, w, 1), []wantEv{{store.EventPut, "p4", "4"}})
}

func testWatchEndsWithContext(t *testing.T, s ClusterSuite) {
	st := s.open(t)
	ctx, cancel := context.WithCancel(t.Context())
	w := watchNow(t, ctx, st, "b")
	apply(t, st, store.Put("b", "k", []byte("v")))
	collect(t, s, w, 1)
	cancel()
	timeout := time.After(s.wait())
	for {
		select {
		case resp, ok := <-w:
			if !ok {
				return
			}
			if resp.Err != nil {
				t.Fatalf("watch ended by its context sent error %v; it must just close", resp.Err)
			}
		case <-timeout:
			t.Fatalf("watch still open %s after its context ended", s.wait())
		}
	}
}

func testLeaseRevoke(t *testing.T, s ClusterSuite) {
	st := s.open(t)
	ctx := s.ctx(t)
	id, err := st.Grant(ctx, time.Minute)
	if err != nil {
		t.Fatalf("Grant: %v", err)
	}
	w := watchNow(t, ctx, st, "hosts")
	apply(t, st, store.PutLeased("hosts", "me", []byte("10.0.0.1"), id), store.Put("hosts", "kept", []byte("no lease")))
	if _, err := st.Create(ctx, store.PutLeased("endpoints", "e1", []byte("x"), id)); err != nil {
		t.Fatalf("Create under a lease: %v", err)
	}
	it, _, _ := getItem(t, st, "hosts", "me")
	if it.Lease != id {
		t.Fatalf("GetItem of a leased record: Lease = %d, want %d", it.Lease, id)
	}
	if err := st.Revoke(ctx, id); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	wantMissing(t, st, "hosts", "me")
	wantMissing(t, st, "endpoints", "e1")
	wantValue(t, st, "hosts", "kept", "no lease")
	evs := collect(t, s, w, 3)
	checkEvents(t, evs, []wantEv{{store.EventPut, "me", "10.0.0.1"}, {store.EventPut, "kept", "no lease"}, {store.EventDelete, "me", ""}})
	if evs[0].Lease != id {
		t.Fatalf("put event of a leased record: Lease = %d, want %d", evs[0].Lease, id)
	}
	if err := st.Revoke(ctx, id); err != nil {
		t.Fatalf("second Revoke: %v", err)
	}
	if err := st.Apply(ctx, store.PutLeased("hosts", "me", []byte("x"), id)); !errors.Is(err, store.ErrNoLease) {
		t.Fatalf("Apply under a revoked lease: err = %v, want store.ErrNoLease", err)
	}
	if err := st.KeepAlive(ctx, id); !errors.Is(err, store.ErrNoLease) {
		t.Fatalf("KeepAlive of a revoked lease: err = %v, want store.ErrNoLease", err)
	}
}

// leaseTTL is the shortest TTL every store accepts as given (etcd raises
// shorter ones to about 2 s).
const leaseTTL = 2 * time.Second

func testLeaseExpiry(t *testing.T, s ClusterSuite) {
	st := s.open(t)
	ctx := s.ctx(t)
	id, err := st.Grant(ctx, leaseTTL)
	if err != nil {
		t.Fatalf("Grant: %v", err)
	}
	apply(t, st, store.PutLeased("hosts", "me", []byte("10.0.0.1"), id))
	_, rev, err := st.ListItems(ctx, "hosts")
	if err != nil {
		t.Fatal(err)
	}
	w := st.Watch(ctx, "hosts", rev+1)
	// KeepAlive notices the end of the lease too.
	kaCtx, kaCancel := context.WithTimeout(ctx, s.wait())
	defer kaCancel()
	ka := make(chan error, 1)
	go func() {
		// Renew once quickly, then stop renewing: run KeepAlive only
		// briefly.
		short, cancel := context.WithTimeout(kaCtx, leaseTTL/2)
		defer cancel()
		_ = st.KeepAlive(short, id)
		ka <- nil
	}()
	evs := collect(t, s, w, 1)
	checkEvents(t, evs, []wantEv{{store.EventDelete, "me", ""}})
	wantMissing(t, st, "hosts", "me")
	<-ka
	if err := st.Apply(ctx, store.PutLeased("hosts", "me", []byte("x"), id)); !errors.Is(err, store.ErrNoLease) {
		t.Fatalf("Apply under an expired lease: err = %v, want store.ErrNoLease", err)
	}
	if err := st.KeepAlive(ctx, id); !errors.Is(err, store.ErrNoLease) {
		t.Fatalf("KeepAlive of an expired lease: err = %v, want store.ErrNoLease", err)
	}
}

// testLeaseKeepAlive checks that a kept-alive lease outlives several TTLs,
// that KeepAlive returns when its context ends, and that a lease revoked
// while KeepAlive runs makes it return ErrNoLease.
func testLeaseKeepAlive(t *testing.T, s ClusterSuite) {
	st := s.open(t)
	ctx := s.ctx(t)
	id, err := st.Grant(ctx, leaseTTL)
	if err != nil {
		t.Fatalf("Grant: %v", err)
	}
	apply(t, st, store.PutLeased("hosts", "me", []byte("alive"), id))
	kaCtx, kaCancel := context.WithCancel(ctx)
	defer kaCancel()
	ka := make(chan error, 1)
	go func() { ka <- st.KeepAlive(kaCtx, id) }()
	// Three TTLs must pass with the record in place. This is the one wait
	// that cannot poll: it checks that something does not happen.
	end := time.Now().Add(3 * leaseTTL)
	for time.Now().Before(end) {
		wantValue(t, st, "hosts", "me", "alive")
		select {
		case err := <-ka:
			t.Fatalf("KeepAlive returned early: %v", err)
		case <-time.After(200 * time.Millisecond):
		}
	}
	if err := st.Revoke(ctx, id); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-ka:
		if !errors.Is(err, store.ErrNoLease) {
			t.Fatalf("KeepAlive of a lease revoked meanwhile returned %v, want store.ErrNoLease", err)
		}
	case <-time.After(s.wait()):
		t.Fatalf("KeepAlive still running %s after its lease was revoked", s.wait())
	}
	wantMissing(t, st, "hosts", "me")

	// KeepAlive returns the context's error when the caller stops it.
	id2, err := st.Grant(ctx, leaseTTL)
	if err != nil {
		t.Fatal(err)
	}
	ctx2, cancel2 := context.WithCancel(ctx)
	go func() { ka <- st.KeepAlive(ctx2, id2) }()
	cancel2()
	select {
	case err := <-ka:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("KeepAlive after its context ended returned %v, want context.Canceled", err)
		}
	case <-time.After(s.wait()):
		t.Fatalf("KeepAlive still running %s after its context ended", s.wait())
	}
	if err := st.Revoke(ctx, id2); err != nil {
		t.Fatal(err)
	}
}

func testUnknownLease(t *testing.T, s ClusterSuite) {
	st := s.open(t)
	ctx := t.Context()
	const bogus = store.LeaseID(0x7eadbeef)
	if err := st.Apply(ctx, store.Put("b", "plain", []byte("x")), store.PutLeased("b", "k", []byte("x"), bogus)); !errors.Is(err, store.ErrNoLease) {
		t.Fatalf("Apply under an unknown lease: err = %v, want store.ErrNoLease", err)
	}
	if _, err := st.Txn(ctx, nil, store.PutLeased("b", "k", []byte("x"), bogus)); !errors.Is(err, store.ErrNoLease) {
		t.Fatalf("Txn under an unknown lease: err = %v, want store.ErrNoLease", err)
	}
	if _, err := st.Create(ctx, store.PutLeased("b", "k", []byte("x"), bogus)); !errors.Is(err, store.ErrNoLease) {
		t.Fatalf("Create under an unknown lease: err = %v, want store.ErrNoLease", err)
	}
	wantList(t, st, "b", map[string]string{})
	if err := st.Revoke(ctx, bogus); err != nil {
		t.Fatalf("Revoke of an unknown lease: %v", err)
	}
	if _, err := st.Grant(ctx, 100*time.Millisecond); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("Grant of a sub-second TTL: err = %v, want store.ErrInvalid", err)
	}
}

func testClusterDoneContext(t *testing.T, s ClusterSuite) {
	st := s.open(t)
	apply(t, st, store.Put("b", "k", []byte("v")))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	check := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a cancelled context: err = %v, want one wrapping context.Canceled", what, err)
		}
	}
	_, _, _, err := st.GetItem(ctx, "b", "k")
	check("GetItem", err)
	_, _, err = st.ListItems(ctx, "b")
	check("ListItems", err)
	_, err = st.Create(ctx, store.Put("b", "new", []byte("x")))
	check("Create", err)
	_, err = st.Txn(ctx, nil, store.Put("b", "k", []byte("changed")))
	check("Txn", err)
	_, err = st.Grant(ctx, time.Minute)
	check("Grant", err)
	check("Revoke", st.Revoke(ctx, 1))
	check("KeepAlive", st.KeepAlive(ctx, 1))
	timeout := time.After(s.wait())
	w := st.Watch(ctx, "b", 0)
	for done := false; !done; {
		select {
		case resp, ok := <-w:
			done = !ok
			if ok && resp.Err != nil {
				t.Errorf("Watch with a cancelled context sent error %v; it must just close", resp.Err)
			}
		case <-timeout:
			t.Fatal("Watch with a cancelled context did not close")
		}
	}
	wantList(t, st, "b", map[string]string{"k": "v"})
}

func testClusterInvalidNames(t *testing.T, s ClusterSuite) {
	st := s.open(t)
	ctx := t.Context()
	for _, bucket := range []string{"", store.MetaBucket, "a/b"} {
		if _, _, _, err := st.GetItem(ctx, bucket, "k"); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("GetItem(%q): err = %v, want store.ErrInvalid", bucket, err)
		}
		if _, _, err := st.ListItems(ctx, bucket); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("ListItems(%q): err = %v, want store.ErrInvalid", bucket, err)
		}
		if _, err := st.Create(ctx, store.Put(bucket, "k", []byte("v"))); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("Create(%q/k): err = %v, want store.ErrInvalid", bucket, err)
		}
		if _, err := st.Txn(ctx, []store.Cond{store.Absent(bucket, "k")}); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("Txn(cond on %q/k): err = %v, want store.ErrInvalid", bucket, err)
		}
		resp := <-st.Watch(ctx, bucket, 0)
		if !errors.Is(resp.Err, store.ErrInvalid) {
			t.Errorf("Watch(%q): first response %+v, want an error wrapping store.ErrInvalid", bucket, resp)
		}
	}
	if _, err := st.Txn(ctx, []store.Cond{store.Absent("b", "")}); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("Txn(cond on an empty key): err = %v, want store.ErrInvalid", err)
	}
	if _, err := st.Txn(ctx, []store.Cond{store.Absent("b", "k")}, store.Put("b", "", []byte("v"))); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("Txn(put of an empty key): err = %v, want store.ErrInvalid", err)
	}
}

func testClusterCopyInOut(t *testing.T, s ClusterSuite) {
	st := s.open(t)
	ctx := s.ctx(t)
	w := watchNow(t, ctx, st, "b")
	v := []byte("original")
	txn(t, st, nil, store.Put("b", "k", v))
	if _, err := st.Create(ctx, store.Put("b", "c", v)); err != nil {
		t.Fatal(err)
	}
	copy(v, "CHANGED!")
	wantValue(t, st, "b", "k", "original")
	wantValue(t, st, "b", "c", "original")
	it, _, _ := getItem(t, st, "b", "k")
	copy(it.Value, "CHANGED!")
	items, _, err := st.ListItems(ctx, "b")
	if err != nil {
		t.Fatal(err)
	}
	copy(items[0].Value, "CHANGED!")
	evs := collect(t, s, w, 2)
	copy(evs[0].Value, "CHANGED!")
	wantValue(t, st, "b", "k", "original")
	wantValue(t, st, "b", "c", "original")
	// A second watcher gets its own copies.
	evs2 := collect(t, s, st.Watch(ctx, "b", evs[0].ModRev), 2)
	if string(evs2[0].Value) != "original" {
		t.Fatalf("a second watcher saw %q: the first watcher's copy was shared", evs2[0].Value)
	}
}

func testClusterClose(t *testing.T, s ClusterSuite) {
	st := s.open(t)
	ctx := t.Context()
	id, err := st.Grant(ctx, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	w := st.Watch(ctx, "b", 0)
	if err := st.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	check := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, store.ErrClosed) {
			t.Errorf("%s after Close: err = %v, want one wrapping store.ErrClosed", what, err)
		}
	}
	_, _, _, err = st.GetItem(ctx, "b", "k")
	check("GetItem", err)
	_, _, err = st.ListItems(ctx, "b")
	check("ListItems", err)
	_, err = st.Create(ctx, store.Put("b", "k", []byte("x")))
	check("Create", err)
	_, err = st.Txn(ctx, nil, store.Put("b", "k", []byte("x")))
	check("Txn", err)
	_, err = st.Grant(ctx, time.Minute)
	check("Grant", err)
	check("KeepAlive", st.KeepAlive(ctx, id))
	check("Revoke", st.Revoke(ctx, id))
	resp := <-st.Watch(ctx, "b", 0)
	check("a new Watch", resp.Err)
	// A running watch ends: with ErrClosed, or just closes.
	timeout := time.After(s.wait())
	for {
		select {
		case resp, ok := <-w:
			if !ok {
				return
			}
			if resp.Err != nil && !errors.Is(resp.Err, store.ErrClosed) {
				t.Fatalf("a watch running at Close ended with %v, want store.ErrClosed", resp.Err)
			}
		case <-timeout:
			t.Fatalf("a watch running at Close still open %s later", s.wait())
		}
	}
}
