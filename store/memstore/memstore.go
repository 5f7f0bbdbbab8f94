package memstore

import (
	"context"
	"fmt"
	"sync"

	"github.com/weftnet/weft/store"
)

// Store is an in-memory store.Store. The zero value is an empty store ready
// to use; it is safe for concurrent use.
type Store struct {
	mu       sync.Mutex
	buckets  map[string]map[string][]byte
	closed   bool
	failNext []error
	failWhen func(ops []store.Op) error
	applies  int
}

var _ store.Store = (*Store)(nil)

// New returns an empty Store.
func New() *Store { return &Store{} }

// FailNext makes the next Apply call return err (unwrapped, so a test can
// compare it with errors.Is) and change nothing. Each call queues one
// failure: FailNext(a); FailNext(b) fails the next two Applies, in order.
// Failures are injected after the store's own checks (closed store, bad
// names, done context), so those still win.
func (s *Store) FailNext(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failNext = append(s.failNext, err)
}

// FailWhen installs f, called with the ops of every Apply that has no queued
// FailNext failure. A non-nil result fails that Apply with it, unchanged, and
// nothing is written: for example fail only the Apply that touches one
// bucket, or only the third one. f runs under the store's lock and must not
// call the Store. FailWhen(nil) removes it.
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
	if len(s.failNext) > 0 {
		err := s.failNext[0]
		s.failNext = s.failNext[1:]
		return err
	}
	if s.failWhen != nil {
		if err := s.failWhen(ops); err != nil {
			return err
		}
	}
	if s.buckets == nil {
		s.buckets = map[string]map[string][]byte{}
	}
	for _, op := range ops {
		b := s.buckets[op.Bucket]
		if op.Value == nil {
			delete(b, op.Key) // no-op on a nil map
			if len(b) == 0 {
				delete(s.buckets, op.Bucket)
			}
			continue
		}
		if b == nil {
			b = map[string][]byte{}
			s.buckets[op.Bucket] = b
		}
		b[op.Key] = append([]byte{}, op.Value...)
	}
	s.applies++
	return nil
}

// Get returns a copy of the value of bucket/key.
func (s *Store) Get(ctx context.Context, bucket, key string) ([]byte, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkLocked(ctx); err != nil {
		return nil, false, fmt.Errorf("reading state: %w", err)
	}
	if err := store.CheckBucket(bucket); err != nil {
		return nil, false, fmt.Errorf("reading state: %w", err)
	}
	v, ok := s.buckets[bucket][key]
	if !ok {
		return nil, false, nil
	}
	return append([]byte{}, v...), true, nil
}

// List returns copies of every key and value of bucket.
func (s *Store) List(ctx context.Context, bucket string) (map[string][]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkLocked(ctx); err != nil {
		return nil, fmt.Errorf("reading state: %w", err)
	}
	if err := store.CheckBucket(bucket); err != nil {
		return nil, fmt.Errorf("reading state: %w", err)
	}
	out := make(map[string][]byte, len(s.buckets[bucket]))
	for k, v := range s.buckets[bucket] {
		out[k] = append([]byte{}, v...)
	}
	return out, nil
}

// Close marks the store closed; later calls fail with store.ErrClosed. The
// data is dropped. Calling it again does nothing.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	s.buckets = nil
	return nil
}

func (s *Store) checkLocked(ctx context.Context) error {
	if s.closed {
		return store.ErrClosed
	}
	return ctx.Err()
}
