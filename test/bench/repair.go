//go:build bench

package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/weftnet/weft/test/testhost"
)

// Repair after a flush: with the sweep's weft networks in place and two
// containers on one more weft network, the harness flushes weft's filter
// chain (`iptables -F WEFT-FORWARD`, with whichever back-end holds the
// chain) or its ipsets (`ipset flush`) in the host namespace, and measures
// how long until new TCP connections between the two containers work again
// (a prober in the client's namespace connects every 20 ms) and until weft's
// log says its kernel state is restored (plugin/repair.go).

// repairSample is one flush. Times are from the flush command's return;
// -1: not within the limit.
type repairSample struct {
	TrafficMs   float64 // first successful connect after the last failed one
	RestoredMs  float64 // weft's "kernel state restored" line (its timestamp)
	TookMs      float64 // that line's "took" (weft's own reconcile)
	Interrupted bool    // a connect failed after the flush
	Failed      int     // connects that failed after the flush
}

// doneMs is the sample's figure for the goal: traffic works and weft has
// restored its state; limit if either did not happen.
func (s repairSample) doneMs(limit float64) float64 {
	if s.TrafficMs < 0 || s.RestoredMs < 0 {
		return limit
	}
	return max(s.TrafficMs, s.RestoredMs)
}

type repairResult struct {
	Kind     string // "iptables -F WEFT-FORWARD", "ipset flush"
	Command  string // what ran, in the host namespace
	Networks int    // weft networks present (besides the containers' own)
	Before   string // what the flush removed, e.g. "14 rules"
	BridgeNF string // bridge-nf-call-iptables in the host namespace
	LimitMs  float64
	Samples  []repairSample
	Note     string `json:",omitempty"`
}

const repairLimit = 30 * time.Second

// weftIptables lists the iptables back-ends whose filter table in the host
// namespace has a WEFT-FORWARD chain, with that chain's rule count.
func weftIptables(h *dockerHost) (bins []string, rules int) {
	for _, bin := range []string{"iptables-nft", "iptables-legacy"} {
		if _, err := exec.LookPath(bin); err != nil {
			continue
		}
		if bin == "iptables-legacy" {
			// Only if the namespace has legacy tables at all: listing
			// them would otherwise load the x_tables modules.
			out, err := testhost.RunT(10*time.Second, append(h.InNet(), "cat", "/proc/net/ip_tables_names")...)
			if err != nil || !strings.Contains(out, "filter") {
				continue
			}
		}
		out, err := testhost.RunT(10*time.Second, append(h.InNet(), bin, "-t", "filter", "-S", "WEFT-FORWARD")...)
		if err != nil {
			continue
		}
		bins = append(bins, bin)
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(l, "-A ") {
				rules++
			}
		}
	}
	return bins, rules
}

var ipsetEntriesRe = regexp.MustCompile(`Number of entries: (\d+)`)

// weftSetMembers counts the members of weft's IPv4 sets in the host
// namespace (-1 if there are none).
func weftSetMembers(h *dockerHost) int {
	total := -1
	for _, set := range []string{"weft-net4", "weft-masq4"} {
		out, err := testhost.RunT(30*time.Second, append(h.InNet(), "ipset", "list", "-t", set)...)
		if err != nil {
			continue
		}
		if m := ipsetEntriesRe.FindStringSubmatch(out); m != nil {
			v, _ := strconv.Atoi(m[1])
			total = max(total, 0) + v
		}
	}
	return total
}

// benchRepair measures weft's repair after each kind of flush, with the n
// weft networks of the sweep in place.
func benchRepair(ctx context.Context, h *dockerHost, n int) ([]repairResult, string) {
	reps := 5
	if cfg.quick {
		reps = 2
	}
	dir := filepath.Join(cfg.dir, "repair")
	_ = os.MkdirAll(dir, 0o755)
	v := netVariants[0]
	t, td, err := containerPair(v.name, v.prefix+"-repair", nthSubnet(v.base, n+2), v.args, "two containers on a weft network")(h)
	defer func() {
		if td != nil {
			_ = td()
		}
	}()
	if err != nil {
		return nil, "setting up two containers: " + err.Error()
	}
	var procs []*testhost.Proc
	defer func() {
		for _, p := range procs {
			_ = p.Kill()
		}
	}()
	srv, err := testhost.StartProc("rr-server", filepath.Join(dir, "server.log"), filepath.Join(dir, "server.pid"),
		"nsenter", "--net="+t.serverNS, "--", cfg.selfBin, "rr-server", "-addr", ":7001", "-size", "64")
	if err != nil {
		return nil, err.Error()
	}
	procs = append(procs, srv)
	probeLog := filepath.Join(dir, "probe.log")
	pr, err := testhost.StartProc("tcp-probe", probeLog, filepath.Join(dir, "probe.pid"),
		"nsenter", "--net="+t.clientNS, "--", cfg.selfBin, "tcp-probe", "-addr", t.serverIP+":7001", "-interval", "20ms", "-timeout", "100ms")
	if err != nil {
		return nil, err.Error()
	}
	procs = append(procs, pr)
	if err := testhost.Poll(15*time.Second, func() error {
		if !pr.Alive() {
			return testhost.RetryStop(fmt.Errorf("tcp-probe: %w: %s", pr.ExitErr(), testhost.Tail(pr.LogPath(), 5)))
		}
		for _, p := range readProbes(probeLog) {
			if p.ok {
				return nil
			}
		}
		return errors.New("no connection between the two containers yet")
	}); err != nil {
		return nil, "before any flush: " + err.Error()
	}
	nf := bridgeNFCall("/var/run/netns/" + h.NetNS)

	var out []repairResult
	// iptables -F WEFT-FORWARD, with the back-end(s) holding the chain.
	r := repairResult{Kind: "iptables -F WEFT-FORWARD", Networks: n, BridgeNF: nf, LimitMs: ms(repairLimit)}
	bins, rules := weftIptables(h)
	if len(bins) == 0 {
		r.Note = "no WEFT-FORWARD chain in the host namespace (iptables-nft, iptables-legacy)"
	} else {
		var cmds [][]string
		var shown []string
		for _, b := range bins {
			cmds = append(cmds, []string{b, "-t", "filter", "-F", "WEFT-FORWARD"})
			shown = append(shown, b+" -F WEFT-FORWARD")
		}
		r.Command = strings.Join(shown, "; ")
		r.Before = plural(rules, "rule")
		r.Samples, r.Note = repairReps(ctx, h, cmds, probeLog, reps)
	}
	out = append(out, r)
	// ipset flush: every set in the host namespace (only weft's are there).
	r = repairResult{Kind: "ipset flush", Networks: n, BridgeNF: nf, LimitMs: ms(repairLimit), Command: "ipset flush"}
	if _, err := exec.LookPath("ipset"); err != nil {
		r.Note = "the ipset program is not installed (scripts/bench.sh installs it)"
	} else if m := weftSetMembers(h); m < 0 {
		r.Note = "weft has no ipsets in the host namespace (its per-network rules design)"
	} else {
		r.Before = plural(m, "IPv4 set member")
		r.Samples, r.Note = repairReps(ctx, h, [][]string{{"ipset", "flush"}}, probeLog, reps)
	}
	out = append(out, r)
	if !pr.Alive() {
		return out, "tcp-probe exited: " + testhost.Tail(pr.LogPath(), 5)
	}
	return out, ""
}

// repairReps flushes reps times, waiting for the repair in between.
func repairReps(ctx context.Context, h *dockerHost, cmds [][]string, probeLog string, reps int) ([]repairSample, string) {
	var out []repairSample
	for i := range reps {
		if ctx.Err() != nil {
			return out, ctx.Err().Error()
		}
		s, err := repairOnce(h, cmds, probeLog)
		if err != nil {
			return out, err.Error()
		}
		out = append(out, s)
		logf("netcreate: repair after %s, %d/%d: traffic %s ms, restored %s ms (interrupted: %v)",
			strings.Join(cmds[0], " "), i+1, reps, fmtMs(s.TrafficMs), fmtMs(s.RestoredMs), s.Interrupted)
		// Let the next check find everything in place.
		time.Sleep(time.Second)
	}
	return out, ""
}

// repairOnce runs the flush commands and waits until weft has logged its
// repair and a connect made after that succeeded, or for repairLimit.
func repairOnce(h *dockerHost, cmds [][]string, probeLog string) (repairSample, error) {
	s := repairSample{TrafficMs: -1, RestoredMs: -1, TookMs: -1}
	t0 := time.Now()
	for _, c := range cmds {
		if _, err := testhost.RunT(30*time.Second, append(h.InNet(), c...)...); err != nil {
			return s, err
		}
	}
	t1 := time.Now()
	since := func(t time.Time) float64 { return max(0, ms(t.Sub(t1))) }
	deadline := t1.Add(repairLimit)
	for {
		time.Sleep(50 * time.Millisecond)
		var restored time.Time
		if at, took, ok := restoredLine(h.weft.LogPath(), t0); ok {
			restored = at
			s.RestoredMs, s.TookMs = since(at), took
		}
		probes := readProbes(probeLog)
		var lastFail time.Time
		s.Failed = 0
		for _, p := range probes {
			if !p.ok && !p.start.Before(t0) {
				s.Failed++
				lastFail = p.start
			}
		}
		s.Interrupted = s.Failed > 0
		s.TrafficMs = -1
		okAfterRestore := false
		for _, p := range probes {
			if !p.ok || p.start.Before(t0) || (!lastFail.IsZero() && !p.start.After(lastFail)) {
				continue
			}
			if s.TrafficMs < 0 {
				s.TrafficMs = since(p.end)
			}
			if !restored.IsZero() && p.start.After(restored) {
				okAfterRestore = true
			}
		}
		if okAfterRestore || time.Now().After(deadline) {
			return s, nil
		}
	}
}

var (
	logTimeRe = regexp.MustCompile(`^time=(\S+)`)
	logTookRe = regexp.MustCompile(` took=(\S+)`)
)

// restoredLine finds weft's first "kernel state restored" line logged at or
// after since: its time and its took in ms.
func restoredLine(path string, since time.Time) (time.Time, float64, bool) {
	f, err := os.Open(path)
	if err != nil {
		return time.Time{}, 0, false
	}
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	floor := since.Truncate(time.Millisecond)
	for sc.Scan() {
		l := sc.Text()
		if !strings.Contains(l, `msg="weft's kernel state restored"`) {
			continue
		}
		m := logTimeRe.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, m[1])
		if err != nil || at.Before(floor) {
			continue
		}
		took := -1.0
		if m := logTookRe.FindStringSubmatch(l); m != nil {
			if d, err := time.ParseDuration(m[1]); err == nil {
				took = ms(d)
			}
		}
		return at, took, true
	}
	return time.Time{}, 0, false
}

type probe struct {
	start, end time.Time
	ok         bool
}

// readProbes parses tcp-probe's output: "START_NS END_NS 1|0" per connect.
func readProbes(path string) []probe {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var out []probe
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) != 3 {
			continue
		}
		a, err1 := strconv.ParseInt(f[0], 10, 64)
		z, err2 := strconv.ParseInt(f[1], 10, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		out = append(out, probe{start: time.Unix(0, a), end: time.Unix(0, z), ok: f[2] == "1"})
	}
	return out
}

// tcpProbe connects to addr every interval (each connect bounded by
// timeout, a new connection each time) and prints one line per connect:
// start and end (Unix ns) and 1 or 0. It runs until killed.
func tcpProbe(args []string) error {
	fs := flag.NewFlagSet("tcp-probe", flag.ExitOnError)
	addr := fs.String("addr", "", "server address")
	every := fs.Duration("interval", 20*time.Millisecond, "time between connects")
	timeout := fs.Duration("timeout", 100*time.Millisecond, "connect timeout")
	_ = fs.Parse(args)
	if *addr == "" {
		return errors.New("tcp-probe: -addr is required")
	}
	for {
		start := time.Now()
		c, err := net.DialTimeout("tcp", *addr, *timeout)
		end := time.Now()
		ok := 0
		if err == nil {
			ok = 1
			_ = c.Close()
		}
		if _, err := fmt.Fprintf(os.Stdout, "%d %d %d\n", start.UnixNano(), end.UnixNano(), ok); err != nil {
			return err
		}
		time.Sleep(*every)
	}
}
