package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/weftnet/weft/ipam"
	"github.com/weftnet/weft/store"
)

// clusterResync is how often the cluster worker lists every claim again,
// on top of following the watch: a safety net that also retries pending
// writes and re-creates claims removed behind weft's back.
const clusterResync = 30 * time.Second

// clusterRun follows the cluster store until ctx ends: it waits for the
// connection, lists the claims and watches them, keeps the allocator's view
// of other hosts' addresses current, and carries out pending writes. After a
// failure (etcd down, history compacted) it starts over with a new list, so
// weft re-syncs by itself when etcd is back.
func (d *Driver) clusterRun(ctx context.Context) {
	if d.waitStarted(ctx) != nil || d.deps.Cluster == nil {
		return
	}
	select {
	case <-d.deps.Cluster.ready:
	case <-ctx.Done():
		return
	}
	cl, err := d.deps.Cluster.get()
	if err != nil {
		return
	}
	backoff := time.Second
	for ctx.Err() == nil {
		err := d.clusterFollow(ctx, cl)
		if ctx.Err() != nil {
			return
		}
		d.log.Warn("lost the cluster store's watch; listing again", "store", d.deps.Cluster.Name(), "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

// waitStarted waits for Start; it returns an error if Start failed or ctx ended.
func (d *Driver) waitStarted(ctx context.Context) error {
	select {
	case <-d.ready:
		return d.startErr
	case <-ctx.Done():
		return ctx.Err()
	}
}

// clusterFollow lists, then follows the watches until one fails. With a
// vxlan mode it also holds this host's lease, publishes its vxlan endpoints
// under it and programs the other hosts'.
func (d *Driver) clusterFollow(ctx context.Context, cl store.Cluster) error {
	rev, err := d.clusterSync(ctx, cl)
	if err != nil {
		return err
	}
	d.flushPending(ctx, cl)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	events := cl.Watch(wctx, bucketClusterAddrs, rev+1)

	var vxEvents <-chan store.WatchResponse
	var lease store.LeaseID
	leaseLost := make(chan error, 1)
	vx := d.vxlanInUse()
	if vx {
		vrev, err := d.vxlanSync(ctx, cl)
		if err != nil {
			return err
		}
		gctx, gcancel := context.WithTimeout(ctx, clusterTimeout)
		lease, err = cl.Grant(gctx, d.leaseTTL())
		gcancel()
		if err != nil {
			return err
		}
		go keepLease(wctx, cl, lease, leaseLost)
		if err := d.publishVxlan(ctx, cl, lease); err != nil {
			return err
		}
		vxEvents = cl.Watch(wctx, bucketVxlanEPs, vrev+1)
		d.programPeers(ctx)
	}
	resync := time.NewTicker(clusterResync)
	defer resync.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case resp, ok := <-events:
			if !ok {
				return errors.New("the watch ended")
			}
			if resp.Err != nil {
				return resp.Err
			}
			d.mu.Lock()
			for _, ev := range resp.Events {
				d.applyClusterEventLocked(ev.Key, ev.Value)
			}
			d.mu.Unlock()
		case resp, ok := <-vxEvents:
			if !ok {
				return errors.New("the vxlan endpoints' watch ended")
			}
			if resp.Err != nil {
				return resp.Err
			}
			d.mu.Lock()
			for _, ev := range resp.Events {
				d.applyVxlanEventLocked(ev)
			}
			d.mu.Unlock()
			d.programPeers(ctx)
		case err := <-leaseLost:
			return fmt.Errorf("this host's lease in the cluster store ended (its vxlan endpoints were withdrawn; publishing them again): %w", err)
		case <-d.cl.kick:
			d.flushPending(ctx, cl)
			if vx {
				if err := d.publishVxlan(ctx, cl, lease); err != nil {
					d.log.Warn("publishing this host's vxlan endpoints failed; retrying", "err", err)
				}
				d.programPeers(ctx)
			}
		case <-resync.C:
			if _, err := d.clusterSync(ctx, cl); err != nil {
				return err
			}
			d.flushPending(ctx, cl)
			if vx {
				if _, err := d.vxlanSync(ctx, cl); err != nil {
					return err
				}
				if err := d.publishVxlan(ctx, cl, lease); err != nil {
					return err
				}
				d.programPeers(ctx)
			}
		}
	}
}

// leaseTTL is Deps.LeaseTTL or its default.
func (d *Driver) leaseTTL() time.Duration {
	if d.deps.LeaseTTL > 0 {
		return d.deps.LeaseTTL
	}
	return DefaultLeaseTTL
}

// clusterSync reads every claim and brings this host's view and claims in
// line with the store: other hosts' claims are held, released ones freed,
// this host's leftovers (a crash between claim and record) deleted and its
// recorded claims that the store lost re-created. It returns the revision
// the list was read at.
func (d *Driver) clusterSync(ctx context.Context, cl store.Cluster) (int64, error) {
	lctx, cancel := context.WithTimeout(ctx, 2*clusterTimeout)
	defer cancel()
	items, rev, err := cl.ListItems(lctx, bucketClusterAddrs)
	if err != nil {
		return 0, err
	}
	var leftovers []store.Item
	var lost []string
	d.mu.Lock()
	seen := make(map[string]bool, len(items))
	remote := map[string]clusterAddr{}
	for _, it := range items {
		seen[it.Key] = true
		var rec clusterAddr
		if json.Unmarshal(it.Value, &rec) != nil {
			continue
		}
		switch {
		case !rec.Reserved && rec.Host == d.cl.hostID:
			if _, ok := d.cl.owned[it.Key]; !ok && !d.cl.inflight[it.Key] {
				if _, pend := d.cl.pending[it.Key]; !pend {
					leftovers = append(leftovers, it)
				}
			}
		case rec.Reserved && slices.Contains(rec.Hosts, d.cl.hostID):
		default:
			remote[it.Key] = rec
		}
	}
	for key := range d.cl.owned {
		if !seen[key] {
			lost = append(lost, key)
		}
	}
	d.cl.remote = remote
	d.holdRemoteLocked()
	d.mu.Unlock()

	for _, it := range leftovers {
		_, err := cl.Txn(lctx, []store.Cond{store.Unchanged(bucketClusterAddrs, it.Key, it.ModRev)}, store.Delete(bucketClusterAddrs, it.Key))
		if err != nil && !errors.Is(err, store.ErrConflict) {
			return 0, err
		}
		d.log.Info("removed a cluster claim of this host that no local record knows (weft stopped while making it)", "key", it.Key)
	}
	for _, key := range lost {
		d.reclaim(lctx, cl, key)
	}
	return rev, nil
}

// reclaim re-creates a claim of this host the store no longer has (deleted
// behind weft's back, or a store restored from an old backup).
func (d *Driver) reclaim(ctx context.Context, cl store.Cluster, key string) {
	rev, err := d.claim(ctx, cl, key)
	d.mu.Lock()
	defer d.mu.Unlock()
	o, ok := d.cl.owned[key]
	if !ok {
		return // released meanwhile
	}
	var taken errTaken
	switch {
	case errors.As(err, &taken):
		d.log.Error("an address this host's container has is claimed by another host: two containers may have one address; remove one of them",
			"key", key, "other_host", taken.rec.Host, "other_hostname", taken.rec.HostName)
	case err != nil:
		d.log.Warn("re-creating a lost cluster claim failed; retrying at the next sync", "key", key, "err", err)
	default:
		o.rev = rev
		d.cl.owned[key] = o
		if raw, err := json.Marshal(ownedAddr{Key: key, Rev: rev}); err == nil {
			if err := d.save(ctx, store.Put(bucketAddresses, o.local, raw)); err != nil {
				d.log.Warn("recording a re-created cluster claim failed", "key", key, "err", err)
			}
		}
		d.log.Info("re-created a cluster claim the store had lost", "key", key)
	}
}

// applyClusterEventLocked follows one change of a claim: value nil is a
// deletion.
func (d *Driver) applyClusterEventLocked(key string, value []byte) {
	if value == nil {
		if _, ok := d.cl.remote[key]; ok {
			delete(d.cl.remote, key)
			d.freeForeignLocked(key)
		}
		return
	}
	var rec clusterAddr
	if json.Unmarshal(value, &rec) != nil {
		return
	}
	if (!rec.Reserved && rec.Host == d.cl.hostID) || (rec.Reserved && slices.Contains(rec.Hosts, d.cl.hostID)) {
		if _, ok := d.cl.remote[key]; ok {
			delete(d.cl.remote, key)
			d.freeForeignLocked(key)
		}
		return
	}
	d.cl.remote[key] = rec
	d.holdKeyLocked(key)
}

// holdRemoteLocked holds every remote claim in its shared pool and frees
// foreign addresses no host claims any more.
func (d *Driver) holdRemoteLocked() {
	for key := range d.cl.remote {
		d.holdKeyLocked(key)
	}
	for local := range d.cl.foreign {
		poolID, a, err := splitAddressKey(local)
		if err != nil {
			delete(d.cl.foreign, local)
			continue
		}
		if _, ok := d.deps.IPAM.Pool(poolID); !ok {
			delete(d.cl.foreign, local)
			continue
		}
		if _, ok := d.cl.remote[clusterKey(a)]; !ok {
			d.freeForeignLocked(clusterKey(a))
		}
	}
}

// sharedPoolLocked finds this host's shared pool holding a, if any.
func (d *Driver) sharedPoolLocked(a netip.Addr) (ipam.Pool, bool) {
	for _, space := range []string{ipam.LocalSpace, ipam.GlobalSpace} {
		if pool, ok := d.deps.IPAM.PoolContaining(space, a); ok && pool.Shared {
			return pool, true
		}
	}
	return ipam.Pool{}, false
}

// sharedAddrLocked finds the address a claim names, this host's shared
// pool holding it, and its local addressKey; false when this host has no
// such pool.
func (d *Driver) sharedAddrLocked(key string) (ipam.Pool, netip.Addr, string, bool) {
	a, ok := splitClusterKey(key)
	if !ok {
		return ipam.Pool{}, netip.Addr{}, "", false
	}
	pool, ok := d.sharedPoolLocked(a)
	if !ok {
		return ipam.Pool{}, netip.Addr{}, "", false
	}
	return pool, a, addressKey(pool.ID, a), true
}

// holdKeyLocked holds another host's address in this host's shared pool of
// its subnet, so that the allocator does not propose it.
func (d *Driver) holdKeyLocked(key string) {
	pool, a, local, ok := d.sharedAddrLocked(key)
	if !ok {
		return
	}
	if d.cl.foreign[local] || d.deps.IPAM.IsAllocated(pool.ID, a) {
		if _, mine := d.cl.owned[key]; mine {
			d.log.Error("another host claimed an address this host's container has: two containers may have one address; remove one of them", "key", key)
		}
		return
	}
	if _, err := d.deps.IPAM.RequestAddress(pool.ID, a, false); err == nil {
		d.cl.foreign[local] = true
	}
}

// freeForeignLocked gives back an address held only for another host.
func (d *Driver) freeForeignLocked(key string) {
	pool, a, local, ok := d.sharedAddrLocked(key)
	if !ok || !d.cl.foreign[local] {
		return
	}
	delete(d.cl.foreign, local)
	d.undo("address", a.String(), d.deps.IPAM.ReleaseAddress(pool.ID, a))
}

// flushPending carries out the pending cluster writes; what fails stays
// pending for the next kick or sync.
func (d *Driver) flushPending(ctx context.Context, cl store.Cluster) {
	d.mu.Lock()
	todo := make(map[string]pendingCluster, len(d.cl.pending))
	for k, p := range d.cl.pending {
		todo[k] = p
	}
	d.mu.Unlock()
	for key, p := range todo {
		if !d.flushOne(ctx, cl, key, p) {
			return
		}
	}
}

// flushOne carries out one pending write; it reports whether the store
// answered (false: stop flushing, and retry later).
func (d *Driver) flushOne(ctx context.Context, cl store.Cluster, key string, p pendingCluster) bool {
	if p.Unreserve || p.LeaveVxlan {
		// Serialised with joinCluster, which may cancel it.
		d.clMu.Lock()
		defer d.clMu.Unlock()
		d.mu.Lock()
		cur, ok := d.cl.pending[key]
		d.mu.Unlock()
		if !ok || cur != p {
			return true
		}
	}
	cctx, cancel := context.WithTimeout(ctx, clusterTimeout)
	var err error
	if p.Release {
		_, err = cl.Txn(cctx, []store.Cond{store.Unchanged(bucketClusterAddrs, key, p.Rev)}, store.Delete(bucketClusterAddrs, key))
		if errors.Is(err, store.ErrConflict) {
			err = nil // changed or gone: no longer this claim
		}
	} else if p.Unreserve {
		err = d.unreserve(cctx, cl, key)
	} else if p.LeaveVxlan {
		err = d.leaveVxlan(cctx, cl, key)
	}
	cancel()
	if err != nil {
		d.log.Warn("a cluster write is still pending; retrying", "key", key, "err", err)
		return false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if cur, ok := d.cl.pending[key]; ok && cur == p {
		if serr := d.save(ctx, store.Delete(bucketClusterPending, key)); serr != nil {
			d.log.Warn("recording a done cluster write failed", "key", key, "err", serr)
			return false
		}
		delete(d.cl.pending, key)
		if p.Release {
			if _, ok := d.deps.IPAM.Pool(p.PoolID); ok {
				d.undo("address", p.Addr.String(), d.deps.IPAM.ReleaseAddress(p.PoolID, p.Addr))
			}
		}
	}
	return true
}
