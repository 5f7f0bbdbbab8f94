//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// What makes a kernel object weft's (DESIGN.md §3.6; dataplane.OwnerAliasPrefix
// and dataplane.DefaultBridgeName; dataplane/bridge's veth names).
const (
	weftAliasPrefix  = "weft:"
	weftBridgePrefix = "weft-"
	weftChainPrefix  = "WEFT-"
)

var weftVethPrefixes = []string{"wh", "wc"}

// link is one row of `ip -d -j link show`.
type link struct {
	Name     string `json:"ifname"`
	Alias    string `json:"ifalias"`
	Master   string `json:"master"`
	MTU      int    `json:"mtu"`
	LinkInfo struct {
		Kind string `json:"info_kind"`
	} `json:"linkinfo"`
}

func (l link) String() string {
	s := fmt.Sprintf("link %s (%s", l.Name, l.LinkInfo.Kind)
	if l.Alias != "" {
		s += ", alias " + l.Alias
	}
	if l.Master != "" {
		s += ", master " + l.Master
	}
	return s + ")"
}

// isWeft reports whether a link is weft's by name or by alias.
func (l link) isWeft() bool {
	if strings.HasPrefix(l.Alias, weftAliasPrefix) || strings.HasPrefix(l.Name, weftBridgePrefix) {
		return true
	}
	for _, p := range weftVethPrefixes {
		if strings.HasPrefix(l.Name, p) {
			return true
		}
	}
	return false
}

// Links lists the links in the host's network namespace.
func (h *Host) Links(t testing.TB) []link {
	t.Helper()
	ls, err := h.links()
	if err != nil {
		t.Fatal(err)
	}
	return ls
}

func (h *Host) links() ([]link, error) {
	out, err := h.ns("ip", "-d", "-j", "link", "show")
	if err != nil {
		return nil, err
	}
	var ls []link
	if err := json.Unmarshal([]byte(out), &ls); err != nil {
		return nil, fmt.Errorf("parsing ip -j link: %w", err)
	}
	return ls, nil
}

// Link returns the named link, or false.
func (h *Host) Link(t testing.TB, name string) (link, bool) {
	t.Helper()
	for _, l := range h.Links(t) {
		if l.Name == name {
			return l, true
		}
	}
	return link{}, false
}

// fwRule is one line of iptables-save / ip6tables-save: "-A CHAIN spec" or a
// chain declaration ":CHAIN".
type fwRule struct {
	Family string // "ip4" or "ip6"
	Table  string
	Chain  string
	Spec   string // the rule after "-A CHAIN "; "" for a chain declaration
}

func (r fwRule) String() string {
	if r.Spec == "" {
		return fmt.Sprintf("%s %s chain %s", r.Family, r.Table, r.Chain)
	}
	return fmt.Sprintf("%s %s -A %s %s", r.Family, r.Table, r.Chain, r.Spec)
}

// Firewall returns every chain and rule of the host's namespace, IPv4 and
// IPv6, through the iptables commands in PATH (the ones weft and dockerd use).
func (h *Host) firewall() ([]fwRule, error) {
	var all []fwRule
	for _, fam := range []struct{ name, cmd string }{{"ip4", "iptables-save"}, {"ip6", "ip6tables-save"}} {
		out, err := h.ns(fam.cmd)
		if err != nil {
			return nil, err
		}
		table := ""
		for _, line := range strings.Split(out, "\n") {
			switch {
			case strings.HasPrefix(line, "*"):
				table = line[1:]
			case strings.HasPrefix(line, ":"):
				all = append(all, fwRule{Family: fam.name, Table: table, Chain: strings.Fields(line[1:])[0]})
			case strings.HasPrefix(line, "-A "):
				chain, spec, _ := strings.Cut(line[3:], " ")
				all = append(all, fwRule{Family: fam.name, Table: table, Chain: chain, Spec: spec})
			}
		}
	}
	return all, nil
}

var (
	weftIfaceRE   = regexp.MustCompile(`(^|\s)-[io] (weft-|wh|wc)\S*`)
	weftCommentRE = regexp.MustCompile(`--comment "?weft:`)
)

// isWeft reports whether a rule or chain is weft's: it is in (or declares) a
// WEFT-* chain, jumps to one, matches a weft link, or carries a weft tag
// ("weft:<network>" comment).
func (r fwRule) isWeft() bool {
	return strings.HasPrefix(r.Chain, weftChainPrefix) ||
		strings.Contains(r.Spec, "-j "+weftChainPrefix) || strings.Contains(r.Spec, "-g "+weftChainPrefix) ||
		weftIfaceRE.MatchString(r.Spec) || weftCommentRE.MatchString(r.Spec)
}

// weftObjects is every weft link and every weft firewall chain and rule in
// the host's namespace, one string each, sorted.
func (h *Host) weftObjects() (links []string, rules []string, err error) {
	ls, err := h.links()
	if err != nil {
		return nil, nil, err
	}
	for _, l := range ls {
		if l.isWeft() {
			links = append(links, l.String())
		}
	}
	fw, err := h.firewall()
	if err != nil {
		return nil, nil, err
	}
	for _, r := range fw {
		if r.isWeft() {
			rules = append(rules, r.String())
		}
	}
	slices.Sort(links)
	slices.Sort(rules)
	return links, rules, nil
}

// snapshot is the host's weft objects at one moment.
type snapshot struct{ links, rules []string }

func (h *Host) Snapshot(t testing.TB) snapshot {
	t.Helper()
	l, r, err := h.weftObjects()
	if err != nil {
		t.Fatal(err)
	}
	return snapshot{l, r}
}

// AssertNothingNew fails the test if the host has weft links or rules that
// were not in before. Objects vanish asynchronously (a container's namespace
// is destroyed by a kernel worker), so it retries for a few seconds.
func (h *Host) AssertNothingNew(t testing.TB, before snapshot, what string) {
	t.Helper()
	var extra []string
	err := poll(5*time.Second, func() error {
		l, r, err := h.weftObjects()
		if err != nil {
			return err
		}
		extra = append(missingFrom(l, before.links), missingFrom(r, before.rules)...)
		if len(extra) > 0 {
			return fmt.Errorf("%d new weft objects", len(extra))
		}
		return nil
	})
	if err != nil {
		t.Errorf("%s left weft objects behind:\n  %s", what, strings.Join(extra, "\n  "))
	}
}

// AssertClean fails the test unless the host has no weft object at all.
// Call it only when no weft network exists.
//
// "No weft rule" then means, for iptables and ip6tables, every table: no
// chain named WEFT-* (not even empty), no rule that jumps to one (the base
// jumps from FORWARD and POSTROUTING go too), no rule with a "weft:" comment
// tag, and no rule matching a weft link (-i/-o weft-*, wh*, wc*). This is
// dataplane/bridge's documented behaviour: when the last weft network is
// deleted, the WEFT-* chains and the base jumps are removed, so a host with
// no weft network carries no weft rule. "No weft link" means no link whose
// name starts with weft-, wh or wc, and none whose alias starts with weft:.
func (h *Host) AssertClean(t testing.TB) {
	t.Helper()
	var bad []string
	err := poll(5*time.Second, func() error {
		l, r, err := h.weftObjects()
		if err != nil {
			return err
		}
		bad = append(l, r...)
		if len(bad) > 0 {
			return fmt.Errorf("%d weft objects", len(bad))
		}
		return nil
	})
	if err != nil {
		t.Errorf("with no weft network left, the host still has:\n  %s", strings.Join(bad, "\n  "))
	}
}

// missingFrom returns the elements of have that are not in base.
func missingFrom(have, base []string) []string {
	var out []string
	for _, s := range have {
		if !slices.Contains(base, s) {
			out = append(out, s)
		}
	}
	return out
}
