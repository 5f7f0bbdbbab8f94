package bridge

import (
	"context"
	"errors"
	"fmt"

	"github.com/weftnet/weft/dataplane"
	"github.com/weftnet/weft/dataplane/nl"
)

// Deleting a veth pair costs the kernel ~20 ms (it waits for every CPU to
// stop using the device), most of what a container's detach costs weft.
// Docker's bridge driver makes dockerd wait for it; weft answers
// DeleteEndpoint first and lets the deletion run behind it. That is safe
// because:
//
//   - the pair carries nothing any more: dockerd moved the container end
//     out of the container (or the container's namespace took the pair with
//     it), and its published ports are down before the answer;
//   - its names are taken by no one else until the kernel is done: a
//     CreateEndpoint needing the same names waits for the deletion
//     (awaitDeletionLocked);
//   - a crash in between leaves a weft-owned veth that no endpoint record
//     names, and Reconcile at the next start removes exactly those;
//   - shutdown waits for deletions under way (Drain).

// deleteVethLocked starts the deletion of ep's pair through whichever end is
// still in the host namespace. m.mu is held.
func (m *Mode) deleteVethLocked(n dataplane.Network, ep dataplane.Endpoint, host, cont string) {
	done := make(chan struct{})
	m.deleting[host], m.deleting[cont] = done, done
	m.background.Add(1)
	go func() {
		defer m.background.Done()
		err := m.deleteVeth(ep, host, cont)
		m.mu.Lock()
		delete(m.deleting, host)
		delete(m.deleting, cont)
		m.mu.Unlock()
		close(done)
		if err != nil {
			// The pair stays until the next start's Reconcile; nothing
			// else depends on it being gone.
			m.log.Error("deleting an endpoint's veth pair", "network", dataplane.ShortID(n.ID), "endpoint", dataplane.ShortID(ep.ID), "err", err)
			return
		}
		m.log.Info("endpoint deleted", "network", dataplane.ShortID(n.ID), "endpoint", dataplane.ShortID(ep.ID))
	}()
}

// deleteVeth deletes the pair host/cont if weft made it. It runs without
// m.mu: the names are reserved in m.deleting meanwhile.
func (m *Mode) deleteVeth(ep dataplane.Endpoint, host, cont string) error {
	for _, name := range []string{host, cont} {
		l, err := m.nl.LinkByName(name)
		if errors.Is(err, nl.ErrLinkNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		if !ownedVeth(l) {
			m.log.Warn("not deleting a link weft did not create", "endpoint", dataplane.ShortID(ep.ID), "link", name, "type", l.Type())
			continue
		}
		if err := m.nl.DeleteLink(l); err != nil {
			return err
		}
	}
	return nil
}

// awaitDeletionLocked waits until no deletion of the given link names is
// under way. m.mu is held on entry and on return, but not while waiting.
func (m *Mode) awaitDeletionLocked(ctx context.Context, names ...string) error {
	for {
		var done chan struct{}
		for _, name := range names {
			if ch, ok := m.deleting[name]; ok {
				done = ch
				break
			}
		}
		if done == nil {
			return nil
		}
		m.mu.Unlock()
		select {
		case <-done:
			m.mu.Lock()
		case <-ctx.Done():
			m.mu.Lock()
			return fmt.Errorf("waiting for the kernel to delete the previous links named %v: %w", names, ctx.Err())
		}
	}
}

// Drain waits until the veth deletions DeleteEndpoint started are done, or
// ctx ends: weft calls it before exiting, so that a clean shutdown leaves no
// pair for the next start to sweep.
func (m *Mode) Drain(ctx context.Context) error {
	done := make(chan struct{})
	go func() { m.background.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("bridge mode: veth deletions still under way: %w", ctx.Err())
	}
}
