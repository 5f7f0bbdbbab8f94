package plugin

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/weftnet/weft/dataplane"
	"github.com/weftnet/weft/ipam"
	"github.com/weftnet/weft/store"
)

// StatePath is the read-only route that reports what weft holds: the leak
// checker of the reliability suite compares it before and after a scenario,
// and operators can read it with
//
//	curl -s --unix-socket /run/docker/plugins/weft.sock -X POST http://weft/Weft.State
//
// It lives on the plugin socket, which only root can reach.
const StatePath = "/Weft.State"

// State is weft's own view: the networks and endpoints it serves, the IPAM
// pools with how many addresses each holds, and the number of records per
// store bucket.
type State struct {
	Networks  []string       `json:"networks"`
	Endpoints []string       `json:"endpoints"`
	Pools     []PoolUse      `json:"pools"`
	Records   map[string]int `json:"records"`
	// Reservations counts pools and addresses held without a network or
	// endpoint that uses them yet (see reservations.go).
	Reservations int `json:"reservations"`
}

// PoolUse is one held IPAM pool and the number of addresses allocated in it.
type PoolUse struct {
	ID        string `json:"id"`
	Allocated int    `json:"allocated"`
	// OtherHosts counts, in a pool shared through the cluster store, the
	// addresses held only because other hosts have them (not in Allocated).
	OtherHosts int `json:"other_hosts,omitempty"`
}

// stateBuckets are every bucket the driver writes.
func stateBuckets() []string {
	return []string{bucketNetworks, bucketEndpoints, bucketPools, bucketAddresses, bucketPorts, bucketClusterPending, bucketSwarmNets, bucketGossipSeeds, bucketGossipLeft}
}

// State answers StatePath.
func (d *Driver) State(ctx context.Context) (*State, error) {
	if err := d.wait(ctx); err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	s := &State{Networks: []string{}, Endpoints: []string{}, Pools: []PoolUse{}, Records: map[string]int{}}
	for id := range d.nets {
		s.Networks = append(s.Networks, id)
	}
	for id := range d.eps {
		s.Endpoints = append(s.Endpoints, id)
	}
	slices.Sort(s.Networks)
	slices.Sort(s.Endpoints)
	for _, p := range d.deps.IPAM.Pools() {
		use := PoolUse{ID: p.ID}
		for _, a := range d.deps.IPAM.Allocated(p.ID) {
			if d.cl.foreign[addressKey(p.ID, a)] {
				use.OtherHosts++
			} else {
				use.Allocated++
			}
		}
		s.Pools = append(s.Pools, use)
	}
	for _, b := range stateBuckets() {
		recs, err := d.deps.Store.List(ctx, b)
		if err != nil {
			return nil, fmt.Errorf("reading weft state: %w", err)
		}
		s.Records[b] = len(recs)
	}
	s.Reservations = d.reservationCountLocked()
	return s, nil
}

// StatusPath is the read-only route `weft status` reads: every network,
// endpoint and pool in detail, and the cluster peers. It is a route of its
// own rather than more fields in StatePath's answer, which the leak checker
// compares as it is. It is on the plugin socket, not on a socket of its
// own, because that socket is already root-only (mode 0600) and, for the
// managed plugin, already reachable from the host at
// /run/docker/plugins/<plugin id>/weft.sock: no second socket to place,
// clean up or keep dockerd's plugin discovery away from.
const StatusPath = "/Weft.Status"

// Status is what `weft status` shows (and prints with --json).
type Status struct {
	// Source is where the status was read: SourcePlugin or SourceStateFile.
	Source string `json:"source"`
	// At is when the running weft answered, by its clock (zero when read
	// from the state file): the reference for PeerStatus.LastSeen.
	At time.Time `json:"at,omitzero"`
	// HostID is this host's identity in the cluster store.
	HostID string `json:"host_id,omitempty"`
	// Scope is the weft's WEFT_SCOPE (ScopeLocal or ScopeGlobal); empty in
	// a state file of a weft from before it was kept (local).
	Scope     string           `json:"scope,omitempty"`
	Networks  []NetworkStatus  `json:"networks"`
	Endpoints []EndpointStatus `json:"endpoints"`
	Pools     []PoolStatus     `json:"pools"`
	// Reservations counts pools and addresses reserved but not yet claimed
	// by a network or endpoint (only known to a running weft).
	Reservations int `json:"reservations"`
	// Cluster is the cluster store's view; nil without WEFT_STORE (or when
	// read from the state file, which does not hold it).
	Cluster *ClusterStatus `json:"cluster,omitempty"`
}

// Status sources.
const (
	// SourcePlugin: the running weft answered.
	SourcePlugin = "plugin"
	// SourceStateFile: read from weft.db while weft was not running.
	SourceStateFile = "state file"
)

// NetworkStatus is one network.
type NetworkStatus struct {
	ID       string         `json:"id"`
	Mode     string         `json:"mode"`
	Subnets  []SubnetStatus `json:"subnets"`
	Internal bool           `json:"internal,omitempty"`
	MTU      int            `json:"mtu,omitempty"`
	// Bridge is the bridge mode's bridge name.
	Bridge string `json:"bridge,omitempty"`
	// Parent and MacvlanMode are the macvlan mode's; Parent is empty for
	// an isolated network.
	Parent      string `json:"parent,omitempty"`
	MacvlanMode string `json:"macvlan_mode,omitempty"`
	// VNI and Port are the vxlan mode's.
	VNI  uint32 `json:"vni,omitempty"`
	Port uint16 `json:"vxlan_port,omitempty"`
	// Endpoints counts this host's endpoints on the network.
	Endpoints int `json:"endpoints"`
	// RemoteEndpoints counts, on a vxlan network, the other hosts'
	// endpoints weft programs into the kernel (neighbour and forwarding
	// entries) for it.
	RemoteEndpoints int `json:"remote_endpoints,omitempty"`
	// Links are the kernel links weft made for the network, filled in by
	// the status command (their names are the modes' business).
	Links []string `json:"links,omitempty"`
}

// SubnetStatus is one subnet of a network.
type SubnetStatus struct {
	Pool    string `json:"pool"`
	Gateway string `json:"gateway,omitempty"`
}

// EndpointStatus is one endpoint (a container's attachment).
type EndpointStatus struct {
	ID      string `json:"id"`
	Network string `json:"network"`
	IPv4    string `json:"ipv4,omitempty"`
	IPv6    string `json:"ipv6,omitempty"`
	MAC     string `json:"mac"`
	// HostLink is the link that stays on the host (a veth's host end), or
	// the macvlan parent; filled in by the status command.
	HostLink string `json:"host_link,omitempty"`
}

// PoolStatus is one IPAM pool and its use.
type PoolStatus struct {
	ID     string `json:"id"`
	Prefix string `json:"prefix"`
	Range  string `json:"range,omitempty"`
	Shared bool   `json:"shared,omitempty"`
	// Size is the number of addresses the pool hands out from (its range,
	// or its prefix): a float, as an IPv6 pool's does not fit an int.
	Size       float64 `json:"size"`
	Allocated  int     `json:"allocated"`
	OtherHosts int     `json:"other_hosts,omitempty"`
}

// ClusterStatus is the cluster store as this host sees it.
type ClusterStatus struct {
	Store     string `json:"store"`
	Connected bool   `json:"connected"`
	// Error is why the store cannot be reached, when it cannot.
	Error string       `json:"error,omitempty"`
	Peers []PeerStatus `json:"peers"`
}

// PeerStatus is another host that publishes vxlan endpoints.
type PeerStatus struct {
	Host      string `json:"host"`
	VTEP      string `json:"vtep"`
	Endpoints int    `json:"endpoints"`
	// LastSeen is when this host last read the peer's entries from the
	// store (at every change and every re-sync, 30 s): they exist only
	// while the peer renews its lease, so it was alive then. Zero until
	// the first programming after weft starts.
	LastSeen time.Time `json:"last_seen,omitzero"`
	// Wanted counts the peer's endpoints on networks this host has (the
	// others need no entries here); Programmed those whose neighbour and
	// forwarding entries weft wrote at the last programming of their
	// network. ProgramError is that programming's error, if it failed.
	Wanted       int    `json:"wanted"`
	Programmed   int    `json:"programmed"`
	ProgramError string `json:"program_error,omitempty"`
}

// Status answers StatusPath from what the running weft holds in memory: it
// reads neither the store nor the kernel, so it is cheap enough for every
// metrics scrape.
func (d *Driver) Status(ctx context.Context) (*Status, error) {
	if err := d.wait(ctx); err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	nets := make([]networkRecord, 0, len(d.nets))
	for _, r := range d.nets {
		nets = append(nets, *r)
	}
	eps := make([]endpointRecord, 0, len(d.eps))
	for _, r := range d.eps {
		eps = append(eps, *r)
	}
	held := map[string][]netip.Addr{}
	pools := d.deps.IPAM.Pools()
	for _, p := range pools {
		held[p.ID] = d.deps.IPAM.Allocated(p.ID)
	}
	s := buildStatus(SourcePlugin, nets, eps, pools, held, func(poolID string, a netip.Addr) bool {
		return d.cl.foreign[addressKey(poolID, a)]
	})
	s.HostID = d.cl.hostID
	s.Scope = d.scope
	s.At = time.Now()
	s.Reservations = d.reservationCountLocked()
	if d.deps.Cluster != nil {
		s.Cluster = d.clusterStatusLocked(s)
	}
	return s, nil
}

// clusterStatusLocked is the cluster part of Status; it also counts each
// vxlan network's remote endpoints in s. d.mu is held.
func (d *Driver) clusterStatusLocked(s *Status) *ClusterStatus {
	cs := &ClusterStatus{Store: d.deps.Cluster.Name(), Peers: []PeerStatus{}}
	if _, err := d.deps.Cluster.get(); err != nil {
		cs.Error = err.Error()
	} else {
		cs.Connected = true
	}
	peers := map[string]*PeerStatus{}
	remote := map[uint32]int{}
	for key, e := range d.cl.vxAll {
		if e.rec.Host == d.cl.hostID {
			continue
		}
		if vni, ok := vniOfKey(key); ok {
			remote[vni]++
		}
		p := peers[e.rec.Host]
		if p == nil {
			p = &PeerStatus{Host: e.rec.Host, VTEP: e.rec.VTEP.String()}
			peers[e.rec.Host] = p
		}
		p.Endpoints++
	}
	for _, p := range peers {
		if seen := d.cl.peersSeen[p.Host]; seen != nil {
			p.LastSeen, p.Wanted, p.Programmed, p.ProgramError = seen.at, seen.wanted, seen.programmed, seen.err
		}
		cs.Peers = append(cs.Peers, *p)
	}
	slices.SortFunc(cs.Peers, func(a, b PeerStatus) int { return strings.Compare(a.Host, b.Host) })
	for i, n := range s.Networks {
		if n.Mode == string(dataplane.Vxlan) {
			s.Networks[i].RemoteEndpoints = remote[n.VNI]
		}
	}
	return cs
}

// StatusFromStore builds a Status from a state store while weft is not
// running (st is opened read-only by the caller). Unreadable records are
// skipped, as weft skips them at start.
func StatusFromStore(ctx context.Context, st store.Store) (*Status, error) {
	var nets []networkRecord
	if err := listJSON(ctx, st, bucketNetworks, func(id string, r networkRecord) bool { return r.Network.ID == id }, &nets); err != nil {
		return nil, err
	}
	var eps []endpointRecord
	if err := listJSON(ctx, st, bucketEndpoints, func(id string, r endpointRecord) bool { return r.Endpoint.ID == id }, &eps); err != nil {
		return nil, err
	}
	var pools []ipam.Pool
	if err := listJSON(ctx, st, bucketPools, func(id string, p ipam.Pool) bool { return p.ID == id }, &pools); err != nil {
		return nil, err
	}
	rawAddrs, err := st.List(ctx, bucketAddresses)
	if err != nil {
		return nil, fmt.Errorf("reading weft's state: %w", err)
	}
	held := map[string][]netip.Addr{}
	for key := range rawAddrs {
		if poolID, a, err := splitAddressKey(key); err == nil {
			held[poolID] = append(held[poolID], a)
		}
	}
	s := buildStatus(SourceStateFile, nets, eps, pools, held, func(string, netip.Addr) bool { return false })
	if raw, ok, err := st.Get(ctx, bucketHost, hostIDKey); err == nil && ok {
		s.HostID = string(raw)
	}
	if raw, ok, err := st.Get(ctx, bucketHost, scopeKey); err == nil && ok && (string(raw) == ScopeLocal || string(raw) == ScopeGlobal) {
		s.Scope = string(raw)
	}
	return s, nil
}

// listJSON decodes every record of bucket into out, keeping those valid
// says are whole.
func listJSON[T any](ctx context.Context, st store.Store, bucket string, valid func(string, T) bool, out *[]T) error {
	raw, err := st.List(ctx, bucket)
	if err != nil {
		return fmt.Errorf("reading weft's state: %w", err)
	}
	for id, b := range raw {
		var v T
		if json.Unmarshal(b, &v) == nil && valid(id, v) {
			*out = append(*out, v)
		}
	}
	return nil
}

// buildStatus turns records into a sorted Status; foreign tells the
// addresses held only for other hosts.
func buildStatus(source string, nets []networkRecord, eps []endpointRecord, pools []ipam.Pool,
	held map[string][]netip.Addr, foreign func(string, netip.Addr) bool) *Status {
	s := &Status{Source: source, Networks: []NetworkStatus{}, Endpoints: []EndpointStatus{}, Pools: []PoolStatus{}}
	count := map[string]int{}
	for _, r := range eps {
		ep := r.Endpoint
		es := EndpointStatus{ID: ep.ID, Network: ep.NetworkID, MAC: ep.MAC.String()}
		if ep.IPv4.IsValid() {
			es.IPv4 = ep.IPv4.String()
		}
		if ep.IPv6.IsValid() {
			es.IPv6 = ep.IPv6.String()
		}
		count[ep.NetworkID]++
		s.Endpoints = append(s.Endpoints, es)
	}
	for _, r := range nets {
		n := r.Network
		ns := NetworkStatus{ID: n.ID, Mode: string(n.Mode), Subnets: []SubnetStatus{}, Internal: n.Internal, MTU: n.MTU, Endpoints: count[n.ID]}
		for _, sub := range slices.Concat(n.IPv4, n.IPv6) {
			ss := SubnetStatus{Pool: sub.Pool.String()}
			if sub.Gateway.IsValid() {
				ss.Gateway = sub.Gateway.String()
			}
			ns.Subnets = append(ns.Subnets, ss)
		}
		switch n.Mode {
		case dataplane.Bridge:
			ns.Bridge = n.Bridge.Name
		case dataplane.Macvlan:
			ns.Parent, ns.MacvlanMode = n.Macvlan.Parent, n.Macvlan.Mode
		case dataplane.Vxlan:
			ns.VNI, ns.Port = n.Vxlan.VNI, n.Vxlan.Port
		}
		s.Networks = append(s.Networks, ns)
	}
	for _, p := range pools {
		ps := PoolStatus{ID: p.ID, Prefix: p.Prefix.String(), Shared: p.Shared, Size: poolSize(p)}
		if p.Range.IsValid() {
			ps.Range = p.Range.String()
		}
		for _, a := range held[p.ID] {
			if foreign(p.ID, a) {
				ps.OtherHosts++
			} else {
				ps.Allocated++
			}
		}
		s.Pools = append(s.Pools, ps)
	}
	slices.SortFunc(s.Networks, func(a, b NetworkStatus) int { return strings.Compare(a.ID, b.ID) })
	slices.SortFunc(s.Endpoints, func(a, b EndpointStatus) int {
		return cmp.Or(strings.Compare(a.Network, b.Network), strings.Compare(a.ID, b.ID))
	})
	slices.SortFunc(s.Pools, func(a, b PoolStatus) int { return strings.Compare(a.ID, b.ID) })
	return s
}

// poolSize is the number of addresses p hands out from: its range if it
// has one, else its prefix.
func poolSize(p ipam.Pool) float64 {
	pfx := p.Prefix
	if p.Range.IsValid() {
		pfx = p.Range
	}
	if !pfx.IsValid() {
		return 0
	}
	return math.Exp2(float64(pfx.Addr().BitLen() - pfx.Bits()))
}

// CheckPath is the read-only route `weft doctor` asks for the running
// weft's own comparison of the kernel with its state: the same Check every
// mode's repairer runs every few seconds (repair.go), run once more now,
// with nothing repaired.
const CheckPath = "/Weft.Check"

// KernelCheck is the answer of CheckPath, per mode that checks its kernel
// objects (dataplane.Checker).
type KernelCheck struct {
	// Missing maps each mode to what its check found missing first; ""
	// when everything is in place.
	Missing map[string]string `json:"missing"`
	// Errors maps each mode whose check could not run to why.
	Errors map[string]string `json:"errors,omitempty"`
}

// CheckKernel answers CheckPath. The modes' checks run without the
// driver's lock (they take their own), so requests are not held up.
func (d *Driver) CheckKernel(ctx context.Context) (*KernelCheck, error) {
	if err := d.wait(ctx); err != nil {
		return nil, err
	}
	d.mu.Lock()
	modes := maps.Clone(d.deps.Modes)
	d.mu.Unlock()
	kc := &KernelCheck{Missing: map[string]string{}, Errors: map[string]string{}}
	for name, mode := range modes {
		c, ok := mode.(dataplane.Checker)
		if !ok {
			continue
		}
		why, err := c.Check(ctx)
		if err != nil {
			kc.Errors[string(name)] = err.Error()
			continue
		}
		kc.Missing[string(name)] = why
	}
	return kc, nil
}
