package bolt

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/weftnet/weft/store"
	"github.com/weftnet/weft/store/internal/local"
)

// FileName is the state file's name inside WEFT_STATE_DIR.
const FileName = "weft.db"

// LockTimeout is how long Open waits for another process to release the
// state file before it gives up.
const LockTimeout = time.Second

const (
	dirMode  = 0o700
	fileMode = 0o600
)

// schemaKey is the key of the schema version in store.MetaBucket.
const schemaKey = "schema"

// Store is a store.Cluster in one bbolt file. It is safe for concurrent use.
type Store struct {
	db     *bbolt.DB
	path   string
	closed atomic.Bool
	// wmu orders writers so that their events reach the watch hub in
	// revision order; bbolt serialises them anyway.
	wmu    sync.Mutex
	hub    *local.Hub
	leases *local.Leases
}

var _ store.Cluster = (*Store)(nil)

// Open opens the state file at path, creating it (mode 0600) and its parent
// directory (mode 0700) if needed. A new file is stamped with
// store.SchemaVersion. Open fails with a clear error, after LockTimeout, when
// another process has the file open, and refuses a file written by a newer
// weft with an error wrapping store.ErrNewerSchema.
func Open(path string) (*Store, error) {
	if path == "" {
		return nil, errors.New("opening state file: no path given")
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return nil, fmt.Errorf("creating state directory %s: %w", dir, err)
	}
	db, err := bbolt.Open(path, fileMode, &bbolt.Options{Timeout: LockTimeout})
	switch {
	case errors.Is(err, bolterrors.ErrTimeout):
		return nil, fmt.Errorf("state file %s is locked by another weft process (%w after %s): "+
			"stop that weft, or give this one a different WEFT_STATE_DIR", path, err, LockTimeout)
	case errors.Is(err, bolterrors.ErrInvalid),
		errors.Is(err, bolterrors.ErrVersionMismatch),
		errors.Is(err, bolterrors.ErrChecksum):
		return nil, fmt.Errorf("state file %s is damaged or is not a weft state file (%w): "+
			"move it aside to start weft with no saved networks", path, err)
	case errors.Is(err, syscall.EROFS), errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
		return nil, fmt.Errorf("opening state file %s: the state directory %s is not writable (%w); make it writable, or give weft another WEFT_STATE_DIR", path, dir, err)
	case err != nil:
		return nil, fmt.Errorf("opening state file %s: %w", path, err)
	}
	s := &Store{db: db, path: path}
	if err := s.checkSchema(); err != nil {
		_ = db.Close() // the schema error is the one to report
		return nil, err
	}
	rev, err := s.prepareRevisions()
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	s.hub = local.NewHub(rev, HistoryKeep)
	s.leases = local.NewLeases(s.expire)
	return s, nil
}

// Path returns the file the store was opened on.
func (s *Store) Path() string { return s.path }

// checkSchema stamps a new file with store.SchemaVersion and refuses a file
// this weft cannot read.
func (s *Store) checkSchema() error {
	var (
		raw              []byte
		hasMeta, foreign bool
	)
	err := s.db.View(func(tx *bbolt.Tx) error {
		if meta := tx.Bucket([]byte(store.MetaBucket)); meta != nil {
			hasMeta = true
			raw = append([]byte(nil), meta.Get([]byte(schemaKey))...)
			return nil
		}
		// No meta bucket: a new file, unless something else wrote buckets.
		return tx.ForEach(func([]byte, *bbolt.Bucket) error {
			foreign = true
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("reading the schema version of state file %s: %w", s.path, err)
	}
	if foreign {
		return fmt.Errorf("state file %s has data but no weft schema version, so it was not written by weft: "+
			"point WEFT_STATE_DIR at another directory, or move the file aside", s.path)
	}
	if !hasMeta {
		err := s.db.Update(func(tx *bbolt.Tx) error {
			meta, err := tx.CreateBucket([]byte(store.MetaBucket))
			if err != nil {
				return err
			}
			return meta.Put([]byte(schemaKey), []byte(strconv.Itoa(store.SchemaVersion)))
		})
		if err != nil {
			return fmt.Errorf("writing the schema version to new state file %s: %w", s.path, err)
		}
		return nil
	}
	v, err := strconv.Atoi(string(raw))
	if err != nil || v < 1 {
		return fmt.Errorf("state file %s has an unreadable schema version %q: "+
			"the file is damaged; move it aside to start weft with no saved networks", s.path, raw)
	}
	if v > store.SchemaVersion {
		return fmt.Errorf("state file %s has schema version %d but this weft reads up to version %d (%w): "+
			"run the newer weft that wrote it, or move the file aside to start with no saved networks",
			s.path, v, store.SchemaVersion, store.ErrNewerSchema)
	}
	// v < store.SchemaVersion: migrations from older layouts go here. Version
	// 1 is the first, so there are none yet.
	return nil
}

// Apply writes ops in one bbolt transaction, synced to disk before it
// returns, as one store revision. A put creates its bucket if needed; a
// delete of a missing key or bucket is not an error. A context that is done
// before the transaction starts (including while waiting for another
// writer) fails Apply with nothing written.
func (s *Store) Apply(ctx context.Context, ops ...store.Op) error {
	if err := s.check(ctx); err != nil {
		return s.wrap("saving state to", err)
	}
	if err := store.CheckOps(ops); err != nil {
		return s.wrap("saving state to", err)
	}
	if len(ops) == 0 {
		return nil
	}
	_, err := s.write(ctx, nil, ops)
	return s.wrap("saving state to", err)
}

// Get returns a copy of the value of bucket/key.
func (s *Store) Get(ctx context.Context, bucket, key string) ([]byte, bool, error) {
	if err := s.check(ctx); err != nil {
		return nil, false, s.wrap("reading state from", err)
	}
	if err := store.CheckBucket(bucket); err != nil {
		return nil, false, s.wrap("reading state from", err)
	}
	var (
		val   []byte
		found bool
	)
	err := s.db.View(func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte(bucket))
		if b == nil {
			return nil
		}
		// Seek rather than Get: it tells an empty value from a missing key.
		k, v := b.Cursor().Seek([]byte(key))
		if k == nil || string(k) != key {
			return nil
		}
		// bbolt memory is valid only inside the transaction.
		val, found = append([]byte{}, v...), true
		return nil
	})
	if err != nil {
		return nil, false, s.wrap("reading state from", err)
	}
	return val, found, nil
}

// List returns copies of every key and value of bucket.
func (s *Store) List(ctx context.Context, bucket string) (map[string][]byte, error) {
	if err := s.check(ctx); err != nil {
		return nil, s.wrap("reading state from", err)
	}
	if err := store.CheckBucket(bucket); err != nil {
		return nil, s.wrap("reading state from", err)
	}
	out := map[string][]byte{}
	err := s.db.View(func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte(bucket))
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			out[string(k)] = append([]byte{}, v...)
			return nil
		})
	})
	if err != nil {
		return nil, s.wrap("reading state from", err)
	}
	return out, nil
}

// Close waits for running transactions, deletes the records bound to
// leases, ends watches (store.ErrClosed), then closes the file and releases
// its lock. Calling it again does nothing.
func (s *Store) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return nil
	}
	// Leases live in this process only, so they end with it: delete
	// their records now (Open deletes them too, after a crash).
	s.leases.Close()
	s.hub.Close()
	s.wmu.Lock()
	_ = s.db.Update(func(tx *bbolt.Tx) error { _, _, err := dropLeased(tx, store.NoLease); return err })
	s.wmu.Unlock()
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("closing state file %s: %w", s.path, err)
	}
	return nil
}

func (s *Store) check(ctx context.Context) error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	return ctx.Err()
}

// wrap names the file in err, and turns bbolt's "not open" (a call racing
// Close) into store.ErrClosed.
func (s *Store) wrap(action string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, bolterrors.ErrDatabaseNotOpen) {
		err = store.ErrClosed
	}
	switch {
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return fmt.Errorf("%s %s: the state directory %s is full (%w); free space there and try again — nothing was changed", action, s.path, filepath.Dir(s.path), err)
	case errors.Is(err, syscall.EROFS), errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
		return fmt.Errorf("%s %s: the state directory %s is not writable (%w); make it writable and try again — nothing was changed", action, s.path, filepath.Dir(s.path), err)
	}
	return fmt.Errorf("%s %s: %w", action, s.path, err)
}
