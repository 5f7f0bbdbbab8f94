package memstore

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/weftnet/weft/store"
	"github.com/weftnet/weft/store/internal/local"
)

// HistoryKeep is how many changes a Store keeps at least for watches; it
// compacts the oldest (down to HistoryKeep) once it holds twice as many, as
// an etcd with auto-compaction would.
const HistoryKeep = 10000

// Store is an in-memory store.Cluster. The zero value is an empty store
// ready to use; it is safe for concurrent use.
type Store struct {
	mu       sync.Mutex
	buckets  map[string]map[string]*record
	rev      int64
	hub      *local.Hub
	leases   *local.Leases
	closed   bool
	failNext []error
	failWhen func(ops []store.Op) error
	applies  int
}

type record struct {
	value  []byte
	modRev int64
	lease  store.LeaseID
}

var _ store.Cluster = (*Store)(nil)

// New returns an empty Store.
func New() *Store { return &Store{} }

// FailNext makes the next write (Apply, Txn or Create) return err
// (unwrapped, so a test can compare it with errors.Is) and change nothing.
// Each call queues one failure: FailNext(a); FailNext(b) fails the next two
// writes, in order. Failures are injected after the store's own checks
// (closed store, bad names, done context), so those still win.
func (s *Store) FailNext(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failNext = append(s.failNext, err)
}

// FailWhen installs f, called with the ops of every write (Apply, Txn,
// Create) that has no queued FailNext failure. A non-nil result fails that
// write with it, unchanged, and nothing is written: for example fail only
// the Apply that touches one bucket, or only the third one. f runs under the
// store's lock and must not call the Store. FailWhen(nil) removes it.
func (s *Store) FailWhen(f func(ops []store.Op) error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failWhen = f
}

// Applies returns how many Apply calls have succeeded (an Apply of no ops
// counts too). A test can use it to check that a request saved its state
// before it answered, or that a refused request saved nothing.
func (s *Store) Applies() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.applies
}

// initLocked makes the zero value usable: the watch hub and the lease table
// are created on first use.
func (s *Store) initLocked() {
	if s.hub == nil {
		s.hub = local.NewHub(0, HistoryKeep)
		s.leases = local.NewLeases(s.expire)
	}
	if s.buckets == nil {
		s.buckets = map[string]map[string]*record{}
	}
}

// Apply performs ops atomically under the store's lock.
func (s *Store) Apply(ctx context.Context, ops ...store.Op) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkLocked(ctx); err != nil {
		return fmt.Errorf("saving state: %w", err)
	}
	if err := store.CheckOps(ops); err != nil {
		return fmt.Errorf("saving state: %w", err)
	}
	if err := s.injectedLocked(ops); err != nil {
		return err
	}
	if _, err := s.commitLocked(ops); err != nil {
		return fmt.Errorf("saving state: %w", err)
	}
	s.applies++
	return nil
}

// injectedLocked returns the failure FailNext or FailWhen asks for, if any.
func (s *Store) injectedLocked(ops []store.Op) error {
	if len(s.failNext) > 0 {
		err := s.failNext[0]
		s.failNext = s.failNext[1:]
		return err
	}
	if s.failWhen != nil {
		return s.failWhen(ops)
	}
	return nil
}

// commitLocked writes the net effect of ops as one revision and publishes
// its events. It checks the leases first, so a failure writes nothing.
func (s *Store) commitLocked(ops []store.Op) (int64, error) {
	s.initLocked()
	net := store.Collapse(ops)
	for _, op := range net {
		if op.Value != nil && op.Lease != store.NoLease && !s.leases.Alive(op.Lease) {
			return 0, fmt.Errorf("writing %s/%s under lease %d: %w", op.Bucket, op.Key, op.Lease, store.ErrNoLease)
		}
	}
	rev := s.rev + 1
	var changes []local.Change
	for _, op := range net {
		b := s.buckets[op.Bucket]
		if op.Value == nil {
			if _, ok := b[op.Key]; !ok {
				continue
			}
			delete(b, op.Key)
			if len(b) == 0 {
				delete(s.buckets, op.Bucket)
			}
			changes = append(changes, local.Change{Bucket: op.Bucket,
				Event: store.Event{Type: store.EventDelete, Key: op.Key, ModRev: rev}})
			continue
		}
		if b == nil {
			b = map[string]*record{}
			s.buckets[op.Bucket] = b
		}
		v := append([]byte{}, op.Value...)
		b[op.Key] = &record{value: v, modRev: rev, lease: op.Lease}
		changes = append(changes, local.Change{Bucket: op.Bucket,
			Event: store.Event{Type: store.EventPut, Key: op.Key, Value: v, ModRev: rev, Lease: op.Lease}})
	}
	if len(changes) == 0 {
		return s.rev, nil
	}
	s.rev = rev
	s.hub.Publish(rev, changes)
	return rev, nil
}

// Get returns a copy of the value of bucket/key.
func (s *Store) Get(ctx context.Context, bucket, key string) ([]byte, bool, error) {
	it, ok, _, err := s.GetItem(ctx, bucket, key)
	return it.Value, ok, err
}

// List returns copies of every key and value of bucket.
func (s *Store) List(ctx context.Context, bucket string) (map[string][]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.readableLocked(ctx, bucket); err != nil {
		return nil, err
	}
	out := make(map[string][]byte, len(s.buckets[bucket]))
	for k, r := range s.buckets[bucket] {
		out[k] = append([]byte{}, r.value...)
	}
	return out, nil
}

// GetItem returns a copy of bucket/key with its mod revision.
func (s *Store) GetItem(ctx context.Context, bucket, key string) (store.Item, bool, int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.readableLocked(ctx, bucket); err != nil {
		return store.Item{}, false, 0, err
	}
	r, ok := s.buckets[bucket][key]
	if !ok {
		return store.Item{}, false, s.rev, nil
	}
	return r.item(key), true, s.rev, nil
}

// ListItems returns copies of every record of bucket, sorted by key.
func (s *Store) ListItems(ctx context.Context, bucket string) ([]store.Item, int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.readableLocked(ctx, bucket); err != nil {
		return nil, 0, err
	}
	b := s.buckets[bucket]
	out := make([]store.Item, 0, len(b))
	for _, k := range slices.Sorted(maps.Keys(b)) {
		out = append(out, b[k].item(k))
	}
	return out, s.rev, nil
}

func (r *record) item(key string) store.Item {
	return store.Item{Key: key, Value: append([]byte{}, r.value...), ModRev: r.modRev, Lease: r.lease}
}

func (s *Store) readableLocked(ctx context.Context, bucket string) error {
	if err := s.checkLocked(ctx); err != nil {
		return fmt.Errorf("reading state: %w", err)
	}
	if err := store.CheckBucket(bucket); err != nil {
		return fmt.Errorf("reading state: %w", err)
	}
	return nil
}

// Create writes op only if its key is absent.
func (s *Store) Create(ctx context.Context, op store.Op) (int64, error) {
	if op.Value == nil {
		return 0, fmt.Errorf("creating %s/%s: a create needs a value: %w", op.Bucket, op.Key, store.ErrInvalid)
	}
	rev, err := s.Txn(ctx, []store.Cond{store.Absent(op.Bucket, op.Key)}, op)
	if errors.Is(err, store.ErrConflict) {
		return 0, fmt.Errorf("creating %s/%s: %w", op.Bucket, op.Key, store.ErrExists)
	}
	return rev, err
}

// Txn writes ops if every cond holds, all under the store's lock.
func (s *Store) Txn(ctx context.Context, conds []store.Cond, ops ...store.Op) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkLocked(ctx); err != nil {
		return 0, fmt.Errorf("saving state: %w", err)
	}
	if err := store.CheckTxn(conds, ops); err != nil {
		return 0, fmt.Errorf("saving state: %w", err)
	}
	if err := s.injectedLocked(ops); err != nil {
		return 0, err
	}
	for _, c := range conds {
		r, ok := s.buckets[c.Bucket][c.Key]
		var have int64
		if ok {
			have = r.modRev
		}
		if have != c.ModRev {
			return 0, fmt.Errorf("saving state: %s/%s is at revision %d, not %d: %w",
				c.Bucket, c.Key, have, c.ModRev, store.ErrConflict)
		}
	}
	rev, err := s.commitLocked(ops)
	if err != nil {
		return 0, fmt.Errorf("saving state: %w", err)
	}
	return rev, nil
}

// Watch delivers the changes to bucket from fromRev on.
func (s *Store) Watch(ctx context.Context, bucket string, fromRev int64) <-chan store.WatchResponse {
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.readableLocked(context.Background(), bucket)
	if err != nil {
		ch := make(chan store.WatchResponse, 1)
		ch <- store.WatchResponse{Err: err}
		close(ch)
		return ch
	}
	s.initLocked()
	return s.hub.Watch(ctx, bucket, fromRev)
}

// Compact drops the watch history up to and including revision rev: a watch
// from rev or earlier then fails with store.ErrCompacted. Tests use it.
func (s *Store) Compact(_ context.Context, rev int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return store.ErrClosed
	}
	s.initLocked()
	s.hub.Compact(rev)
	return nil
}

// Grant creates an in-process lease of ttl (rounded up to whole seconds).
func (s *Store) Grant(ctx context.Context, ttl time.Duration) (store.LeaseID, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkLocked(ctx); err != nil {
		return store.NoLease, fmt.Errorf("granting a lease: %w", err)
	}
	secs, err := store.CheckTTL(ttl)
	if err != nil {
		return store.NoLease, fmt.Errorf("granting a lease: %w", err)
	}
	s.initLocked()
	return s.leases.Grant(time.Duration(secs) * time.Second)
}

// KeepAlive renews the lease until ctx ends or the lease does.
func (s *Store) KeepAlive(ctx context.Context, id store.LeaseID) error {
	s.mu.Lock()
	if err := s.checkLocked(ctx); err != nil {
		s.mu.Unlock()
		return fmt.Errorf("keeping lease %d alive: %w", id, err)
	}
	s.initLocked()
	leases := s.leases
	s.mu.Unlock()
	return leases.KeepAlive(ctx, id)
}

// Revoke ends the lease and deletes its records.
func (s *Store) Revoke(ctx context.Context, id store.LeaseID) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkLocked(ctx); err != nil {
		return fmt.Errorf("revoking lease %d: %w", id, err)
	}
	s.initLocked()
	s.endLeaseLocked(id)
	return nil
}

// ExpireLease makes lease id run out now, as if its TTL had passed without
// a renewal, so that a test need not wait for the clock.
func (s *Store) ExpireLease(id store.LeaseID) { s.expire(id) }

func (s *Store) expire(id store.LeaseID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.leases == nil {
		return
	}
	s.endLeaseLocked(id)
}

// endLeaseLocked ends a lease and deletes its records in one revision.
func (s *Store) endLeaseLocked(id store.LeaseID) {
	if !s.leases.End(id) {
		return
	}
	var ops []store.Op
	for _, b := range slices.Sorted(maps.Keys(s.buckets)) {
		for _, k := range slices.Sorted(maps.Keys(s.buckets[b])) {
			if s.buckets[b][k].lease == id {
				ops = append(ops, store.Delete(b, k))
			}
		}
	}
	_, _ = s.commitLocked(ops) // deletes only: cannot fail
}

// Close marks the store closed; later calls fail with store.ErrClosed. The
// data is dropped, leases end and watches end with store.ErrClosed. Calling
// it again does nothing.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.buckets = nil
	if s.hub != nil {
		s.hub.Close()
		s.leases.Close()
	}
	return nil
}

func (s *Store) checkLocked(ctx context.Context) error {
	if s.closed {
		return store.ErrClosed
	}
	return ctx.Err()
}
