package nstest

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// The leak checker every privileged test shares.
//
// A Snapshot is what a namespace holds that a test (or the code under test)
// could leave behind, one line per object, so that comparing two snapshots
// names each object that appeared or went:
//
//   - links: name, kind, admin state, MTU, MAC, alias, master, parent and
//     (macvlan) mode;
//   - addresses, except IPv6 link-local ones (the kernel adds those a moment
//     after a link goes up, and they go with their link);
//   - routes of every table, except those the kernel derives from an address
//     or a link (protocol "kernel"), which come and go with it;
//   - iptables and ip6tables chains and rules, through every back-end this
//     machine has (iptables-legacy and iptables-nft, or only the plain
//     iptables commands when neither variant is installed). A built-in chain
//     counts only when its policy is not ACCEPT: an empty table whose
//     chains accept everything is the same as no table, and both back-ends
//     create tables on a mere listing;
//   - ipsets (ipset save), when the ipset command is installed.
//
// Take one with Capture (or Snap) before a scenario and compare with
// AssertUnchanged after it, or register both ends at once with CheckLeaks.

// Snapshot is one namespace's objects at one moment (see above).
type Snapshot struct {
	lines []string // sorted, unique
}

// String renders the snapshot, one object a line.
func (s Snapshot) String() string { return strings.Join(s.lines, "\n") + "\n" }

// Equal reports whether two snapshots hold the same objects.
func (s Snapshot) Equal(o Snapshot) bool { return slices.Equal(s.lines, o.lines) }

// Len is the number of objects.
func (s Snapshot) Len() int { return len(s.lines) }

// Diff lists what after has that before lacks ("+ object") and what before
// had that after lacks ("- object"); empty when they are equal.
func Diff(before, after Snapshot) string {
	var b strings.Builder
	for _, l := range after.lines {
		if _, found := slices.BinarySearch(before.lines, l); !found {
			b.WriteString("+ " + l + "\n")
		}
	}
	for _, l := range before.lines {
		if _, found := slices.BinarySearch(after.lines, l); !found {
			b.WriteString("- " + l + "\n")
		}
	}
	return b.String()
}

// Capture snapshots ns. It does not need the calling thread to be in ns.
func Capture(ns netns.NsHandle) (Snapshot, error) {
	var lines []string
	nl, err := netlink.NewHandleAt(ns)
	if err != nil {
		return Snapshot{}, fmt.Errorf("netlink handle: %w", err)
	}
	defer nl.Close()
	kernel, err := kernelObjects(nl)
	if err != nil {
		return Snapshot{}, err
	}
	lines = append(lines, kernel...)
	err = Do(ns, func() error {
		fwLines, err := firewallObjects()
		lines = append(lines, fwLines...)
		return err
	})
	if err != nil {
		return Snapshot{}, err
	}
	slices.Sort(lines)
	return Snapshot{lines: slices.Compact(lines)}, nil
}

// Snap is Capture that fails t on error.
func Snap(t testing.TB, ns netns.NsHandle) Snapshot {
	t.Helper()
	s, err := Capture(ns)
	if err != nil {
		t.Fatalf("snapshotting the namespace: %v", err)
	}
	return s
}

// settle bounds how long AssertUnchanged waits for the namespace to come
// back to the baseline: a link whose peer was in a namespace that just
// closed is removed by a kernel worker, a moment later.
const settle = 5 * time.Second

// AssertUnchanged fails t, naming every object that appeared or went, unless
// ns comes back to before within a few seconds. what says after what (it
// starts the message).
func AssertUnchanged(t testing.TB, ns netns.NsHandle, before Snapshot, what string) {
	t.Helper()
	if diff := waitUnchanged(ns, before); diff != "" {
		t.Errorf("%s: the namespace differs from its baseline (+ appeared, - went):\n%s", what, diff)
	}
}

// RequireUnchanged is AssertUnchanged that stops the test.
func RequireUnchanged(t testing.TB, ns netns.NsHandle, before Snapshot, what string) {
	t.Helper()
	if diff := waitUnchanged(ns, before); diff != "" {
		t.Fatalf("%s: the namespace differs from its baseline (+ appeared, - went):\n%s", what, diff)
	}
}

func waitUnchanged(ns netns.NsHandle, before Snapshot) string {
	deadline := time.Now().Add(settle)
	delay := 10 * time.Millisecond
	for {
		now, err := Capture(ns)
		diff := ""
		if err != nil {
			diff = "(snapshot failed: " + err.Error() + ")\n"
		} else {
			diff = Diff(before, now)
		}
		if diff == "" || time.Now().After(deadline) {
			return diff
		}
		time.Sleep(delay)
		delay = min(2*delay, 250*time.Millisecond)
	}
}

// CheckLeaks snapshots ns now and, when the test ends, fails it if ns holds
// anything else or lacks anything it had. Call it once the test's fixtures
// exist and before the scenario creates anything: its check runs after every
// cleanup registered later (cleanups run last-in first-out), so what those
// remove does not count.
func CheckLeaks(t testing.TB, ns netns.NsHandle) {
	t.Helper()
	before := Snap(t, ns)
	t.Cleanup(func() {
		if t.Failed() {
			return // the first failure matters; leftovers of a test stopped half-way do not
		}
		AssertUnchanged(t, ns, before, "leak check at the end of "+t.Name())
	})
}

// kernelObjects lists links, addresses and routes.
func kernelObjects(h *netlink.Handle) ([]string, error) {
	links, err := h.LinkList()
	if err != nil {
		return nil, fmt.Errorf("listing links: %w", err)
	}
	names := map[int]string{}
	for _, l := range links {
		names[l.Attrs().Index] = l.Attrs().Name
	}
	var lines []string
	for _, l := range links {
		a := l.Attrs()
		extra := ""
		if mv, ok := l.(*netlink.Macvlan); ok {
			extra = fmt.Sprintf(" macvlan-mode=%d", mv.Mode)
		}
		if v, ok := l.(*netlink.Vlan); ok {
			extra = fmt.Sprintf(" vlan-id=%d", v.VlanId)
		}
		// A veth's "parent" is its peer, and a link's parent may be in
		// another namespace (its index means nothing here).
		parent := ""
		switch {
		case l.Type() == "veth" || a.ParentIndex == 0:
		case a.NetNsID >= 0:
			parent = " parent=(another namespace)"
		default:
			parent = " parent=" + names[a.ParentIndex]
		}
		lines = append(lines, fmt.Sprintf("link %s %s up=%v mtu=%d mac=%s alias=%q master=%s%s%s",
			a.Name, l.Type(), a.Flags&net.FlagUp != 0, a.MTU, a.HardwareAddr, a.Alias, names[a.MasterIndex], parent, extra))
		addrs, err := h.AddrList(l, netlink.FAMILY_ALL)
		if err != nil {
			return nil, fmt.Errorf("listing addresses of %s: %w", a.Name, err)
		}
		for _, ad := range addrs {
			if ad.IP.To4() == nil && ad.IP.IsLinkLocalUnicast() {
				continue
			}
			lines = append(lines, fmt.Sprintf("addr %s %s", a.Name, ad.IPNet))
		}
	}
	routes, err := h.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Table: syscall.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, fmt.Errorf("listing routes: %w", err)
	}
	for _, r := range routes {
		if r.Protocol == syscall.RTPROT_KERNEL {
			continue
		}
		lines = append(lines, routeLine(r, names))
	}
	return lines, nil
}

func routeLine(r netlink.Route, names map[int]string) string {
	dst := "default"
	if r.Dst != nil {
		dst = r.Dst.String()
	}
	s := fmt.Sprintf("route table=%d type=%d %s", r.Table, r.Type, dst)
	if r.Gw != nil {
		s += " via " + r.Gw.String()
	}
	if r.LinkIndex != 0 {
		s += " dev " + names[r.LinkIndex]
	}
	for _, nh := range r.MultiPath {
		s += fmt.Sprintf(" nexthop via %s dev %s", nh.Gw, names[nh.LinkIndex])
	}
	if r.Src != nil {
		s += " src " + r.Src.String()
	}
	return s + fmt.Sprintf(" proto=%d scope=%d metric=%d", r.Protocol, r.Scope, r.Priority)
}

// firewallTools are the dump commands, by back-end and family; the first
// variant of each family found in PATH is used, so a machine with both
// back-ends is checked in both.
var firewallTools = []struct{ label, cmd string }{
	{"ip4-legacy", "iptables-legacy-save"},
	{"ip6-legacy", "ip6tables-legacy-save"},
	{"ip4-nft", "iptables-nft-save"},
	{"ip6-nft", "ip6tables-nft-save"},
}

// firewallObjects dumps every back-end's rules and the ipsets of the calling
// thread's namespace.
func firewallObjects() ([]string, error) {
	var lines []string
	var errs []error
	found := 0
	for _, tool := range firewallTools {
		if _, err := exec.LookPath(tool.cmd); err != nil {
			continue
		}
		found++
		out, err := output(tool.cmd)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		lines = append(lines, parseSave(tool.label, out)...)
	}
	if found == 0 { // neither variant installed: the plain commands
		for _, tool := range []struct{ label, cmd string }{{"ip4", "iptables-save"}, {"ip6", "ip6tables-save"}} {
			if _, err := exec.LookPath(tool.cmd); err != nil {
				continue
			}
			out, err := output(tool.cmd)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			lines = append(lines, parseSave(tool.label, out)...)
		}
	}
	if _, err := exec.LookPath("ipset"); err == nil {
		out, err := output("ipset", "save")
		if err != nil {
			errs = append(errs, err)
		}
		for _, l := range strings.Split(out, "\n") {
			if l = strings.TrimSpace(l); l != "" {
				lines = append(lines, "ipset "+l)
			}
		}
	}
	return lines, errors.Join(errs...)
}

func output(name string, args ...string) (string, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// parseSave turns an iptables-save dump into one line per user chain, per
// built-in chain whose policy is not ACCEPT, and per rule.
func parseSave(label, dump string) []string {
	var lines []string
	table := ""
	for _, line := range strings.Split(dump, "\n") {
		switch {
		case strings.HasPrefix(line, "*"):
			table = line[1:]
		case strings.HasPrefix(line, ":"):
			f := strings.Fields(line[1:])
			if len(f) < 2 {
				continue
			}
			switch f[1] {
			case "-":
				lines = append(lines, fmt.Sprintf("%s %s chain %s", label, table, f[0]))
			case "ACCEPT":
			default:
				lines = append(lines, fmt.Sprintf("%s %s chain %s policy %s", label, table, f[0], f[1]))
			}
		case strings.HasPrefix(line, "-A "):
			lines = append(lines, fmt.Sprintf("%s %s %s", label, table, line))
		}
	}
	return lines
}
