// Package local holds what the single-process stores (store/memstore and
// store/bolt) share to implement store.Cluster without a cluster: a watch
// hub over an in-memory history of changes, and in-process leases.
//
// Why in memory: a watch is only useful to a live process, and leases of a
// single-process store cannot outlive it, so neither needs to be on disk.
// What must survive a restart (the revision counter and each key's mod
// revision) is the store's job.
package local

import (
	"context"
	"fmt"
	"sort"
	"sync"

	"github.com/weftnet/weft/store"
)

// Change is one event of the history with the bucket it happened in.
type Change struct {
	Bucket string
	Event  store.Event
}

// Hub records the changes a store commits and feeds them to watchers. Each
// watcher reads the shared history at its own pace, so a slow one never
// blocks a writer; one that falls behind the kept history gets
// store.ErrCompacted, as with etcd. It is safe for concurrent use.
type Hub struct {
	mu        sync.Mutex
	log       []Change // ordered by ModRev; every change after compacted
	compacted int64    // history holds the changes with ModRev > compacted
	last      int64    // the newest revision published
	keep      int
	notify    chan struct{} // closed and replaced at each Publish
	closed    bool
}

// NewHub returns a hub whose history starts after revision rev (the store's
// revision when it was opened) and keeps at least the last keep changes
// (and at most twice as many).
func NewHub(rev int64, keep int) *Hub {
	return &Hub{compacted: rev, last: rev, keep: keep, notify: make(chan struct{})}
}

// Publish records the changes of revision rev. The store calls it under its
// write lock, with increasing revisions; the events' values must not be
// modified afterwards.
func (h *Hub) Publish(rev int64, changes []Change) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed || rev <= h.last {
		return
	}
	h.last = rev
	h.log = append(h.log, changes...)
	// Compacting copies what is kept, so it waits until the history holds
	// twice the changes to keep: each write then pays O(1) on average, not
	// a copy of the whole history once it is full.
	if h.keep > 0 && len(h.log) > 2*h.keep {
		h.compactLocked(h.log[len(h.log)-h.keep-1].Event.ModRev)
	}
	close(h.notify)
	h.notify = make(chan struct{})
}

// Compact drops the history up to and including revision rev (at most the
// newest revision): a watch from rev or earlier then fails with
// store.ErrCompacted. Tests use it to force what etcd's compaction does.
func (h *Hub) Compact(rev int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	h.compactLocked(min(rev, h.last))
	close(h.notify)
	h.notify = make(chan struct{})
}

func (h *Hub) compactLocked(rev int64) {
	if rev <= h.compacted {
		return
	}
	i := sort.Search(len(h.log), func(i int) bool { return h.log[i].Event.ModRev > rev })
	h.log = append([]Change(nil), h.log[i:]...)
	h.compacted = rev
}

// Close ends every watch with store.ErrClosed.
func (h *Hub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	h.closed = true
	h.log = nil
	close(h.notify)
}

// Watch implements store.Cluster.Watch over the history.
func (h *Hub) Watch(ctx context.Context, bucket string, fromRev int64) <-chan store.WatchResponse {
	out := make(chan store.WatchResponse)
	h.mu.Lock()
	next := fromRev
	if next <= 0 {
		// Decided now, not in the goroutine: a write made after Watch
		// returns must be seen.
		next = h.last + 1
	}
	h.mu.Unlock()
	go h.run(ctx, out, bucket, next)
	return out
}

func (h *Hub) run(ctx context.Context, out chan<- store.WatchResponse, bucket string, next int64) {
	defer close(out)
	for {
		h.mu.Lock()
		if h.closed {
			h.mu.Unlock()
			h.fail(ctx, out, store.ErrClosed)
			return
		}
		if next <= h.compacted {
			err := fmt.Errorf("watching bucket %q from revision %d: history up to revision %d is gone: %w",
				bucket, next, h.compacted, store.ErrCompacted)
			h.mu.Unlock()
			h.fail(ctx, out, err)
			return
		}
		i := sort.Search(len(h.log), func(i int) bool { return h.log[i].Event.ModRev >= next })
		var evs []store.Event
		for _, c := range h.log[i:] {
			if c.Bucket == bucket {
				ev := c.Event
				if ev.Value != nil {
					ev.Value = append([]byte{}, ev.Value...)
				}
				evs = append(evs, ev)
			}
		}
		if h.last >= next {
			next = h.last + 1
		}
		wait := h.notify
		h.mu.Unlock()

		if len(evs) > 0 {
			select {
			case out <- store.WatchResponse{Events: evs}:
			case <-ctx.Done():
				return
			}
			continue
		}
		select {
		case <-wait:
		case <-ctx.Done():
			return
		}
	}
}

func (h *Hub) fail(ctx context.Context, out chan<- store.WatchResponse, err error) {
	if ctx.Err() != nil {
		return
	}
	select {
	case out <- store.WatchResponse{Err: err}:
	case <-ctx.Done():
	}
}
