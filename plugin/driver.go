package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weftnet/weft/dataplane"
	"github.com/weftnet/weft/ipam"
	"github.com/weftnet/weft/store"
)

// Store buckets. Records are JSON; keys are Docker IDs or IPAM pool IDs.
const (
	bucketNetworks  = "networks"
	bucketEndpoints = "endpoints"
	bucketPools     = "ipam-pools"
	bucketAddresses = "ipam-addresses"
)

// Scope values for GetCapabilities (WEFT_SCOPE).
const (
	ScopeLocal  = "local"
	ScopeGlobal = "global"
)

// RouteLister reports the host's routes so that default pools avoid subnets
// the host already reaches.
type RouteLister interface {
	HostRoutes() ([]netip.Prefix, error)
}

// Deps are the side-effecting parts the driver orchestrates, given to Start
// once they are ready (opening the store may take a moment; the socket is
// already accepting by then).
type Deps struct {
	Store store.Store
	IPAM  *ipam.Allocator
	// Modes maps each available mode to its implementation; a network asking
	// for a mode missing here is refused.
	Modes map[dataplane.ModeName]dataplane.Mode
	// Routes may be nil: default pools are then not checked against host routes.
	Routes RouteLister
	// DetachedGrace is how long after start an endpoint found detached from
	// any container is left to Docker before weft removes it (orphans.go);
	// zero means defaultDetachedGrace.
	DetachedGrace time.Duration
	// ReservationGrace is how long an IPAM reservation may stay unclaimed
	// (reservations.go); zero never releases one.
	ReservationGrace time.Duration
	// RepairInterval is how often modes that can (dataplane.Checker) check
	// their kernel objects (repair.go); zero means defaultRepairInterval.
	RepairInterval time.Duration
	// Cluster, if not nil, is the cluster store (WEFT_STORE=etcd://...):
	// shared pools' addresses are then claimed there (cluster.go).
	Cluster *ClusterLink
	// HostName names this host in cluster records, for other hosts' errors.
	HostName string
	// LeaseTTL is how long this host's published vxlan endpoints outlive
	// it (WEFT_LEASE_TTL); zero means DefaultLeaseTTL.
	LeaseTTL time.Duration
	// Observer, if not nil, is told of reconciles and repairs (metrics).
	Observer Observer
	// Gossip, if not nil, is how a global-scope weft's vxlan endpoints
	// reach the other swarm nodes and theirs reach it (swarmpeers.go).
	Gossip *GossipSettings
}

// networkRecord is what the store keeps per network.
type networkRecord struct {
	Network dataplane.Network `json:"network"`
	// AddressSpace is the weft IPAM address space the network's pools are in
	// (ipam.LocalSpace or ipam.GlobalSpace); empty when another IPAM driver
	// gave the addresses, or for networks recorded before it was kept. Only
	// with it does weft release an address Docker could not (orphans.go).
	AddressSpace string `json:"address_space,omitempty"`
	// Spaces maps each subnet to the address space its IPAM driver gave it
	// in, to tell which other networks' subnets it may not overlap.
	Spaces map[string]string `json:"spaces,omitempty"`
	// ClusterKeys are the gateway and aux addresses this network reserves
	// in the cluster store (clusternet.go).
	ClusterKeys []string `json:"cluster_keys,omitempty"`
	// VxlanKey is the cluster definition of a vxlan network (vxlan.go).
	VxlanKey string `json:"vxlan_key,omitempty"`
}

// endpointRecord is what the store keeps per endpoint.
type endpointRecord struct {
	Endpoint dataplane.Endpoint `json:"endpoint"`
	// MACGenerated says weft chose the MAC (and returned it to Docker), so a
	// repeated CreateEndpoint answers the same way.
	MACGenerated bool `json:"mac_generated,omitempty"`
}

// Driver serves both of Docker's plugin APIs from one state. All exported
// request methods are safe for concurrent use; they wait until Start has
// loaded and reconciled the state.
type Driver struct {
	log   *slog.Logger
	scope string

	ready    chan struct{} // closed when Start finished (successfully or not)
	startErr error         // set before ready is closed
	// notYet, while ready is open, is why weft cannot start yet (its state
	// directory is read-only, say): requests answer with it at once instead
	// of waiting for a start that is being retried (Unavailable).
	notYet atomic.Pointer[error]

	mu   sync.Mutex // guards everything below and serialises state changes
	deps Deps
	nets map[string]*networkRecord
	eps  map[string]*endpointRecord
	// detached lists endpoints found detached from any container at start,
	// to be removed at detachedDue (Deps.DetachedGrace after start) unless
	// Docker joins them.
	detached    map[string]bool
	detachedDue time.Time
	// epShort indexes eps by dataplane.ShortID (endpoint.go,
	// shortIDTakenLocked); entries may be stale, none is missing.
	epShort map[string]string
	// pending maps each unclaimed IPAM reservation (a pool ID or an
	// addressKey) to when it was made (reservations.go).
	pending map[string]time.Time
	// cl is the view of the cluster store (cluster.go).
	cl clusterState
	// gossip is the gossip worker's state on a global-scope weft
	// (swarmpeers.go).
	gossip *gossipState
	// clMu serialises changes to gateway and aux reservations in the
	// cluster store (reserveForNetwork, flushPending), so that a network
	// re-created at once is not undone by its predecessor's pending removal.
	// It is never held with mu waiting on it, and never by bridge requests.
	clMu sync.Mutex
}

// NewDriver returns a driver that accepts requests at once but answers them
// only after Start (or Fail) has been called.
func NewDriver(log *slog.Logger, scope string) (*Driver, error) {
	if scope != ScopeLocal && scope != ScopeGlobal {
		return nil, fmt.Errorf("scope %q is not valid: use %s or %s", scope, ScopeLocal, ScopeGlobal)
	}
	return &Driver{
		log:      log,
		scope:    scope,
		ready:    make(chan struct{}),
		nets:     map[string]*networkRecord{},
		eps:      map[string]*endpointRecord{},
		detached: map[string]bool{},
		pending:  map[string]time.Time{},
		cl:       newClusterState(),
		gossip:   newGossipState(),
	}, nil
}

// Fail makes every request answer with err; for start-up failures that happen
// before Start can run (e.g. the store cannot be opened).
func (d *Driver) Fail(err error) {
	d.startErr = fmt.Errorf("weft could not start: %w", err)
	close(d.ready)
}

// Run does the driver's background work until ctx ends, and returns once
// all of it has stopped: releasing reservations nobody claimed
// (RunReservationSweeper), repairing kernel state others removed
// (RunRepairer), and removing endpoints found detached at start once their
// grace period is over. Each waits for Start first.
func (d *Driver) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, work := range []func(context.Context){d.RunReservationSweeper, d.RunRepairer, d.runDetachedCleanup, d.clusterRun, d.gossipRun} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			work(ctx)
		}()
	}
	wg.Wait()
}

// Unavailable makes requests answer with err at once until Start runs: for
// start-up failures the operator can fix while weft keeps trying (a
// read-only or full state directory), so that weft recovers without a
// restart. A nil err makes requests wait for Start again.
func (d *Driver) Unavailable(err error) {
	if err == nil {
		d.notYet.Store(nil)
		return
	}
	err = fmt.Errorf("weft cannot start yet, and retries: %w", err)
	d.notYet.Store(&err)
}

// Start loads the persisted state, rebuilds IPAM from it and reconciles the
// kernel with it, then releases the requests that were waiting.
func (d *Driver) Start(ctx context.Context, deps Deps) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	defer close(d.ready)
	d.deps = deps
	if err := d.loadLocked(ctx); err != nil {
		d.startErr = fmt.Errorf("weft could not load its state: %w", err)
		return d.startErr
	}
	if err := d.collectOrphansLocked(ctx); err != nil {
		d.log.Error("checking endpoints failed", "err", err)
	}
	d.reconcileLocked(ctx)
	// After the modes: published ports need their networks and endpoints.
	d.reconcilePortsLocked(ctx)
	d.log.Info("state loaded", "networks", len(d.nets), "endpoints", len(d.eps), "pools", len(deps.IPAM.Pools()))
	return nil
}

// wait blocks until Start finished; it returns Start's error if it failed.
func (d *Driver) wait(ctx context.Context) error {
	select { // ready wins over a caller that has gone: the call then finishes
	case <-d.ready:
		return d.startErr
	default:
	}
	if err := d.notYet.Load(); err != nil {
		return *err
	}
	select {
	case <-d.ready:
		return d.startErr
	case <-ctx.Done():
		return fmt.Errorf("weft is still starting: %w", ctx.Err())
	}
}

// loadLocked reads every record; a record that cannot be decoded is logged
// and skipped so one bad entry does not take down every network.
func (d *Driver) loadLocked(ctx context.Context) error {
	st := d.deps.Store
	if err := d.loadHostIDLocked(ctx); err != nil {
		return err
	}
	if err := d.loadClusterLocked(ctx); err != nil {
		return err
	}
	nets, err := st.List(ctx, bucketNetworks)
	if err != nil {
		return err
	}
	for id, raw := range nets {
		var r networkRecord
		if err := json.Unmarshal(raw, &r); err != nil || r.Network.ID != id {
			d.log.Error("skipping unreadable network record", "network", dataplane.ShortID(id), "err", err)
			continue
		}
		d.nets[id] = &r
	}
	eps, err := st.List(ctx, bucketEndpoints)
	if err != nil {
		return err
	}
	var stale []store.Op
	for id, raw := range eps {
		var r endpointRecord
		if err := json.Unmarshal(raw, &r); err != nil || r.Endpoint.ID != id {
			d.log.Error("skipping unreadable endpoint record", "endpoint", dataplane.ShortID(id), "err", err)
			continue
		}
		if _, ok := d.nets[r.Endpoint.NetworkID]; !ok {
			stale = append(stale, store.Delete(bucketEndpoints, id))
			continue
		}
		d.eps[id] = &r
	}
	if len(stale) > 0 {
		d.log.Info("dropping endpoints of networks that no longer exist", "count", len(stale))
		if err := st.Apply(ctx, stale...); err != nil {
			return err
		}
	}
	return d.loadIPAMLocked(ctx)
}

// loadIPAMLocked rebuilds the allocator from its pool and address records.
func (d *Driver) loadIPAMLocked(ctx context.Context) error {
	rawPools, err := d.deps.Store.List(ctx, bucketPools)
	if err != nil {
		return err
	}
	pools := make([]ipam.Pool, 0, len(rawPools))
	for id, raw := range rawPools {
		var p ipam.Pool
		if err := json.Unmarshal(raw, &p); err != nil || p.ID != id {
			return fmt.Errorf("IPAM pool record %q is unreadable: %v", id, err)
		}
		pools = append(pools, p)
	}
	rawAddrs, err := d.deps.Store.List(ctx, bucketAddresses)
	if err != nil {
		return err
	}
	addrs := map[string][]netip.Addr{}
	for key, raw := range rawAddrs {
		poolID, addr, err := splitAddressKey(key)
		if err != nil {
			return err
		}
		addrs[poolID] = append(addrs[poolID], addr)
		d.noteOwnedLocked(key, raw)
	}
	d.addHeldPendingLocked(rawPools, rawAddrs, addrs)
	if err := d.deps.IPAM.Restore(pools, addrs); err != nil {
		return err
	}
	return d.loadReservationsLocked(ctx)
}

// reconcileLocked hands each mode its networks and endpoints so it can
// re-create what is missing and remove what weft owns but no longer knows.
// Failures are logged: a network that cannot be repaired should not stop the
// others from working.
func (d *Driver) reconcileLocked(ctx context.Context) {
	for name, mode := range d.deps.Modes {
		var nets []dataplane.Network
		var eps []dataplane.Endpoint
		for _, r := range d.nets {
			if r.Network.Mode == name {
				nets = append(nets, r.Network)
			}
		}
		for _, r := range d.eps {
			if d.nets[r.Endpoint.NetworkID].Network.Mode == name {
				eps = append(eps, r.Endpoint)
			}
		}
		err := mode.Reconcile(ctx, nets, eps)
		d.observer().Reconciled(string(name), err)
		if err != nil {
			d.log.Error("reconciling mode failed", "mode", name, "err", err)
		}
	}
	for id, r := range d.nets {
		if _, ok := d.deps.Modes[r.Network.Mode]; !ok {
			d.log.Warn("network uses a mode this weft does not provide", "network", dataplane.ShortID(id), "mode", r.Network.Mode)
		}
	}
}

// mode returns the implementation of a network's mode.
func (d *Driver) mode(name dataplane.ModeName) (dataplane.Mode, error) {
	m, ok := d.deps.Modes[name]
	if !ok {
		return nil, fmt.Errorf("mode %s is not available in this weft build yet; use -o mode=bridge", name)
	}
	return m, nil
}

// mutationTimeout bounds the work of one mutating call once it has begun:
// long enough for a slow kernel or disk, short enough that a stuck call
// cannot hold the state lock for ever.
const mutationTimeout = 2 * time.Minute

// detach gives a mutating call a context of its own. Once a call starts
// changing kernel or store, it must finish (or roll back) even if dockerd
// hangs up: a DeleteNetwork cut short between the kernel and the store would
// leave a record whose network comes back at the next start. Values (not
// cancellation) are kept from ctx.
func detach(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), mutationTimeout)
}

// save writes ops durably; callers undo their kernel work when it fails.
func (d *Driver) save(ctx context.Context, ops ...store.Op) error {
	if err := d.deps.Store.Apply(ctx, ops...); err != nil {
		return fmt.Errorf("saving weft state: %w", err)
	}
	return nil
}

// putJSON builds a store Op for a JSON record.
func putJSON(bucket, key string, v any) (store.Op, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return store.Op{}, fmt.Errorf("encoding %s record %s: %w", bucket, key, err)
	}
	return store.Put(bucket, key, b), nil
}

// addressKey names an allocated address record: "<pool id>|<address>".
func addressKey(poolID string, a netip.Addr) string { return poolID + "|" + a.String() }

func splitAddressKey(key string) (string, netip.Addr, error) {
	i := strings.LastIndexByte(key, '|')
	if i < 0 {
		return "", netip.Addr{}, fmt.Errorf("IPAM address record %q is unreadable", key)
	}
	a, err := netip.ParseAddr(key[i+1:])
	if err != nil {
		return "", netip.Addr{}, fmt.Errorf("IPAM address record %q is unreadable: %w", key, err)
	}
	return key[:i], a, nil
}

// errNotFound marks requests about networks or endpoints weft does not know.
var errNotFound = errors.New("not found")
