package bridge

import (
	"errors"
	"fmt"
	"slices"

	"github.com/weftnet/weft/dataplane"
	"github.com/weftnet/weft/dataplane/fw"
)

// ensureBase makes sure family's base is in place for a new network: the
// chains, the WEFT-FORWARD skeleton, the static rules, the base jumps (at
// position 1) and the DOCKER-USER hook.
//
// Building or verifying all of it (buildBase) takes some twenty iptables
// runs, and with the nft back-end every run reads the whole rule set, so its
// cost grows with the number of networks. Once buildBase has succeeded, a
// network create only reads FORWARD and DOCKER-USER. A flush removes our
// FORWARD jump: then the whole base is built again. Our jump need not stay
// first in FORWARD while DOCKER-USER starts with our hook: dockerd inserts
// its own FORWARD rules at the top whenever it creates a network, but keeps
// DOCKER-USER's jump above them, so weft's rules still come first — moving
// ours back on every create would only start a tug of war with dockerd.
// Reconcile (at start) always builds it all.
func (m *Mode) ensureBase(family fw.Family) error {
	if !m.baseBuilt[family] {
		return m.buildBase(family)
	}
	jump := baseJumps(family)[0] // filter FORWARD -j WEFT-FORWARD
	rules, err := m.fw.Rules(family, jump.Table, jump.Chain)
	if err != nil {
		return m.buildBase(family)
	}
	at := slices.IndexFunc(rules, func(r []string) bool { return slices.Equal(r, jump.Spec) })
	if at < 0 {
		return m.buildBase(family)
	}
	hooked, err := m.ensureDockerUserHook(family)
	if err != nil {
		return err
	}
	if at == 0 || hooked {
		return nil
	}
	return m.buildBase(family)
}

// buildBase makes the chains, the WEFT-FORWARD skeleton, the static rules and
// the base jumps (at position 1) of family exist, and hooks DOCKER-USER.
func (m *Mode) buildBase(family fw.Family) error {
	delete(m.baseBuilt, family)
	// Chains that others jump to come first: iptables refuses a jump to a
	// chain that does not exist.
	for _, c := range perNetworkChains(family) {
		if err := m.fw.EnsureChain(family, c.table, c.name); err != nil {
			return err
		}
	}
	for _, r := range staticRules(m.dockerBridges) {
		if _, err := m.ensureRule(family, r); err != nil {
			return err
		}
	}
	if err := m.fw.EnsureSequence(family, fw.Filter, ChainForward, skeleton(family)); err != nil {
		return err
	}
	for _, r := range baseJumps(family) {
		if err := m.fw.EnsureFirst(family, r); err != nil {
			return err
		}
	}
	if _, err := m.ensureDockerUserHook(family); err != nil {
		return err
	}
	m.baseBuilt[family] = true
	return nil
}

// ensureDockerUserHook puts the jump to WEFT-FORWARD first in DOCKER-USER,
// only when dockerd made that chain: it is Docker's, not weft's. Every network
// create and every start checks it, so a dockerd that came up after weft is
// covered from the next weft network on. It reports whether the hook is in
// place (false: there is no DOCKER-USER).
func (m *Mode) ensureDockerUserHook(family fw.Family) (bool, error) {
	hook := dockerUserJump()
	rules, err := m.fw.Rules(family, hook.Table, hook.Chain)
	switch {
	case fw.IsNotExist(err):
		return false, nil
	case err != nil:
		return false, err
	case len(rules) > 0 && slices.Equal(rules[0], hook.Spec) && slices.IndexFunc(rules[1:], func(r []string) bool { return slices.Equal(r, hook.Spec) }) < 0:
		return true, nil
	}
	return true, m.fw.EnsureFirst(family, hook)
}

// idle reports whether family's weft chains hold nothing but static rules
// (or do not exist): no network uses them any more.
func (m *Mode) idle(family fw.Family) (bool, error) {
	// WEFT-ICC has one rule per network: the cheap common answer first.
	order := append([]chainRef{{fw.Filter, ChainICC}}, perNetworkChains(family)...)
	for _, c := range order {
		rules, err := m.fw.Rules(family, c.table, c.name)
		if fw.IsNotExist(err) {
			continue
		}
		if err != nil {
			return false, err
		}
		for _, r := range rules {
			if !isStatic(c, r, m.dockerBridges) {
				return false, nil
			}
		}
	}
	return true, nil
}

// teardownIfIdle removes family's base jumps and weft chains when no network
// uses them any more.
func (m *Mode) teardownIfIdle(family fw.Family) error {
	if !m.fw.Has(family) {
		return nil
	}
	idle, err := m.idle(family)
	if err != nil || !idle {
		return err
	}
	delete(m.baseBuilt, family)
	errs := []error{m.fw.DeleteRule(family, dockerUserJump())}
	for _, r := range baseJumps(family) {
		errs = append(errs, m.fw.DeleteRule(family, r))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	// WEFT-FORWARD jumps to the others and WEFT-ISOLATION-1 to stage 2:
	// delete in that order.
	if err := m.fw.DeleteChain(family, fw.Filter, ChainForward); err != nil {
		return err
	}
	for _, c := range perNetworkChains(family) {
		if err := m.fw.DeleteChain(family, c.table, c.name); err != nil {
			return err
		}
	}
	m.log.Debug("removed weft chains: no weft network left", "family", family)
	return nil
}

// ensureRule adds r if its chain does not hold it: appended, or inserted at
// the top for the rules that must precede others (atTop).
func (m *Mode) ensureRule(family fw.Family, r fw.Rule) (bool, error) {
	if atTop(r) {
		return m.fw.EnsureInserted(family, r)
	}
	return m.fw.EnsureRule(family, r)
}

// ensureRules adds n's rules in every family it needs; undo collects the
// removal of each rule this call added.
func (m *Mode) ensureRules(n dataplane.Network, u *undo) error {
	for _, fam := range m.families(n) {
		for _, r := range networkRules(n, fam, m.dockerBridges) {
			added, err := m.ensureRule(fam, r)
			if err != nil {
				return err
			}
			if added {
				u.add(func() error { return m.fw.DeleteRule(fam, r) })
			}
		}
	}
	return nil
}

// deleteRules removes n's rules from every family n has (missing is fine).
func (m *Mode) deleteRules(n dataplane.Network) error {
	var errs []error
	for _, fam := range m.families(n) {
		if !m.fw.Has(fam) {
			continue
		}
		for _, r := range networkRules(n, fam, m.dockerBridges) {
			errs = append(errs, m.fw.DeleteRule(fam, r))
		}
	}
	return errors.Join(errs...)
}

// sweepRules deletes, in family's per-network chains, tagged rules of networks
// not in known and rules of known networks that networkRules no longer makes
// (want holds those, rendered). Rules without a weft tag, and rules of
// networks in unmanaged (known but invalid), are left alone. Published
// ports' rules (isPortRule) belong to port publishing (ReconcilePorts): here
// only those of unknown networks go.
func (m *Mode) sweepRules(family fw.Family, known, unmanaged map[string]bool, want map[string]bool) error {
	var errs []error
	for _, c := range perNetworkChains(family) {
		rules, err := m.fw.Rules(family, c.table, c.name)
		if fw.IsNotExist(err) {
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		seen := map[string]bool{}
		for _, spec := range rules {
			id, tagged := fw.TagOf(spec)
			if !tagged || unmanaged[id] {
				continue
			}
			r := fw.Rule{Table: c.table, Chain: c.name, Spec: spec}
			key := r.String()
			stale := !known[id] || (!isPortRule(c, spec) && !want[key])
			switch {
			case stale:
				m.log.Info("removing stale weft rule", "family", family, "rule", key)
				errs = append(errs, m.fw.DeleteRule(family, r))
			case seen[key]:
				// A duplicate (a crash between check and append): drop all
				// copies and add it back once.
				m.log.Info("removing duplicate weft rule", "family", family, "rule", key)
				errs = append(errs, m.fw.DeleteRule(family, r))
				if _, err := m.ensureRule(family, r); err != nil {
					errs = append(errs, err)
				}
			}
			seen[key] = true
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("sweeping %s rules: %w", family, err)
	}
	return nil
}
