package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// SchemaVersion is the layout version of the records weft writes. Open refuses
// a store written by a newer, incompatible weft.
const SchemaVersion = 1

// ErrNewerSchema is returned by Open when the store was written by a newer weft.
var ErrNewerSchema = errors.New("state was written by a newer weft")

// ErrClosed is wrapped by the error of every call made on a closed Store.
var ErrClosed = errors.New("state store is closed")

// ErrInvalid is wrapped by the error of a call with a bad bucket name or key
// (see CheckBucket and CheckOps). It means a bug in weft, not in the request.
var ErrInvalid = errors.New("invalid state store name")

// MetaBucket is reserved for the implementations' own records (the schema
// version). Apply, Get and List refuse it.
const MetaBucket = "meta"

// CheckBucket reports whether bucket is a name callers may use: non-empty,
// without '/', and not MetaBucket. The error wraps ErrInvalid.
func CheckBucket(bucket string) error {
	switch {
	case bucket == "":
		return fmt.Errorf("empty bucket name: %w", ErrInvalid)
	case strings.Contains(bucket, "/"):
		return fmt.Errorf("bucket name %q contains '/': %w", bucket, ErrInvalid)
	case bucket == MetaBucket:
		return fmt.Errorf("bucket name %q is reserved for the store itself: %w", bucket, ErrInvalid)
	}
	return nil
}

// CheckOps checks the bucket and key of every op, so that an implementation
// can refuse a bad Apply before it changes anything. The error wraps
// ErrInvalid.
func CheckOps(ops []Op) error {
	for _, op := range ops {
		if err := CheckBucket(op.Bucket); err != nil {
			return err
		}
		if op.Key == "" {
			return fmt.Errorf("empty key in bucket %q: %w", op.Bucket, ErrInvalid)
		}
	}
	return nil
}

// Op is one write: Value nil deletes Key from Bucket.
type Op struct {
	Bucket string
	Key    string
	Value  []byte
	// Lease, if not NoLease, binds a put to a lease granted by a Cluster
	// store: the record vanishes when the lease expires or is revoked. Every
	// store in this module is a Cluster and honours it in Apply too; a
	// delete ignores it.
	Lease LeaseID
}

// Put returns an Op that stores value under bucket/key.
func Put(bucket, key string, value []byte) Op { return Op{Bucket: bucket, Key: key, Value: value} }

// PutLeased returns an Op that stores value under bucket/key for as long as
// lease lives (see Cluster).
func PutLeased(bucket, key string, value []byte, lease LeaseID) Op {
	return Op{Bucket: bucket, Key: key, Value: value, Lease: lease}
}

// Delete returns an Op that removes bucket/key (a missing key is fine).
func Delete(bucket, key string) Op { return Op{Bucket: bucket, Key: key} }

// Store is durable key/value storage grouped in buckets. The package
// documentation states the full contract; store/storetest checks it.
type Store interface {
	// Apply performs all ops atomically and returns only once they are
	// durable (synced to disk, or committed by the cluster). On etcd that
	// holds for up to MaxTxnKeys distinct keys; a bigger Apply is committed
	// in parts (see the package documentation).
	//
	// Ops run in order (a later op on the same key wins); a failed Apply
	// changes nothing (but see ErrIncomplete). Applying no ops does nothing. A context already done
	// makes Apply fail without writing.
	Apply(ctx context.Context, ops ...Op) error
	// Get returns the value of bucket/key and whether it exists.
	// The value is the caller's copy, non-nil when it exists.
	Get(ctx context.Context, bucket, key string) ([]byte, bool, error)
	// List returns every key/value of a bucket (empty map if none).
	// The map and its values are the caller's copies.
	List(ctx context.Context, bucket string) (map[string][]byte, error)
	// Close releases the store. Later calls fail with ErrClosed; Close
	// itself may be called again.
	Close() error
}
