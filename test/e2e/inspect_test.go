//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/weftnet/weft/dataplane"
	weftplugin "github.com/weftnet/weft/plugin"
	"github.com/weftnet/weft/test/testhost"
)

// What makes a kernel object weft's (dataplane.OwnerAliasPrefix,
// dataplane.VxlanAliasPrefix and dataplane.DefaultBridgeName; the bridge and
// vxlan modes' link names).
const (
	weftAliasPrefix  = "weft:"
	weftBridgePrefix = "weft-"
	weftChainPrefix  = "WEFT-"
)

var (
	weftAliasPrefixes = append([]string{weftAliasPrefix}, vxAliasPrefixes...)
	// Veths of the bridge mode (wh/wc), and the vxlan mode's bridges,
	// VXLAN links and veths.
	weftVethPrefixes = append([]string{"wh", "wc"}, vxLinkPrefixes...)
	// The vxlan mode's link names and aliases, of a local-scope weft (wxb-,
	// wxv-, wxh, wxc; weft-vxlan:) and of a global-scope one (wsb-, wsv-,
	// wsh, wsc; weft-swarm:): dataplane/vxlan's Local and Swarm flavours.
	vxLinkPrefixes  = []string{"wxb-", "wxv-", "wxh", "wxc", "wsb-", "wsv-", "wsh", "wsc"}
	vxAliasPrefixes = []string{dataplane.VxlanAliasPrefix, dataplane.SwarmVxlanAliasPrefix}
	// vxRuleMarks are in every vxlan-mode rule: its comment tags and its
	// bridges' name prefixes.
	vxRuleMarks = []string{"weft-vxlan:", "weft-swarm:", "wxb-", "wsb-"}
)

// isVxlanLink reports whether a link is one of either weft's vxlan mode, by
// name or alias.
func isVxlanLink(name, alias string) bool {
	for _, p := range vxLinkPrefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	for _, p := range vxAliasPrefixes {
		if strings.HasPrefix(alias, p) {
			return true
		}
	}
	return false
}

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
	if strings.HasPrefix(l.Name, weftBridgePrefix) {
		return true
	}
	for _, p := range weftAliasPrefixes {
		if strings.HasPrefix(l.Alias, p) {
			return true
		}
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
	weftIfaceRE   = regexp.MustCompile(`(^|\s)-[io] (weft-|wh|wc|wxb-|wsb-)\S*`)
	weftCommentRE = regexp.MustCompile(`--comment "?weft(:|-vxlan:|-swarm:)`)
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

// snapshot is the host's weft objects at one moment: the kernel's (links,
// firewall chains and rules) and weft's own view (networks, endpoints, IPAM
// pools with their allocated-address counts, store records per bucket,
// unclaimed reservations; see weftState).
type snapshot struct {
	links, rules []string
	state        map[string]string // stateItems
}

func (h *Host) Snapshot(t testing.TB) snapshot {
	t.Helper()
	s, err := h.snapshot()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (h *Host) snapshot() (snapshot, error) {
	l, r, err := h.weftObjects()
	if err != nil {
		return snapshot{}, err
	}
	st, err := h.weftState()
	if err != nil {
		return snapshot{}, err
	}
	return snapshot{links: l, rules: r, state: stateItems(st)}, nil
}

// AssertNothingNew fails the test if the host has weft links or rules that
// were not in before, or if weft's own view differs from before in any way:
// a network, endpoint or pool more or fewer, another count of allocated
// addresses in a pool, of records in a store bucket, or of unclaimed
// reservations. Each difference is named. Objects vanish asynchronously (a
// container's namespace is destroyed by a kernel worker), so it retries for
// a few seconds.
func (h *Host) AssertNothingNew(t testing.TB, before snapshot, what string) {
	t.Helper()
	var diff []string
	err := testhost.Poll(5*time.Second, func() error {
		now, err := h.snapshot()
		if err != nil {
			return err
		}
		diff = append(missingFrom(now.links, before.links), missingFrom(now.rules, before.rules)...)
		diff = append(diff, stateDiff(before.state, now.state)...)
		if len(diff) > 0 {
			return fmt.Errorf("%d differences", len(diff))
		}
		return nil
	})
	if err != nil {
		if len(diff) == 0 {
			t.Errorf("%s: checking for leftovers: %v", what, err)
			return
		}
		t.Errorf("%s left weft objects behind:\n  %s", what, strings.Join(diff, "\n  "))
	}
}

// AssertClean fails the test unless the host has no weft object at all.
// Call it only when no weft network exists.
//
// "No weft rule" then means, for iptables and ip6tables, every table: no
// chain named WEFT-* (not even empty), no rule that jumps to one (the base
// jumps from FORWARD and POSTROUTING go too), no rule with a "weft:" comment
// or "weft-vxlan:" or "weft-swarm:" tag, and no rule matching a weft link
// (-i/-o weft-*, wh*, wc*, wxb-*, wsb-*). This is
// dataplane/bridge's documented behaviour: when the last weft network is
// deleted, the WEFT-* chains and the base jumps are removed, so a host with
// no weft network carries no weft rule. "No weft link" means no link whose
// name starts with weft-, wh, wc or one of vxLinkPrefixes, and none whose
// alias starts with weft:, weft-vxlan: or weft-swarm:.
// And weft itself holds nothing: no network, endpoint, pool or unclaimed
// reservation, and no record in any store bucket.
func (h *Host) AssertClean(t testing.TB) {
	t.Helper()
	var bad []string
	err := testhost.Poll(5*time.Second, func() error {
		now, err := h.snapshot()
		if err != nil {
			return err
		}
		bad = append(now.links, now.rules...)
		bad = append(bad, stateDiff(stateItems(&weftplugin.State{}), now.state)...)
		if len(bad) > 0 {
			return fmt.Errorf("%d weft objects", len(bad))
		}
		return nil
	})
	if err != nil {
		if len(bad) == 0 {
			t.Errorf("checking that the host is clean: %v", err)
			return
		}
		t.Errorf("with no weft network left, the host still has:\n  %s", strings.Join(bad, "\n  "))
	}
}

// stateItems flattens weft's view into named items: presence items
// ("weft network ID") with an empty value, and counters with their count.
// Store buckets with no record and a zero reservation count are left out,
// so an empty state has no item at all.
func stateItems(st *weftplugin.State) map[string]string {
	m := map[string]string{}
	for _, id := range st.Networks {
		m["weft network "+id] = ""
	}
	for _, id := range st.Endpoints {
		m["weft endpoint "+id] = ""
	}
	for _, p := range st.Pools {
		m["IPAM pool "+p.ID+", addresses allocated"] = fmt.Sprint(p.Allocated)
	}
	for b, n := range st.Records {
		if n != 0 {
			m["store bucket "+b+", records"] = fmt.Sprint(n)
		}
	}
	if st.Reservations != 0 {
		m["unclaimed IPAM reservations"] = fmt.Sprint(st.Reservations)
	}
	return m
}

// stateDiff names every item that appeared, went or changed from before to
// now, sorted.
func stateDiff(before, now map[string]string) []string {
	var out []string
	for k, v := range now {
		old, ok := before[k]
		switch {
		case !ok && v == "":
			out = append(out, "new: "+k)
		case !ok:
			out = append(out, fmt.Sprintf("new: %s: %s", k, v))
		case old != v:
			out = append(out, fmt.Sprintf("changed: %s: %s, was %s", k, v, old))
		}
	}
	for k, v := range before {
		if _, ok := now[k]; ok {
			continue
		}
		if v == "" {
			out = append(out, "gone: "+k)
		} else {
			out = append(out, fmt.Sprintf("gone: %s (was %s)", k, v))
		}
	}
	slices.Sort(out)
	return out
}

// WeftState is weft's own view of what it holds (POST /Weft.State on the
// plugin socket).
func (h *Host) WeftState(t testing.TB) *weftplugin.State {
	t.Helper()
	st, err := h.weftState()
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func (h *Host) weftState() (*weftplugin.State, error) {
	sock, err := h.plugin.socket(h)
	if err != nil {
		return nil, err
	}
	var st weftplugin.State
	body, err := pluginCall(sock, weftplugin.StatePath, 30*time.Second)
	if err != nil {
		return nil, fmt.Errorf("asking weft for its state: %w", err)
	}
	if err := json.Unmarshal(body, &st); err != nil {
		return nil, fmt.Errorf("asking weft for its state: %s answered %q: %w", weftplugin.StatePath, body, err)
	}
	return &st, nil
}

// pluginCall POSTs a body-less request to the plugin socket sock and returns
// the body of a 200 answer. The socket is dialled through an open descriptor
// of its directory: a path through /proc/PID/root (and a managed plugin's
// 64-digit ID) can be longer than a socket address may be.
func pluginCall(sock, path string, timeout time.Duration) ([]byte, error) {
	dir, err := os.Open(filepath.Dir(sock))
	if err != nil {
		return nil, err
	}
	defer func() { _ = dir.Close() }()
	short := fmt.Sprintf("/proc/self/fd/%d/%s", dir.Fd(), filepath.Base(sock))
	c := &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			DisableKeepAlives: true,
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", short)
			},
		},
	}
	resp, err := c.Post("http://weft"+path, "application/json", nil)
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return b, &pluginStatusError{path: path, status: resp.Status, code: resp.StatusCode, body: strings.TrimSpace(string(b))}
	}
	return b, nil
}

// pluginStatusError is a non-200 answer of the plugin.
type pluginStatusError struct {
	path, status string
	code         int
	body         string
}

func (e *pluginStatusError) Error() string {
	return fmt.Sprintf("%s: %s: %s", e.path, e.status, e.body)
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
