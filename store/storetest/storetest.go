package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"

	"github.com/weftnet/weft/store"
)

// Suite describes the store under test.
type Suite struct {
	// Open returns a new, empty store. It is called once per subtest; the
	// suite closes what it returns (and may close it twice).
	Open func(t *testing.T) store.Store
	// Reopen, if not nil, closes s and returns a new Store over the same
	// data, as a restarted weft would see it. The suite closes what it
	// returns. Without Reopen the persistence subtests are skipped.
	Reopen func(t *testing.T, s store.Store) store.Store
}

// Run runs the suite without persistence checks; see Suite.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	t.Helper()
	Suite{Open: open}.Run(t)
}

// Run runs every conformance subtest against the store.
func (s Suite) Run(t *testing.T) {
	t.Helper()
	if s.Open == nil {
		t.Fatal("storetest: Suite.Open is nil")
	}
	tests := []struct {
		name string
		fn   func(t *testing.T, s Suite)
	}{
		{"PutGet", testPutGet},
		{"Overwrite", testOverwrite},
		{"Delete", testDelete},
		{"EmptyValue", testEmptyValue},
		{"ListMissingBucket", testListMissingBucket},
		{"BucketIsolation", testBucketIsolation},
		{"KeysWithSeparators", testKeysWithSeparators},
		{"OpsInOrder", testOpsInOrder},
		{"EmptyApply", testEmptyApply},
		{"ManyOps", testManyOps},
		{"FailedApplyChangesNothing", testFailedApplyChangesNothing},
		{"InvalidNames", testInvalidNames},
		{"CopyIn", testCopyIn},
		{"CopyOut", testCopyOut},
		{"DoneContext", testDoneContext},
		{"ConcurrentApply", testConcurrentApply},
		{"Close", testClose},
	}
	// A store that does not outlive its Store value (memstore) has nothing to
	// persist: the subtest is left out rather than skipped, because CI treats
	// every skip as a failure unless a kernel feature is missing.
	if s.Reopen != nil {
		tests = append(tests, struct {
			name string
			fn   func(*testing.T, Suite)
		}{"Persistence", testPersistence})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, s) })
	}
}

// open returns a new store that is closed when the test ends.
func (s Suite) open(t *testing.T) store.Store {
	t.Helper()
	st := s.Open(t)
	if st == nil {
		t.Fatal("Suite.Open returned nil")
	}
	closeAtEnd(t, st)
	return st
}

func (s Suite) reopen(t *testing.T, st store.Store) store.Store {
	t.Helper()
	ns := s.Reopen(t, st)
	if ns == nil {
		t.Fatal("Suite.Reopen returned nil")
	}
	closeAtEnd(t, ns)
	return ns
}

func closeAtEnd(t *testing.T, st store.Store) {
	t.Helper()
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
}

func apply(t *testing.T, st store.Store, ops ...store.Op) {
	t.Helper()
	if err := st.Apply(t.Context(), ops...); err != nil {
		t.Fatalf("Apply(%s): %v", describe(ops), err)
	}
}

// wantValue fails unless bucket/key holds want.
func wantValue(t *testing.T, st store.Store, bucket, key, want string) {
	t.Helper()
	got, ok, err := st.Get(t.Context(), bucket, key)
	switch {
	case err != nil:
		t.Fatalf("Get(%q, %q): %v", bucket, key, err)
	case !ok:
		t.Fatalf("Get(%q, %q): missing, want %q", bucket, key, want)
	case got == nil:
		t.Fatalf("Get(%q, %q) = nil, true; an existing value must be non-nil", bucket, key)
	case string(got) != want:
		t.Fatalf("Get(%q, %q) = %q, want %q", bucket, key, got, want)
	}
}

// wantMissing fails unless bucket/key is absent.
func wantMissing(t *testing.T, st store.Store, bucket, key string) {
	t.Helper()
	got, ok, err := st.Get(t.Context(), bucket, key)
	if err != nil {
		t.Fatalf("Get(%q, %q): %v", bucket, key, err)
	}
	if ok || got != nil {
		t.Fatalf("Get(%q, %q) = %q, %v; want nil, false", bucket, key, got, ok)
	}
}

// wantList fails unless bucket holds exactly want.
func wantList(t *testing.T, st store.Store, bucket string, want map[string]string) {
	t.Helper()
	got, err := st.List(t.Context(), bucket)
	if err != nil {
		t.Fatalf("List(%q): %v", bucket, err)
	}
	if got == nil {
		t.Fatalf("List(%q) = nil map; want an empty, non-nil map", bucket)
	}
	if len(got) != len(want) {
		t.Fatalf("List(%q) has %d keys %q; want %d keys %q",
			bucket, len(got), slices.Sorted(maps.Keys(got)), len(want), slices.Sorted(maps.Keys(want)))
	}
	for k, w := range want {
		g, ok := got[k]
		switch {
		case !ok:
			t.Fatalf("List(%q) lacks key %q", bucket, k)
		case g == nil:
			t.Fatalf("List(%q)[%q] = nil; an existing value must be non-nil", bucket, k)
		case string(g) != w:
			t.Fatalf("List(%q)[%q] = %q, want %q", bucket, k, g, w)
		}
	}
}

func describe(ops []store.Op) string {
	var b bytes.Buffer
	for i, op := range ops {
		if i == 3 && len(ops) > 4 {
			fmt.Fprintf(&b, " … (%d ops)", len(ops))
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		if op.Value == nil {
			fmt.Fprintf(&b, "delete %q/%q", op.Bucket, op.Key)
		} else {
			fmt.Fprintf(&b, "put %q/%q", op.Bucket, op.Key)
		}
	}
	return b.String()
}

func testPutGet(t *testing.T, s Suite) {
	st := s.open(t)
	wantMissing(t, st, "networks", "n1") // bucket never written
	apply(t, st, store.Put("networks", "n1", []byte("one")))
	wantValue(t, st, "networks", "n1", "one")
	wantMissing(t, st, "networks", "n2") // bucket exists, key does not
	apply(t, st, store.Put("networks", "n2", []byte("two")), store.Put("endpoints", "e1", []byte("ep")))
	wantList(t, st, "networks", map[string]string{"n1": "one", "n2": "two"})
	wantList(t, st, "endpoints", map[string]string{"e1": "ep"})
}

func testOverwrite(t *testing.T, s Suite) {
	st := s.open(t)
	apply(t, st, store.Put("b", "k", []byte("first, and longer")))
	apply(t, st, store.Put("b", "k", []byte("second")))
	wantValue(t, st, "b", "k", "second")
	wantList(t, st, "b", map[string]string{"k": "second"})
}

func testDelete(t *testing.T, s Suite) {
	st := s.open(t)
	apply(t, st, store.Put("b", "k1", []byte("1")), store.Put("b", "k2", []byte("2")))
	apply(t, st, store.Delete("b", "k1"))
	wantMissing(t, st, "b", "k1")
	wantList(t, st, "b", map[string]string{"k2": "2"})

	// Deleting what is not there is fine: Delete/Release of an unknown ID
	// must succeed (idempotency).
	apply(t, st, store.Delete("b", "k1"))
	apply(t, st, store.Delete("never-written", "k"))
	apply(t, st, store.Op{Bucket: "b", Key: "k2"}) // a zero Value deletes too
	wantList(t, st, "b", map[string]string{})
	wantList(t, st, "never-written", map[string]string{})

	// An emptied bucket can be written again.
	apply(t, st, store.Put("b", "k3", []byte("3")))
	wantList(t, st, "b", map[string]string{"k3": "3"})
}

func testEmptyValue(t *testing.T, s Suite) {
	st := s.open(t)
	// A non-nil empty value is a put (the plugin stores IPAM addresses so).
	apply(t, st, store.Put("b", "k", []byte{}))
	got, ok, err := st.Get(t.Context(), "b", "k")
	if err != nil || !ok || got == nil || len(got) != 0 {
		t.Fatalf("Get of an empty value = %#v, %v, %v; want []byte{}, true, nil", got, ok, err)
	}
	wantList(t, st, "b", map[string]string{"k": ""})
	// Writing back what was read keeps the key.
	apply(t, st, store.Put("b", "k", got))
	wantValue(t, st, "b", "k", "")
}

func testListMissingBucket(t *testing.T, s Suite) {
	st := s.open(t)
	wantList(t, st, "nothing-here", map[string]string{})
}

func testBucketIsolation(t *testing.T, s Suite) {
	st := s.open(t)
	apply(t, st,
		store.Put("a", "k", []byte("a/k")),
		store.Put("ab", "k", []byte("ab/k")),
		store.Put("a", "bk", []byte("a/bk")),
		store.Put("b", "k", []byte("b/k")),
	)
	wantList(t, st, "a", map[string]string{"k": "a/k", "bk": "a/bk"})
	wantList(t, st, "ab", map[string]string{"k": "ab/k"})
	wantList(t, st, "b", map[string]string{"k": "b/k"})
	apply(t, st, store.Delete("a", "k"))
	wantValue(t, st, "ab", "k", "ab/k")
	wantValue(t, st, "b", "k", "b/k")
}

func testKeysWithSeparators(t *testing.T, s Suite) {
	st := s.open(t)
	keys := []string{
		"weft:10.0.0.0/24", "a/b/c", "/", "//", "pool|10.0.0.5", "fd00::/64",
		"with space", "ünïcødé", "nul\x00byte", "-", "k/", "k",
	}
	want := map[string]string{}
	var ops []store.Op
	for i, k := range keys {
		v := fmt.Sprintf("value %d", i)
		want[k] = v
		ops = append(ops, store.Put("keys", k, []byte(v)))
	}
	apply(t, st, ops...)
	wantList(t, st, "keys", want)
	for k, v := range want {
		wantValue(t, st, "keys", k, v)
	}
}

func testOpsInOrder(t *testing.T, s Suite) {
	st := s.open(t)
	apply(t, st,
		store.Put("b", "last-put-wins", []byte("1")),
		store.Put("b", "last-put-wins", []byte("2")),
		store.Put("b", "put-then-delete", []byte("x")),
		store.Delete("b", "put-then-delete"),
		store.Delete("b", "delete-then-put"),
		store.Put("b", "delete-then-put", []byte("y")),
	)
	wantList(t, st, "b", map[string]string{"last-put-wins": "2", "delete-then-put": "y"})
}

func testEmptyApply(t *testing.T, s Suite) {
	st := s.open(t)
	apply(t, st)
	wantList(t, st, "b", map[string]string{})
}

func testManyOps(t *testing.T, s Suite) {
	st := s.open(t)
	const n = 1000
	want := map[string]string{}
	var puts, deletes []store.Op
	for i := range n {
		k := fmt.Sprintf("%064x", i) // a Docker-ID-sized key
		v := fmt.Sprintf(`{"endpoint":%d,"pad":"%0200d"}`, i, i)
		want[k] = v
		puts = append(puts, store.Put("endpoints", k, []byte(v)))
		deletes = append(deletes, store.Delete("endpoints", k))
	}
	apply(t, st, puts...)
	wantList(t, st, "endpoints", want)
	apply(t, st, deletes...)
	wantList(t, st, "endpoints", map[string]string{})
}

func testFailedApplyChangesNothing(t *testing.T, s Suite) {
	st := s.open(t)
	apply(t, st, store.Put("b", "kept", []byte("old")))
	err := st.Apply(t.Context(),
		store.Put("b", "kept", []byte("new")),
		store.Put("b", "added", []byte("x")),
		store.Delete("b", "kept"),
		store.Put("b", "", []byte("an empty key is invalid")),
	)
	if !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("Apply with an empty key: err = %v, want one wrapping store.ErrInvalid", err)
	}
	wantList(t, st, "b", map[string]string{"kept": "old"})
}

func testInvalidNames(t *testing.T, s Suite) {
	st := s.open(t)
	ctx := t.Context()
	for _, bucket := range []string{"", store.MetaBucket, "a/b", "/"} {
		if err := st.Apply(ctx, store.Put(bucket, "k", []byte("v"))); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("Apply(put %q/k): err = %v, want one wrapping store.ErrInvalid", bucket, err)
		}
		if err := st.Apply(ctx, store.Delete(bucket, "k")); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("Apply(delete %q/k): err = %v, want one wrapping store.ErrInvalid", bucket, err)
		}
		if _, _, err := st.Get(ctx, bucket, "k"); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("Get(%q, k): err = %v, want one wrapping store.ErrInvalid", bucket, err)
		}
		if _, err := st.List(ctx, bucket); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("List(%q): err = %v, want one wrapping store.ErrInvalid", bucket, err)
		}
	}
	if err := st.Apply(ctx, store.Delete("b", "")); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("Apply(delete b/\"\"): err = %v, want one wrapping store.ErrInvalid", err)
	}
}

func testCopyIn(t *testing.T, s Suite) {
	st := s.open(t)
	v := []byte("original")
	apply(t, st, store.Put("b", "k", v))
	copy(v, "CHANGED!")
	wantValue(t, st, "b", "k", "original")
	wantList(t, st, "b", map[string]string{"k": "original"})
}

func testCopyOut(t *testing.T, s Suite) {
	st := s.open(t)
	apply(t, st, store.Put("b", "k", []byte("original")), store.Put("b", "k2", []byte("second")))
	got, _, err := st.Get(t.Context(), "b", "k")
	if err != nil {
		t.Fatal(err)
	}
	copy(got, "CHANGED!")
	wantValue(t, st, "b", "k", "original")

	m, err := st.List(t.Context(), "b")
	if err != nil {
		t.Fatal(err)
	}
	copy(m["k"], "CHANGED!")
	delete(m, "k2")
	m["k3"] = []byte("added to the map")
	wantList(t, st, "b", map[string]string{"k": "original", "k2": "second"})

	// Returned slices must stay valid after later writes (no aliasing of
	// store memory that a write may reuse or unmap).
	apply(t, st, store.Put("b", "k", []byte("replaced")), store.Delete("b", "k2"))
	if string(m["k"]) != "CHANGED!" {
		t.Fatalf("a value returned by List changed to %q after a later Apply", m["k"])
	}
}

func testDoneContext(t *testing.T, s Suite) {
	st := s.open(t)
	apply(t, st, store.Put("b", "k", []byte("v")))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := st.Apply(ctx, store.Put("b", "k", []byte("new")), store.Put("b", "k2", []byte("x"))); !errors.Is(err, context.Canceled) {
		t.Fatalf("Apply with a cancelled context: err = %v, want one wrapping context.Canceled", err)
	}
	if _, _, err := st.Get(ctx, "b", "k"); !errors.Is(err, context.Canceled) {
		t.Errorf("Get with a cancelled context: err = %v, want one wrapping context.Canceled", err)
	}
	if _, err := st.List(ctx, "b"); !errors.Is(err, context.Canceled) {
		t.Errorf("List with a cancelled context: err = %v, want one wrapping context.Canceled", err)
	}
	wantList(t, st, "b", map[string]string{"k": "v"})
}

// testConcurrentApply has writers move a pair of keys forward with one
// Apply each (delete the old pair, put the new one) while readers check
// that they never see half a move. Run it with -race.
func testConcurrentApply(t *testing.T, s Suite) {
	st := s.open(t)
	const (
		writers = 8
		steps   = 20
		readers = 4
	)
	ctx := t.Context()
	pairKey := func(w, i int, half string) string { return fmt.Sprintf("w%d/%d/%s", w, i, half) }

	var (
		wg      sync.WaitGroup
		readWg  sync.WaitGroup
		done    = make(chan struct{})
		errs    = make(chan error, writers+readers)
		failure = func(err error) {
			select {
			case errs <- err:
			default:
			}
		}
	)
	for w := range writers {
		wg.Go(func() {
			for i := range steps {
				v := []byte(fmt.Sprintf("w%d step %d", w, i))
				ops := []store.Op{
					store.Put("pairs", pairKey(w, i, "a"), v),
					store.Put("pairs", pairKey(w, i, "b"), v),
					store.Put("shared", "last", v),
				}
				if i > 0 {
					ops = append(ops, store.Delete("pairs", pairKey(w, i-1, "a")), store.Delete("pairs", pairKey(w, i-1, "b")))
				}
				if err := st.Apply(ctx, ops...); err != nil {
					failure(fmt.Errorf("writer %d step %d: Apply: %w", w, i, err))
					return
				}
			}
		})
	}
	for r := range readers {
		readWg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				m, err := st.List(ctx, "pairs")
				if err != nil {
					failure(fmt.Errorf("reader %d: List: %w", r, err))
					return
				}
				if err := checkPairs(m, writers); err != nil {
					failure(fmt.Errorf("reader %d saw a partial Apply: %w", r, err))
					return
				}
				if _, _, err := st.Get(ctx, "shared", "last"); err != nil {
					failure(fmt.Errorf("reader %d: Get: %w", r, err))
					return
				}
			}
		})
	}
	wg.Wait()
	close(done)
	readWg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	want := map[string]string{}
	for w := range writers {
		v := fmt.Sprintf("w%d step %d", w, steps-1)
		want[pairKey(w, steps-1, "a")] = v
		want[pairKey(w, steps-1, "b")] = v
	}
	wantList(t, st, "pairs", want)
	got, ok, err := st.Get(ctx, "shared", "last")
	if err != nil || !ok || !bytes.HasSuffix(got, fmt.Appendf(nil, "step %d", steps-1)) {
		t.Fatalf("Get(shared, last) = %q, %v, %v; want some writer's last step", got, ok, err)
	}
}

// checkPairs reports an error unless m holds, for every writer, nothing or
// exactly one whole pair.
func checkPairs(m map[string][]byte, writers int) error {
	perWriter := make([]map[string]string, writers)
	for k, v := range m {
		var w, i int
		var half string
		if _, err := fmt.Sscanf(k, "w%d/%d/%s", &w, &i, &half); err != nil || w < 0 || w >= writers {
			return fmt.Errorf("unexpected key %q", k)
		}
		if perWriter[w] == nil {
			perWriter[w] = map[string]string{}
		}
		perWriter[w][k] = string(v)
	}
	for w, keys := range perWriter {
		if len(keys) != 0 && len(keys) != 2 {
			return fmt.Errorf("writer %d has keys %q, want none or one pair", w, slices.Sorted(maps.Keys(keys)))
		}
		var vals []string
		for _, v := range keys {
			vals = append(vals, v)
		}
		if len(vals) == 2 && vals[0] != vals[1] {
			return fmt.Errorf("writer %d has a mismatched pair %q", w, vals)
		}
	}
	return nil
}

func testClose(t *testing.T, s Suite) {
	st := s.open(t)
	apply(t, st, store.Put("b", "k", []byte("v")))
	if err := st.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := st.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	ctx := t.Context()
	if err := st.Apply(ctx, store.Put("b", "k", []byte("v"))); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Apply after Close: err = %v, want one wrapping store.ErrClosed", err)
	}
	if err := st.Apply(ctx); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Apply of no ops after Close: err = %v, want one wrapping store.ErrClosed", err)
	}
	if _, _, err := st.Get(ctx, "b", "k"); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Get after Close: err = %v, want one wrapping store.ErrClosed", err)
	}
	if _, err := st.List(ctx, "b"); !errors.Is(err, store.ErrClosed) {
		t.Errorf("List after Close: err = %v, want one wrapping store.ErrClosed", err)
	}
}

func testPersistence(t *testing.T, s Suite) {
	st := s.open(t)
	apply(t, st,
		store.Put("networks", "n1", []byte("one")),
		store.Put("networks", "n2", []byte("two")),
		store.Put("ipam-addresses", "weft:10.0.0.0/24|10.0.0.2", []byte{}),
		store.Put("gone", "k", []byte("deleted before the restart")),
	)
	apply(t, st, store.Delete("networks", "n2"), store.Delete("gone", "k"))
	// A failed Apply must leave no trace after a restart either.
	if err := st.Apply(t.Context(), store.Put("networks", "n3", []byte("x")), store.Put("", "k", []byte("x"))); err == nil {
		t.Fatal("Apply with an empty bucket name succeeded")
	}

	st = s.reopen(t, st)
	wantList(t, st, "networks", map[string]string{"n1": "one"})
	wantList(t, st, "ipam-addresses", map[string]string{"weft:10.0.0.0/24|10.0.0.2": ""})
	wantList(t, st, "gone", map[string]string{})

	// The reopened store is writable, and its writes persist too.
	apply(t, st, store.Put("networks", "n4", []byte("four")), store.Delete("networks", "n1"))
	st = s.reopen(t, st)
	wantList(t, st, "networks", map[string]string{"n4": "four"})
}
