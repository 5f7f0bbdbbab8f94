package vxlan

import (
	"regexp"
	"strings"
	"testing"

	"github.com/weftnet/weft/dataplane"
	"github.com/weftnet/weft/dataplane/fw"
)

// The other modes' sweep patterns (dataplane/bridge/names.go,
// dataplane/macvlan/names.go): no name of this mode may match them, or their
// Reconcile would delete this mode's links.
var otherModes = []*regexp.Regexp{
	regexp.MustCompile(`^w[hc][0-9a-z]{12}$`),
	regexp.MustCompile(`^weft-[0-9a-z]{10}$`),
	regexp.MustCompile(`^wv[0-9a-z]{12}$`),
	regexp.MustCompile(`^wm-[0-9a-z]{10}$`),
}

// The other modes' alias prefixes (and the bridge mode's rule tag), which
// no alias or comment of this mode may start with.
var otherAliases = []string{dataplane.OwnerAliasPrefix, "weft-macvlan:", fw.TagPrefix}

// The bridge mode's ipsets (dataplane/bridge/sets.go).
var otherSets = []string{"weft-net4", "weft-net6", "weft-masq4", "weft-masq6"}

// TestNames pins the local-scope flavour's names: they are what hosts have,
// and an upgrade must rename nothing.
func TestNames(t *testing.T) {
	const net, ep = "0123456789abcdef0123", "fedcba9876543210fedc"
	host, cont := VethNames(ep)
	l := Local()
	lh, lc := l.VethNames(ep)
	for _, tc := range []struct{ got, want string }{
		{BridgeName(net), "wxb-0123456789"},
		{LinkName(net), "wxv-0123456789"},
		{host, "wxhfedcba987654"},
		{cont, "wxcfedcba987654"},
		{l.BridgeName(net), "wxb-0123456789"},
		{l.LinkName(net), "wxv-0123456789"},
		{lh, "wxhfedcba987654"},
		{lc, "wxcfedcba987654"},
		{l.ownerAlias(net), "weft-vxlan:" + net},
		{l.AliasPrefix(), dataplane.VxlanAliasPrefix},
		{l.vtepSet(fw.IPv4), "weft-vteps4"},
		{l.vtepSet(fw.IPv6), "weft-vteps6"},
		{l.filterComment, "weft-vxlan:known-vteps"},
		{l.bridgedComment, "weft-vxlan:bridged"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
	if _, ok := l.aliasNetwork(dataplane.OwnerAliasPrefix + net); ok {
		t.Error("the bridge mode's alias is taken for this mode's")
	}
	if p := portOf(dataplane.Network{}); p != 4789 {
		t.Errorf("default port %d", p)
	}
	if s := Swarm(); s.AliasPrefix() != dataplane.SwarmVxlanAliasPrefix {
		t.Errorf("swarm alias prefix %q", s.AliasPrefix())
	}
}

// TestFlavoursApart checks every flavour's names against its own ownership
// tests (they must match), every other flavour's and the other modes' (they
// must not): a name that matched another instance's tests would be swept by
// its Reconcile.
func TestFlavoursApart(t *testing.T) {
	ids := []string{"0123456789abcdef0123", "zzzzzzzzzzzzzzzzzzzzzzzzz", "000000000000", strings.Repeat("a", 64)}
	all := Flavours()
	if len(all) < 2 || all[0] != Local() {
		t.Fatalf("Flavours() = %v", all)
	}
	for i, f := range all {
		for _, id := range ids {
			host, cont := f.VethNames(id)
			names := []string{f.BridgeName(id), f.LinkName(id), host, cont}
			for _, name := range names {
				if err := dataplane.CheckLinkName(name); err != nil || len(name) > dataplane.MaxLinkName {
					t.Errorf("%s: %q: %v", f.instance, name, err)
				}
				for _, re := range otherModes {
					if re.MatchString(name) {
						t.Errorf("%s: %q matches another mode's pattern %s", f.instance, name, re)
					}
				}
			}
			if !f.isNetLinkName(names[0], true) || !f.isNetLinkName(names[1], false) || f.isNetLinkName(names[0], false) || f.isNetLinkName(names[1], true) || !f.isVethName(host) || !f.isVethName(cont) {
				t.Errorf("%s: its own names are not recognised as its own: %v", f.instance, names)
			}
			if got, ok := f.aliasNetwork(f.ownerAlias(id)); !ok || got != id {
				t.Errorf("%s: aliasNetwork(ownerAlias(%s)) = %q, %v", f.instance, id, got, ok)
			}
			if got, ok := dataplane.VxlanAliasNetwork(f.ownerAlias(id)); !ok || got != id {
				t.Errorf("%s: dataplane.VxlanAliasNetwork does not know alias %q", f.instance, f.ownerAlias(id))
			}
			for j, o := range all {
				if i == j {
					continue
				}
				for _, name := range names {
					if o.isNetLinkName(name, true) || o.isNetLinkName(name, false) || o.isVethName(name) {
						t.Errorf("%s's name %q is taken by %s for its own", f.instance, name, o.instance)
					}
				}
				if _, ok := o.aliasNetwork(f.ownerAlias(id)); ok {
					t.Errorf("%s's alias %q is taken by %s for its own", f.instance, f.ownerAlias(id), o.instance)
				}
			}
		}
		for _, p := range otherAliases {
			for _, s := range []string{f.alias, f.filterComment, f.bridgedComment} {
				if strings.HasPrefix(s, p) {
					t.Errorf("%s: %q starts with another mode's prefix %q", f.instance, s, p)
				}
			}
		}
		for _, set := range []string{f.set4, f.set6} {
			if len(set) > 31 || set == "" {
				t.Errorf("%s: ipset name %q", f.instance, set)
			}
			for _, o := range otherSets {
				if set == o {
					t.Errorf("%s: ipset %q is the bridge mode's", f.instance, set)
				}
			}
		}
		for j, o := range all {
			if i == j {
				continue
			}
			if strings.HasPrefix(f.alias, o.alias) || f.set4 == o.set4 || f.set6 == o.set6 || f.set4 == o.set6 ||
				f.filterComment == o.filterComment || f.bridgedComment == o.bridgedComment ||
				f.bridgePrefix == o.bridgePrefix || f.linkPrefix == o.linkPrefix {
				t.Errorf("%s and %s share a name", f.instance, o.instance)
			}
			// Each instance's rules are found by comment: the other's
			// must not be found.
			rules := [][]string{o.filterRule(fw.IPv4, 4789).Spec, o.bridgedRule().Spec}
			if len(f.filterPorts(rules)) != 0 {
				t.Errorf("%s takes %s's known-VTEP rule for its own", f.instance, o.instance)
			}
			// The bridged rule's interface wildcard matches no bridge of
			// the other flavour.
			if strings.HasPrefix(o.BridgeName(ids[0]), f.bridgePrefix) {
				t.Errorf("%s's bridged rule (-i %s+) covers %s's bridges", f.instance, f.bridgePrefix, o.instance)
			}
		}
	}
}
