package local

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/weftnet/weft/store"
)

func put(rev int64, bucket, key string) Change {
	return Change{Bucket: bucket, Event: store.Event{Type: store.EventPut, Key: key, Value: []byte(key), ModRev: rev}}
}

// TestHubSlowWatcherDoesNotBlockWriters: a watcher that never reads holds
// up nothing; it is told it fell behind once its history is compacted.
func TestHubSlowWatcherDoesNotBlockWriters(t *testing.T) {
	h := NewHub(0, 10)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	w := h.Watch(ctx, "b", 1)
	done := make(chan struct{})
	go func() {
		for rev := int64(1); rev <= 100; rev++ {
			h.Publish(rev, []Change{put(rev, "b", "k")})
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Publish blocked on a watcher that does not read")
	}
	// The watcher may have taken the first events before the history
	// moved on; it must end with ErrCompacted.
	for resp := range w {
		if resp.Err != nil {
			if !errors.Is(resp.Err, store.ErrCompacted) {
				t.Fatalf("watch ended with %v, want store.ErrCompacted", resp.Err)
			}
			return
		}
	}
	t.Fatal("watch closed without an error")
}

func TestHubAfterClose(t *testing.T) {
	h := NewHub(5, 10)
	w := h.Watch(t.Context(), "b", 0)
	h.Close()
	h.Close()
	h.Publish(6, []Change{put(6, "b", "k")}) // must not panic
	h.Compact(6)
	resp := <-w
	if !errors.Is(resp.Err, store.ErrClosed) {
		t.Fatalf("watch at Close: %+v, want store.ErrClosed", resp)
	}
	if _, ok := <-w; ok {
		t.Fatal("watch still open after its error")
	}
}

// TestLeaseRenewMovesDeadline: a renewal after the timer was armed moves
// the expiry; without renewals the lease expires once.
func TestLeaseRenewMovesDeadline(t *testing.T) {
	expired := make(chan store.LeaseID, 2)
	var l *Leases
	l = NewLeases(func(id store.LeaseID) {
		if l.End(id) {
			expired <- id
		}
	})
	defer l.Close()
	id, err := l.Grant(time.Second)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	stop := time.Now().Add(1500 * time.Millisecond)
	for time.Now().Before(stop) {
		if !l.Renew(id) {
			t.Fatalf("lease gone after %s of renewals every 100 ms", time.Since(start))
		}
		time.Sleep(100 * time.Millisecond)
	}
	select {
	case got := <-expired:
		if got != id || time.Since(start) < 2*time.Second {
			t.Fatalf("lease %d expired after %s; want %d, a TTL after the last renewal", got, time.Since(start), id)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("lease never expired")
	}
	if l.Alive(id) || l.Renew(id) {
		t.Fatal("an expired lease is still alive")
	}
	if err := l.KeepAlive(t.Context(), id); !errors.Is(err, store.ErrNoLease) {
		t.Fatalf("KeepAlive of an expired lease: %v", err)
	}
}
