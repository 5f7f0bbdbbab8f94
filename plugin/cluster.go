package plugin

// Addresses unique across hosts. A macvlan network's subnet is a LAN's, and
// every host on that LAN hands out addresses from it (ipam/share.go). With a
// cluster store (WEFT_STORE=etcd://...) each address of such a shared pool is
// claimed in the store before it is handed out: a create-only write of the
// address's key (clusterKey), which exactly one host wins, so two hosts never
// give out the same address, whatever their local views say (moby#49921 is
// Docker's macvlan driver doing exactly that). The gateway and aux addresses
// are reserved once for every host that uses them.
//
// The store is never consulted under d.mu, so an etcd outage never stalls a
// bridge network: a shared-pool request takes the lock only to pick or
// record an address, and makes its store round trips in between, bounded by
// clusterTimeout. Releases never wait on the store at all: the local record
// is replaced by a pending deletion, which the cluster worker (clusterRun)
// carries out, now or when the store is back; until then the address stays
// held, so this host cannot hand it out while the store still says it is
// taken.
//
// Each host follows the others' claims through a watch (clusterRun) and
// holds them in its allocator ("foreign" addresses), so it rarely proposes
// an address another host has; when it does, the losing create tells it,
// and it moves on to the next address.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/weftnet/weft/ipam"
	"github.com/weftnet/weft/store"
)

// Cluster store buckets, and the host-local ones that track it.
const (
	// bucketClusterAddrs (cluster) holds one clusterAddr per claimed
	// address of a shared pool, keyed by clusterKey.
	bucketClusterAddrs = "addresses"
	// bucketClusterPending (host-local) holds cluster writes still to be
	// done (pendingCluster), keyed by clusterKey.
	bucketClusterPending = "cluster-pending"
	// bucketHost (host-local) holds this host's identity (hostIDKey).
	bucketHost = "host"
	hostIDKey  = "id"
	// scopeKey holds the scope the weft that owns the state file runs with,
	// for weft status and doctor reading the file while it is stopped (a
	// global-scope weft's links have names of their own).
	scopeKey = "scope"
)

// clusterTimeout bounds the store round trips of one request: a request
// that needs the cluster fails within it when the store cannot be reached.
const clusterTimeout = 4500 * time.Millisecond

// clusterAttempts bounds how many addresses one request tries that other
// hosts turn out to hold before it gives up (the watch normally tells this
// host about them first).
const clusterAttempts = 64

// ErrClusterUnavailable is wrapped by the error of a request that needs the
// cluster store when weft cannot reach it.
var ErrClusterUnavailable = errors.New("the cluster store cannot be reached")

// ClusterLink is the connection to the cluster store, which main makes in
// the background (etcd may be down when weft starts; bridge networks must
// not wait for it). Until Connected, requests that need the cluster fail at
// once with the last reason given to Failed.
type ClusterLink struct {
	name  string
	ready chan struct{}
	once  sync.Once
	mu    sync.Mutex
	st    store.Cluster
	why   error
}

// NewClusterLink returns a link to the store described by name (for errors:
// "etcd at http://...").
func NewClusterLink(name string) *ClusterLink {
	return &ClusterLink{name: name, ready: make(chan struct{}), why: errors.New("weft is still connecting to it")}
}

// Name describes the store.
func (l *ClusterLink) Name() string { return l.name }

// Connected hands over the opened store; later calls are ignored.
func (l *ClusterLink) Connected(st store.Cluster) {
	l.once.Do(func() {
		l.mu.Lock()
		l.st, l.why = st, nil
		l.mu.Unlock()
		close(l.ready)
	})
}

// Failed records why the store could not be opened yet.
func (l *ClusterLink) Failed(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.st == nil {
		l.why = err
	}
}

// get returns the store, or an error naming it and why it is not there.
func (l *ClusterLink) get() (store.Cluster, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.st == nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrClusterUnavailable, l.name, l.why)
	}
	return l.st, nil
}

// clusterAddr is the value of a bucketClusterAddrs record.
type clusterAddr struct {
	// Host and HostName own a container's address.
	Host     string `json:"host,omitempty"`
	HostName string `json:"hostname,omitempty"`
	// Hosts, for a gateway or aux address (Reserved), are the hosts whose
	// network reserves it; the record goes when the last one leaves.
	Reserved bool     `json:"reserved,omitempty"`
	Hosts    []string `json:"hosts,omitempty"`
}

// pendingCluster is the value of a bucketClusterPending record.
type pendingCluster struct {
	// Release: delete this host's claim if it is still the version written
	// at Rev; the address (PoolID, Addr) stays held until then.
	Release bool       `json:"release,omitempty"`
	Rev     int64      `json:"rev,omitempty"`
	PoolID  string     `json:"pool,omitempty"`
	Addr    netip.Addr `json:"addr,omitzero"`
	// Unreserve: remove this host from a gateway or aux reservation.
	Unreserve bool `json:"unreserve,omitempty"`
	// LeaveVxlan: remove this host from a vxlan network's definition.
	LeaveVxlan bool `json:"leave_vxlan,omitempty"`
}

// ownedAddr is the value of the local address record of an address claimed
// in the cluster store.
type ownedAddr struct {
	Key string `json:"cluster_key"`
	Rev int64  `json:"rev"`
}

// clusterState is the driver's view of the cluster, guarded by d.mu.
type clusterState struct {
	hostID string
	// owned maps the clusterKey of each claim of this host to its local
	// addressKey and the revision of the claim.
	owned map[string]ownedRef
	// inflight are claims being made (created in the store, not yet saved
	// locally): a sync must not take them for leftovers.
	inflight map[string]bool
	// remote are the other hosts' claims and reservations, by clusterKey.
	remote map[string]clusterAddr
	// foreign are addresses held in the allocator only because another
	// host has them, by addressKey.
	foreign map[string]bool
	// pending are the cluster writes still to be done, by clusterKey.
	pending map[string]pendingCluster
	// kick wakes the cluster worker (buffered, size 1).
	kick chan struct{}
	// vxAll are the vxlan endpoints every host published, by key
	// (vxlanpeers.go).
	vxAll map[string]vxlanEntry
	// peersSeen are the other hosts of vxAll, by host ID, as the last
	// programming of the peers found them (vxlanpeers.go).
	peersSeen map[string]*peerSeen
}

type ownedRef struct {
	local string // addressKey
	rev   int64
}

func newClusterState() clusterState {
	return clusterState{
		owned: map[string]ownedRef{}, inflight: map[string]bool{}, remote: map[string]clusterAddr{},
		foreign: map[string]bool{}, pending: map[string]pendingCluster{}, kick: make(chan struct{}, 1),
		vxAll: map[string]vxlanEntry{},
	}
}

// clusterKey names the claim of address a in the cluster store: the
// address itself ("10.1.0.5", "fd00::5"). Not the subnet and the address:
// two hosts whose shared subnets overlap without being equal (a /24 here, a
// /25 there) must still never hand out one address twice.
func clusterKey(a netip.Addr) string { return a.String() }

// splitClusterKey reads a clusterKey back; it refuses any other form.
func splitClusterKey(key string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(key)
	if err != nil || a.Zone() != "" || a.String() != key {
		return netip.Addr{}, false
	}
	return a, true
}

// clusterPoolLocked says whether addresses of pool are claimed in the
// cluster store: a shared pool, with a cluster store configured.
func (d *Driver) clusterPoolLocked(pool ipam.Pool) bool {
	return d.deps.Cluster != nil && pool.Shared
}

// clusterErr words a store failure for the person at the docker prompt.
func (d *Driver) clusterErr(what string, err error) error {
	if errors.Is(err, ErrClusterUnavailable) {
		return fmt.Errorf("%s needs weft's cluster store, and %w; containers already running are not affected; try again once etcd answers", what, err)
	}
	// The store's errors name it and its endpoints already.
	return fmt.Errorf("%s needs weft's cluster store, which failed: %w; containers already running are not affected; try again once etcd answers",
		what, err)
}

// loadHostIDLocked reads this host's identity, making one at first start.
// Cluster records name their owner with it.
func (d *Driver) loadHostIDLocked(ctx context.Context) error {
	if scope, _, err := d.deps.Store.Get(ctx, bucketHost, scopeKey); err != nil {
		return err
	} else if string(scope) != d.scope {
		if err := d.save(ctx, store.Put(bucketHost, scopeKey, []byte(d.scope))); err != nil {
			return err
		}
	}
	raw, ok, err := d.deps.Store.Get(ctx, bucketHost, hostIDKey)
	if err != nil {
		return err
	}
	if ok && len(raw) > 0 {
		d.cl.hostID = string(raw)
		return nil
	}
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return fmt.Errorf("making a host identity: %w", err)
	}
	id := hex.EncodeToString(b)
	if err := d.save(ctx, store.Put(bucketHost, hostIDKey, []byte(id))); err != nil {
		return err
	}
	d.cl.hostID = id
	return nil
}

// loadClusterLocked reads the pending cluster writes; the claims come with
// the address records (noteOwnedLocked).
func (d *Driver) loadClusterLocked(ctx context.Context) error {
	raw, err := d.deps.Store.List(ctx, bucketClusterPending)
	if err != nil {
		return err
	}
	for key, v := range raw {
		var p pendingCluster
		if err := json.Unmarshal(v, &p); err != nil {
			d.log.Error("skipping unreadable pending cluster write", "key", key, "err", err)
			continue
		}
		d.cl.pending[key] = p
	}
	return nil
}

// noteOwnedLocked records, at load, the claim an address record carries.
func (d *Driver) noteOwnedLocked(local string, raw []byte) {
	if len(raw) == 0 {
		return
	}
	var o ownedAddr
	if err := json.Unmarshal(raw, &o); err != nil || o.Key == "" {
		return
	}
	d.cl.owned[o.Key] = ownedRef{local: local, rev: o.Rev}
}

// addHeldPendingLocked adds to addrs, for the allocator's restore, the
// addresses pending releases keep held: those of pools still recorded and
// not already listed.
func (d *Driver) addHeldPendingLocked(pools, recorded map[string][]byte, addrs map[string][]netip.Addr) {
	for _, p := range d.cl.pending {
		if !p.Release || !p.Addr.IsValid() {
			continue
		}
		if _, ok := pools[p.PoolID]; !ok {
			continue
		}
		if _, ok := recorded[addressKey(p.PoolID, p.Addr)]; ok {
			continue
		}
		addrs[p.PoolID] = append(addrs[p.PoolID], p.Addr)
	}
}

// requestClusterAddress hands out an address of a shared pool: picked
// locally, claimed in the store, then recorded locally. d.mu is not held.
func (d *Driver) requestClusterAddress(ctx context.Context, pool ipam.Pool, want netip.Addr) (netip.Prefix, error) {
	cl, err := d.deps.Cluster.get()
	if err != nil {
		return netip.Prefix{}, d.clusterErr("an address of the shared subnet "+pool.Prefix.String(), err)
	}
	cctx, cancel := context.WithTimeout(ctx, clusterTimeout)
	defer cancel()
	for range clusterAttempts {
		d.mu.Lock()
		if want.IsValid() {
			if r, ok := d.cl.remote[clusterKey(want)]; ok {
				d.mu.Unlock()
				return netip.Prefix{}, inUseElsewhere(want, r)
			}
		}
		addr, err := d.deps.IPAM.RequestAddress(pool.ID, want, false)
		if err != nil {
			d.mu.Unlock()
			return netip.Prefix{}, err
		}
		key := clusterKey(addr.Addr())
		local := addressKey(pool.ID, addr.Addr())
		d.cl.inflight[key] = true
		d.mu.Unlock()

		rev, err := d.claim(cctx, cl, key)
		if err == nil {
			return addr, d.recordClaim(ctx, pool, addr, key, rev)
		}
		d.mu.Lock()
		delete(d.cl.inflight, key)
		var taken errTaken
		if errors.As(err, &taken) {
			// Another host has it: keep it held so it is not proposed
			// again, until the watch reports it free.
			d.cl.foreign[local] = true
			d.cl.remote[key] = taken.rec
			d.mu.Unlock()
			if want.IsValid() {
				return netip.Prefix{}, inUseElsewhere(want, taken.rec)
			}
			continue
		}
		d.undo("address", addr.String(), d.deps.IPAM.ReleaseAddress(pool.ID, addr.Addr()))
		d.mu.Unlock()
		return netip.Prefix{}, d.clusterErr("an address of the shared subnet "+pool.Prefix.String(), err)
	}
	return netip.Prefix{}, fmt.Errorf("%w: every address weft tried in the shared subnet %s is taken by another host; remove containers or use a larger --subnet",
		ipam.ErrNoAddresses, pool.Prefix)
}

// errTaken says another host holds a key.
type errTaken struct{ rec clusterAddr }

func (e errTaken) Error() string { return "taken by another host" }

// claim creates this host's claim on key. A claim of this host's that no
// local record knows (left by a crash between the claim and the local
// record) is taken over; anything else is errTaken.
func (d *Driver) claim(ctx context.Context, cl store.Cluster, key string) (int64, error) {
	val, err := json.Marshal(clusterAddr{Host: d.cl.hostID, HostName: d.deps.HostName})
	if err != nil {
		return 0, err
	}
	rev, err := cl.Create(ctx, store.Put(bucketClusterAddrs, key, val))
	if !errors.Is(err, store.ErrExists) {
		return rev, err
	}
	it, ok, _, err := cl.GetItem(ctx, bucketClusterAddrs, key)
	if err != nil {
		return 0, err
	}
	if !ok { // released meanwhile: try once more
		return cl.Create(ctx, store.Put(bucketClusterAddrs, key, val))
	}
	var rec clusterAddr
	_ = json.Unmarshal(it.Value, &rec)
	if rec.Host == d.cl.hostID && !rec.Reserved {
		return cl.Txn(ctx, []store.Cond{store.Unchanged(bucketClusterAddrs, key, it.ModRev)}, store.Put(bucketClusterAddrs, key, val))
	}
	return 0, errTaken{rec}
}

// recordClaim saves a claimed address locally; if that fails the claim is
// given up (or left for the next sync to remove).
func (d *Driver) recordClaim(ctx context.Context, pool ipam.Pool, addr netip.Prefix, key string, rev int64) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.cl.inflight, key)
	now := time.Now()
	local := addressKey(pool.ID, addr.Addr())
	owned, err := json.Marshal(ownedAddr{Key: key, Rev: rev})
	var poolOp, res store.Op
	if err == nil {
		p, _ := d.deps.IPAM.Pool(pool.ID)
		poolOp, err = putJSON(bucketPools, p.ID, p) // carries the cursor
	}
	if err == nil {
		res, err = d.reserveOp(local, now)
	}
	if err == nil {
		err = d.save(ctx, store.Put(bucketAddresses, local, owned), poolOp, res)
	}
	if err != nil {
		// Not recorded: keep the address held behind a pending release
		// (in memory; a restart's sync removes the claim instead).
		d.cl.pending[key] = pendingCluster{Release: true, Rev: rev, PoolID: pool.ID, Addr: addr.Addr()}
		d.kickCluster()
		return err
	}
	d.cl.owned[key] = ownedRef{local: local, rev: rev}
	d.pending[local] = now
	return nil
}

// inUseElsewhere is the error for an address another host has.
func inUseElsewhere(a netip.Addr, r clusterAddr) error {
	if r.Reserved {
		return fmt.Errorf("%w: address %s is already in use on another host, as a network's gateway or --aux-address; choose another address",
			ipam.ErrAddressInUse, a)
	}
	return fmt.Errorf("%w: address %s is already in use on another host (weft host %s on %s); choose another address or leave it out to get a free one",
		ipam.ErrAddressInUse, a, r.Host, r.HostName)
}

// clusterReleaseOpsLocked returns, for an address this host claimed in the
// cluster, the op recording its pending release; nil for any other.
func (d *Driver) clusterReleaseOpsLocked(poolID string, a netip.Addr) []store.Op {
	pool, ok := d.deps.IPAM.Pool(poolID)
	if !ok || !pool.Shared {
		return nil
	}
	key := clusterKey(a)
	o, ok := d.cl.owned[key]
	if !ok {
		return nil
	}
	op, err := putJSON(bucketClusterPending, key, pendingCluster{Release: true, Rev: o.rev, PoolID: poolID, Addr: a})
	if err != nil {
		return nil
	}
	return []store.Op{op}
}

// clusterReleasedLocked follows a saved release: an address claimed in the
// cluster stays held until the worker has deleted its claim; any other goes
// back to the allocator. It reports whether the allocator should release it.
func (d *Driver) clusterReleasedLocked(poolID string, a netip.Addr) bool {
	pool, ok := d.deps.IPAM.Pool(poolID)
	if !ok || !pool.Shared {
		return true
	}
	key := clusterKey(a)
	o, ok := d.cl.owned[key]
	if !ok {
		return true
	}
	delete(d.cl.owned, key)
	d.cl.pending[key] = pendingCluster{Release: true, Rev: o.rev, PoolID: poolID, Addr: a}
	d.kickCluster()
	return false
}

func (d *Driver) kickCluster() {
	select {
	case d.cl.kick <- struct{}{}:
	default:
	}
}

// reservedAddrs lists the gateway and aux addresses of a network's request,
// by subnet, for reserveInCluster.
type reservedAddr struct {
	subnet netip.Prefix
	addr   netip.Addr
}

func (r reservedAddr) key() string { return clusterKey(r.addr) }

// reserveInCluster reserves a shared network's gateway and aux addresses for
// this host: all or none. d.mu is not held.
func (d *Driver) reserveInCluster(ctx context.Context, addrs []reservedAddr) error {
	if len(addrs) == 0 {
		return nil
	}
	cl, err := d.deps.Cluster.get()
	if err != nil {
		return d.clusterErr("a macvlan network on a shared subnet", err)
	}
	cctx, cancel := context.WithTimeout(ctx, clusterTimeout)
	defer cancel()
	for i, r := range addrs {
		if err := d.reserve(cctx, cl, r.key()); err != nil {
			for _, done := range addrs[:i] {
				if uerr := d.unreserve(cctx, cl, done.key()); uerr != nil {
					d.log.Error("undoing a cluster reservation failed", "key", done.key(), "err", uerr)
				}
			}
			var taken errTaken
			if errors.As(err, &taken) {
				return fmt.Errorf("%w: gateway or --aux-address %s of subnet %s is a container's address on another host (weft host %s on %s); choose an address no host uses",
					ErrInvalidOption, r.addr, r.subnet, taken.rec.Host, taken.rec.HostName)
			}
			return d.clusterErr("a macvlan network on a shared subnet", err)
		}
	}
	return nil
}

// reserve adds this host to the reservation of key (compare-and-swap).
func (d *Driver) reserve(ctx context.Context, cl store.Cluster, key string) error {
	for {
		it, ok, _, err := cl.GetItem(ctx, bucketClusterAddrs, key)
		if err != nil {
			return err
		}
		if !ok {
			val, _ := json.Marshal(clusterAddr{Reserved: true, Hosts: []string{d.cl.hostID}})
			if _, err := cl.Create(ctx, store.Put(bucketClusterAddrs, key, val)); !errors.Is(err, store.ErrExists) {
				return err
			}
			continue
		}
		var rec clusterAddr
		if err := json.Unmarshal(it.Value, &rec); err != nil {
			return fmt.Errorf("cluster record %s is unreadable: %w", key, err)
		}
		if !rec.Reserved {
			return errTaken{rec}
		}
		if slices.Contains(rec.Hosts, d.cl.hostID) {
			return nil
		}
		rec.Hosts = append(rec.Hosts, d.cl.hostID)
		val, _ := json.Marshal(rec)
		_, err = cl.Txn(ctx, []store.Cond{store.Unchanged(bucketClusterAddrs, key, it.ModRev)}, store.Put(bucketClusterAddrs, key, val))
		if !errors.Is(err, store.ErrConflict) {
			return err
		}
	}
}

// unreserve removes this host from the reservation of key, and the record
// with the last host.
func (d *Driver) unreserve(ctx context.Context, cl store.Cluster, key string) error {
	for {
		it, ok, _, err := cl.GetItem(ctx, bucketClusterAddrs, key)
		if err != nil || !ok {
			return err
		}
		var rec clusterAddr
		if err := json.Unmarshal(it.Value, &rec); err != nil || !rec.Reserved {
			return nil // not a reservation (any more): not ours to change
		}
		hosts := slices.DeleteFunc(slices.Clone(rec.Hosts), func(h string) bool { return h == d.cl.hostID })
		if len(hosts) == len(rec.Hosts) {
			return nil
		}
		op := store.Delete(bucketClusterAddrs, key)
		if len(hosts) > 0 {
			rec.Hosts = hosts
			val, _ := json.Marshal(rec)
			op = store.Put(bucketClusterAddrs, key, val)
		}
		_, err = cl.Txn(ctx, []store.Cond{store.Unchanged(bucketClusterAddrs, key, it.ModRev)}, op)
		if !errors.Is(err, store.ErrConflict) {
			return err
		}
	}
}
