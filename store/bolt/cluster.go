package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/bbolt"

	"github.com/weftnet/weft/store"
	"github.com/weftnet/weft/store/internal/local"
)

// HistoryKeep is how many changes a Store keeps in memory for watches at
// least; it compacts the oldest (down to HistoryKeep) once it holds twice as
// many, as an etcd with auto-compaction would.
const HistoryKeep = 10000

// The revision records, in store.MetaBucket next to the schema version:
//
//	meta/rev                  the store revision, 8 bytes big-endian
//	meta/revs/<bucket>/<key>  the key's mod revision and lease, 8+8 bytes
//
// They sit beside the records rather than inside their values so that the
// record layout (and SchemaVersion) is unchanged and a file written before
// revisions existed opens as it is: its records get legacyRev.
const (
	revKey     = "rev"
	revsBucket = "revs"
	// legacyRev is the revision of a file without meta/rev, and the mod
	// revision of a record without a revision record.
	legacyRev = 1
)

func readRev(tx *bbolt.Tx) (int64, error) {
	raw := tx.Bucket([]byte(store.MetaBucket)).Get([]byte(revKey))
	if raw == nil {
		return legacyRev, nil
	}
	if len(raw) != 8 {
		return 0, fmt.Errorf("the store revision record is %d bytes, not 8: the file is damaged", len(raw))
	}
	return int64(binary.BigEndian.Uint64(raw)), nil
}

func writeRev(tx *bbolt.Tx, rev int64) error {
	return tx.Bucket([]byte(store.MetaBucket)).Put([]byte(revKey), binary.BigEndian.AppendUint64(nil, uint64(rev)))
}

func revsOf(tx *bbolt.Tx) *bbolt.Bucket {
	return tx.Bucket([]byte(store.MetaBucket)).Bucket([]byte(revsBucket))
}

// record returns bucket/key's value (nil if absent), mod revision and lease.
func record(tx *bbolt.Tx, bucket, key string) ([]byte, int64, store.LeaseID) {
	b := tx.Bucket([]byte(bucket))
	if b == nil {
		return nil, 0, store.NoLease
	}
	// Seek rather than Get: it tells an empty value from a missing key.
	k, v := b.Cursor().Seek([]byte(key))
	if k == nil || string(k) != key {
		return nil, 0, store.NoLease
	}
	if v == nil {
		v = []byte{}
	}
	rev, lease := revRecord(tx, bucket, key)
	return v, rev, lease
}

func revRecord(tx *bbolt.Tx, bucket, key string) (int64, store.LeaseID) {
	rb := revsOf(tx).Bucket([]byte(bucket))
	if rb == nil {
		return legacyRev, store.NoLease
	}
	raw := rb.Get([]byte(key))
	if len(raw) != 16 {
		return legacyRev, store.NoLease
	}
	return int64(binary.BigEndian.Uint64(raw)), store.LeaseID(binary.BigEndian.Uint64(raw[8:]))
}

// prepareRevisions stamps a file without a store revision, and deletes the
// records bound to leases of an earlier process: leases are in-process, so
// they ended when it did. It returns the store revision.
func (s *Store) prepareRevisions() (int64, error) {
	var rev int64
	err := s.db.Update(func(tx *bbolt.Tx) error {
		meta := tx.Bucket([]byte(store.MetaBucket))
		if meta.Get([]byte(revKey)) == nil {
			if err := writeRev(tx, legacyRev); err != nil {
				return err
			}
		}
		if _, err := meta.CreateBucketIfNotExists([]byte(revsBucket)); err != nil {
			return err
		}
		var err error
		_, rev, err = dropLeased(tx, store.NoLease)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("preparing the revision records of state file %s: %w", s.path, err)
	}
	return rev, nil
}

// dropLeased deletes the records bound to lease id (to any lease if id is
// NoLease) as one revision, and returns their events and the store
// revision.
func dropLeased(tx *bbolt.Tx, id store.LeaseID) ([]local.Change, int64, error) {
	var ops []store.Op
	err := revsOf(tx).ForEachBucket(func(bucket []byte) error {
		return revsOf(tx).Bucket(bucket).ForEach(func(k, v []byte) error {
			if len(v) != 16 {
				return nil
			}
			l := store.LeaseID(binary.BigEndian.Uint64(v[8:]))
			if l != store.NoLease && (id == store.NoLease || l == id) {
				ops = append(ops, store.Delete(string(bucket), string(k)))
			}
			return nil
		})
	})
	if err != nil {
		return nil, 0, err
	}
	return commitOps(tx, ops)
}

// commitOps writes the net effect of ops as the next revision, if they
// change anything, and returns their events and the store revision.
func commitOps(tx *bbolt.Tx, ops []store.Op) ([]local.Change, int64, error) {
	cur, err := readRev(tx)
	if err != nil {
		return nil, 0, err
	}
	rev := cur + 1
	var changes []local.Change
	revs := revsOf(tx)
	for _, op := range store.Collapse(ops) {
		if op.Value == nil {
			b := tx.Bucket([]byte(op.Bucket))
			if b == nil {
				continue
			}
			if k, _ := b.Cursor().Seek([]byte(op.Key)); k == nil || !bytes.Equal(k, []byte(op.Key)) {
				continue
			}
			if err := b.Delete([]byte(op.Key)); err != nil {
				return nil, 0, fmt.Errorf("deleting %s/%s: %w", op.Bucket, op.Key, err)
			}
			if rb := revs.Bucket([]byte(op.Bucket)); rb != nil {
				if err := rb.Delete([]byte(op.Key)); err != nil {
					return nil, 0, fmt.Errorf("deleting the revision of %s/%s: %w", op.Bucket, op.Key, err)
				}
			}
			changes = append(changes, local.Change{Bucket: op.Bucket,
				Event: store.Event{Type: store.EventDelete, Key: op.Key, ModRev: rev}})
			continue
		}
		b, err := tx.CreateBucketIfNotExists([]byte(op.Bucket))
		if err != nil {
			return nil, 0, fmt.Errorf("creating bucket %s: %w", op.Bucket, err)
		}
		if err := b.Put([]byte(op.Key), op.Value); err != nil {
			return nil, 0, fmt.Errorf("writing %s/%s: %w", op.Bucket, op.Key, err)
		}
		rb, err := revs.CreateBucketIfNotExists([]byte(op.Bucket))
		if err != nil {
			return nil, 0, fmt.Errorf("creating the revisions of bucket %s: %w", op.Bucket, err)
		}
		rec := binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, uint64(rev)), uint64(op.Lease))
		if err := rb.Put([]byte(op.Key), rec); err != nil {
			return nil, 0, fmt.Errorf("writing the revision of %s/%s: %w", op.Bucket, op.Key, err)
		}
		changes = append(changes, local.Change{Bucket: op.Bucket, Event: store.Event{
			Type: store.EventPut, Key: op.Key, Value: append([]byte{}, op.Value...), ModRev: rev, Lease: op.Lease}})
	}
	if len(changes) == 0 {
		return nil, cur, nil
	}
	if err := writeRev(tx, rev); err != nil {
		return nil, 0, fmt.Errorf("writing the store revision: %w", err)
	}
	return changes, rev, nil
}

// write checks conds and writes ops in one bbolt transaction, then
// publishes the events. Writers are ordered by wmu so that the hub gets
// revisions in order.
func (s *Store) write(ctx context.Context, conds []store.Cond, ops []store.Op) (int64, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if err := s.check(ctx); err != nil {
		return 0, err
	}
	var (
		changes []local.Change
		rev     int64
	)
	err := s.db.Update(func(tx *bbolt.Tx) error {
		// Writers queue for the write lock; do not start a write the
		// caller has given up on.
		if err := ctx.Err(); err != nil {
			return err
		}
		for _, c := range conds {
			if _, have, _ := record(tx, c.Bucket, c.Key); have != c.ModRev {
				return fmt.Errorf("%s/%s is at revision %d, not %d: %w", c.Bucket, c.Key, have, c.ModRev, store.ErrConflict)
			}
		}
		for _, op := range ops {
			if op.Value != nil && op.Lease != store.NoLease && !s.leases.Alive(op.Lease) {
				return fmt.Errorf("writing %s/%s under lease %d: %w", op.Bucket, op.Key, op.Lease, store.ErrNoLease)
			}
		}
		var err error
		changes, rev, err = commitOps(tx, ops)
		return err
	})
	if err != nil {
		return 0, err
	}
	if len(changes) > 0 {
		s.hub.Publish(rev, changes)
	}
	return rev, nil
}

// GetItem returns a copy of bucket/key with its mod revision.
func (s *Store) GetItem(ctx context.Context, bucket, key string) (store.Item, bool, int64, error) {
	if err := s.checkBucket(ctx, bucket); err != nil {
		return store.Item{}, false, 0, s.wrap("reading state from", err)
	}
	var (
		it    store.Item
		found bool
		rev   int64
	)
	err := s.db.View(func(tx *bbolt.Tx) error {
		var err error
		if rev, err = readRev(tx); err != nil {
			return err
		}
		v, mod, lease := record(tx, bucket, key)
		if v == nil {
			return nil
		}
		// bbolt memory is valid only inside the transaction.
		it, found = store.Item{Key: key, Value: append([]byte{}, v...), ModRev: mod, Lease: lease}, true
		return nil
	})
	if err != nil {
		return store.Item{}, false, 0, s.wrap("reading state from", err)
	}
	return it, found, rev, nil
}

// ListItems returns copies of every record of bucket, sorted by key.
func (s *Store) ListItems(ctx context.Context, bucket string) ([]store.Item, int64, error) {
	if err := s.checkBucket(ctx, bucket); err != nil {
		return nil, 0, s.wrap("reading state from", err)
	}
	items := []store.Item{}
	var rev int64
	err := s.db.View(func(tx *bbolt.Tx) error {
		var err error
		if rev, err = readRev(tx); err != nil {
			return err
		}
		b := tx.Bucket([]byte(bucket))
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			mod, lease := revRecord(tx, bucket, string(k))
			items = append(items, store.Item{Key: string(k), Value: append([]byte{}, v...), ModRev: mod, Lease: lease})
			return nil
		})
	})
	if err != nil {
		return nil, 0, s.wrap("reading state from", err)
	}
	return items, rev, nil
}

func (s *Store) checkBucket(ctx context.Context, bucket string) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	return store.CheckBucket(bucket)
}

// Create writes op only if its key does not exist.
func (s *Store) Create(ctx context.Context, op store.Op) (int64, error) {
	if op.Value == nil {
		return 0, s.wrap("saving state to", fmt.Errorf("a create of %s/%s needs a value: %w", op.Bucket, op.Key, store.ErrInvalid))
	}
	if err := s.check(ctx); err != nil {
		return 0, s.wrap("saving state to", err)
	}
	if err := store.CheckOps([]store.Op{op}); err != nil {
		return 0, s.wrap("saving state to", err)
	}
	rev, err := s.write(ctx, []store.Cond{store.Absent(op.Bucket, op.Key)}, []store.Op{op})
	if errors.Is(err, store.ErrConflict) {
		err = fmt.Errorf("%s/%s: %w", op.Bucket, op.Key, store.ErrExists)
	}
	return rev, s.wrap("saving state to", err)
}

// Txn writes ops in one bbolt transaction if every cond holds.
func (s *Store) Txn(ctx context.Context, conds []store.Cond, ops ...store.Op) (int64, error) {
	if err := s.check(ctx); err != nil {
		return 0, s.wrap("saving state to", err)
	}
	if err := store.CheckTxn(conds, ops); err != nil {
		return 0, s.wrap("saving state to", err)
	}
	rev, err := s.write(ctx, conds, ops)
	return rev, s.wrap("saving state to", err)
}

// Watch delivers the changes to bucket made by this process from fromRev
// on. History before this Open is not kept: a watch from an earlier
// revision fails with store.ErrCompacted.
func (s *Store) Watch(ctx context.Context, bucket string, fromRev int64) <-chan store.WatchResponse {
	if err := s.checkBucket(context.Background(), bucket); err != nil {
		ch := make(chan store.WatchResponse, 1)
		ch <- store.WatchResponse{Err: s.wrap("watching", err)}
		close(ch)
		return ch
	}
	return s.hub.Watch(ctx, bucket, fromRev)
}

// Compact drops the in-memory watch history up to and including rev.
func (s *Store) Compact(_ context.Context, rev int64) error {
	if s.closed.Load() {
		return s.wrap("compacting", store.ErrClosed)
	}
	s.hub.Compact(rev)
	return nil
}

// Grant creates an in-process lease of ttl (rounded up to whole seconds).
// It ends when this Store is closed, and its records with it.
func (s *Store) Grant(ctx context.Context, ttl time.Duration) (store.LeaseID, error) {
	if err := s.check(ctx); err != nil {
		return store.NoLease, s.wrap("granting a lease in", err)
	}
	secs, err := store.CheckTTL(ttl)
	if err != nil {
		return store.NoLease, s.wrap("granting a lease in", err)
	}
	id, err := s.leases.Grant(time.Duration(secs) * time.Second)
	return id, s.wrap("granting a lease in", err)
}

// KeepAlive renews the lease until ctx ends or the lease does.
func (s *Store) KeepAlive(ctx context.Context, id store.LeaseID) error {
	if err := s.check(ctx); err != nil {
		return s.wrap("keeping a lease alive in", err)
	}
	err := s.leases.KeepAlive(ctx, id)
	if err != nil && ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		return err
	}
	return s.wrap("keeping a lease alive in", err)
}

// Revoke ends the lease and deletes its records as one revision.
func (s *Store) Revoke(ctx context.Context, id store.LeaseID) error {
	if err := s.check(ctx); err != nil {
		return s.wrap("revoking a lease in", err)
	}
	return s.wrap("revoking a lease in", s.endLease(id))
}

func (s *Store) expire(id store.LeaseID) { _ = s.endLease(id) }

func (s *Store) endLease(id store.LeaseID) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closed.Load() || !s.leases.Alive(id) {
		return nil
	}
	var (
		changes []local.Change
		rev     int64
	)
	err := s.db.Update(func(tx *bbolt.Tx) error {
		var err error
		changes, rev, err = dropLeased(tx, id)
		return err
	})
	if err != nil {
		return err
	}
	s.leases.End(id)
	if len(changes) > 0 {
		s.hub.Publish(rev, changes)
	}
	return nil
}
