//go:build bench

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/weftnet/weft/test/testhost"
)

// The multihost section: container to container across two docker hosts
// (namespaces weft-bench-mh1 and weft-bench-mh2, each with its own dockerd
// and weft) joined by an underlay, a Linux bridge in a namespace of its own
// (weft-bench-mhlan, testhost.Switch) at MTU 1500. Three targets over that
// same underlay, measured like the dataplane section (measureDataplane:
// iperf3 and the ping-pong, interleaved rounds):
//
//   - weft vxlan: one weft vxlan network created on both hosts, the wefts
//     coordinated by a single etcd member the harness starts (unix socket
//     under its work directory), a container on each host;
//   - docker overlay: Docker's own overlay network in a swarm of the same
//     two hosts (swarm init on host 1, join on host 2, an --attachable
//     overlay network, a container on each host);
//   - underlay: host namespace to host namespace over the bridge, the
//     ceiling.
//
// Each driver picks its own MTU on the 1500-byte underlay.

const (
	mhLANMTU  = 1500
	mhLANPort = "mhu0" // each host's underlay link (its NIC)
	mhVxNet   = "mhvx"
	mhVxSub   = "10.211.0.0/24"
	mhOvNet   = "mhov"
	mhOvSub   = "10.212.0.0/24"
	etcdBin   = "/usr/bin/etcd"

	mhWeft     = "weft vxlan"
	mhOverlay  = "docker overlay"
	mhUnderlay = "underlay"
)

// mhUnderAddr is host i's (1-based) underlay address: RFC 2544's
// benchmarking range, never routed anywhere.
func mhUnderAddr(i int) string { return fmt.Sprintf("198.18.0.%d", 10+i) }

// multiResult is the multihost section's raw data.
type multiResult struct {
	Data        *dataResult `json:",omitempty"`
	UnderlayMTU int
	// OverlayNote says why Docker's overlay was not measured ("" if it was).
	OverlayNote string `json:",omitempty"`
	// Swarm: how the swarm came up (the commands, docker info), and what
	// dockerd logged about IPVS or ingress while it did.
	Swarm     []string `json:",omitempty"`
	DockerLog []string `json:",omitempty"`
	// Setup: the underlay and where the overlay note came from.
	Setup []string `json:",omitempty"`
}

// etcdProc is the single etcd member the section starts.
type etcdProc struct {
	p   *testhost.Proc
	url string // unix:///abs/path:2379
}

// startEtcd starts one etcd member whose listeners are unix sockets in dir
// (etcd takes unix://NAME:PORT relative to its working directory, hence
// env -C), and waits until it serves.
func startEtcd(dir string) (*etcdProc, error) {
	if _, err := os.Stat(etcdBin); err != nil {
		return nil, fmt.Errorf("etcd not installed (%s; scripts/bench.sh installs etcd-server): %w", etcdBin, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	argv := []string{"env", "-C", dir, etcdBin,
		"--name", "m0",
		"--data-dir", filepath.Join(dir, "data"),
		"--listen-client-urls", "unix://c:2379",
		"--advertise-client-urls", "unix://c:2379",
		"--listen-peer-urls", "unix://p:2380",
		"--initial-advertise-peer-urls", "unix://p:2380",
		"--initial-cluster", "m0=unix://p:2380",
		"--initial-cluster-state", "new",
		"--logger", "zap", "--log-outputs", "stderr",
	}
	p, err := testhost.StartProc("etcd", filepath.Join(dir, "etcd.log"), filepath.Join(dir, "etcd.pid"), argv...)
	if err != nil {
		return nil, err
	}
	e := &etcdProc{p: p, url: "unix://" + filepath.Join(dir, "c:2379")}
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{e.url}, DialTimeout: time.Second, Logger: zap.NewNop()})
	if err != nil {
		return e, err
	}
	defer func() { _ = cli.Close() }()
	return e, testhost.Poll(60*time.Second, func() error {
		if !p.Alive() {
			return testhost.RetryStop(fmt.Errorf("etcd exited: %v: %s", p.ExitErr(), testhost.Tail(p.LogPath(), 20)))
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := cli.Get(ctx, "/weft-bench-ready")
		return err
	})
}

func (e *etcdProc) stop() error {
	if e == nil {
		return nil
	}
	return e.p.Stop(10 * time.Second)
}

func benchMultihost(ctx context.Context) (res *multiResult, err error) {
	res = &multiResult{UnderlayMTU: mhLANMTU}
	c := dpConfig{rounds: 9, secs: 6, rrSecs: 3, omit: 1, profile: []string{mhWeft, mhOverlay}}
	if cfg.quick {
		c = dpConfig{rounds: 2, secs: 1, rrSecs: 1}
	}
	var cleanups []func() error // run last first
	defer func() {
		for i := len(cleanups) - 1; i >= 0; i-- {
			err = errors.Join(err, cleanups[i]())
		}
	}()

	logf("multihost: starting etcd (one member, unix socket under %s)", cfg.dir)
	etcd, err := startEtcd(filepath.Join(cfg.dir, "mh-etcd"))
	cleanups = append(cleanups, etcd.stop)
	if err != nil {
		return res, fmt.Errorf("starting etcd: %w", err)
	}
	sw, err := testhost.NewSwitch(nsPrefix+"mhlan", "lan0", mhLANMTU, "")
	cleanups = append(cleanups, sw.Remove)
	if err != nil {
		return res, err
	}
	var hosts [2]*dockerHost
	for i := range hosts {
		n := i + 1
		addr := mhUnderAddr(n)
		opt := hostOptions{
			weftEnv: []string{"WEFT_STORE=etcd://" + etcd.url, "WEFT_VTEP_ADDR=" + addr},
			netReady: func(ns string) error {
				if err := sw.Attach(fmt.Sprintf("port%d", n), ns, mhLANPort); err != nil {
					return err
				}
				_, err := testhost.RunT(10*time.Second, "ip", "-n", ns, "addr", "add", addr+"/24", "dev", mhLANPort)
				return err
			},
		}
		logf("multihost: starting docker host mh%d (netns %smh%d, underlay %s, own dockerd and weft)", n, nsPrefix, n, addr)
		h, err := startDockerHostWith(fmt.Sprintf("mh%d", n), opt)
		if err != nil {
			return res, err
		}
		hosts[i] = h
		cleanups = append(cleanups, func() error {
			return errors.Join(h.ShutDownDocker(h.docker), h.weft.Stop(10*time.Second),
				h.Remove(func() error { return testhost.DetachPeer(h.NetNS, mhLANPort) }))
		})
	}
	res.Setup = append(res.Setup, fmt.Sprintf("underlay: bridge in %s, MTU %d; host mh1 %s, host mh2 %s (WEFT_VTEP_ADDR)", sw.NetNS, mhLANMTU, mhUnderAddr(1), mhUnderAddr(2)))
	// The underlay works before anything uses it.
	if err := pingFrom("/var/run/netns/"+hosts[1].NetNS, mhUnderAddr(1), 10*time.Second); err != nil {
		return res, fmt.Errorf("underlay: host mh2 cannot reach host mh1: %w", err)
	}

	// Every target is built here, before the rounds: one that cannot be
	// built (Docker's overlay) is left out with its reason rather than
	// failing the section.
	type built struct {
		t  target
		td func() error
	}
	var ts []built
	mtus := map[string]int{}
	add := func(t target, td func() error, err error) error {
		if err != nil {
			if td != nil {
				err = errors.Join(err, td())
			}
			return err
		}
		mtus[t.name] = addrMTU(t.serverNS, t.serverIP)
		ts = append(ts, built{t, td})
		return nil
	}
	defer func() {
		// On an early return, what measureDataplane did not take over.
		for _, b := range ts {
			err = errors.Join(err, b.td())
		}
	}()
	logf("multihost: %s network %s on both hosts", mhWeft, mhVxNet)
	if err := add(weftVxlanTarget(hosts)); err != nil {
		return res, fmt.Errorf("setting up %s: %w", mhWeft, err)
	}
	logf("multihost: swarm of the two hosts and overlay network %s", mhOvNet)
	t, td, oerr := overlayTarget(hosts, res)
	if oerr = add(t, td, oerr); oerr != nil {
		res.OverlayNote = oerr.Error()
		logf("multihost: Docker's overlay cannot be measured here: %v", oerr)
	}
	res.DockerLog = dockerdLogNotes(hosts)
	if err := add(underlayTarget(hosts)); err != nil {
		return res, fmt.Errorf("setting up %s: %w", mhUnderlay, err)
	}

	var builders []targetBuilder
	for _, b := range ts {
		builders = append(builders, func(*dockerHost) (target, func() error, error) { return b.t, b.td, nil })
	}
	ts = nil // measureDataplane tears them down now
	if c.profile != nil && oerr != nil {
		c.profile = []string{mhWeft}
	}
	d, err := measureDataplane(ctx, nil, builders, c, "multihost")
	if d != nil {
		for name, m := range mtus {
			d.MTU[name] = m
		}
	}
	res.Data = d
	return res, err
}

// crossPair runs a server container on hosts[0] and a client container on
// hosts[1], both on network, and waits until the client reaches the server.
func crossPair(hosts [2]*dockerHost, name, network, about string) (target, func() error, error) {
	t := target{name: name, about: about}
	ctrs := [2]string{network + "-s", network + "-c"}
	teardown := func() error {
		var errs []error
		for i, h := range hosts {
			if _, err := h.D("rm", "-f", ctrs[i]); err != nil {
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	}
	var pids [2]int
	for i, h := range hosts {
		if _, err := h.D("run", "-d", "--name", ctrs[i], "--network", network, "--stop-timeout", "1", image, "sleep", "86400"); err != nil {
			return t, teardown, err
		}
		pid, ip, err := h.containerNet(ctrs[i], network)
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
	// The other host learns the server's endpoint asynchronously (weft:
	// through etcd; the overlay: through the swarm's gossip).
	if err := pingFrom(t.clientNS, t.serverIP, 60*time.Second); err != nil {
		return t, teardown, fmt.Errorf("%s: the container on host %s cannot reach the one on host %s (%s): %w", name, hosts[1].name, hosts[0].name, t.serverIP, err)
	}
	return t, teardown, nil
}

func weftVxlanTarget(hosts [2]*dockerHost) (target, func() error, error) {
	var made []*dockerHost
	rmNet := func() error {
		var errs []error
		for _, h := range made {
			if _, err := h.D("network", "rm", mhVxNet); err != nil {
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	}
	for _, h := range hosts {
		if _, err := h.D("network", "create", "-d", "weft", "--ipam-driver", "weft", "-o", "mode=vxlan", "--subnet", mhVxSub, mhVxNet); err != nil {
			return target{name: mhWeft}, rmNet, err
		}
		made = append(made, h)
	}
	t, td, err := crossPair(hosts, mhWeft, mhVxNet,
		"a container on each host on one weft vxlan network (`-d weft -o mode=vxlan`), the wefts sharing one etcd")
	return t, func() error { return errors.Join(td(), rmNet()) }, err
}

// overlayTarget builds a swarm of the two hosts and an attachable overlay
// network with a container on each. It records what it did and what
// docker info says in res.Swarm.
func overlayTarget(hosts [2]*dockerHost, res *multiResult) (target, func() error, error) {
	t := target{name: mhOverlay}
	h1, h2 := hosts[0], hosts[1]
	var steps []func() error
	teardown := func() error {
		var errs []error
		for i := len(steps) - 1; i >= 0; i-- {
			if err := steps[i](); err != nil {
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	}
	note := func(cmd string, out string, err error) {
		s := "`" + cmd + "`"
		if err != nil {
			s += ": failed: " + firstLine(err.Error())
		} else if out = firstLine(out); out != "" {
			s += ": " + out
		}
		res.Swarm = append(res.Swarm, s)
	}
	a1, a2 := mhUnderAddr(1), mhUnderAddr(2)
	leave := func(h *dockerHost) func() error {
		return func() error {
			_, err := h.D("swarm", "leave", "--force")
			return err
		}
	}
	_, err := h1.D("swarm", "init", "--advertise-addr", a1, "--listen-addr", a1+":2377")
	note("docker swarm init --advertise-addr "+a1+" --listen-addr "+a1+":2377 (host mh1)", "", err)
	if err != nil {
		return t, teardown, fmt.Errorf("docker swarm init: %w", err)
	}
	steps = append(steps, leave(h1))
	token, err := h1.D("swarm", "join-token", "-q", "worker")
	if err != nil {
		note("docker swarm join-token -q worker", "", err)
		return t, teardown, err
	}
	_, err = h2.D("swarm", "join", "--token", token, "--advertise-addr", a2, "--listen-addr", a2+":2377", a1+":2377")
	note("docker swarm join --token … --advertise-addr "+a2+" "+a1+":2377 (host mh2)", "", err)
	if err != nil {
		return t, teardown, fmt.Errorf("docker swarm join: %w", err)
	}
	steps = append(steps, leave(h2))
	if err := testhost.Poll(60*time.Second, func() error {
		out, err := h1.D("node", "ls", "--format", "{{.Status}}")
		if err != nil {
			return err
		}
		if strings.Count(out, "Ready") != 2 {
			return fmt.Errorf("docker node ls: %q", out)
		}
		return nil
	}); err != nil {
		return t, teardown, fmt.Errorf("host mh2 did not become a ready swarm node: %w", err)
	}
	ipvs := "the kernel has IPVS (/proc/net/ip_vs exists)"
	if _, err := os.Stat("/proc/net/ip_vs"); err != nil {
		ipvs = "the kernel has no IPVS (/proc/net/ip_vs absent): swarm services' virtual IPs and the ingress routing mesh need it; containers attached to an overlay network with `docker run --network` do not"
	}
	res.Swarm = append(res.Swarm, ipvs)
	for i, h := range hosts {
		info, err := h.D("info", "--format", "Swarm: {{.Swarm.LocalNodeState}}, node address {{.Swarm.NodeAddr}}, manager {{.Swarm.ControlAvailable}}")
		note(fmt.Sprintf("docker info (host mh%d)", i+1), info, err)
	}
	_, err = h1.D("network", "create", "-d", "overlay", "--attachable", "--subnet", mhOvSub, mhOvNet)
	note("docker network create -d overlay --attachable --subnet "+mhOvSub+" "+mhOvNet+" (host mh1)", "", err)
	if err != nil {
		return t, teardown, fmt.Errorf("creating the overlay network: %w", err)
	}
	steps = append(steps, func() error {
		_, err := h1.D("network", "rm", mhOvNet)
		return err
	})
	nets, err := h1.D("network", "ls", "--filter", "driver=overlay", "--format", "{{.Name}} ({{.Scope}})")
	note("docker network ls --filter driver=overlay (host mh1)", strings.ReplaceAll(nets, "\n", ", "), err)
	pt, td, err := crossPair(hosts, mhOverlay, mhOvNet,
		"a container on each host on one attachable Docker overlay network (`-d overlay --attachable`) in a swarm of the two hosts")
	steps = append(steps, td)
	return pt, teardown, err
}

// underlayTarget is the ceiling: host namespace to host namespace over the
// underlay bridge.
func underlayTarget(hosts [2]*dockerHost) (target, func() error, error) {
	return target{name: mhUnderlay, about: fmt.Sprintf("host namespace to host namespace over the underlay (a Linux bridge in a namespace of its own, MTU %d)", mhLANMTU),
		serverNS: "/var/run/netns/" + hosts[0].NetNS, clientNS: "/var/run/netns/" + hosts[1].NetNS, serverIP: mhUnderAddr(1)}, func() error { return nil }, nil
}

// pingFrom polls until ns can ping ip (busybox ping, one echo).
func pingFrom(ns, ip string, d time.Duration) error {
	return testhost.Poll(d, func() error {
		_, err := testhost.RunT(5*time.Second, "nsenter", "--net="+ns, "--", "busybox", "ping", "-c", "1", "-W", "1", ip)
		return err
	})
}

// addrMTU is the MTU of the link that holds ip in namespace ns.
func addrMTU(ns, ip string) int {
	out, err := testhost.RunT(10*time.Second, "nsenter", "--net="+ns, "--", "ip", "-j", "addr", "show")
	if err != nil {
		return 0
	}
	var links []struct {
		MTU   int `json:"mtu"`
		Addrs []struct {
			Local string `json:"local"`
		} `json:"addr_info"`
	}
	if json.Unmarshal([]byte(out), &links) != nil {
		return 0
	}
	for _, l := range links {
		for _, a := range l.Addrs {
			if a.Local == ip {
				return l.MTU
			}
		}
	}
	return 0
}

// dockerdLogNotes are the lines of the hosts' dockerd logs that mention
// IPVS, ingress or the load balancer (at most a few, deduplicated), for
// the page: the kernel may lack IPVS, which swarm's ingress uses.
func dockerdLogNotes(hosts [2]*dockerHost) []string {
	var out []string
	seen := map[string]bool{}
	for _, h := range hosts {
		if h == nil {
			continue
		}
		f, err := os.Open(filepath.Join(h.Dir, "dockerd.log"))
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			l := sc.Text()
			low := strings.ToLower(l)
			ipvs := strings.Contains(low, "ipvs")
			if !ipvs && !strings.Contains(low, "ingress") && !strings.Contains(low, "load balancer") && !strings.Contains(low, "lb-") {
				continue
			}
			if !ipvs && !strings.Contains(low, "level=error") && !strings.Contains(low, "level=warn") {
				continue
			}
			// Key on the message without the timestamp.
			msg := l
			if i := strings.Index(l, "msg="); i >= 0 {
				msg = l[i:]
			}
			if len(msg) > 300 {
				msg = msg[:300] + "…"
			}
			if seen[msg] {
				continue
			}
			seen[msg] = true
			out = append(out, fmt.Sprintf("mh%s: %s", strings.TrimPrefix(h.name, "mh"), msg))
			if len(out) >= 8 {
				_ = f.Close()
				return out
			}
		}
		_ = f.Close()
	}
	return out
}

// ---- report ----------------------------------------------------------------

// multihostGoals: weft vxlan against these baselines, with the goal.
var multihostGoals = []struct {
	base  string
	limit float64
}{{mhOverlay, 1.0}, {mhUnderlay, 0.9}}

func renderMultihost(r *report, m *multiResult) error {
	if m == nil {
		return nil
	}
	r.p("## Multi-host data plane")
	r.p("<a id=\"multihost\"></a>")
	r.p("")
	r.p("Container to container across two docker hosts: network namespaces `weft-bench-mh1` and")
	r.p("`weft-bench-mh2`, each with its own dockerd and weft, joined by an underlay (a Linux bridge in")
	r.p("a namespace of its own, with a veth port into each host, MTU %d; host addresses %s and %s).", m.UnderlayMTU, mhUnderAddr(1), mhUnderAddr(2))
	r.p("Three topologies over that same underlay: **weft vxlan** (one `-d weft -o mode=vxlan` network")
	r.p("created on both hosts, the two wefts coordinated by a single etcd member the harness starts,")
	r.p("`WEFT_VTEP_ADDR` = the host's underlay address), **docker overlay** (Docker's overlay driver in a")
	r.p("swarm of the same two hosts: `docker swarm init --advertise-addr` on host 1, `docker swarm join`")
	r.p("on host 2, `docker network create -d overlay --attachable`), one container per host on each; and")
	r.p("the **underlay** itself, host namespace to host namespace (the ceiling: no encapsulation). Each")
	r.p("driver chooses its own MTU. Measured as in [Data plane](#dataplane): iperf3 server and ping-pong")
	r.p("server in the container on host 1, clients in the container on host 2.")
	r.p("")
	if m.OverlayNote != "" {
		r.p("**Docker's overlay could not be measured on this machine:** `%s`", strings.ReplaceAll(firstLine(m.OverlayNote), "`", "'"))
		r.p("")
	}
	if len(m.Swarm) > 0 {
		r.p("<details><summary>set-up: the underlay, the swarm, and what dockerd logged about IPVS/ingress</summary>")
		r.p("")
		for _, s := range m.Swarm {
			r.p("- %s", s)
		}
		for _, s := range m.Setup {
			r.p("- %s", s)
		}
		for _, s := range m.DockerLog {
			r.p("- dockerd %s", "`"+strings.ReplaceAll(s, "`", "'")+"`")
		}
		r.p("")
		r.p("</details>")
		r.p("")
	}
	d := m.Data
	if d == nil {
		r.p("(No measurement: the section failed before its rounds.)")
		r.p("")
		r.goals = append(r.goals, &goal{measure: "multi-host TCP throughput", weft: "not measured", baseline: "—", ratio: estimate{V: math.NaN()}, goalText: "—", anchor: "multihost"})
		return nil
	}
	r.p("%d interleaved rounds; per round, every topology once in rotating order; iperf3 -t %d, ping-pong", d.Rounds, d.Seconds)
	r.p("%gs (%d-byte messages).", d.RRSeconds, d.RRSize)
	r.p("")
	r.p("| topology | what | MTU |")
	r.p("|---|---|---|")
	for _, t := range d.Targets {
		r.p("| %s | %s | %d |", t, d.Topologies[t], d.MTU[t])
	}
	r.p("")
	med := func(x []float64) func(idx []int) float64 {
		return func(idx []int) float64 { return median(pick(x, idx)) }
	}
	field := func(t string, f func(rrStats) float64) []float64 {
		var out []float64
		for _, s := range d.RR[t] {
			out = append(out, f(s))
		}
		return out
	}
	rate := func(s rrStats) float64 { return s.Rate }
	p50 := func(s rrStats) float64 { return s.P50us }
	p99 := func(s rrStats) float64 { return s.P99us }
	r.p("| topology | throughput Gbit/s (median) | retransmits (median) | iperf3 sender CPU %% | RR transactions/s | RR p50 µs | RR p99 µs |")
	r.p("|---|---|---|---|---|---|---|")
	for _, t := range d.Targets {
		r.p("| %s | %s | %.0f | %.0f | %s | %s | %s |", t, fmtEst(bootstrap(d.Rounds, med(d.Tput[t]))), median(d.Retrans[t]), median(d.SenderCPU[t]),
			fmtEst(bootstrap(d.Rounds, med(field(t, rate)))), fmtEst(bootstrap(d.Rounds, med(field(t, p50)))), fmtEst(bootstrap(d.Rounds, med(field(t, p99)))))
	}
	r.p("")
	ratio := func(a, b []float64) estimate {
		return bootstrap(d.Rounds, func(idx []int) float64 { return median(pick(a, idx)) / median(pick(b, idx)) })
	}
	r.p("| ratio | throughput | RR transactions/s | RR p50 latency (lower is better) | RR p99 latency (lower is better) |")
	r.p("|---|---|---|---|---|")
	for _, pr := range [][2]string{{mhWeft, mhOverlay}, {mhWeft, mhUnderlay}, {mhOverlay, mhUnderlay}} {
		a, b := pr[0], pr[1]
		if !contains(d.Targets, a) || !contains(d.Targets, b) {
			continue
		}
		r.p("| %s / %s | %s | %s | %s | %s |", a, b, ratio(d.Tput[a], d.Tput[b]).fmt("x"), ratio(field(a, rate), field(b, rate)).fmt("x"),
			ratio(field(a, p50), field(b, p50)).fmt("x"), ratio(field(a, p99), field(b, p99)).fmt("x"))
	}
	r.p("")
	for _, g := range multihostGoals {
		if !contains(d.Targets, g.base) {
			why := "not measured"
			if g.base == mhOverlay && m.OverlayNote != "" {
				why = "not measured: " + strings.ReplaceAll(firstLine(m.OverlayNote), "|", "\\|")
			}
			r.goals = append(r.goals, &goal{measure: "multi-host TCP throughput vs " + g.base, weft: fmt.Sprintf("%.2f Gbit/s", median(d.Tput[mhWeft])),
				baseline: why, ratio: estimate{V: math.NaN()}, goalText: fmt.Sprintf("≥ %.2f", g.limit), anchor: "multihost"})
			continue
		}
		r.goals = append(r.goals,
			&goal{measure: "multi-host TCP throughput vs " + g.base, weft: fmt.Sprintf("%.2f Gbit/s", median(d.Tput[mhWeft])),
				baseline: fmt.Sprintf("%s %.2f Gbit/s", g.base, median(d.Tput[g.base])),
				ratio:    ratio(d.Tput[mhWeft], d.Tput[g.base]), goalText: fmt.Sprintf("≥ %.2f", g.limit), ok: ge(g.limit), anchor: "multihost"},
			&goal{measure: "multi-host request/response rate vs " + g.base, weft: fmt.Sprintf("%.0f/s (p50 %.0f µs)", median(field(mhWeft, rate)), median(field(mhWeft, p50))),
				baseline: fmt.Sprintf("%s %.0f/s (p50 %.0f µs)", g.base, median(field(g.base, rate)), median(field(g.base, p50))),
				ratio:    ratio(field(mhWeft, rate), field(g.base, rate)), goalText: fmt.Sprintf("≥ %.2f", g.limit), ok: ge(g.limit), anchor: "multihost"},
		)
	}
	bars := barChart{title: "TCP throughput across two hosts (iperf3, 1 stream)", ylabel: "Gbit/s", groups: d.Targets,
		note: "bar: median of the rounds; whiskers: 90% bootstrap interval of the median"}
	s := barSeries{name: "throughput"}
	for _, t := range d.Targets {
		e := bootstrap(d.Rounds, med(d.Tput[t]))
		s.vals, s.lo, s.hi = append(s.vals, e.V), append(s.lo, e.Lo), append(s.hi, e.Hi)
	}
	bars.series = []barSeries{s}
	if err := r.plot("multihost-throughput.svg", bars.svg()); err != nil {
		return err
	}
	lat := barChart{title: fmt.Sprintf("TCP request/response latency across two hosts (%d-byte ping-pong)", d.RRSize), ylabel: "µs", groups: d.Targets,
		note: "median over rounds of each round's p50 and p99; whiskers: 90% bootstrap interval"}
	for _, q := range []struct {
		name string
		f    func(rrStats) float64
	}{{"p50", p50}, {"p99", p99}} {
		s := barSeries{name: q.name}
		for _, t := range d.Targets {
			e := bootstrap(d.Rounds, med(field(t, q.f)))
			s.vals, s.lo, s.hi = append(s.vals, e.V), append(s.lo, e.Lo), append(s.hi, e.Hi)
		}
		lat.series = append(lat.series, s)
	}
	if err := r.plot("multihost-rr-latency.svg", lat.svg()); err != nil {
		return err
	}
	r.p("![multi-host throughput](img/multihost-throughput.svg)")
	r.p("![multi-host request/response latency](img/multihost-rr-latency.svg)")
	r.p("")
	renderRRProfiles(r, d, "**Where the time goes.**")
	for _, g := range multihostGoals {
		if !contains(d.Targets, g.base) {
			continue
		}
		for _, mt := range []struct {
			name string
			get  func(t string) []float64
		}{
			{"throughput", func(t string) []float64 { return d.Tput[t] }},
			{"request/response rate", func(t string) []float64 { return field(t, rate) }},
		} {
			e := ratio(mt.get(mhWeft), mt.get(g.base))
			if !e.ok() || e.V >= g.limit {
				continue
			}
			r.p("**Goal missed: %s, weft vxlan / %s = %s (goal ≥ %.2f).**", mt.name, g.base, e.fmt("x"), g.limit)
			switch g.base {
			case mhUnderlay:
				r.p("Every packet of the vxlan network is encapsulated on host 2 and decapsulated on host 1 (the")
				r.p("kernel's vxlan driver, 50 bytes of headers, the MTU %d instead of %d), and crosses a bridge", d.MTU[mhWeft], d.MTU[mhUnderlay])
				r.p("and a veth pair on each host besides the underlay.")
				if contains(d.Targets, mhOverlay) {
					r.p("Docker's overlay, which does the same, reaches %s of the underlay's %s on the same rounds.",
						ratio(mt.get(mhOverlay), mt.get(mhUnderlay)).fmt("x"), mt.name)
				}
			case mhOverlay:
				r.p("Both drivers use the kernel's vxlan driver and a bridge per host; compare the MTUs and")
				r.p("retransmits above and the profiles, and the interval: where it crosses the goal the")
				r.p("difference is within this run's noise.")
			}
			r.p("")
		}
	}
	return nil
}
