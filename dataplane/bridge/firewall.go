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
	if m.sets != nil {
		// The set design runs no iptables for a network: Check, which the
		// plugin runs every few seconds, finds a damaged base (or a missing
		// DOCKER-USER hook) and has it rebuilt.
		return nil
	}
	jump := m.jumps(family)[0] // filter FORWARD -j WEFT-FORWARD
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
	// Sets and chains that rules refer to come first: iptables refuses a
	// rule that names a missing set or jumps to a missing chain.
	if m.sets != nil {
		if err := m.ensureSets(family); err != nil {
			return err
		}
	}
	for _, c := range m.chains(family) {
		if err := m.fw.EnsureChain(family, c.table, c.name); err != nil {
			return err
		}
	}
	for _, r := range m.fixedRules(family) {
		if _, err := m.ensureRule(family, r); err != nil {
			return err
		}
	}
	if err := m.fw.EnsureSequence(family, fw.Filter, ChainForward, m.forwardChain(family)); err != nil {
		return err
	}
	for _, r := range m.jumps(family) {
		if err := m.fw.EnsureFirst(family, r); err != nil {
			return err
		}
	}
	if _, err := m.ensureDockerUserHook(family); err != nil {
		return err
	}
	if err := m.removeOtherDesign(family); err != nil {
		return err
	}
	m.baseBuilt[family] = true
	return nil
}

// removeOtherDesign removes what the other design put in family's tables:
// its jumps, and for the set design the rule design's per-network chains
// (their rules are tagged; nothing jumps to them once WEFT-FORWARD is the
// set design's). A host upgraded from the rule design thus comes up with
// the fixed rules and nothing left over.
func (m *Mode) removeOtherDesign(family fw.Family) error {
	var errs []error
	for _, r := range m.otherJumps(family) {
		errs = append(errs, m.fw.DeleteRule(family, r))
	}
	if m.sets != nil {
		for _, c := range ruleDesignOnly {
			errs = append(errs, m.fw.DeleteChain(family, fw.Filter, c))
		}
		return errors.Join(errs...)
	}
	// The set design's fixed rules name ipsets, which iptables cannot even
	// check for when the set is gone: find them by listing.
	for _, r := range setStaticRules(family, m.dockerBridges) {
		if m.fixed(family, chainRef{r.Table, r.Chain}, r.Spec) {
			continue
		}
		have, err := m.fw.Rules(family, r.Table, r.Chain)
		if err != nil {
			if !fw.IsNotExist(err) {
				errs = append(errs, err)
			}
			continue
		}
		if slices.ContainsFunc(have, func(s []string) bool { return slices.Equal(s, r.Spec) }) {
			errs = append(errs, m.fw.DeleteRule(family, r))
		}
	}
	return errors.Join(errs...)
}

// ensureDockerUserHook puts the jump to WEFT-FORWARD first in DOCKER-USER,
// only when dockerd made that chain: it is Docker's, not weft's. buildBase
// (every start and every repair) puts it there; in the per-network design a
// network create checks it too; in the set design Check looks for it every
// few seconds, so a dockerd that came up after weft is covered within
// seconds without any network work. It reports whether the hook is in place
// (false: there is no DOCKER-USER).
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
	if m.sets != nil {
		if empty, err := m.setsEmpty(); err != nil || !empty {
			return false, err
		}
	}
	// WEFT-ICC has one rule per network: the cheap common answer first.
	order := m.chains(family)
	if m.sets == nil {
		order = append([]chainRef{{fw.Filter, ChainICC}}, order...)
	}
	for _, c := range order {
		rules, err := m.fw.Rules(family, c.table, c.name)
		if fw.IsNotExist(err) {
			continue
		}
		if err != nil {
			return false, err
		}
		for _, r := range rules {
			if !m.fixed(family, c, r) {
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
	for _, r := range m.jumps(family) {
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
	for _, c := range m.chains(family) {
		if err := m.fw.DeleteChain(family, c.table, c.name); err != nil {
			return err
		}
	}
	if m.sets != nil {
		if err := m.destroySets(family); err != nil {
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

// ensureRules adds n's rules (rule design) or set members (set design) in
// every family it needs; undo collects the removal of each one this call
// added.
func (m *Mode) ensureRules(n dataplane.Network, u *undo) error {
	if m.sets != nil {
		return m.ensureMembers(n, u)
	}
	// One iptables-save and one iptables-restore per family, however many
	// rules a network has.
	for _, fam := range m.families(n) {
		var changes []fw.Change
		for _, r := range networkRules(n, fam, m.dockerBridges) {
			changes = append(changes, fw.Change{Rule: r, Top: atTop(r)})
		}
		added, err := m.fw.EnsureRules(fam, changes)
		if len(added) > 0 {
			rules := make([]fw.Rule, len(added))
			for i, c := range added {
				rules[i] = c.Rule
			}
			u.add(func() error { return m.fw.DeleteRules(fam, rules) })
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// deleteRules removes n's rules or set members from every family n has
// (missing is fine).
func (m *Mode) deleteRules(n dataplane.Network) error {
	if m.sets != nil {
		return m.deleteMembers(n)
	}
	var errs []error
	for _, fam := range m.families(n) {
		if !m.fw.Has(fam) {
			continue
		}
		errs = append(errs, m.fw.DeleteRules(fam, networkRules(n, fam, m.dockerBridges)))
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
	for _, c := range m.chains(family) {
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
