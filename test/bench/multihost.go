//go:build bench

package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
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
//     (legacy plugins) coordinated by a single etcd member the harness
//     starts (unix socket under its work directory), a container on each
//     host;
//   - weft swarm: weft's global-scope install (WEFT_SCOPE=global,
//     docs/swarm.md) in a swarm of the same two hosts (swarm init on host
//     1, join on host 2): the managed plugin, built once by
//     scripts/build-plugin.sh --binary (the run's weft) with a builder
//     dockerd (testhost.StartBuilder) and created under one name:tag on
//     both hosts, a swarm network of it made on the manager, and a global
//     --endpoint-mode dnsrr service on it: a task on each host;
//   - docker overlay: Docker's own overlay network in the same swarm, with
//     a task of the same kind of service on each host;
//   - underlay: host namespace to host namespace over the bridge, the
//     ceiling.
//
// Each driver picks its own MTU on the 1500-byte underlay.
//
// The legacy weft (local scope) and the managed one (global scope) run side
// by side on each host, as docs/swarm.md describes: their links, sets and
// rules are named apart, and their networks use different VXLAN ports.

const (
	mhLANMTU  = 1500
	mhLANPort = "mhu0" // each host's underlay link (its NIC)
	mhVxNet   = "mhvx"
	mhVxSub   = "10.211.0.0/24"
	// mhVxPort is the local-scope weft's VXLAN port: the swarm install's
	// network on the same hosts has 4789, and two wefts on one host never
	// share a port (docs/swarm.md).
	mhVxPort = "4790"
	mhOvNet  = "mhov"
	mhOvSub  = "10.212.0.0/24"
	mhOvSvc  = "mhov-task"
	mhSwNet  = "mhsw"
	mhSwSub  = "10.213.0.0/24"
	mhSwSvc  = "mhsw-task"
	etcdBin  = "/usr/bin/etcd"
	// mhPlugin is the managed plugin's name:tag on both hosts (the swarm
	// network's driver).
	mhPlugin = "weft-bench/weft-swarm:latest"

	mhWeft     = "weft vxlan"
	mhSwarm    = "weft swarm"
	mhOverlay  = "docker overlay"
	mhUnderlay = "underlay"
)

// mhOrder is the order of the targets on the page.
var mhOrder = []string{mhWeft, mhSwarm, mhOverlay, mhUnderlay}

// mhUnderAddr is host i's (1-based) underlay address: RFC 2544's
// benchmarking range, never routed anywhere.
func mhUnderAddr(i int) string { return fmt.Sprintf("198.18.0.%d", 10+i) }

// multiResult is the multihost section's raw data.
type multiResult struct {
	Data        *dataResult `json:",omitempty"`
	UnderlayMTU int
	// OverlayNote says why Docker's overlay was not measured ("" if it was).
	OverlayNote string `json:",omitempty"`
	// SwarmNote says why weft's global-scope install was not measured (""
	// if it was); Plugin is how its managed plugin was built and installed.
	SwarmNote string   `json:",omitempty"`
	Plugin    []string `json:",omitempty"`
	// Load: the load average when the section started and ended, and what
	// else ran (neighbours).
	LoadStart, LoadEnd, Neighbours string `json:",omitempty"`
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
	res = &multiResult{UnderlayMTU: mhLANMTU, LoadStart: loadAvg(), Neighbours: neighbours()}
	defer func() { res.LoadEnd = loadAvg() }()
	c := dpConfig{rounds: 9, secs: 6, rrSecs: 3, omit: 1, profile: []string{mhWeft, mhSwarm, mhOverlay}}
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
	// built (Docker's overlay, weft's swarm install) is left out with its
	// reason rather than failing the section.
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

	// weft's managed plugin first, before the swarm and before the weft
	// vxlan network: a weft starting deletes the vxlan links it does not
	// know (see the top of this file), and a global-scope weft finds the
	// other nodes from the node addresses dockerd sends it (DiscoverNew)
	// as they join the swarm, so it is installed, like the end-to-end
	// test's, before the swarm forms (installed into the running swarm, a
	// quick run's tasks did not reach each other).
	var pluginRm []func() error
	logf("multihost: %s: managed plugin %s on both hosts", mhSwarm, mhPlugin)
	perr := installSwarmPlugin(hosts, res, &pluginRm)
	if perr != nil {
		res.SwarmNote = perr.Error()
		logf("multihost: weft's swarm install cannot be measured here: %v", perr)
	}
	logf("multihost: swarm of the two hosts")
	leave, serr := swarmUp(hosts, res)
	// The swarm is left before the plugins are removed (cleanups run last
	// first): leaving makes dockerd delete the swarm networks, which asks
	// their driver.
	defer func() { cleanups = append(append(cleanups, pluginRm...), leave) }()
	if serr != nil {
		res.OverlayNote = serr.Error()
		if perr == nil {
			res.SwarmNote = "no swarm: " + serr.Error()
		}
		logf("multihost: no swarm of the two hosts, so neither Docker's overlay nor weft's swarm install is measured: %v", serr)
	} else if perr == nil {
		logf("multihost: %s: swarm network %s, a global service on it", mhSwarm, mhSwNet)
		t, td, err := weftSwarmTarget(hosts, res)
		if err = add(t, td, err); err != nil {
			res.SwarmNote = err.Error()
			res.Plugin = append(res.Plugin, gossipNotes(hosts)...)
			logf("multihost: weft's swarm install cannot be measured here: %v", err)
		}
	}
	logf("multihost: %s network %s on both hosts", mhWeft, mhVxNet)
	if err := add(weftVxlanTarget(hosts)); err != nil {
		return res, fmt.Errorf("setting up %s: %w", mhWeft, err)
	}
	if serr == nil {
		logf("multihost: overlay network %s and a global service on it", mhOvNet)
		t, td, err := overlayTarget(hosts, res)
		if err = add(t, td, err); err != nil {
			res.OverlayNote = err.Error()
			logf("multihost: Docker's overlay cannot be measured here: %v", err)
		}
	}
	res.DockerLog = dockerdLogNotes(hosts)
	if err := add(underlayTarget(hosts)); err != nil {
		return res, fmt.Errorf("setting up %s: %w", mhUnderlay, err)
	}
	slices.SortStableFunc(ts, func(a, b built) int { return slices.Index(mhOrder, a.t.name) - slices.Index(mhOrder, b.t.name) })

	var builders []targetBuilder
	var names []string
	for _, b := range ts {
		builders = append(builders, func(*dockerHost) (target, func() error, error) { return b.t, b.td, nil })
		names = append(names, b.t.name)
	}
	ts = nil // measureDataplane tears them down now
	c.profile = slices.DeleteFunc(c.profile, func(n string) bool { return !slices.Contains(names, n) })
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
	for i, h := range hosts {
		if _, err := h.D("run", "-d", "--name", ctrs[i], "--network", network, "--stop-timeout", "1", image, "sleep", "86400"); err != nil {
			return t, teardown, err
		}
	}
	if err := t.between(hosts, ctrs, network, "container"); err != nil {
		return t, teardown, err
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
		if _, err := h.D("network", "create", "-d", "weft", "--ipam-driver", "weft", "-o", "mode=vxlan", "-o", "vxlan_port="+mhVxPort, "--subnet", mhVxSub, mhVxNet); err != nil {
			return target{name: mhWeft}, rmNet, err
		}
		made = append(made, h)
	}
	t, td, err := crossPair(hosts, mhWeft, mhVxNet,
		"a container on each host on one weft vxlan network (`-d weft -o mode=vxlan -o vxlan_port="+mhVxPort+"`), the wefts sharing one etcd")
	return t, func() error { return errors.Join(td(), rmNet()) }, err
}

// swarmNote records a command of the swarm's set-up in res.Swarm.
func swarmNote(res *multiResult, cmd string, out string, err error) {
	s := "`" + cmd + "`"
	if err != nil {
		s += ": failed: " + firstLine(err.Error())
	} else if out = firstLine(out); out != "" {
		s += ": " + out
	}
	res.Swarm = append(res.Swarm, s)
}

// swarmUp makes a swarm of the two hosts (host 1 the manager) on the
// underlay and returns the hosts' `swarm leave` (never nil, to be called
// even when it fails). It records what it did and what docker info says
// in res.Swarm.
func swarmUp(hosts [2]*dockerHost, res *multiResult) (leave func() error, err error) {
	h1, h2 := hosts[0], hosts[1]
	a1, a2 := mhUnderAddr(1), mhUnderAddr(2)
	var joined []*dockerHost
	leave = func() error {
		var errs []error
		for i := len(joined) - 1; i >= 0; i-- {
			if _, err := joined[i].D("swarm", "leave", "--force"); err != nil {
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	}
	_, err = h1.D("swarm", "init", "--advertise-addr", a1, "--listen-addr", a1+":2377")
	swarmNote(res, "docker swarm init --advertise-addr "+a1+" --listen-addr "+a1+":2377 (host mh1)", "", err)
	if err != nil {
		return leave, fmt.Errorf("docker swarm init: %w", err)
	}
	joined = append(joined, h1)
	token, err := h1.D("swarm", "join-token", "-q", "worker")
	if err != nil {
		swarmNote(res, "docker swarm join-token -q worker", "", err)
		return leave, err
	}
	_, err = h2.D("swarm", "join", "--token", token, "--advertise-addr", a2, "--listen-addr", a2+":2377", a1+":2377")
	swarmNote(res, "docker swarm join --token … --advertise-addr "+a2+" "+a1+":2377 (host mh2)", "", err)
	// A join that failed half-way may still have left state: leave anyway.
	joined = append(joined, h2)
	if err != nil {
		return leave, fmt.Errorf("docker swarm join: %w", err)
	}
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
		return leave, fmt.Errorf("host mh2 did not become a ready swarm node: %w", err)
	}
	ipvs := "the kernel has IPVS (/proc/net/ip_vs exists)"
	if _, err := os.Stat("/proc/net/ip_vs"); err != nil {
		ipvs = "the kernel has no IPVS (/proc/net/ip_vs absent): swarm services' virtual IPs and the ingress routing mesh need it; the services here use `--endpoint-mode dnsrr`, which does not"
	}
	res.Swarm = append(res.Swarm, ipvs)
	for i, h := range hosts {
		info, err := h.D("info", "--format", "Swarm: {{.Swarm.LocalNodeState}}, node address {{.Swarm.NodeAddr}}, manager {{.Swarm.ControlAvailable}}")
		swarmNote(res, fmt.Sprintf("docker info (host mh%d)", i+1), info, err)
	}
	return leave, nil
}

// overlayTarget makes an attachable overlay network in the swarm and a
// task of a global service on it on each host.
func overlayTarget(hosts [2]*dockerHost, res *multiResult) (target, func() error, error) {
	h1 := hosts[0]
	_, err := h1.D("network", "create", "-d", "overlay", "--attachable", "--subnet", mhOvSub, mhOvNet)
	swarmNote(res, "docker network create -d overlay --attachable --subnet "+mhOvSub+" "+mhOvNet+" (host mh1)", "", err)
	if err != nil {
		return target{name: mhOverlay}, nil, fmt.Errorf("creating the overlay network: %w", err)
	}
	rmNet := func() error {
		_, err := h1.D("network", "rm", mhOvNet)
		return err
	}
	nets, err := h1.D("network", "ls", "--filter", "driver=overlay", "--format", "{{.Name}} ({{.Scope}})")
	swarmNote(res, "docker network ls --filter driver=overlay (host mh1)", strings.ReplaceAll(nets, "\n", ", "), err)
	t, td, err := swarmTasks(hosts, res, mhOverlay, mhOvNet, mhOvSvc,
		"a task on each host of a global service (`--mode global --endpoint-mode dnsrr`) on one Docker overlay network (`-d overlay --attachable`) in a swarm of the two hosts")
	return t, func() error { return errors.Join(td(), rmNet()) }, err
}

// swarmTasks creates, on the manager (hosts[0]), a global service with
// --endpoint-mode dnsrr on network, finds its task on each host and waits
// until the task on hosts[1] reaches the one on hosts[0] (server). Its
// teardown removes the service and waits until both tasks are gone.
func swarmTasks(hosts [2]*dockerHost, res *multiResult, name, network, svc, about string) (target, func() error, error) {
	t := target{name: name, about: about}
	h1 := hosts[0]
	args := []string{"service", "create", "--detach", "--mode", "global", "--endpoint-mode", "dnsrr", "--network", network,
		"--name", svc, "--no-resolve-image", "--stop-grace-period", "1s", image, "sleep", "86400"}
	_, err := h1.D(args...)
	swarmNote(res, "docker "+strings.Join(args, " ")+" (host mh1)", "", err)
	if err != nil {
		return t, nil, err
	}
	filter := "label=com.docker.swarm.service.name=" + svc
	teardown := func() error {
		_, err := h1.D("service", "rm", svc)
		if err != nil {
			return err
		}
		return testhost.Poll(90*time.Second, func() error {
			for _, h := range hosts {
				if ids, err := h.D("ps", "-aq", "--filter", filter); err != nil || ids != "" {
					return fmt.Errorf("host %s still has task containers of %s (%q, %v)", h.name, svc, ids, err)
				}
			}
			return nil
		})
	}
	start := time.Now()
	var ctrs [2]string
	err = testhost.Poll(3*time.Minute, func() error {
		for i, h := range hosts {
			ids, err := h.D("ps", "-q", "--filter", filter)
			if err != nil {
				return err
			}
			switch f := strings.Fields(ids); len(f) {
			case 0:
				return fmt.Errorf("no running task of %s on host %s", svc, h.name)
			case 1:
				ctrs[i] = f[0]
			default:
				return testhost.RetryStop(fmt.Errorf("host %s runs %d tasks of the global service %s", h.name, len(f), svc))
			}
		}
		return nil
	})
	if err != nil {
		out, _ := h1.D("service", "ps", "--no-trunc", "--format", "{{.Node}} {{.CurrentState}} {{.Error}}", svc)
		return t, teardown, fmt.Errorf("service %s: %w; docker service ps: %s", svc, err, strings.ReplaceAll(out, "\n", "; "))
	}
	res.Swarm = append(res.Swarm, fmt.Sprintf("service %s: a task running on each host %s after `docker service create`", svc, time.Since(start).Round(100*time.Millisecond)))
	if err := t.between(hosts, ctrs, network, "task"); err != nil {
		return t, teardown, err
	}
	return t, teardown, nil
}

// installSwarmPlugin builds weft's managed plugin and installs it with
// WEFT_SCOPE=global on both hosts under one name:tag (mhPlugin); its
// removal goes to pluginRm.
func installSwarmPlugin(hosts [2]*dockerHost, res *multiResult, pluginRm *[]func() error) error {
	dir, err := buildSwarmPlugin(res)
	if dir != "" {
		defer func() { _ = os.RemoveAll(dir) }()
	}
	if err != nil {
		return fmt.Errorf("building the managed plugin: %w", err)
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return err
	}
	gossipKey := base64.StdEncoding.EncodeToString(key)
	for i, h := range hosts {
		start := time.Now()
		*pluginRm = append(*pluginRm, func() error {
			if _, err := h.D("plugin", "inspect", mhPlugin); err != nil {
				return nil // never created
			}
			_, err := h.D("plugin", "rm", "-f", mhPlugin)
			return err
		})
		settings := []string{"WEFT_SCOPE=global", "WEFT_GOSSIP_KEY=" + gossipKey, "WEFT_VTEP_ADDR=" + mhUnderAddr(i+1), "LOG_LEVEL=" + cfg.logLevel}
		for _, args := range [][]string{
			{"plugin", "create", mhPlugin, dir},
			append([]string{"plugin", "set", mhPlugin}, settings...),
			{"plugin", "enable", mhPlugin},
		} {
			if _, err := h.D(args...); err != nil {
				return fmt.Errorf("host %s: %w", h.name, err)
			}
		}
		res.Plugin = append(res.Plugin, fmt.Sprintf("host mh%d: `docker plugin create %s DIR`, `docker plugin set %s WEFT_SCOPE=global WEFT_GOSSIP_KEY=… WEFT_VTEP_ADDR=%s LOG_LEVEL=%s`, `docker plugin enable`, before the swarm forms: %s",
			i+1, mhPlugin, mhPlugin, mhUnderAddr(i+1), cfg.logLevel, time.Since(start).Round(100*time.Millisecond)))
	}
	return nil
}

// weftSwarmTarget makes a swarm network of weft's managed plugin
// (installSwarmPlugin) on the manager and a task of a global service on it
// on each host.
func weftSwarmTarget(hosts [2]*dockerHost, res *multiResult) (target, func() error, error) {
	t := target{name: mhSwarm}
	h1 := hosts[0]
	_, err := h1.D("network", "create", "-d", mhPlugin, "--attachable", "--subnet", mhSwSub, mhSwNet)
	swarmNote(res, "docker network create -d "+mhPlugin+" --attachable --subnet "+mhSwSub+" "+mhSwNet+" (host mh1)", "", err)
	if err != nil {
		return t, nil, fmt.Errorf("creating the swarm network of weft: %w", err)
	}
	rmNet := func() error {
		_, err := h1.D("network", "rm", mhSwNet)
		return err
	}
	opts, err := h1.D("network", "inspect", "-f", "scope {{.Scope}}, options {{json .Options}}", mhSwNet)
	swarmNote(res, "docker network inspect "+mhSwNet+" (host mh1)", opts, err)
	pt, td, err := swarmTasks(hosts, res, mhSwarm, mhSwNet, mhSwSvc,
		"a task on each host of a global service (`--mode global --endpoint-mode dnsrr`) on one swarm network of weft's global-scope install (managed plugin, `WEFT_SCOPE=global`, `-d "+mhPlugin+" --attachable`) in the same swarm")
	return pt, func() error {
		var err error
		if td != nil {
			err = td()
		}
		return errors.Join(err, rmNet())
	}, err
}

// buildSwarmPlugin builds weft's managed plugin from the run's weft binary
// (scripts/build-plugin.sh --binary, KEEP_DIR=1) and returns the plugin
// directory (rootfs and config.json) it kept, which the caller removes.
// The build runs in a builder dockerd of its own (testhost.StartBuilder:
// this machine's network namespace with networking off, stopped and
// removed once the build is done): the Dockerfile's runtime stage runs
// apt-get, which the bench hosts' namespaces cannot reach; its base image
// comes from a registry or, when none is reachable, from
// scripts/seed-base-images.sh, as build-plugin.sh does.
func buildSwarmPlugin(res *multiResult) (string, error) {
	start := time.Now()
	bdir := filepath.Join(cfg.dir, "mh-builder")
	tmp := filepath.Join(cfg.dir, "mh-plugin")
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return "", err
	}
	cgroup := nsPrefix + "mhbuilder"
	b, err := testhost.StartBuilder(bdir, "weft-bench", cfg.dockerd, cgroup)
	if err != nil {
		return "", fmt.Errorf("starting a builder dockerd: %w", err)
	}
	defer func() {
		if err := b.StopBuilder(cgroup); err != nil {
			logf("multihost: stopping the builder dockerd: %v", err)
		}
		if err := testhost.RemoveAllUnder(bdir); err != nil {
			logf("multihost: removing %s: %v", bdir, err)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	env := append(dockerEnv(), "DOCKER_HOST=unix://"+b.Sock, "DOCKER="+cfg.docker, "KEEP_DIR=1", "TMPDIR="+tmp)
	script := filepath.Join(cfg.repo, "scripts", "build-plugin.sh")
	cmd := exec.CommandContext(ctx, script, "--binary", cfg.weftBin, mhPlugin)
	cmd.Env = env
	cmd.Dir = cfg.repo
	outb, err := cmd.CombinedOutput()
	out := string(outb)
	dir, kept := testhost.KeptPluginDir(out)
	if err != nil {
		return dir, fmt.Errorf("scripts/build-plugin.sh --binary %s %s: %w: %s", filepath.Base(cfg.weftBin), mhPlugin, err, lastLines(out, 6))
	}
	if !kept {
		return "", fmt.Errorf("scripts/build-plugin.sh with KEEP_DIR=1 did not say where it kept the plugin directory: %s", lastLines(out, 6))
	}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if strings.HasPrefix(l, "build-plugin: created") || strings.HasPrefix(l, "seed: ") {
			res.Plugin = append(res.Plugin, l)
		}
	}
	res.Plugin = append(res.Plugin, fmt.Sprintf("`scripts/build-plugin.sh --binary WEFT %s` (KEEP_DIR=1) in a builder dockerd of the harness's (this machine's network namespace, its networking off): %s",
		mhPlugin, time.Since(start).Round(time.Second)))
	return dir, nil
}

// gossipNotes are the last lines about weft's gossip in each host's
// dockerd log (where a managed plugin's output goes), for the page when
// the weft swarm target failed.
func gossipNotes(hosts [2]*dockerHost) []string {
	var out []string
	for _, h := range hosts {
		b, err := os.ReadFile(filepath.Join(h.Dir, "dockerd.log"))
		if err != nil {
			continue
		}
		var ls []string
		for _, l := range strings.Split(string(b), "\n") {
			if strings.Contains(l, "gossip") || strings.Contains(l, "DiscoverNew") {
				if len(l) > 300 {
					l = l[:300] + "…"
				}
				ls = append(ls, l)
			}
		}
		if len(ls) > 4 {
			ls = ls[len(ls)-4:]
		}
		for _, l := range ls {
			out = append(out, h.name+" dockerd.log: `"+strings.ReplaceAll(l, "`", "'")+"`")
		}
	}
	return out
}

// lastLines is the last n lines of s, joined with " / ".
func lastLines(s string, n int) string {
	ls := strings.Split(strings.TrimSpace(s), "\n")
	if len(ls) > n {
		ls = ls[len(ls)-n:]
	}
	return strings.Join(ls, " / ")
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

// multihostGoals: a weft topology against a baseline, with the goal; what
// starts the summary rows' measures.
var multihostGoals = []struct {
	weft, base string
	limit      float64
	what       string
}{
	{mhWeft, mhOverlay, 1.0, "multi-host"},
	{mhWeft, mhUnderlay, 0.9, "multi-host"},
	{mhSwarm, mhOverlay, 1.0, "swarm task-to-task"},
}

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
	r.p("Four topologies over that same underlay:")
	r.p("")
	r.p("- **weft vxlan**: one `-d weft -o mode=vxlan` network created on both hosts, the two wefts")
	r.p("  (legacy plugins) coordinated by a single etcd member the harness starts, `WEFT_VTEP_ADDR` = the")
	r.p("  host's underlay address; a standalone container per host;")
	r.p("- **weft swarm**: weft's global-scope install ([swarm.md](swarm.md)) in a swarm of the same two")
	r.p("  hosts (`docker swarm init --advertise-addr` on host 1, `docker swarm join` on host 2): the managed")
	r.p("  plugin, built once by `scripts/build-plugin.sh --binary` from the run's weft and created as")
	r.p("  `%s` on both hosts with `WEFT_SCOPE=global`, one `WEFT_GOSSIP_KEY` and", mhPlugin)
	r.p("  `WEFT_VTEP_ADDR` = the host's underlay address; a swarm network of it made on the manager")
	r.p("  (`--attachable`), and a global service on it (`--mode global --endpoint-mode dnsrr`): one")
	r.p("  **task** per host;")
	r.p("- **docker overlay**: Docker's overlay driver in the same swarm (`-d overlay --attachable`), with a")
	r.p("  task per host of the same kind of service, so that both swarm networks are measured task to")
	r.p("  task in the same rounds;")
	r.p("- the **underlay** itself, host namespace to host namespace (the ceiling: no encapsulation).")
	r.p("")
	r.p("Each driver chooses its own MTU. Measured as in [Data plane](#dataplane): iperf3 server and")
	r.p("ping-pong server in the container (task) on host 1, clients in the one on host 2. The legacy weft")
	r.p("(local scope) and the managed one (global scope) run side by side on each host, as")
	r.p("[swarm.md](swarm.md#next-to-a-local-scope-weft) describes: links, known-VTEP sets and rules named")
	r.p("apart, the weft vxlan network on UDP port " + mhVxPort + ", the swarm network on 4789.")
	r.p("")
	if m.LoadStart != "" {
		busy := ""
		if l, err := strconv.ParseFloat(strings.Fields(m.LoadStart)[0], 64); err == nil && l >= float64(runtime.NumCPU()) {
			busy = " **The machine was busy** (a load average at or above its core count): the other work hits every topology alike within a round, but it widens the intervals."
		}
		r.p("This section's run: load average %s at its start, %s at its end; %s.%s", m.LoadStart, m.LoadEnd, m.Neighbours, busy)
		r.p("")
	}
	if m.OverlayNote != "" {
		r.p("**Docker's overlay could not be measured on this machine:** `%s`", strings.ReplaceAll(firstLine(m.OverlayNote), "`", "'"))
		r.p("")
	}
	if m.SwarmNote != "" {
		r.p("**weft's swarm install (managed plugin, `WEFT_SCOPE=global`) could not be measured on this machine:** `%s`", strings.ReplaceAll(firstLine(m.SwarmNote), "`", "'"))
		r.p("")
	}
	if len(m.Swarm) > 0 || len(m.Plugin) > 0 {
		r.p("<details><summary>set-up: the underlay, the swarm, weft's managed plugin, and what dockerd logged about IPVS/ingress</summary>")
		r.p("")
		for _, s := range m.Swarm {
			r.p("- %s", s)
		}
		for _, s := range m.Plugin {
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
		r.goals = append(r.goals, &goal{measure: "multi-host TCP throughput", weft: "not measured", baseline: "—", ratio: estimate{V: math.NaN()}, goalText: "—", anchor: "multihost"},
			&goal{measure: "swarm task-to-task throughput vs " + mhOverlay, weft: "not measured", baseline: "—", ratio: estimate{V: math.NaN()}, goalText: "≥ 1.00", anchor: "multihost"})
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
	for _, pr := range [][2]string{{mhWeft, mhOverlay}, {mhWeft, mhUnderlay}, {mhSwarm, mhOverlay}, {mhSwarm, mhUnderlay}, {mhSwarm, mhWeft}, {mhOverlay, mhUnderlay}} {
		a, b := pr[0], pr[1]
		if !contains(d.Targets, a) || !contains(d.Targets, b) {
			continue
		}
		r.p("| %s / %s | %s | %s | %s | %s |", a, b, ratio(d.Tput[a], d.Tput[b]).fmt("x"), ratio(field(a, rate), field(b, rate)).fmt("x"),
			ratio(field(a, p50), field(b, p50)).fmt("x"), ratio(field(a, p99), field(b, p99)).fmt("x"))
	}
	r.p("")
	for _, g := range multihostGoals {
		if !contains(d.Targets, g.weft) || !contains(d.Targets, g.base) {
			weft, why := "not measured", "not measured"
			if contains(d.Targets, g.weft) {
				weft = fmt.Sprintf("%.2f Gbit/s", median(d.Tput[g.weft]))
			} else if g.weft == mhSwarm && m.SwarmNote != "" {
				weft = "not measured: " + strings.ReplaceAll(firstLine(m.SwarmNote), "|", "\\|")
			}
			if g.base == mhOverlay && m.OverlayNote != "" && !contains(d.Targets, g.base) {
				why = "not measured: " + strings.ReplaceAll(firstLine(m.OverlayNote), "|", "\\|")
			} else if contains(d.Targets, g.base) {
				why = fmt.Sprintf("%s %.2f Gbit/s", g.base, median(d.Tput[g.base]))
			}
			r.goals = append(r.goals, &goal{measure: g.what + " TCP throughput vs " + g.base, weft: weft,
				baseline: why, ratio: estimate{V: math.NaN()}, goalText: fmt.Sprintf("≥ %.2f", g.limit), anchor: "multihost"})
			continue
		}
		r.goals = append(r.goals,
			&goal{measure: g.what + " TCP throughput vs " + g.base, weft: fmt.Sprintf("%.2f Gbit/s", median(d.Tput[g.weft])),
				baseline: fmt.Sprintf("%s %.2f Gbit/s", g.base, median(d.Tput[g.base])),
				ratio:    ratio(d.Tput[g.weft], d.Tput[g.base]), goalText: fmt.Sprintf("≥ %.2f", g.limit), ok: ge(g.limit), anchor: "multihost"},
			&goal{measure: g.what + " request/response rate vs " + g.base, weft: fmt.Sprintf("%.0f/s (p50 %.0f µs)", median(field(g.weft, rate)), median(field(g.weft, p50))),
				baseline: fmt.Sprintf("%s %.0f/s (p50 %.0f µs)", g.base, median(field(g.base, rate)), median(field(g.base, p50))),
				ratio:    ratio(field(g.weft, rate), field(g.base, rate)), goalText: fmt.Sprintf("≥ %.2f", g.limit), ok: ge(g.limit), anchor: "multihost"},
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
		if !contains(d.Targets, g.weft) || !contains(d.Targets, g.base) {
			continue
		}
		for _, mt := range []struct {
			name string
			get  func(t string) []float64
		}{
			{"throughput", func(t string) []float64 { return d.Tput[t] }},
			{"request/response rate", func(t string) []float64 { return field(t, rate) }},
		} {
			e := ratio(mt.get(g.weft), mt.get(g.base))
			if !e.ok() || e.V >= g.limit {
				continue
			}
			r.p("**Goal missed: %s, %s / %s = %s (goal ≥ %.2f).**", mt.name, g.weft, g.base, e.fmt("x"), g.limit)
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
				if g.weft == mhSwarm && contains(d.Targets, mhWeft) {
					r.p("weft's swarm install builds the same links as weft vxlan (only the control plane differs:")
					r.p("gossip instead of etcd); on the same rounds weft swarm / weft vxlan = %s.", ratio(mt.get(mhSwarm), mt.get(mhWeft)).fmt("x"))
				}
			}
			r.p("")
		}
	}
	return nil
}

// between makes t measure from ctrs[1] on hosts[1] (client) to ctrs[0] on
// hosts[0] (server), over network, once the client reaches the server: the
// other host learns the server's endpoint asynchronously (weft: through etcd
// or its gossip; the overlay: through the swarm's gossip). what names the
// containers in errors.
func (t *target) between(hosts [2]*dockerHost, ctrs [2]string, network, what string) error {
	var pids [2]int
	for i, h := range hosts {
		pid, ip, err := h.containerNet(ctrs[i], network)
		if err != nil {
			return err
		}
		pids[i] = pid
		if i == 0 {
			t.serverIP = ip
		}
	}
	t.serverNS = "/proc/" + strconv.Itoa(pids[0]) + "/ns/net"
	t.clientNS = "/proc/" + strconv.Itoa(pids[1]) + "/ns/net"
	if err := pingFrom(t.clientNS, t.serverIP, 60*time.Second); err != nil {
		return fmt.Errorf("%s: the %s on host %s cannot reach the one on host %s (%s): %w", t.name, what, hosts[1].name, hosts[0].name, t.serverIP, err)
	}
	return nil
}
