package plugin

import (
	"context"
	"fmt"
	"slices"
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
	return []string{bucketNetworks, bucketEndpoints, bucketPools, bucketAddresses, bucketPorts, bucketClusterPending}
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
