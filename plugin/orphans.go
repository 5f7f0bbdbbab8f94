package plugin

import (
	"context"
	"errors"
	"net/netip"
	"time"

	"github.com/weftnet/weft/dataplane"
	"github.com/weftnet/weft/store"
)

// Endpoints whose container went while weft could not hear about it.
//
// dockerd replays nothing. When a container stops or is removed while weft
// is down (killed, crashed, `docker plugin disable -f`, an upgrade), dockerd
// logs the failed Leave, DeleteEndpoint and ReleaseAddress and carries on:
// it has moved the container's interface back to the host namespace, or
// destroyed it with the container's namespace. weft would keep the endpoint
// for ever: its links, its address (so the pool shrinks) and its published
// ports (so the next container asking for them is refused). At start, weft
// asks the modes where each endpoint's links are (dataplane.EndpointProber):
//
//   - gone: forgotten at once, with its address;
//   - detached (the container side is in the host namespace): that is also
//     the state between CreateEndpoint and Docker's move right after Join, so
//     an attach that weft's restart interrupted may still complete — Docker
//     retries its calls for up to about 30 s. Such endpoints are removed
//     (links, ports, address, record) after Deps.DetachedGrace unless Docker
//     joins them first.
//
// An address is released only if weft's IPAM handed it out for the
// endpoint's network and no other endpoint holds it: if Docker did release
// it and gave it to a new container, that container's endpoint has it.

// defaultDetachedGrace comfortably exceeds dockerd's retry window for a call
// that could not reach the plugin (backoff 1, 2, 4, 8 s, giving up before 30 s).
const defaultDetachedGrace = 45 * time.Second

// poolAddr is an allocated address and the pool it is in.
type poolAddr struct {
	poolID string
	addr   netip.Addr
}

// collectOrphansLocked runs at start, before the modes reconcile: it forgets
// gone endpoints and schedules the removal of detached ones.
func (d *Driver) collectOrphansLocked(ctx context.Context) error {
	var ops []store.Op
	var gone []string
	var release []poolAddr
	var errs []error
	for id, r := range d.eps {
		st, err := d.endpointStateLocked(ctx, r.Endpoint)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		switch st {
		case dataplane.EndpointGone:
			gone = append(gone, id)
			ops = append(ops, store.Delete(bucketEndpoints, id))
			addrs := d.orphanAddressesLocked(r.Endpoint, gone)
			release = append(release, addrs...)
			for _, a := range addrs {
				ops = append(ops, store.Delete(bucketAddresses, addressKey(a.poolID, a.addr)))
				ops = append(ops, d.clusterReleaseOpsLocked(a.poolID, a.addr)...)
			}
		case dataplane.EndpointDetached:
			d.detached[id] = true
		}
	}
	if len(ops) > 0 {
		if err := d.save(ctx, ops...); err != nil {
			return errors.Join(append(errs, err)...)
		}
		for _, id := range gone {
			delete(d.eps, id)
		}
		d.releaseLocked(release)
		d.log.Info("forgot endpoints whose container went while weft was not running", "count", len(gone), "addresses_released", len(release))
	}
	if len(d.detached) > 0 {
		grace := d.deps.DetachedGrace
		if grace <= 0 {
			grace = defaultDetachedGrace
		}
		d.log.Info("endpoints are detached from any container; removing them unless Docker joins them", "count", len(d.detached), "after", grace)
		d.detachedDue = time.Now().Add(grace)
	}
	return errors.Join(errs...)
}

// runDetachedCleanup removes, once their grace period is over, the endpoints
// Start found detached (removeDetachedLocked); it returns at once if there
// were none, or when ctx ends first.
func (d *Driver) runDetachedCleanup(ctx context.Context) {
	if err := d.wait(ctx); err != nil {
		return
	}
	d.mu.Lock()
	due, pending := d.detachedDue, len(d.detached)
	d.mu.Unlock()
	if pending == 0 {
		return
	}
	t := time.NewTimer(time.Until(due))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return
	case <-t.C:
	}
	ctx, cancel := detach(ctx) // once started, the removal finishes
	defer cancel()
	d.mu.Lock()
	defer d.mu.Unlock()
	d.removeDetachedLocked(ctx)
}

// endpointStateLocked asks ep's mode where its links are; a mode that cannot
// tell answers "in use", which keeps the endpoint.
func (d *Driver) endpointStateLocked(ctx context.Context, ep dataplane.Endpoint) (dataplane.EndpointState, error) {
	n := d.nets[ep.NetworkID].Network
	prober, ok := d.deps.Modes[n.Mode].(dataplane.EndpointProber)
	if !ok {
		return dataplane.EndpointInUse, nil
	}
	return prober.EndpointState(ctx, n, ep)
}

// removeDetachedLocked removes the endpoints found detached at start that
// still are: Docker neither joined nor deleted them within the grace period.
func (d *Driver) removeDetachedLocked(ctx context.Context) {
	removed := 0
	for id := range d.detached {
		delete(d.detached, id)
		r, ok := d.eps[id]
		if !ok {
			continue // Docker deleted it after all
		}
		st, err := d.endpointStateLocked(ctx, r.Endpoint)
		if err != nil || st != dataplane.EndpointDetached {
			if err != nil {
				d.log.Error("checking a detached endpoint failed; keeping it", "endpoint", dataplane.ShortID(id), "err", err)
			}
			continue
		}
		if err := d.removeOrphanLocked(ctx, r.Endpoint); err != nil {
			d.log.Error("removing an endpoint detached from any container failed; the next start tries again", "endpoint", dataplane.ShortID(id), "err", err)
			continue
		}
		removed++
	}
	if removed > 0 {
		d.log.Info("removed endpoints whose container left while weft was not running", "count", removed)
	}
}

// removeOrphanLocked does for ep what Docker's revoke, DeleteEndpoint and
// ReleaseAddress would have done.
func (d *Driver) removeOrphanLocked(ctx context.Context, ep dataplane.Endpoint) error {
	rec, err := d.getPortsLocked(ctx, ep.ID)
	if err != nil {
		return err
	}
	if rec != nil {
		if err := d.revokePortsLocked(ctx, rec); err != nil {
			return err
		}
	}
	n := d.nets[ep.NetworkID].Network
	mode, err := d.mode(n.Mode)
	if err != nil {
		return err
	}
	if err := mode.DeleteEndpoint(ctx, n, ep); err != nil {
		return err
	}
	release := d.orphanAddressesLocked(ep, nil)
	ops := []store.Op{store.Delete(bucketEndpoints, ep.ID)}
	for _, a := range release {
		ops = append(ops, store.Delete(bucketAddresses, addressKey(a.poolID, a.addr)))
		ops = append(ops, d.clusterReleaseOpsLocked(a.poolID, a.addr)...)
	}
	if err := d.save(ctx, ops...); err != nil {
		return err
	}
	delete(d.eps, ep.ID)
	d.releaseLocked(release)
	d.log.Info("removed endpoint detached from any container", "network", dataplane.ShortID(n.ID), "endpoint", dataplane.ShortID(ep.ID), "addresses_released", len(release))
	return nil
}

// orphanAddressesLocked lists ep's addresses that weft's IPAM holds for ep's
// network and that no other endpoint has; endpoints in also are being removed
// along with ep and do not count.
func (d *Driver) orphanAddressesLocked(ep dataplane.Endpoint, also []string) []poolAddr {
	nr := d.nets[ep.NetworkID]
	if nr == nil || nr.AddressSpace == "" {
		return nil
	}
	var out []poolAddr
	for _, p := range []netip.Prefix{ep.IPv4, ep.IPv6} {
		if !p.IsValid() {
			continue
		}
		pool, ok := d.poolOfLocked(nr.AddressSpace, p.Masked())
		if !ok || !d.deps.IPAM.IsAllocated(pool.ID, p.Addr()) || d.addressHeldLocked(ep, p.Addr(), also) {
			continue
		}
		out = append(out, poolAddr{pool.ID, p.Addr()})
	}
	return out
}

// addressHeldLocked reports whether another endpoint of ep's network, not
// in also, has addr.
func (d *Driver) addressHeldLocked(ep dataplane.Endpoint, addr netip.Addr, also []string) bool {
	for id, r := range d.eps {
		if id == ep.ID || r.Endpoint.NetworkID != ep.NetworkID {
			continue
		}
		if r.Endpoint.IPv4.Addr() == addr || r.Endpoint.IPv6.Addr() == addr {
			for _, a := range also {
				if a == id {
					return false
				}
			}
			return true
		}
	}
	return false
}

// releaseLocked gives addresses whose records are already deleted back to
// the allocator.
func (d *Driver) releaseLocked(addrs []poolAddr) {
	for _, a := range addrs {
		if !d.clusterReleasedLocked(a.poolID, a.addr) {
			continue // held until its cluster claim is deleted
		}
		if err := d.deps.IPAM.ReleaseAddress(a.poolID, a.addr); err != nil {
			d.log.Error("releasing an address failed", "pool", a.poolID, "address", a.addr, "err", err)
		}
	}
}
