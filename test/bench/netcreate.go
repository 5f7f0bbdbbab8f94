//go:build bench

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/weftnet/weft/test/testhost"
)

// netcreateResult: `docker network create` and `rm` times in ms
// (Create[v][i] is the (i+1)th network of variant v), and firewall rule
// counts as networks (Rules) and endpoints (EPRules) are added.
type netcreateResult struct {
	N int
	// Separate: each driver's networks were made in a dockerd of its own
	// (two docker hosts side by side), so that neither driver's rules
	// slow the other's creates: dockerd runs iptables for every network
	// create, whatever the driver. False in older runs (one dockerd).
	Separate bool `json:",omitempty"`
	// Create[v][i] is the time of the CreateAt[i]-th network of variant v
	// (1-based); without CreateAt (older runs), of the (i+1)th. Only the
	// creates in a window of Window networks around the reported ones are
	// timed, one at a time; the others were made Workers at a time
	// (CreateFillSecs of wall time in all).
	Create         map[string][]float64
	CreateAt       []int   `json:",omitempty"`
	Window         int     `json:",omitempty"`
	Workers        int     `json:",omitempty"`
	CreateFillSecs float64 `json:",omitempty"`
	// WeftCalls[i] is weft's own time, in ms by request path, for the
	// weft create of CreateAt[i]: the handler times weft's debug request log
	// reports ("request ... took=") for the calls dockerd made during that
	// `docker network create` (RequestPool, RequestAddress for the gateway,
	// CreateNetwork, ...). Empty unless weft ran at -log-level debug
	// (WeftCallsNote then says why).
	WeftCalls     []map[string]float64 `json:",omitempty"`
	WeftCallsNote string               `json:",omitempty"`
	// Remove: `network rm` of the first networks, one at a time with all the
	// others in place; the other RemoveRest networks went in parallel
	// batches in RemoveRestSecs.
	Remove         map[string][]float64
	RemoveRest     int     `json:",omitempty"`
	RemoveRestSecs float64 `json:",omitempty"`
	Rules          []rulePoint
	EPRules        []rulePoint
	// Probe: how long one `iptables -C` (the check go-iptables and dockerd
	// run before most rule changes) takes as the rule set grows.
	Probe []probePoint
	// Firewall: the design weft chose at start ("fixed": ipset in the
	// kernel; "per-network"; "" unknown).
	Firewall string `json:",omitempty"`
	// Execs: iptables processes started for one more network create at the
	// end (counted with strace), by variant: weft's for a weft create,
	// dockerd's for a Docker bridge create.
	// The fewest of 3 traced creates (ExecsEach: every attempt's count).
	Execs     map[string]int            `json:",omitempty"`
	ExecKinds map[string]map[string]int `json:",omitempty"`
	ExecsEach map[string][]int          `json:",omitempty"`
	ExecsNote string                    `json:",omitempty"`
	// EngineExecs: the iptables processes dockerd itself started during
	// the weft create Execs["weft"] counts (its DOCKER-USER rule, which it
	// checks on every network create, any driver), and their kinds.
	EngineExecs     int            `json:",omitempty"`
	EngineExecKinds map[string]int `json:",omitempty"`
	// Scale: the data plane with all N+N networks in place; Scale0: the
	// same, measured before the sweep, with no other network.
	Scale     *dataResult `json:",omitempty"`
	ScaleErr  string      `json:",omitempty"`
	Scale0    *dataResult `json:",omitempty"`
	Scale0Err string      `json:",omitempty"`
	// Repair: weft's repair after a flush, with the N networks in place.
	Repair     []repairResult `json:",omitempty"`
	RepairNote string         `json:",omitempty"`
	// A sample of the rules one network adds, for the report.
	WeftRulesOne   []string
	DockerRulesOne []string
}

// createAt is the 1-based network number of each Create sample.
func (nc *netcreateResult) createAt() []int {
	if len(nc.CreateAt) > 0 {
		return nc.CreateAt
	}
	at := make([]int, len(nc.Create["weft"]))
	for i := range at {
		at[i] = i + 1
	}
	return at
}

// networks is the number of networks of each driver the sweep made.
func (nc *netcreateResult) networks() int {
	if nc.N > 0 {
		return nc.N
	}
	return len(nc.Create["weft"])
}

type probePoint struct {
	N     int
	Rules int     // all -A lines (weft's host when Separate)
	Ms    float64 // median of 3 runs of iptables -C via nsenter (weft's host when Separate)
	// The same in Docker's host (Separate runs only).
	RulesDocker int     `json:",omitempty"`
	MsDocker    float64 `json:",omitempty"`
}

// probeIptables times `iptables -t filter -C FORWARD -j DOCKER-USER` in the
// host's namespace: the check dockerd itself runs for every network create
// (moby libnetwork/firewall_linux.go, arrangeUserFilterRule), and the rule
// exists on every docker host. Each run parses the whole rule set.
func probeIptables(h *dockerHost) float64 {
	var t []float64
	for range 3 {
		start := time.Now()
		_, _ = testhost.RunT(30*time.Second, append(h.InNet(), "iptables", "-t", "filter", "-C", "FORWARD", "-j", "DOCKER-USER")...)
		t = append(t, ms(time.Since(start)))
	}
	return median(t)
}

// countExecs counts, by program and operation ("iptables -C", ...), the
// iptables processes each of pids (and its children) starts while f runs,
// with one strace per pid: only the execs stamped between f's start and
// end count. counts[i] is pids[i]'s.
func countExecs(pids []int, f func() error) (counts []map[string]int, err error) {
	var outs []string
	var procs []*testhost.Proc
	defer func() {
		for _, p := range procs {
			_ = p.Signal(syscall.SIGINT)
			if werr := p.Wait(10 * time.Second); werr != nil {
				_ = p.Kill()
			}
		}
	}()
	for _, pid := range pids {
		out := filepath.Join(cfg.dir, fmt.Sprintf("strace-%d.txt", pid))
		_ = os.Remove(out)
		p, err := testhost.StartProc("strace", out+".log", "", "strace", "-f", "-qq", "-ttt", "-s", "64", "-e", "trace=execve", "-o", out, "-p", strconv.Itoa(pid))
		if err != nil {
			return nil, err
		}
		procs, outs = append(procs, p), append(outs, out)
	}
	time.Sleep(500 * time.Millisecond) // attached
	t0 := time.Now()
	ferr := f()
	t1 := time.Now()
	time.Sleep(200 * time.Millisecond)
	for _, p := range procs {
		_ = p.Signal(syscall.SIGINT)
		if err := p.Wait(10 * time.Second); err != nil {
			_ = p.Kill()
		}
	}
	procs = nil
	if ferr != nil {
		return nil, ferr
	}
	lo, hi := float64(t0.UnixMicro())/1e6, float64(t1.UnixMicro())/1e6
	for _, out := range outs {
		b, err := os.ReadFile(out)
		if err != nil {
			return nil, err
		}
		c := map[string]int{}
		for _, l := range strings.Split(string(b), "\n") {
			if at := straceTime(l); at < lo || at > hi {
				continue
			}
			if k := execKind(l); k != "" {
				c[k]++
			}
		}
		counts = append(counts, c)
	}
	return counts, nil
}

// total is the number of processes a countExecs map counts.
func total(c map[string]int) int {
	n := 0
	for _, k := range c {
		n += k
	}
	return n
}

// straceTime is the -ttt timestamp of an strace -f line ("PID SECS.USECS
// execve(..."), or -1.
func straceTime(line string) float64 {
	f := strings.Fields(line)
	for _, x := range f[:min(2, len(f))] {
		if strings.Contains(x, ".") {
			if v, err := strconv.ParseFloat(x, 64); err == nil {
				return v
			}
		}
	}
	return -1
}

var execRe = regexp.MustCompile(`execve\("([^"]*tables[^"]*)", \[(.*?)\]`)

// execKind turns an strace execve line into "iptables -C" (program and the
// first command option), or "" if it is not an iptables exec.
func execKind(line string) string {
	if strings.Contains(line, "ENOENT") {
		return ""
	}
	m := execRe.FindStringSubmatch(line)
	if m == nil {
		return ""
	}
	prog := filepath.Base(m[1])
	for _, a := range strings.Split(m[2], ", ") {
		a = strings.Trim(a, `"`)
		switch a {
		case "-A", "-C", "-D", "-I", "-N", "-X", "-F", "-S", "-L", "-P", "-R", "-E", "-Z", "--version":
			return prog + " " + a
		}
	}
	return prog
}

// rulePoint counts iptables rules (-A lines of iptables-save) by owner when
// N networks (or endpoints) of each variant exist.
type rulePoint struct {
	N                   int
	Weft, Docker, Other int
}

// ruleOwner attributes an iptables-save rule: weft's rules live in WEFT-*
// chains or jump to them; Docker's mention a DOCKER* chain or a Docker
// bridge (docker0, br-<id>), which covers the per-bridge rules dockerd puts
// in the built-in FORWARD and POSTROUTING chains.
func ruleOwner(rule string) string {
	switch {
	case strings.Contains(rule, "WEFT"):
		return "weft"
	case strings.Contains(rule, "DOCKER"), strings.Contains(rule, "docker0"), strings.Contains(rule, " br-"):
		return "docker"
	}
	return "other"
}

func countRules(save string, n int) rulePoint {
	p := rulePoint{N: n}
	for _, l := range strings.Split(save, "\n") {
		if !strings.HasPrefix(l, "-A ") {
			continue
		}
		switch ruleOwner(l) {
		case "weft":
			p.Weft++
		case "docker":
			p.Docker++
		default:
			p.Other++
		}
	}
	return p
}

func rulesSet(save string) map[string]bool {
	m := map[string]bool{}
	for _, l := range strings.Split(save, "\n") {
		if strings.HasPrefix(l, "-A ") {
			m[l] = true
		}
	}
	return m
}

// nthSubnet is the i-th /24 of base (a /14 holds 1024).
func nthSubnet(base string, i int) string {
	a := netip.MustParseAddr(base).As4()
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	v += uint32(i) << 8
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}).String() + "/24"
}

var netVariants = []struct {
	name, prefix, base string
	args               []string
}{
	{"weft", "bw", "10.64.0.0", []string{"-d", "weft", "--ipam-driver", "weft"}},
	{"docker bridge", "bd", "10.72.0.0", []string{"-d", "bridge"}},
}

// maxNetworks: the sweep's /24s come from a /14 per driver (1024), less the
// strace, scale and repair networks' (indices n, n+1, n+2).
const maxNetworks = 1020

// netName is the sweep's i-th network (0-based) of a variant.
func netName(prefix string, i int) string { return fmt.Sprintf("%s-%04d", prefix, i) }

// windowRange is the 0-based range [lo, hi) of the w networks around the
// k-th (1-based) of n: the samples behind the figure "at the k-th network".
func windowRange(n, k, w int) (lo, hi int) {
	c := k - 1
	lo = max(0, c-w/2)
	hi = min(n, lo+w)
	lo = max(0, hi-w)
	return lo, hi
}

// createWindow is the number of creates behind each reported figure.
func createWindow(n int) int {
	if n < 40 {
		return max(2, n/4)
	}
	return 10
}

// timedCenters are the networks (1-based) around which creates are timed
// one at a time: all of them up to 100 networks (nil), else the 1st and
// every tenth of n (so n/2 and n are among them).
func timedCenters(n int) []int {
	if n <= 100 {
		return nil
	}
	cs := []int{1}
	for k := 1; k <= 10; k++ {
		cs = append(cs, k*n/10)
	}
	return cs
}

// workers is how many docker commands the untimed parts run at once.
func workers() int { return max(2, min(8, 2*runtime.NumCPU())) }

// parallel runs jobs on w workers and joins their errors (at most 5 shown).
func parallel(w int, jobs []func() error) error {
	ch := make(chan func() error)
	var mu sync.Mutex
	var errs []error
	nerr := 0
	var wg sync.WaitGroup
	for range min(w, len(jobs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range ch {
				if err := j(); err != nil {
					mu.Lock()
					if nerr++; nerr <= 5 {
						errs = append(errs, err)
					}
					mu.Unlock()
				}
			}
		}()
	}
	for _, j := range jobs {
		ch <- j
	}
	close(ch)
	wg.Wait()
	if nerr > 5 {
		errs = append(errs, fmt.Errorf("and %d more errors", nerr-5))
	}
	return errors.Join(errs...)
}

// createArgs is the docker command that creates the variant's i-th network.
func createArgs(vi, i int) []string {
	v := netVariants[vi]
	return append(append([]string{"network", "create"}, v.args...), "--subnet", nthSubnet(v.base, i), netName(v.prefix, i))
}

// createUntimed creates a network outside the timed samples; a create that
// fails (concurrent creates in one dockerd) is retried once unless the
// network exists after all.
func createUntimed(h *dockerHost, vi, i int) error {
	args := createArgs(vi, i)
	_, err := h.D(args...)
	if err == nil {
		return nil
	}
	if _, ierr := h.D("network", "inspect", "--format", "{{.Name}}", args[len(args)-1]); ierr == nil {
		return nil
	}
	time.Sleep(200 * time.Millisecond)
	if _, err2 := h.D(args...); err2 != nil {
		return fmt.Errorf("%w (and once more: %v)", err, err2)
	}
	return nil
}

// sweepNetworks lists the host's networks of the sweep (bw-NNNN, bd-NNNN).
func sweepNetworks(h *dockerHost) ([]string, error) {
	out, err := h.D("network", "ls", "--format", "{{.Name}}")
	if err != nil {
		return nil, err
	}
	var names []string
	for _, n := range strings.Fields(out) {
		for _, v := range netVariants {
			if strings.HasPrefix(n, v.prefix+"-") {
				names = append(names, n)
			}
		}
	}
	return names, nil
}

// removeNetworks removes names, several per `docker network rm` and several
// commands at once, then once more one batch at a time whatever is left.
func removeNetworks(h *dockerHost, names []string, what string) error {
	const batch = 10
	var jobs []func() error
	done := 0
	var mu sync.Mutex
	for i := 0; i < len(names); i += batch {
		b := names[i:min(len(names), i+batch)]
		jobs = append(jobs, func() error {
			_, err := h.D(append([]string{"network", "rm"}, b...)...)
			mu.Lock()
			done += len(b)
			if done/200 != (done-len(b))/200 {
				logf("%s: removed %d/%d networks", what, done, len(names))
			}
			mu.Unlock()
			return err
		})
	}
	if parallel(workers(), jobs) == nil {
		return nil
	}
	left, err := sweepNetworks(h)
	if err != nil {
		return err
	}
	var errs []error
	for i := 0; i < len(left); i += batch {
		if _, err := h.D(append([]string{"network", "rm"}, left[i:min(len(left), i+batch)]...)...); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// firewallDesign is the bridge firewall weft chose at start, from its log
// and, failing that, from its ipsets in the host namespace.
func firewallDesign(h *dockerHost) string {
	b, _ := os.ReadFile(h.weft.LogPath())
	switch {
	case strings.Contains(string(b), "firewall: fixed iptables rules"):
		return "fixed"
	case strings.Contains(string(b), "firewall: one set of iptables rules per network"):
		return "per-network"
	}
	if out, err := testhost.RunT(10*time.Second, append(h.InNet(), "ipset", "list", "-n")...); err == nil && strings.Contains(out, "weft-net4") {
		return "fixed"
	}
	return ""
}

// scaleConfig is the data-plane measurement with and without the networks.
func scaleConfig() dpConfig {
	if cfg.quick {
		return dpConfig{rounds: 1, secs: 1, rrSecs: 1, profile: []string{"weft", "docker bridge"}}
	}
	return dpConfig{rounds: 5, secs: 5, rrSecs: 3, omit: 1, profile: []string{"weft", "docker bridge"}}
}

// scaleBuilders: two containers on a new network of each driver, in that
// driver's host, and the bare veth; the networks use the sweep's /24
// number n+1 and are removed with the containers.
func scaleBuilders(hs netHosts, n int, others string) []targetBuilder {
	var bs []targetBuilder
	for vi, v := range netVariants {
		bs = append(bs, onHost(hs.of(vi), containerPair(v.name, v.prefix+"-scale", nthSubnet(v.base, n+1), netVariants[vi].args,
			fmt.Sprintf("two containers on a new %s network, %s", v.name, others))))
	}
	return append(bs, bareVeth)
}

// netHosts are the docker hosts of the sweep, one per netVariants entry:
// each driver's networks live in a dockerd of its own, as on a host that
// uses one driver. In one shared dockerd, Docker's 8 rules per network
// would slow every later create of either driver, because dockerd runs
// iptables (reading the whole rule set) for every network create,
// whatever the driver.
type netHosts []*dockerHost

// of is variant vi's host.
func (hs netHosts) of(vi int) *dockerHost { return hs[vi] }

// weft is weft's host (netVariants[0]).
func (hs netHosts) weft() *dockerHost { return hs[0] }

// saves dumps each host's IPv4 rules.
func (hs netHosts) saves() ([]string, error) {
	var out []string
	for _, h := range hs {
		s, err := h.iptablesSave()
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// rules counts weft's rules in weft's host, Docker's in Docker's, and the
// others in both.
func (hs netHosts) rules(saves []string, n int) rulePoint {
	p := rulePoint{N: n}
	for i, s := range saves {
		c := countRules(s, n)
		if netVariants[i].name == "weft" {
			p.Weft += c.Weft
		} else {
			p.Docker += c.Docker
		}
		p.Other += c.Other
	}
	return p
}

// probe times the iptables check in each host.
func (hs netHosts) probe(saves []string, n int) probePoint {
	pt := probePoint{N: n, Rules: len(rulesSet(saves[0])), Ms: probeIptables(hs[0])}
	if len(hs) > 1 {
		pt.RulesDocker, pt.MsDocker = len(rulesSet(saves[1])), probeIptables(hs[1])
	}
	return pt
}

// onHost runs builder b on host h, whatever host the caller passes.
func onHost(h *dockerHost, b targetBuilder) targetBuilder {
	return func(*dockerHost) (target, func() error, error) { return b(h) }
}

func benchNetCreate(ctx context.Context, hs netHosts) (*netcreateResult, error) {
	n, every, endpoints := 1000, 10, 10
	if cfg.quick {
		n, every, endpoints = 20, 5, 2
	}
	if cfg.networks > 0 {
		n = cfg.networks
	}
	if n < 2 || n > maxNetworks {
		return nil, fmt.Errorf("netcreate: %d networks: choose 2 to %d", n, maxNetworks)
	}
	if len(hs) != len(netVariants) {
		return nil, fmt.Errorf("netcreate: %d docker hosts for %d drivers", len(hs), len(netVariants))
	}
	hw := hs.weft()
	w := createWindow(n)
	res := &netcreateResult{N: n, Separate: true, Window: w, Workers: workers(), Create: map[string][]float64{}, Remove: map[string][]float64{}}
	res.Firewall = firewallDesign(hw)
	if err := rulesPerEndpoint(hs, res, endpoints); err != nil {
		return res, err
	}

	// The data plane with no network but the measured ones, before the
	// sweep; measured again with all the networks in place below.
	var serr error
	res.Scale0, serr = measureDataplane(ctx, hw, scaleBuilders(hs, n, "no other network"), scaleConfig(), "scale-none")
	if serr != nil {
		res.Scale0Err = serr.Error()
		logf("netcreate: data plane without other networks failed: %v", serr)
	}
	if ctx.Err() != nil {
		return res, ctx.Err()
	}

	saves, err := hs.saves()
	if err != nil {
		return res, err
	}
	res.Rules = append(res.Rules, hs.rules(saves, 0))
	res.Probe = append(res.Probe, hs.probe(saves, 0))
	var before []map[string]bool
	for _, s := range saves {
		before = append(before, rulesSet(s))
	}
	// Whatever happens, remove the sweep's networks.
	swept := false
	defer func() {
		if swept {
			return
		}
		for _, h := range hs {
			if names, err := sweepNetworks(h); err == nil && len(names) > 0 {
				_ = removeNetworks(h, names, "netcreate cleanup")
			}
		}
	}()

	// Which creates are timed: those in a window around each center, one at
	// a time, weft and Docker alternating; the others are created in
	// parallel between the windows (untimed), with nothing else running
	// while a timed create runs.
	timed := make([]bool, n)
	centers := timedCenters(n)
	if centers == nil {
		for i := range timed {
			timed[i] = true
		}
	}
	for _, k := range centers {
		lo, hi := windowRange(n, k, w)
		for i := lo; i < hi; i++ {
			timed[i] = true
		}
	}
	sample := func(k int) ([]string, error) {
		saves, err := hs.saves()
		if err != nil {
			return nil, err
		}
		res.Rules = append(res.Rules, hs.rules(saves, k))
		res.Probe = append(res.Probe, hs.probe(saves, k))
		return saves, nil
	}
	var fillSecs float64
	for i := 0; i < n; {
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
		if !timed[i] {
			// Untimed: up to the next timed network or rule sample.
			j := i
			for j < n && !timed[j] {
				if j++; j%every == 0 {
					break
				}
			}
			var jobs []func() error
			for x := i; x < j; x++ {
				for vi := range netVariants {
					jobs = append(jobs, func() error { return createUntimed(hs.of(vi), vi, x) })
				}
			}
			t0 := time.Now()
			if err := parallel(workers(), jobs); err != nil {
				return res, fmt.Errorf("creating networks %d to %d: %w", i+1, j, err)
			}
			fillSecs += time.Since(t0).Seconds()
			if j < n && timed[j] {
				time.Sleep(500 * time.Millisecond) // let the burst settle before timing
			}
			for x := i + 1; x <= j; x++ {
				if x%50 == 0 {
					logf("netcreate: %d/%d networks of each", x, n)
				}
			}
			i = j
			if i%every == 0 || i == n {
				if _, err := sample(i); err != nil {
					return res, err
				}
			}
			continue
		}
		for j := range netVariants {
			vi := (i + j) % len(netVariants)
			h := hs.of(vi)
			var off int64
			if netVariants[vi].name == "weft" {
				off = testhost.FileSize(h.weft.LogPath())
			}
			d, err := h.timedDocker(createArgs(vi, i)...)
			if err != nil {
				return res, fmt.Errorf("network %d: %w", i+1, err)
			}
			res.Create[netVariants[vi].name] = append(res.Create[netVariants[vi].name], ms(d))
			if netVariants[vi].name == "weft" {
				res.WeftCalls = append(res.WeftCalls, weftCalls(h.weft.LogPath(), off))
			}
		}
		res.CreateAt = append(res.CreateAt, i+1)
		k := i + 1
		if k == 1 || k%every == 0 || k == n {
			saves, err := sample(k)
			if err != nil {
				return res, err
			}
			if k == 1 {
				for hi, s := range saves {
					for r := range rulesSet(s) {
						if before[hi][r] {
							continue
						}
						switch {
						case netVariants[hi].name == "weft" && ruleOwner(r) == "weft":
							res.WeftRulesOne = append(res.WeftRulesOne, r)
						case netVariants[hi].name != "weft" && ruleOwner(r) != "weft":
							res.DockerRulesOne = append(res.DockerRulesOne, r)
						}
					}
				}
			}
		}
		if k%50 == 0 {
			logf("netcreate: %d/%d networks of each", k, n)
		}
		i++
	}
	res.CreateFillSecs = fillSecs
	if !slices.ContainsFunc(res.WeftCalls, func(c map[string]float64) bool { return len(c) > 0 }) {
		res.WeftCalls = nil
		res.WeftCallsNote = fmt.Sprintf("weft ran at log level %q, which does not log its requests: run the harness with -log-level debug for weft's own time per create", cfg.logLevel)
	}
	// How many iptables processes one more create starts, with all the
	// networks in place (strace slows the traced process: not timed): weft's
	// for a weft create, and dockerd's in the same create; dockerd's for a
	// Docker bridge create. weft checks its rules every 2 s
	// (plugin/repair.go), which runs iptables-save whether or not a create
	// is under way: each variant's create is traced 3 times (the network
	// removed in between) and the fewest processes count; every attempt's
	// count is kept.
	res.Execs = map[string]int{}
	res.ExecKinds = map[string]map[string]int{}
	res.ExecsEach = map[string][]int{}
	for vi, v := range netVariants {
		h := hs.of(vi)
		pids := []int{h.Dockerd.PID()}
		if v.name == "weft" {
			pids = []int{h.weft.PID(), h.Dockerd.PID()}
		}
		name := v.prefix + "-strace"
		args := append(append([]string{"network", "create"}, v.args...), "--subnet", nthSubnet(v.base, n), name)
		for range 3 {
			cs, err := countExecs(pids, func() error { _, err := h.D(args...); return err })
			if err != nil {
				res.ExecsNote = err.Error()
				break
			}
			_, _ = h.D("network", "rm", name)
			c := cs[0]
			res.ExecsEach[v.name] = append(res.ExecsEach[v.name], total(c))
			if _, seen := res.ExecKinds[v.name]; !seen || total(c) < res.Execs[v.name] {
				res.Execs[v.name], res.ExecKinds[v.name] = total(c), c
			}
			if len(cs) > 1 && (res.EngineExecKinds == nil || total(cs[1]) < res.EngineExecs) {
				res.EngineExecs, res.EngineExecKinds = total(cs[1]), cs[1]
			}
		}
		if res.ExecsNote != "" {
			break
		}
	}
	// The data plane with all the networks in place: two containers on a
	// network of each driver created now (the newest, as a user's would
	// be), against the bare veth, which no number of networks can affect.
	res.Scale, serr = measureDataplane(ctx, hw, scaleBuilders(hs, n, fmt.Sprintf("with %d other networks of its driver", n)), scaleConfig(), "scale")
	if serr != nil {
		res.ScaleErr = serr.Error()
		logf("netcreate: data plane at scale failed: %v", serr)
	}
	if ctx.Err() != nil {
		return res, ctx.Err()
	}
	// How long weft takes to repair its firewall after a flush, with all the
	// networks in place.
	res.Repair, res.RepairNote = benchRepair(ctx, hw, n)

	// `network rm` timed one at a time for the first w networks (all the
	// others still in place), then the rest in parallel, both hosts at once.
	nt := min(w, n)
	for i := range nt {
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
		for j := range netVariants {
			vi := (i + j) % len(netVariants)
			v := netVariants[vi]
			d, err := hs.of(vi).timedDocker("network", "rm", netName(v.prefix, i))
			if err != nil {
				return res, err
			}
			res.Remove[v.name] = append(res.Remove[v.name], ms(d))
		}
	}
	t0 := time.Now()
	rmErrs := make([]error, len(netVariants))
	var wg sync.WaitGroup
	for vi, v := range netVariants {
		var rest []string
		for i := nt; i < n; i++ {
			rest = append(rest, netName(v.prefix, i))
		}
		res.RemoveRest += len(rest)
		wg.Add(1)
		go func() {
			defer wg.Done()
			rmErrs[vi] = removeNetworks(hs.of(vi), rest, "netcreate "+v.name)
		}()
	}
	wg.Wait()
	res.RemoveRestSecs = time.Since(t0).Seconds()
	if err := errors.Join(rmErrs...); err != nil {
		return res, err
	}
	swept = true
	return res, nil
}

// rulesPerEndpoint counts rules as containers are added to one weft network
// and one Docker bridge network (each in its driver's host), alternately.
func rulesPerEndpoint(hs netHosts, res *netcreateResult, k int) error {
	nets := []struct {
		name, subnet, driver string
		h                    *dockerHost
	}{
		{"epw", "10.206.0.0/24", "weft", hs.of(0)},
		{"epd", "10.207.0.0/24", "bridge", hs.of(1)},
	}
	for _, nw := range nets {
		args := []string{"network", "create", "-d", nw.driver, "--subnet", nw.subnet}
		if nw.driver == "weft" {
			args = append(args, "--ipam-driver", "weft")
		}
		args = append(args, nw.name)
		if _, err := nw.h.D(args...); err != nil {
			return err
		}
	}
	ctrs := map[*dockerHost][]string{}
	defer func() {
		for h, cs := range ctrs {
			_, _ = h.D(append([]string{"rm", "-f"}, cs...)...)
		}
		for _, nw := range nets {
			_, _ = nw.h.D("network", "rm", nw.name)
		}
	}()
	saves, err := hs.saves()
	if err != nil {
		return err
	}
	res.EPRules = append(res.EPRules, hs.rules(saves, 0))
	for i := range k {
		for _, nw := range nets {
			name := fmt.Sprintf("%s-c%02d", nw.name, i)
			if _, err := nw.h.D("run", "-d", "--name", name, "--network", nw.name, "--stop-timeout", "1", image, "sleep", "86400"); err != nil {
				return err
			}
			ctrs[nw.h] = append(ctrs[nw.h], name)
		}
		saves, err := hs.saves()
		if err != nil {
			return err
		}
		res.EPRules = append(res.EPRules, hs.rules(saves, i+1))
	}
	return nil
}

// weftCalls sums, by request path, the handler times ("took=") of the
// requests weft's debug log (slog text) recorded after byte off: a timed
// create runs alone, so these are the calls dockerd made for it. weft
// writes each request's line before its answer leaves, so all of them are
// in the file once the docker command has returned. Nil if the log has
// none (weft not at debug level) or cannot be read.
func weftCalls(path string, off int64) map[string]float64 {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer func() { _ = f.Close() }()
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return nil
	}
	b, err := io.ReadAll(io.LimitReader(f, 16<<20))
	if err != nil {
		return nil
	}
	return parseWeftCalls(string(b))
}

// parseWeftCalls reads the request lines of weft's debug log:
//
//	time=... level=DEBUG msg=request path=/IpamDriver.RequestPool status=200 took=1.47ms
func parseWeftCalls(log string) map[string]float64 {
	var out map[string]float64
	for _, l := range strings.Split(log, "\n") {
		if !strings.Contains(l, " msg=request ") {
			continue
		}
		var path string
		took := time.Duration(-1)
		for _, f := range strings.Fields(l) {
			if v, ok := strings.CutPrefix(f, "path="); ok {
				path = strings.TrimPrefix(v, "/")
			} else if v, ok := strings.CutPrefix(f, "took="); ok {
				if d, err := time.ParseDuration(v); err == nil {
					took = d
				}
			}
		}
		if path == "" || took < 0 {
			continue
		}
		if out == nil {
			out = map[string]float64{}
		}
		out[path] += ms(took)
	}
	return out
}

// weftCallTotal is weft's whole time for one create: the sum over its calls.
func weftCallTotal(c map[string]float64) float64 {
	if len(c) == 0 {
		return math.NaN()
	}
	var t float64
	for _, v := range c {
		t += v
	}
	return t
}

// sweepSize says how many networks the sweep made, for the report: "1000"
// (each driver's in its own dockerd) or "1000+1000" (both in one, older
// runs).
func (nc *netcreateResult) sweepSize() string {
	if nc.Separate {
		return strconv.Itoa(nc.networks())
	}
	return fmt.Sprintf("%d+%d", nc.networks(), nc.networks())
}
