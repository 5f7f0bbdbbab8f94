package plugin

import (
	"context"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	dipam "github.com/docker/go-plugins-helpers/ipam"

	"github.com/weftnet/weft/ipam"
	"github.com/weftnet/weft/store/etcd"
	"github.com/weftnet/weft/store/etcd/etcdtest"
	"github.com/weftnet/weft/store/memstore"
)

// TestClusterAgainstEtcd runs two hosts against a real etcd: parallel
// requests get distinct addresses; with etcd stopped a shared network's
// request fails within clusterTimeout naming etcd, a release still
// answers at once, and a bridge network is not held up; once etcd is back,
// requests work again and the pending release is carried out, without a
// restart.
func TestClusterAgainstEtcd(t *testing.T) {
	c := etcdtest.Start(t)
	open := func() *etcd.Store {
		s, err := etcd.Open(context.Background(), etcd.Config{Endpoints: c.Endpoints(), DialTimeout: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	sa, sb := open(), open()
	a := startClusterHost(t, "a", memstore.New(), sa)
	b := startClusterHost(t, "b", memstore.New(), sb)
	if err := a.lanNetwork(t, testNetID); err != nil {
		t.Fatal(err)
	}
	if err := b.lanNetwork(t, testNetID2); err != nil {
		t.Fatal(err)
	}
	const per = 20
	var mu sync.Mutex
	seen := map[string]bool{}
	var wg sync.WaitGroup
	for _, h := range []*clusterHost{a, b} {
		for range per {
			wg.Add(1)
			go func() {
				defer wg.Done()
				addr, err := h.address("")
				mu.Lock()
				defer mu.Unlock()
				if err != nil || seen[addr] {
					t.Errorf("address %q: %v (handed out before: %v)", addr, err, seen[addr])
				}
				seen[addr] = true
			}()
		}
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	var some string
	for addr := range seen {
		some = addr
		break
	}
	// Which host has it?
	owner := b
	a.d.mu.Lock()
	if a.d.deps.IPAM.IsAllocated(a.pool, netip.MustParsePrefix(some).Addr()) && !a.d.cl.foreign[addressKey(a.pool, netip.MustParsePrefix(some).Addr())] {
		owner = a
	}
	a.d.mu.Unlock()

	c.Members[0].Stop(t)
	start := time.Now()
	_, err := a.address("")
	took := time.Since(start)
	if err == nil || !strings.Contains(err.Error(), "etcd") || took > clusterTimeout+2*time.Second {
		t.Fatalf("with etcd stopped: %v after %v, want an error naming etcd within %v", err, took, clusterTimeout)
	}
	t.Logf("with etcd stopped the request failed after %v: %v", took.Round(time.Millisecond), err)
	start = time.Now()
	owner.release(t, some)
	if took := time.Since(start); took > time.Second {
		t.Fatalf("a release with etcd stopped took %v", took)
	}
	ctx := context.Background()
	start = time.Now()
	pool, err := a.d.RequestPool(ctx, &dipam.RequestPoolRequest{AddressSpace: ipam.LocalSpace, Pool: "10.1.0.0/24"})
	if err == nil {
		_, err = a.d.RequestAddress(ctx, &dipam.RequestAddressRequest{PoolID: pool.PoolID})
	}
	if err != nil || time.Since(start) > time.Second {
		t.Fatalf("a local pool with etcd stopped: %v after %v", err, time.Since(start))
	}

	c.Members[0].Restart(t)
	eventually30 := func(what string, f func() bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !f() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 30 s of etcd's return", what)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	eventually30("a new address once etcd is back", func() bool {
		_, err := a.address("")
		return err == nil
	})
	key := clusterKey(netip.MustParsePrefix(some).Addr())
	eventually30("the release made while etcd was down reaches it", func() bool {
		_, ok := clusterKeys(t, sa)[key]
		return !ok
	})
}
