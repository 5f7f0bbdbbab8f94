package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrExists is wrapped by the error of Cluster.Create when the key already
// exists: another writer (often another host) got there first.
var ErrExists = errors.New("record already exists")

// ErrConflict is wrapped by the error of Cluster.Txn when one of its
// conditions no longer holds: a key changed (or appeared, or vanished) since
// the caller read it. Nothing was written; re-read and decide again.
var ErrConflict = errors.New("record changed since it was read")

// ErrCompacted is wrapped by the error of the last WatchResponse of a watch
// whose start revision the store no longer keeps history for (or that fell
// that far behind). The watch cannot be resumed: list the bucket again and
// watch from the listed revision + 1.
var ErrCompacted = errors.New("store history was compacted")

// ErrNoLease is wrapped by the error of a write bound to a lease that does
// not exist (never granted, expired or revoked), and by KeepAlive when its
// lease is lost. The caller must grant a new lease and write its records
// again.
var ErrNoLease = errors.New("lease not found (expired or revoked)")

// ErrIncomplete is wrapped by the error of an Apply that a cluster store had
// to commit in several transactions (see MaxTxnKeys) when a later part
// failed: the earlier parts are committed. Apply is idempotent (puts and
// deletes of final values), so retrying the whole Apply completes it.
var ErrIncomplete = errors.New("only part of the write was committed")

// MaxTxnKeys is the most distinct keys one Txn or Create may write, and the
// most conditions one Txn may check. It is etcd's default --max-txn-ops
// (128): every Cluster refuses a bigger Txn with ErrInvalid, so that code
// tested against the in-memory store does not fail only in production.
// Apply is not limited; see the package documentation for what is atomic.
const MaxTxnKeys = 128

// LeaseID names a lease granted by a Cluster. NoLease (zero) means none.
type LeaseID int64

// NoLease is the LeaseID of a record not bound to any lease.
const NoLease LeaseID = 0

// Item is one record as read from a Cluster, with the revision of its last
// write, which a later Txn can compare against.
type Item struct {
	Key   string
	Value []byte // the caller's copy; non-nil
	// ModRev is the store revision of the last write of this key.
	ModRev int64
	// Lease is the lease the record is bound to, or NoLease.
	Lease LeaseID
}

// Cond is a precondition of Cluster.Txn: Bucket/Key was last written at
// revision ModRev, or, with ModRev 0, does not exist.
type Cond struct {
	Bucket string
	Key    string
	ModRev int64
}

// Absent returns a Cond that holds while bucket/key does not exist.
func Absent(bucket, key string) Cond { return Cond{Bucket: bucket, Key: key} }

// Unchanged returns a Cond that holds while bucket/key is still the version
// last written at modRev (as read in Item.ModRev).
func Unchanged(bucket, key string, modRev int64) Cond {
	return Cond{Bucket: bucket, Key: key, ModRev: modRev}
}

// EventType says what happened to a key.
type EventType int

const (
	// EventPut: the key was created or overwritten.
	EventPut EventType = iota + 1
	// EventDelete: the key was deleted, or its lease ended.
	EventDelete
)

func (t EventType) String() string {
	switch t {
	case EventPut:
		return "put"
	case EventDelete:
		return "delete"
	}
	return fmt.Sprintf("EventType(%d)", int(t))
}

// Event is one change seen by a watch.
type Event struct {
	Type  EventType
	Key   string
	Value []byte // the new value for a put (non-nil), nil for a delete
	// ModRev is the store revision of the change. The events of one
	// transaction share it.
	ModRev int64
	Lease  LeaseID // a put's lease, or NoLease
}

// WatchResponse is what a watch delivers: the events of one or more whole
// revisions, in revision order, or, as the very last response before the
// channel closes, an error.
type WatchResponse struct {
	Events []Event
	// Err, if not nil, ends the watch: it wraps ErrCompacted (re-list,
	// then watch from the listed revision + 1), ErrClosed, or a failure of
	// the store the caller cannot fix by waiting.
	Err error
}

// Cluster is a Store that several hosts may share, offering what shared
// state needs beyond Store: revisions,
// conditional writes, a watch, and records bound to a lease. etcd
// (store/etcd) is the real one; store/bolt and store/memstore implement it
// for one process so that the same code runs, and is tested, without a
// cluster. The package documentation states the contract; store/storetest
// checks it.
type Cluster interface {
	Store

	// GetItem returns bucket/key with its mod revision, whether it exists,
	// and the store revision the read was made at.
	GetItem(ctx context.Context, bucket, key string) (Item, bool, int64, error)
	// ListItems returns every record of bucket, sorted by key, all read at
	// one store revision, which it returns too: watch from that revision +
	// 1 to miss nothing.
	ListItems(ctx context.Context, bucket string) ([]Item, int64, error)

	// Create writes op (a put, maybe leased) only if its key does not
	// exist, and returns the store revision of the write. If the key
	// exists it fails with ErrExists and writes nothing. Of many
	// concurrent Creates of one key, exactly one succeeds.
	Create(ctx context.Context, op Op) (int64, error)
	// Txn writes ops atomically only if every cond still holds, and
	// returns the store revision of the write. If a cond fails it returns
	// an error wrapping ErrConflict and writes nothing. At most MaxTxnKeys
	// conds and MaxTxnKeys distinct keys in ops (ErrInvalid otherwise).
	// A Txn whose ops change nothing still checks its conds.
	Txn(ctx context.Context, conds []Cond, ops ...Op) (int64, error)

	// Watch delivers the changes to bucket from revision fromRev on, in
	// order, as WatchResponses. fromRev <= 0 means from the changes after
	// the watch is set up, which for etcd is a moment after Watch returns:
	// to miss nothing, read (ListItems) and watch from that revision + 1.
	// The channel is closed when ctx ends (without an error response), or
	// after a response whose Err is set. A slow reader does not block
	// writers. Watch itself never blocks.
	Watch(ctx context.Context, bucket string, fromRev int64) <-chan WatchResponse

	// Grant creates a lease that ends ttl after its last renewal. ttl is
	// rounded up to whole seconds, and a store may raise a TTL below its
	// minimum (etcd: about 2 s); a TTL below one second is refused.
	Grant(ctx context.Context, ttl time.Duration) (LeaseID, error)
	// KeepAlive renews the lease, well before each TTL runs out, until ctx
	// ends (it returns ctx's error) or the lease is lost: expired because
	// renewals did not arrive in time, revoked, or unknown (the error wraps
	// ErrNoLease). It blocks; run it in its own goroutine.
	KeepAlive(ctx context.Context, id LeaseID) error
	// Revoke ends the lease now: every record bound to it is deleted.
	// Revoking a lease that is already gone is not an error.
	Revoke(ctx context.Context, id LeaseID) error
}

// CheckCond checks a condition's bucket and key like CheckOps.
func CheckCond(c Cond) error {
	if err := CheckBucket(c.Bucket); err != nil {
		return err
	}
	if c.Key == "" {
		return fmt.Errorf("empty key in a condition on bucket %q: %w", c.Bucket, ErrInvalid)
	}
	if c.ModRev < 0 {
		return fmt.Errorf("negative revision %d in a condition on %s/%s: %w", c.ModRev, c.Bucket, c.Key, ErrInvalid)
	}
	return nil
}

// CheckTxn checks everything a Cluster checks before a Txn: names and the
// MaxTxnKeys limits. The error wraps ErrInvalid.
func CheckTxn(conds []Cond, ops []Op) error {
	if len(conds) > MaxTxnKeys {
		return fmt.Errorf("transaction has %d conditions, more than the %d a cluster store allows: %w",
			len(conds), MaxTxnKeys, ErrInvalid)
	}
	for _, c := range conds {
		if err := CheckCond(c); err != nil {
			return err
		}
	}
	if err := CheckOps(ops); err != nil {
		return err
	}
	if n := len(Collapse(ops)); n > MaxTxnKeys {
		return fmt.Errorf("transaction writes %d keys, more than the %d a cluster store commits at once: %w",
			n, MaxTxnKeys, ErrInvalid)
	}
	return nil
}

// Collapse returns the net effect of ops, one op per distinct key, in the
// order each key was first written: a later op on a key replaces the
// earlier one, as Apply promises. etcd refuses a transaction that writes a
// key twice, so its back-end sends the collapsed ops.
func Collapse(ops []Op) []Op {
	type bk struct{ bucket, key string }
	idx := make(map[bk]int, len(ops))
	out := make([]Op, 0, len(ops))
	for _, op := range ops {
		k := bk{op.Bucket, op.Key}
		if i, ok := idx[k]; ok {
			out[i] = op
			continue
		}
		idx[k] = len(out)
		out = append(out, op)
	}
	return out
}

// CheckTTL checks a lease TTL and returns it in whole seconds, rounded up.
func CheckTTL(ttl time.Duration) (int64, error) {
	if ttl < time.Second {
		return 0, fmt.Errorf("lease TTL %s is shorter than one second: %w", ttl, ErrInvalid)
	}
	return int64((ttl + time.Second - 1) / time.Second), nil
}
