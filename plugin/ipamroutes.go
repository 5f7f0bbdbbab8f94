package plugin

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"

	dipam "github.com/docker/go-plugins-helpers/ipam"

	"github.com/weftnet/weft/ipam"
	"github.com/weftnet/weft/store"
)

// Keys dockerd puts in IPAM request options.
const (
	keyRequestAddressType = "RequestAddressType"
	valueGateway          = "com.docker.network.gateway"
	dockerOptionPrefix    = "com.docker."
)

// IPAMCapabilities answers IpamDriver.GetCapabilities. weft persists its own
// state, so it does not ask dockerd to replay requests after a restart.
func (d *Driver) IPAMCapabilities() *dipam.CapabilitiesResponse {
	return &dipam.CapabilitiesResponse{RequiresMACAddress: false}
}

// AddressSpaces answers GetDefaultAddressSpaces.
func (d *Driver) AddressSpaces() *dipam.AddressSpacesResponse {
	return &dipam.AddressSpacesResponse{LocalDefaultAddressSpace: ipam.LocalSpace, GlobalDefaultAddressSpace: ipam.GlobalSpace}
}

// RequestPool reserves a subnet: the one given with --subnet (and --ip-range),
// or the next free default pool that does not collide with a host route.
func (d *Driver) RequestPool(ctx context.Context, req *dipam.RequestPoolRequest) (*dipam.RequestPoolResponse, error) {
	if err := d.wait(ctx); err != nil {
		return nil, err
	}
	for k := range req.Options {
		if !strings.HasPrefix(k, dockerOptionPrefix) {
			return nil, fmt.Errorf("%w: unknown IPAM option %q (--ipam-opt); weft IPAM takes no options", ErrInvalidOption, k)
		}
	}
	pr := ipam.PoolRequest{Space: req.AddressSpace, V6: req.V6}
	var err error
	if pr.Pool, err = parseRequestPrefix(req.Pool, "subnet"); err != nil {
		return nil, err
	}
	if pr.SubPool, err = parseRequestPrefix(req.SubPool, "ip-range"); err != nil {
		return nil, err
	}
	if !pr.Pool.IsValid() && d.deps.Routes != nil {
		if pr.Avoid, err = d.hostRoutes(); err != nil {
			return nil, err
		}
	}
	ctx, cancel := detach(ctx)
	defer cancel()
	d.mu.Lock()
	defer d.mu.Unlock()
	if held, ok := d.heldPoolLocked(pr.Space, pr.Pool, pr.SubPool); ok {
		d.log.Info("pool requested again (swarm's allocator or a swarm network's mirror, replayed)", "pool", held.ID)
		return &dipam.RequestPoolResponse{PoolID: held.ID, Pool: held.Prefix.String(), Data: map[string]string{}}, nil
	}
	pool, err := d.deps.IPAM.RequestPool(pr)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	ops := make([]store.Op, 1, 2)
	ops[0], err = putJSON(bucketPools, pool.ID, pool)
	if err == nil && expires(pool.Space) {
		var res store.Op
		res, err = d.reserveOp(pool.ID, now)
		ops = append(ops, res)
	}
	if err == nil {
		err = d.save(ctx, ops...)
	}
	if err != nil {
		d.undo("pool", pool.ID, d.deps.IPAM.ReleasePool(pool.ID))
		return nil, err
	}
	if expires(pool.Space) {
		d.pending[pool.ID] = now
	}
	crashPoint("RequestPool/saved")
	d.log.Info("pool reserved", "pool", pool.ID)
	return &dipam.RequestPoolResponse{PoolID: pool.ID, Pool: pool.Prefix.String(), Data: map[string]string{}}, nil
}

// hostRoutes lists the host's routes worth avoiding: everything but default routes.
func (d *Driver) hostRoutes() ([]netip.Prefix, error) {
	all, err := d.deps.Routes.HostRoutes()
	if err != nil {
		return nil, fmt.Errorf("reading host routes to pick a free subnet: %w", err)
	}
	out := all[:0:0]
	for _, p := range all {
		if p.Bits() > 0 {
			out = append(out, p)
		}
	}
	return out, nil
}

// parseRequestPrefix reads --subnet or --ip-range as sent by dockerd. The
// allocator checks the prefix's shape (canonical, not IPv4-mapped) and range.
func parseRequestPrefix(s, flag string) (netip.Prefix, error) {
	if s == "" {
		return netip.Prefix{}, nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return p, fmt.Errorf("%w: --%s %q is not a CIDR subnet such as 10.1.0.0/24", ErrInvalidOption, flag, s)
	}
	return p, nil
}

// ReleasePool frees a pool and every address still held in it.
func (d *Driver) ReleasePool(ctx context.Context, req *dipam.ReleasePoolRequest) error {
	if err := d.wait(ctx); err != nil {
		return err
	}
	ctx, cancel := detach(ctx)
	defer cancel()
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.releasePoolLocked(ctx, req.PoolID); err != nil {
		return err
	}
	crashPoint("ReleasePool/saved")
	return nil
}

// releasePoolLocked forgets a pool, its addresses and their reservations,
// durably first; an unknown pool is already released.
func (d *Driver) releasePoolLocked(ctx context.Context, id string) error {
	pool, ok := d.deps.IPAM.Pool(id)
	if !ok {
		return nil
	}
	now := time.Now()
	ops := []store.Op{store.Delete(bucketPools, id), store.Delete(bucketReservations, id)}
	nets := d.networksOfPoolLocked(pool)
	for _, nid := range nets {
		op, err := d.reserveOp(releasedKey(nid), now)
		if err != nil {
			return err
		}
		ops = append(ops, op)
	}
	addrs := d.deps.IPAM.Allocated(id)
	for _, a := range addrs {
		ops = append(ops, store.Delete(bucketAddresses, addressKey(id, a)), store.Delete(bucketReservations, addressKey(id, a)))
		ops = append(ops, d.clusterReleaseOpsLocked(id, a)...)
	}
	if err := d.save(ctx, ops...); err != nil {
		return err
	}
	delete(d.pending, id)
	for _, a := range addrs {
		delete(d.pending, addressKey(id, a))
		d.clusterReleasedLocked(id, a)
		delete(d.cl.foreign, addressKey(id, a))
	}
	for _, nid := range nets {
		d.pending[releasedKey(nid)] = now
	}
	d.log.Info("pool released", "pool", id)
	return d.deps.IPAM.ReleasePool(id)
}

// RequestAddress hands out an address: the one asked for (--ip, --gateway,
// --aux-address), the pool's gateway, or the next free one.
func (d *Driver) RequestAddress(ctx context.Context, req *dipam.RequestAddressRequest) (*dipam.RequestAddressResponse, error) {
	if err := d.wait(ctx); err != nil {
		return nil, err
	}
	var want netip.Addr
	if req.Address != "" {
		var err error
		if want, err = parseAddrOrPrefix(req.Address); err != nil {
			return nil, fmt.Errorf("%w: address %q: %w", ErrInvalidOption, req.Address, err)
		}
	}
	gateway := req.Options[keyRequestAddressType] == valueGateway
	ctx, cancel := detach(ctx)
	defer cancel()
	d.mu.Lock()
	if pool, ok := d.deps.IPAM.Pool(req.PoolID); ok && !gateway && d.clusterPoolLocked(pool) {
		d.mu.Unlock()
		addr, err := d.requestClusterAddress(ctx, pool, want)
		if err != nil {
			return nil, err
		}
		crashPoint("RequestAddress/saved")
		return &dipam.RequestAddressResponse{Address: addr.String(), Data: map[string]string{}}, nil
	}
	defer d.mu.Unlock()
	if pool, ok := d.deps.IPAM.Pool(req.PoolID); ok && d.heldAddressLocked(pool, want) {
		return &dipam.RequestAddressResponse{Address: netip.PrefixFrom(want, pool.Prefix.Bits()).String(), Data: map[string]string{}}, nil
	}
	addr, err := d.deps.IPAM.RequestAddress(req.PoolID, want, gateway)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	key := addressKey(req.PoolID, addr.Addr())
	pool, _ := d.deps.IPAM.Pool(req.PoolID)
	ops := make([]store.Op, 2, 3)
	ops[0] = store.Put(bucketAddresses, key, []byte{})
	ops[1], err = putJSON(bucketPools, pool.ID, pool) // carries the cursor
	if err == nil && expires(pool.Space) {
		var res store.Op
		res, err = d.reserveOp(key, now)
		ops = append(ops, res)
	}
	if err == nil {
		err = d.save(ctx, ops...)
	}
	if err != nil {
		d.undo("address", addr.String(), d.deps.IPAM.ReleaseAddress(req.PoolID, addr.Addr()))
		return nil, err
	}
	if expires(pool.Space) {
		d.pending[key] = now
	}
	crashPoint("RequestAddress/saved")
	return &dipam.RequestAddressResponse{Address: addr.String(), Data: map[string]string{}}, nil
}

// ReleaseAddress returns an address to its pool; unknown pools and addresses
// are fine (dockerd releases gateways it never requested).
func (d *Driver) ReleaseAddress(ctx context.Context, req *dipam.ReleaseAddressRequest) error {
	if err := d.wait(ctx); err != nil {
		return err
	}
	a, err := parseAddrOrPrefix(req.Address)
	if err != nil {
		return fmt.Errorf("%w: address %q: %w", ErrInvalidOption, req.Address, err)
	}
	ctx, cancel := detach(ctx)
	defer cancel()
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.releaseAddressLocked(ctx, req.PoolID, a); err != nil {
		return err
	}
	crashPoint("ReleaseAddress/saved")
	return nil
}

// releaseAddressLocked frees one address and its reservation, durably first.
// Only an address IPAM holds reaches the store, so a hand-made pool ID never
// becomes a store key.
func (d *Driver) releaseAddressLocked(ctx context.Context, poolID string, a netip.Addr) error {
	if !d.deps.IPAM.IsAllocated(poolID, a) {
		return nil
	}
	key := addressKey(poolID, a)
	ops := append([]store.Op{store.Delete(bucketAddresses, key), store.Delete(bucketReservations, key)}, d.clusterReleaseOpsLocked(poolID, a)...)
	if err := d.save(ctx, ops...); err != nil {
		return err
	}
	delete(d.pending, key)
	if !d.clusterReleasedLocked(poolID, a) {
		return nil
	}
	return d.deps.IPAM.ReleaseAddress(poolID, a)
}

// poolOfLocked finds the pool weft's IPAM holds for subnet in space: pools of
// one space never overlap, so there is at most one. It is a lookup in IPAM's
// index, so its cost does not grow with the number of pools.
func (d *Driver) poolOfLocked(space string, subnet netip.Prefix) (ipam.Pool, bool) {
	return d.deps.IPAM.PoolOf(space, subnet)
}
