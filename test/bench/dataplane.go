//go:build bench

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/weftnet/weft/test/testhost"
)

// dataResult: per target and round, iperf3 TCP throughput (Gbit/s), its
// retransmits, and the ping-pong's stats.
type dataResult struct {
	Rounds     int
	Seconds    int // iperf3 -t
	RRSeconds  float64
	RRSize     int
	Targets    []string
	Tput       map[string][]float64
	Retrans    map[string][]float64
	SenderCPU  map[string][]float64 // iperf3's host_total CPU %
	RR         map[string][]rrStats
	MTU        map[string]int
	BridgeNF   map[string]string // bridge-nf-call-iptables where the bridge is
	Topologies map[string]string
	// Profiles: perf during one extra ping-pong run, by target.
	Profiles    map[string]profile `json:",omitempty"`
	ProfileNote string             `json:",omitempty"`
}

// target is one data-plane topology: a client and a server network
// namespace (paths for nsenter --net=) and the server's address.
type target struct {
	name               string
	about              string
	serverNS, clientNS string
	serverIP           string
	bridgeNS           string // where the bridge is, if any (nsenter --net= path)
}

// targetBuilder makes a target and returns its teardown. The macvlan and
// vxlan modes add their builders here as they land (weft macvlan vs Docker's
// macvlan vs the underlay; weft vxlan vs Docker's overlay vs the underlay,
// across dockerd hosts in namespaces); report.go compares every target with
// the ones named in dataBaselines.
type targetBuilder func(h *dockerHost) (target, func() error, error)

var targetBuilders = []targetBuilder{
	containerPair("weft", "dpw", "10.203.0.0/24", []string{"-d", "weft", "--ipam-driver", "weft"},
		"two containers on one weft bridge network"),
	containerPair("docker bridge", "dpd", "10.204.0.0/24", []string{"-d", "bridge"},
		"two containers on one user-defined Docker bridge network"),
	bareBridge,
	bareVeth,
}

// containerPair puts a server and a client container on a new network.
func containerPair(name, prefix, subnet string, driverArgs []string, about string) targetBuilder {
	return func(h *dockerHost) (target, func() error, error) {
		args := append(append([]string{"network", "create"}, driverArgs...), "--subnet", subnet, prefix)
		if _, err := h.D(args...); err != nil {
			return target{name: name}, nil, err
		}
		t, td, err := pairOn(h, name, prefix, about)
		return t, func() error {
			err := td()
			_, err2 := h.D("network", "rm", prefix)
			return errors.Join(err, err2)
		}, err
	}
}

func pairOn(h *dockerHost, name, network, about string) (target, func() error, error) {
	t := target{name: name, about: about, bridgeNS: "/var/run/netns/" + h.NetNS}
	ctrs := []string{network + "-s", network + "-c"}
	teardown := func() error {
		_, err := h.D("rm", "-f", ctrs[0], ctrs[1])
		return err
	}
	var pids [2]int
	for i, c := range ctrs {
		if _, err := h.D("run", "-d", "--name", c, "--network", network, "--stop-timeout", "1", image, "sleep", "86400"); err != nil {
			return t, teardown, err
		}
		pid, ip, err := h.containerNet(c, network)
		if err != nil {
			return t, teardown, err
		}
		pids[i] = pid
		if i == 0 {
			t.serverIP = ip
		}
	}
	t.serverNS = "/proc/" + strconv.Itoa(pids[0]) + "/ns/net"
	t.clientNS = "/proc/" + strconv.Itoa(pids[1]) + "/ns/net"
	return t, teardown, nil
}

// bareVeth is the kernel's own ceiling: two namespaces joined by one veth
// pair, no bridge, no netfilter rules.
func bareVeth(_ *dockerHost) (target, func() error, error) {
	a, b := nsPrefix+"va", nsPrefix+"vb"
	t := target{name: "bare veth", about: "two namespaces joined by one veth pair (no bridge, no rules)",
		serverNS: "/var/run/netns/" + a, clientNS: "/var/run/netns/" + b, serverIP: "10.205.0.1"}
	teardown := func() error {
		return errors.Join(testhost.DeleteNetNS(a), testhost.DeleteNetNS(b))
	}
	for _, ns := range []string{a, b} {
		if err := testhost.AddNetNS(ns); err != nil {
			return t, teardown, err
		}
	}
	for _, argv := range [][]string{
		{"ip", "-n", a, "link", "add", "va0", "type", "veth", "peer", "name", "vb0", "netns", b},
		{"ip", "-n", a, "addr", "add", "10.205.0.1/24", "dev", "va0"},
		{"ip", "-n", b, "addr", "add", "10.205.0.2/24", "dev", "vb0"},
		{"ip", "-n", a, "link", "set", "va0", "up"},
		{"ip", "-n", b, "link", "set", "vb0", "up"},
	} {
		if _, err := testhost.RunT(10*time.Second, argv...); err != nil {
			return t, teardown, err
		}
	}
	return t, teardown, nil
}

// bareBridge is a Linux bridge with no rules: two namespaces, each with a
// veth whose other end is a port of a bridge in a third namespace where no
// iptables rule exists. It separates the cost of the bridge hop (which any
// bridge driver pays) from that of the firewall rules.
func bareBridge(_ *dockerHost) (target, func() error, error) {
	br, a, b := nsPrefix+"bbr", nsPrefix+"b1", nsPrefix+"b2"
	t := target{name: "bare bridge", about: "two namespaces on a Linux bridge in a third namespace that has no iptables rules",
		serverNS: "/var/run/netns/" + a, clientNS: "/var/run/netns/" + b, serverIP: "10.208.0.1", bridgeNS: "/var/run/netns/" + br}
	teardown := func() error {
		return errors.Join(testhost.DeleteNetNS(a), testhost.DeleteNetNS(b), testhost.DeleteNetNS(br))
	}
	for _, ns := range []string{br, a, b} {
		if err := testhost.AddNetNS(ns); err != nil {
			return t, teardown, err
		}
	}
	for _, argv := range [][]string{
		{"ip", "-n", br, "link", "add", "br0", "type", "bridge"},
		{"ip", "-n", br, "link", "set", "br0", "up"},
		{"ip", "-n", br, "link", "add", "p1", "type", "veth", "peer", "name", "e1", "netns", a},
		{"ip", "-n", br, "link", "add", "p2", "type", "veth", "peer", "name", "e2", "netns", b},
		{"ip", "-n", br, "link", "set", "p1", "master", "br0", "up"},
		{"ip", "-n", br, "link", "set", "p2", "master", "br0", "up"},
		{"ip", "-n", a, "addr", "add", "10.208.0.1/24", "dev", "e1"},
		{"ip", "-n", b, "addr", "add", "10.208.0.2/24", "dev", "e2"},
		{"ip", "-n", a, "link", "set", "e1", "up"},
		{"ip", "-n", b, "link", "set", "e2", "up"},
	} {
		if _, err := testhost.RunT(10*time.Second, argv...); err != nil {
			return t, teardown, err
		}
	}
	return t, teardown, nil
}

// bridgeNFCall reads net.bridge.bridge-nf-call-iptables in a namespace: 1
// means bridged IPv4 frames traverse iptables (br_netfilter).
func bridgeNFCall(ns string) string {
	out, err := testhost.RunT(10*time.Second, "nsenter", "--net="+ns, "--", "cat", "/proc/sys/net/bridge/bridge-nf-call-iptables")
	if err != nil {
		return "n/a"
	}
	return strings.TrimSpace(out)
}

// dataGoals: weft against these baselines, with the goal (report.go).
var dataGoals = []struct {
	base  string
	limit float64
}{{"docker bridge", 0.98}, {"bare veth", 0.90}}

// ratioPairs are the rows of the data-plane ratio table: a/b.
var ratioPairs = [][2]string{
	{"weft", "docker bridge"},
	{"weft", "bare veth"},
	{"docker bridge", "bare veth"},
	{"bare bridge", "bare veth"},
	{"weft", "bare bridge"},
	{"docker bridge", "bare bridge"},
}

var mtuRe = regexp.MustCompile(`^\d+: ([^:@]+)[^ ]*: .* mtu (\d+)`)

// linkMTU is the MTU of the first non-loopback link in a namespace.
func linkMTU(ns string) int {
	out, err := testhost.RunT(10*time.Second, "nsenter", "--net="+ns, "--", "ip", "-o", "link", "show")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(out, "\n") {
		if m := mtuRe.FindStringSubmatch(l); m != nil && m[1] != "lo" {
			v, _ := strconv.Atoi(m[2])
			return v
		}
	}
	return 0
}

// iperfOut is the part of iperf3 -J's output the harness reads.
type iperfOut struct {
	End struct {
		SumSent struct {
			Retransmits float64 `json:"retransmits"`
		} `json:"sum_sent"`
		SumReceived struct {
			BitsPerSecond float64 `json:"bits_per_second"`
		} `json:"sum_received"`
		CPU struct {
			HostTotal float64 `json:"host_total"`
		} `json:"cpu_utilization_percent"`
	} `json:"end"`
	Error string `json:"error"`
}

func benchDataplane(ctx context.Context, h *dockerHost) (*dataResult, error) {
	c := dpConfig{rounds: 9, secs: 6, rrSecs: 3, omit: 1, profile: []string{"weft", "docker bridge"}}
	if cfg.quick {
		c = dpConfig{rounds: 2, secs: 1, rrSecs: 1, profile: []string{"weft", "docker bridge"}}
	}
	return measureDataplane(ctx, h, targetBuilders, c, "dataplane")
}

// dpConfig: rounds, iperf3 seconds (-t) and omitted seconds (-O), ping-pong
// seconds.
type dpConfig struct {
	rounds, secs, omit int
	rrSecs             float64
	profile            []string // targets to profile during a ping-pong run
}

// profileRR runs the ping-pong on t under `perf record -a` and keeps the
// hottest symbols of the ping-pong processes (the harness binary's name).
func profileRR(ctx context.Context, t target, secs float64, size int, tag string) (profile, error) {
	pr := profile{Cycles: 1}
	perf, err := exec.LookPath("perf")
	if err != nil {
		return pr, errors.New("perf not found (apt-get install linux-perf)")
	}
	slug := strings.ReplaceAll(t.name, " ", "-")
	data := filepath.Join(cfg.dir, tag, slug+"-perf.data")
	rec, err := testhost.StartProc("perf", filepath.Join(cfg.dir, tag, slug+"-perf.log"), "", perf, "record", "-a", "-e", "cpu-clock", "-F", "1999", "-g", "-o", data)
	if err != nil {
		return pr, err
	}
	time.Sleep(300 * time.Millisecond)
	ctx2, cancel := context.WithTimeout(ctx, time.Duration(secs+30)*time.Second)
	_, rerr := testhost.Run(ctx2, "nsenter", "--net="+t.clientNS, "--", cfg.selfBin, "rr-client",
		"-addr", t.serverIP+":7000", "-duration", fmt.Sprintf("%gs", secs), "-size", strconv.Itoa(size))
	cancel()
	_ = rec.Signal(syscall.SIGINT)
	if err := rec.Wait(30 * time.Second); err != nil {
		_ = rec.Kill()
	}
	if rerr != nil {
		return pr, rerr
	}
	pr.PerfAvailable = true
	comm := []string{"--comm", filepath.Base(cfg.selfBin)}
	pr.Top, pr.PerfSamples = perfTop(perf, data, 15, comm...)
	pr.NetfilterPct = netfilterShare(perf, data, comm...)
	return pr, nil
}

// measureDataplane sets up the targets, starts an iperf3 and a ping-pong
// server in each, and measures them all in rotating order, round by round.
func measureDataplane(ctx context.Context, h *dockerHost, builders []targetBuilder, c dpConfig, tag string) (res *dataResult, err error) {
	rounds, secs, rrSecs, omit := c.rounds, c.secs, c.rrSecs, c.omit
	res = &dataResult{Rounds: rounds, Seconds: secs, RRSeconds: rrSecs, RRSize: 64,
		Tput: map[string][]float64{}, Retrans: map[string][]float64{}, SenderCPU: map[string][]float64{},
		RR: map[string][]rrStats{}, MTU: map[string]int{}, BridgeNF: map[string]string{}, Topologies: map[string]string{}}
	var targets []target
	var teardowns []func() error
	var servers []*testhost.Proc
	defer func() {
		for _, s := range servers {
			_ = s.Kill()
		}
		for _, td := range teardowns {
			if td != nil {
				err = errors.Join(err, td())
			}
		}
	}()
	for _, b := range builders {
		t, td, err := b(h)
		teardowns = append(teardowns, td)
		if err != nil {
			return nil, fmt.Errorf("setting up %s: %w", t.name, err)
		}
		targets = append(targets, t)
		res.Targets = append(res.Targets, t.name)
		res.Topologies[t.name] = t.about
		res.MTU[t.name] = linkMTU(t.serverNS)
		if t.bridgeNS != "" {
			res.BridgeNF[t.name] = bridgeNFCall(t.bridgeNS)
		}
		dir := filepath.Join(cfg.dir, tag)
		_ = os.MkdirAll(dir, 0o755)
		slug := strings.ReplaceAll(t.name, " ", "-")
		for _, argv := range [][]string{
			{"nsenter", "--net=" + t.serverNS, "--", "iperf3", "-s", "-p", "5201"},
			{"nsenter", "--net=" + t.serverNS, "--", cfg.selfBin, "rr-server", "-addr", ":7000", "-size", strconv.Itoa(res.RRSize)},
		} {
			p, err := testhost.StartProc(argv[3], filepath.Join(dir, slug+"-"+filepath.Base(argv[3])+".log"), filepath.Join(dir, slug+"-"+filepath.Base(argv[3])+".pid"), argv...)
			if err != nil {
				return nil, err
			}
			servers = append(servers, p)
		}
	}
	time.Sleep(500 * time.Millisecond) // let the servers listen
	iperf := func(t target) (iperfOut, error) {
		var out iperfOut
		var last error
		for range 5 {
			ctx2, cancel := context.WithTimeout(ctx, time.Duration(secs+omit+30)*time.Second)
			raw, err := testhost.Run(ctx2, "nsenter", "--net="+t.clientNS, "--", "iperf3", "-c", t.serverIP, "-p", "5201",
				"-t", strconv.Itoa(secs), "-O", strconv.Itoa(omit), "-J")
			cancel()
			jerr := json.Unmarshal([]byte(raw), &out)
			if err == nil && jerr == nil && out.Error == "" {
				return out, nil
			}
			last = errors.Join(err, jerr)
			if out.Error != "" {
				last = errors.New(out.Error)
			}
			time.Sleep(500 * time.Millisecond)
		}
		return out, fmt.Errorf("iperf3 to %s (%s): %w", t.serverIP, t.name, last)
	}
	rr := func(t target) (rrStats, error) {
		var st rrStats
		ctx2, cancel := context.WithTimeout(ctx, time.Duration(rrSecs+30)*time.Second)
		defer cancel()
		raw, err := testhost.Run(ctx2, "nsenter", "--net="+t.clientNS, "--", cfg.selfBin, "rr-client",
			"-addr", t.serverIP+":7000", "-duration", fmt.Sprintf("%gs", rrSecs), "-size", strconv.Itoa(res.RRSize))
		if err != nil {
			return st, fmt.Errorf("rr-client to %s (%s): %w", t.serverIP, t.name, err)
		}
		return st, json.Unmarshal([]byte(strings.TrimSpace(raw)), &st)
	}
	for r := range rounds {
		for i := range targets {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			t := targets[(r+i)%len(targets)]
			out, err := iperf(t)
			if err != nil {
				return nil, err
			}
			res.Tput[t.name] = append(res.Tput[t.name], out.End.SumReceived.BitsPerSecond/1e9)
			res.Retrans[t.name] = append(res.Retrans[t.name], out.End.SumSent.Retransmits)
			res.SenderCPU[t.name] = append(res.SenderCPU[t.name], out.End.CPU.HostTotal)
		}
		for i := range targets {
			t := targets[(r+i)%len(targets)]
			st, err := rr(t)
			if err != nil {
				return nil, err
			}
			res.RR[t.name] = append(res.RR[t.name], st)
		}
		logf("%s: %d/%d rounds", tag, r+1, rounds)
	}
	// Where the CPU goes during a ping-pong run, system-wide (the packets'
	// path through the kernel runs in the ping-pong processes' context),
	// after the measured rounds.
	for _, name := range c.profile {
		for _, t := range targets {
			if t.name != name {
				continue
			}
			pr, err := profileRR(ctx, t, rrSecs, res.RRSize, tag)
			if err != nil {
				res.ProfileNote = err.Error()
				continue
			}
			if res.Profiles == nil {
				res.Profiles = map[string]profile{}
			}
			res.Profiles[name] = pr
		}
	}
	return res, nil
}
