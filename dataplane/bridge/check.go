package bridge

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/weftnet/weft/dataplane"
	"github.com/weftnet/weft/dataplane/fw"
	"github.com/weftnet/weft/dataplane/nl"
)

// Check compares the kernel with what m made and returns what it found
// missing first, or "" if everything is in place: the base of every family
// in use (jumps, WEFT-FORWARD, chains, fixed rules, the DOCKER-USER hook),
// published ports' rules, and per network either its rules (rule design) or
// its set members and its bridge's device group (set design). It reads each
// family's tables with one iptables-save, each set with one netlink dump and
// the bridges with one more, so its cost does not grow with networks in
// processes or system calls: the comparison itself is done in memory.
//
// A firewall reload, an "iptables -F" of weft's chains or of a whole table,
// an "ipset flush" and an "ip link set group" all show here; the caller
// then runs Reconcile (and ReconcilePorts) to put things back.
//
// The kernel is read without holding m's lock, so that the dumps (tens of
// milliseconds on a host with many rules) never hold up a network or
// endpoint create. What was read may then predate a change made meanwhile;
// so when the comparison finds something missing, Check reads again under
// the lock and decides on that.
func (m *Mode) Check(ctx context.Context) (string, error) {
	m.mu.Lock()
	fams, groups := m.checkedFamilies(), m.groupsChecked()
	m.mu.Unlock()
	k, err := m.readKernel(ctx, fams, groups)
	if err != nil {
		return "", err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if why := m.compareKernel(k); why == "" {
		return "", nil
	}
	k, err = m.readKernel(ctx, m.checkedFamilies(), m.groupsChecked())
	if err != nil {
		return "", err
	}
	return m.compareKernel(k), nil
}

// checkedFamilies are the families whose base is built or should be: the
// ones Check looks at. m.mu is held.
func (m *Mode) checkedFamilies() []fw.Family {
	used := m.usedFamilies()
	var fams []fw.Family
	for _, fam := range m.firewallFamilies() {
		if used[fam] || m.baseBuilt[fam] {
			fams = append(fams, fam)
		}
	}
	return fams
}

// kernelView is what Check reads from the kernel.
type kernelView struct {
	fams  []fw.Family
	snaps map[fw.Family]fw.Snapshot
	// members maps each weft ipset to its members; a set missing from
	// the kernel is absent from the map (set design only).
	members map[string]map[nl.SetMember]bool
	// groups maps the name of every bridge of the namespace to its
	// device group (set design only, nil when not read); a bridge that
	// does not exist is absent.
	groups map[string]uint32
}

// groupsChecked says whether Check reads the bridges' device groups: in
// the set design (the rule design uses no groups), when m holds a network.
// m.mu is held.
func (m *Mode) groupsChecked() bool {
	return m.sets != nil && len(m.nets) > 0
}

// readKernel dumps the tables of fams (one iptables-save each), weft's
// ipsets and the bridges' device groups (one link dump the kernel filters
// to bridges: not a request per network, and not the veth of every
// endpoint either, since the check runs every few seconds; issue 12). It
// reads only fields of m that never change after New (the design and the
// firewall), so it runs without m.mu.
func (m *Mode) readKernel(ctx context.Context, fams []fw.Family, groups bool) (kernelView, error) {
	k := kernelView{fams: fams, snaps: map[fw.Family]fw.Snapshot{}}
	for _, fam := range fams {
		if err := ctx.Err(); err != nil {
			return k, err
		}
		snap, err := m.fw.Snapshot(fam, m.checkedChains(fam))
		if err != nil {
			return k, err
		}
		k.snaps[fam] = snap
	}
	if m.sets == nil {
		return k, nil
	}
	k.members = map[string]map[nl.SetMember]bool{}
	for _, fam := range fams {
		for _, set := range []string{netSet(fam), masqSet(fam)} {
			ms, err := m.sets.SetMembers(set)
			if errors.Is(err, nl.ErrSetNotFound) {
				continue
			}
			if err != nil {
				return k, err
			}
			k.members[set] = map[nl.SetMember]bool{}
			for _, mem := range ms {
				k.members[set][mem] = true
			}
		}
	}
	if m.nl != nil && groups {
		var err error
		if k.groups, err = m.nl.BridgeGroups(); err != nil {
			return k, err
		}
	}
	return k, nil
}

// compareKernel names the first thing m made that k lacks, or "". m.mu is
// held.
func (m *Mode) compareKernel(k kernelView) string {
	for _, fam := range k.fams {
		if !m.baseBuilt[fam] {
			return fmt.Sprintf("%s: weft's base rules are not in place", fam)
		}
		snap := k.snaps[fam]
		if why := m.baseMissing(fam, snap); why != "" {
			return fmt.Sprintf("%s: %s", fam, why)
		}
		for _, n := range m.nets {
			if !slices.Contains(m.families(n), fam) {
				continue
			}
			for _, r := range m.rulesOf(n, fam) {
				if !snap.Contains(r.Table, r.Chain, r.Spec) {
					return fmt.Sprintf("%s: rule missing: %s", fam, r)
				}
			}
		}
		for _, hp := range m.ports {
			n, ok := m.nets[hp.netID]
			if !ok || familyOf(hp.port.HostIP) != fam {
				continue
			}
			for _, r := range portRules(n, hp.port, m.forwarding(fam)) {
				if !snap.Contains(r.Table, r.Chain, r.Spec) {
					return fmt.Sprintf("%s: published port's rule missing: %s", fam, r)
				}
			}
		}
		if m.sets != nil {
			if why := m.missingMembers(fam, k.members); why != "" {
				return why
			}
		}
	}
	if m.sets != nil {
		return m.wrongGroup(k.groups)
	}
	return ""
}

// baseMissing names the first piece of family's base that snap lacks, or "".
func (m *Mode) baseMissing(family fw.Family, snap fw.Snapshot) string {
	for _, r := range m.jumps(family) {
		if !snap.Contains(r.Table, r.Chain, r.Spec) {
			return "jump missing: " + r.String()
		}
	}
	if snap.Has(fw.Filter, ChainDockerUser) {
		hook := dockerUserJump()
		if rs := snap[fw.Filter][ChainDockerUser]; len(rs) == 0 || !slices.Equal(rs[0], hook.Spec) {
			return "DOCKER-USER does not start with weft's hook"
		}
	}
	if !slices.EqualFunc(snap[fw.Filter][ChainForward], m.forwardChain(family), slices.Equal) || !snap.Has(fw.Filter, ChainForward) {
		return ChainForward + " differs from weft's"
	}
	for _, c := range m.chains(family) {
		if !snap.Has(c.table, c.name) {
			return "chain missing: " + c.table + "/" + c.name
		}
	}
	for _, r := range m.fixedRules(family) {
		if !snap.Contains(r.Table, r.Chain, r.Spec) {
			return "rule missing: " + r.String()
		}
	}
	return ""
}

// checkedChains are the chains Check reads, by table, for Tables that cannot
// dump everything at once.
func (m *Mode) checkedChains(family fw.Family) map[string][]string {
	want := map[string][]string{
		fw.Filter: {"FORWARD", "INPUT", ChainDockerUser, ChainForward},
		fw.NAT:    {"PREROUTING", "OUTPUT", "POSTROUTING"},
	}
	for _, c := range m.chains(family) {
		want[c.table] = append(want[c.table], c.name)
	}
	return want
}

var _ dataplane.Checker = (*Mode)(nil)

// Repair puts back what Check finds missing, from what m made: the base of
// every family in use, each network's bridge (addresses, device group, MAC)
// and its rules or set members, published ports' rules, and the bridge port
// of every endpoint veth whose bridge was re-created. It removes nothing:
// objects of networks m does not know may belong to another weft on the
// same host (a second plugin instance), and two instances that each removed
// the other's objects on every repair would never settle. Removing what is
// stale is Reconcile's job, at start.
func (m *Mode) Repair(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	used := m.usedFamilies()
	var errs []error
	for _, fam := range m.firewallFamilies() {
		if used[fam] {
			errs = append(errs, m.buildBase(fam))
		}
	}
	for _, n := range m.nets {
		if err := ctx.Err(); err != nil {
			return errors.Join(append(errs, err)...)
		}
		if err := m.ensureNetwork(n, false); err != nil {
			errs = append(errs, fmt.Errorf("network %s: %w", dataplane.ShortID(n.ID), err))
		}
	}
	errs = append(errs, m.reattachAll())
	for _, hp := range m.ports {
		n, ok := m.nets[hp.netID]
		if !ok {
			continue
		}
		fam := familyOf(hp.port.HostIP)
		for _, r := range portRules(n, hp.port, m.forwarding(fam)) {
			if _, err := m.ensureRule(fam, r); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("repairing bridge networks: %w", err)
	}
	return nil
}

// reattachAll puts every host-side endpoint veth of a known network back on
// its bridge (a bridge deleted and re-created has no ports).
func (m *Mode) reattachAll() error {
	if m.nl == nil || len(m.nets) == 0 {
		return nil
	}
	links, err := m.nl.LinkList()
	if err != nil {
		return err
	}
	var errs []error
	for _, l := range links {
		a := l.Attrs()
		if !ownedVeth(l) || !strings.HasPrefix(a.Name, "wh") {
			continue
		}
		n, ok := m.nets[strings.TrimPrefix(a.Alias, dataplane.OwnerAliasPrefix)]
		if !ok {
			continue
		}
		errs = append(errs, m.reattach(n, a.Name))
	}
	return errors.Join(errs...)
}

// usedFamilies are the families the networks m holds need.
func (m *Mode) usedFamilies() map[fw.Family]bool {
	used := map[fw.Family]bool{}
	for _, n := range m.nets {
		for _, fam := range m.families(n) {
			used[fam] = true
		}
	}
	return used
}
