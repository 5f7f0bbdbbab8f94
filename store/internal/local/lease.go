package local

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/weftnet/weft/store"
)

// Leases is a table of in-process leases with timers. When a lease runs out
// it calls the store's expire function, which deletes the lease's records
// under the store's own lock and then calls End. It is safe for concurrent
// use.
type Leases struct {
	mu     sync.Mutex
	next   store.LeaseID
	m      map[store.LeaseID]*lease
	expire func(store.LeaseID)
	closed bool
}

type lease struct {
	ttl      time.Duration
	deadline time.Time
	timer    *time.Timer
	gone     chan struct{} // closed when the lease ends
}

// NewLeases returns an empty table; expire is called (from a timer's
// goroutine, without any lock of the table held) when a lease runs out.
func NewLeases(expire func(store.LeaseID)) *Leases {
	return &Leases{m: map[store.LeaseID]*lease{}, expire: expire}
}

// Grant creates a lease of ttl.
func (l *Leases) Grant(ttl time.Duration) (store.LeaseID, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return store.NoLease, store.ErrClosed
	}
	l.next++
	id := l.next
	ls := &lease{ttl: ttl, deadline: time.Now().Add(ttl), gone: make(chan struct{})}
	ls.timer = time.AfterFunc(ttl, func() { l.due(id) })
	l.m[id] = ls
	return id, nil
}

// due runs when a lease's timer fires: it expires the lease unless a renewal
// moved its deadline meanwhile.
func (l *Leases) due(id store.LeaseID) {
	l.mu.Lock()
	ls, ok := l.m[id]
	if !ok || l.closed {
		l.mu.Unlock()
		return
	}
	if d := time.Until(ls.deadline); d > 0 {
		ls.timer.Reset(d)
		l.mu.Unlock()
		return
	}
	l.mu.Unlock()
	l.expire(id)
}

// Alive reports whether the lease exists.
func (l *Leases) Alive(id store.LeaseID) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, ok := l.m[id]
	return ok
}

// Renew moves the lease's deadline to a full TTL from now. It reports
// whether the lease still exists.
func (l *Leases) Renew(id store.LeaseID) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	ls, ok := l.m[id]
	if !ok {
		return false
	}
	ls.deadline = time.Now().Add(ls.ttl)
	return true
}

// End removes the lease and reports whether it existed. The store calls it
// under its own lock while it deletes the lease's records.
func (l *Leases) End(id store.LeaseID) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	ls, ok := l.m[id]
	if !ok {
		return false
	}
	ls.timer.Stop()
	close(ls.gone)
	delete(l.m, id)
	return true
}

// IDs returns the live leases.
func (l *Leases) IDs() []store.LeaseID {
	l.mu.Lock()
	defer l.mu.Unlock()
	ids := make([]store.LeaseID, 0, len(l.m))
	for id := range l.m {
		ids = append(ids, id)
	}
	return ids
}

// Close stops every timer and ends every lease; later Grants fail with
// store.ErrClosed.
func (l *Leases) Close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	l.closed = true
	for id, ls := range l.m {
		ls.timer.Stop()
		close(ls.gone)
		delete(l.m, id)
	}
}

// KeepAlive implements store.Cluster.KeepAlive: it renews the lease every
// third of its TTL, as etcd's client does, until ctx ends or the lease does.
func (l *Leases) KeepAlive(ctx context.Context, id store.LeaseID) error {
	l.mu.Lock()
	ls, ok := l.m[id]
	closed := l.closed
	l.mu.Unlock()
	switch {
	case closed:
		return store.ErrClosed
	case !ok:
		return fmt.Errorf("keeping lease %d alive: %w", id, store.ErrNoLease)
	}
	tick := time.NewTicker(ls.ttl / 3)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ls.gone:
			l.mu.Lock()
			closed := l.closed
			l.mu.Unlock()
			if closed {
				return store.ErrClosed
			}
			return fmt.Errorf("keeping lease %d alive: %w", id, store.ErrNoLease)
		case <-tick.C:
			if !l.Renew(id) {
				return fmt.Errorf("keeping lease %d alive: %w", id, store.ErrNoLease)
			}
		}
	}
}
