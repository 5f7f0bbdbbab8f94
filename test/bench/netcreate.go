//go:build bench

package main

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// netcreateResult: `docker network create` and `rm` times in ms
// (Create[v][i] is the (i+1)th network of variant v), and firewall rule
// counts as networks (Rules) and endpoints (EPRules) are added.
type netcreateResult struct {
	N       int
	Create  map[string][]float64
	Remove  map[string][]float64
	Rules   []rulePoint
	EPRules []rulePoint
	// Probe: how long one `iptables -C` (the check go-iptables and dockerd
	// run before most rule changes) takes as the rule set grows.
	Probe []probePoint
	// Execs: iptables processes started for one more network create at the
	// end (counted with strace), by variant.
	Execs     map[string]int            `json:",omitempty"`
	ExecKinds map[string]map[string]int `json:",omitempty"`
	ExecsNote string                    `json:",omitempty"`
	// Scale: the data plane measured with all N+N networks in place.
	Scale    *dataResult `json:",omitempty"`
	ScaleErr string      `json:",omitempty"`
	// A sample of the rules one network adds, for the report.
	WeftRulesOne   []string
	DockerRulesOne []string
}

type probePoint struct {
	N     int
	Rules int     // all -A lines
	Ms    float64 // median of 3 runs of iptables -C via nsenter
}

// probeIptables times `iptables -t filter -C FORWARD -j WEFT-FORWARD` in the
// host namespace (the rule exists): each run parses the whole rule set.
func probeIptables(h *dockerHost) float64 {
	var t []float64
	for range 3 {
		start := time.Now()
		_, _ = runT(30*time.Second, append(h.inNet(), "iptables", "-t", "filter", "-C", "FORWARD", "-j", "WEFT-FORWARD")...)
		t = append(t, ms(time.Since(start)))
	}
	return median(t)
}

// countExecs counts, by program and operation ("iptables -C", ...), the
// iptables processes pid (and its children) starts while f runs, with strace.
func countExecs(pid int, f func() error) (map[string]int, error) {
	out := filepath.Join(cfg.dir, fmt.Sprintf("strace-%d.txt", pid))
	p, err := startProc("strace", out+".log", "", "strace", "-f", "-qq", "-s", "64", "-e", "trace=execve", "-o", out, "-p", strconv.Itoa(pid))
	if err != nil {
		return nil, err
	}
	time.Sleep(500 * time.Millisecond) // attached
	ferr := f()
	time.Sleep(200 * time.Millisecond)
	_ = p.cmd.Process.Signal(syscall.SIGINT)
	if err := p.wait(10 * time.Second); err != nil {
		_ = p.kill()
	}
	if ferr != nil {
		return nil, ferr
	}
	b, err := os.ReadFile(out)
	if err != nil {
		return nil, err
	}
	counts := map[string]int{}
	for _, l := range strings.Split(string(b), "\n") {
		if k := execKind(l); k != "" {
			counts[k]++
		}
	}
	return counts, nil
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

func benchNetCreate(ctx context.Context, h *dockerHost) (*netcreateResult, error) {
	n, every, endpoints := 500, 10, 10
	if cfg.quick {
		n, every, endpoints = 20, 5, 2
	}
	res := &netcreateResult{N: n, Create: map[string][]float64{}, Remove: map[string][]float64{}}
	if err := rulesPerEndpoint(h, res, endpoints); err != nil {
		return res, err
	}

	save, err := h.iptablesSave()
	if err != nil {
		return res, err
	}
	res.Rules = append(res.Rules, countRules(save, 0))
	res.Probe = append(res.Probe, probePoint{N: 0, Rules: len(rulesSet(save)), Ms: probeIptables(h)})
	before := rulesSet(save)
	// Whatever happens, remove the networks (timed while all goes well).
	created := map[string]int{}
	defer func() {
		for _, v := range netVariants {
			for i := range created[v.name] {
				_, _ = h.D("network", "rm", fmt.Sprintf("%s-%03d", v.prefix, i))
			}
		}
	}()
	for i := range n {
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
		for j := range netVariants {
			v := netVariants[(i+j)%len(netVariants)]
			args := append(append([]string{"network", "create"}, v.args...), "--subnet", nthSubnet(v.base, i), fmt.Sprintf("%s-%03d", v.prefix, i))
			d, err := h.timedDocker(args...)
			if err != nil {
				return res, fmt.Errorf("network %d: %w", i+1, err)
			}
			created[v.name]++
			res.Create[v.name] = append(res.Create[v.name], ms(d))
		}
		k := i + 1
		if k == 1 || k%every == 0 || k == n {
			save, err := h.iptablesSave()
			if err != nil {
				return res, err
			}
			pt := countRules(save, k)
			res.Rules = append(res.Rules, pt)
			res.Probe = append(res.Probe, probePoint{N: k, Rules: pt.Weft + pt.Docker + pt.Other, Ms: probeIptables(h)})
			if k == 1 {
				for r := range rulesSet(save) {
					if !before[r] {
						if ruleOwner(r) == "weft" {
							res.WeftRulesOne = append(res.WeftRulesOne, r)
						} else {
							res.DockerRulesOne = append(res.DockerRulesOne, r)
						}
					}
				}
			}
		}
		if k%50 == 0 {
			logf("netcreate: %d/%d networks of each", k, n)
		}
	}
	// How many iptables processes one more create starts, with all the
	// networks in place (strace slows the traced process: not timed).
	res.Execs = map[string]int{}
	res.ExecKinds = map[string]map[string]int{}
	for _, v := range netVariants {
		pid := h.weft.pid()
		if v.name != "weft" {
			pid = h.dockerd.pid()
		}
		name := v.prefix + "-strace"
		args := append(append([]string{"network", "create"}, v.args...), "--subnet", nthSubnet(v.base, n), name)
		c, err := countExecs(pid, func() error { _, err := h.D(args...); return err })
		if err != nil {
			res.ExecsNote = err.Error()
			break
		}
		_, _ = h.D("network", "rm", name)
		res.ExecKinds[v.name] = c
		for _, k := range c {
			res.Execs[v.name] += k
		}
	}
	// The data plane with all the networks in place, on the last network of
	// each driver (its rules come last in every chain), against the bare
	// veth, which no number of networks can affect.
	sc := dpConfig{rounds: 5, secs: 5, rrSecs: 3, omit: 1, profile: []string{"weft", "docker bridge"}}
	if cfg.quick {
		sc = dpConfig{rounds: 1, secs: 1, rrSecs: 1, profile: []string{"weft", "docker bridge"}}
	}
	var serr error
	res.Scale, serr = measureDataplane(ctx, h, []targetBuilder{
		containerPairOn("weft", fmt.Sprintf("bw-%03d", n-1), fmt.Sprintf("two containers on the %s weft network", ordinal(n))),
		containerPairOn("docker bridge", fmt.Sprintf("bd-%03d", n-1), fmt.Sprintf("two containers on the %s Docker bridge network", ordinal(n))),
		bareVeth,
	}, sc, "scale")
	if serr != nil {
		res.ScaleErr = serr.Error()
		logf("netcreate: data plane at scale failed: %v", serr)
	}
	for i := range n {
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
		for j := range netVariants {
			v := netVariants[(i+j)%len(netVariants)]
			d, err := h.timedDocker("network", "rm", fmt.Sprintf("%s-%03d", v.prefix, i))
			if err != nil {
				return res, err
			}
			res.Remove[v.name] = append(res.Remove[v.name], ms(d))
		}
		if (i+1)%100 == 0 {
			logf("netcreate: removed %d/%d networks of each", i+1, n)
		}
	}
	created = nil
	return res, nil
}

// rulesPerEndpoint counts rules as containers are added to one weft network
// and one Docker bridge network, alternately.
func rulesPerEndpoint(h *dockerHost, res *netcreateResult, k int) error {
	nets := []struct{ name, subnet, driver string }{
		{"epw", "10.206.0.0/24", "weft"},
		{"epd", "10.207.0.0/24", "bridge"},
	}
	for _, nw := range nets {
		args := []string{"network", "create", "-d", nw.driver, "--subnet", nw.subnet}
		if nw.driver == "weft" {
			args = append(args, "--ipam-driver", "weft")
		}
		args = append(args, nw.name)
		if _, err := h.D(args...); err != nil {
			return err
		}
	}
	var ctrs []string
	defer func() {
		if len(ctrs) > 0 {
			_, _ = h.D(append([]string{"rm", "-f"}, ctrs...)...)
		}
		for _, nw := range nets {
			_, _ = h.D("network", "rm", nw.name)
		}
	}()
	save, err := h.iptablesSave()
	if err != nil {
		return err
	}
	res.EPRules = append(res.EPRules, countRules(save, 0))
	for i := range k {
		for _, nw := range nets {
			name := fmt.Sprintf("%s-c%02d", nw.name, i)
			if _, err := h.D("run", "-d", "--name", name, "--network", nw.name, "--stop-timeout", "1", image, "sleep", "86400"); err != nil {
				return err
			}
			ctrs = append(ctrs, name)
		}
		save, err := h.iptablesSave()
		if err != nil {
			return err
		}
		res.EPRules = append(res.EPRules, countRules(save, i+1))
	}
	return nil
}
