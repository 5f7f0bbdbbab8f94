//go:build e2e

package e2e

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weftnet/weft/test/testhost"
)

// Swarm services on a global-scope weft (WEFT_SCOPE=global, docs/swarm.md):
// three managed-plugin hosts (managed_host_test.go) on one underlay LAN
// (macvlan_lan_test.go, as in vxlan_test.go), one swarm manager and two
// workers, the plugin installed from the registry under the same name:tag
// on each with its own state directory, one gossip key, its own VTEP. The
// manager's weft allocates the network's VNI (AllocateNetwork); every node
// makes the vxlan network with it and learns the other nodes' containers
// through weft's gossip, seeded with the node addresses dockerd sends.

const (
	swUnderRouter = "192.0.2.254/24" // the underlay's switch; host i is .1i
	swUnderPort   = "swu0"
	swNet         = "sw-net"
	swSubnet      = "10.250.0.0/24"
	swSvc         = "sw-svc"
	// swTTL is WEFT_LEASE_TTL.
	swTTL = 3 * time.Second
	// swFirstVNI is the VNI a fresh swarm's first weft network gets:
	// AllocateNetwork counts down from 4095.
	swFirstVNI = 4095
	// swTasksMax bounds how long the global service's tasks may take to
	// run on every node.
	swTasksMax = 90 * time.Second
	// swConverge bounds how long a change may take to reach the other
	// nodes' kernels (and answers to come back).
	swConverge = 30 * time.Second
	// swCleanMax is how long the vxlan links may outlive the service and
	// the network.
	swCleanMax = 30 * time.Second
)

// TestSwarmGlobalService: a swarm network of weft (-d name:tag
// --attachable) made on the manager gets a weft-chosen vni; a global
// service (dnsrr) runs a task on every node, with the same vni on every
// node's link, every node's kernel holding the other nodes' tasks as
// permanent entries to their VTEPs, tasks pinging each other by address
// across nodes and by tasks.NAME; a standalone container on the attachable
// network on a worker reaches tasks on the other nodes and they reach it;
// one worker's weft SIGKILLed leaves the other nodes' tasks talking, and
// once dockerd restarted it a container started there reaches the other
// nodes and they it; removing the service and the network removes every
// node's vxlan links within swCleanMax.
func TestSwarmGlobalService(t *testing.T) {
	start := time.Now()
	requireSuite(t)
	vxRequireKernel(t)
	startRegistry(t)
	requireManagedPlugin(t) // shared with the managed tests
	own := time.Now()
	names := []string{"sw1", "sw2", "sw3"}
	hosts := startSwarmHosts(t, names)
	h1, h2, h3 := hosts[0], hosts[1], hosts[2]
	vteps := map[*Host]netip.Addr{}
	for i, h := range hosts {
		vteps[h] = netip.MustParseAddr(fmt.Sprintf("192.0.2.%d", 11+i))
	}
	t.Logf("3 managed-plugin hosts up in %s", time.Since(own).Round(time.Millisecond))

	// The underlay, working before anyone is asked to use it.
	lan := newLAN(t, "sw", netip.MustParsePrefix(swUnderRouter), 1500, false)
	for _, h := range hosts {
		lan.Attach(t, h, swUnderPort)
		h.NS(t, "ip", "addr", "add", vteps[h].String()+"/24", "dev", swUnderPort)
	}
	for _, h := range hosts[1:] {
		if out, err := h.ns("busybox", "ping", "-c", "1", "-W", "2", vteps[h1].String()); err != nil {
			t.Fatalf("underlay: host %s cannot ping host %s at %s: %v\n%s", h.Name, h1.Name, vteps[h1], err, out)
		}
	}

	// The plugin, same name:tag everywhere, installed at once on every host.
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	gossipKey := base64.StdEncoding.EncodeToString(key)
	t0 := time.Now()
	errs := make([]error, len(hosts))
	var wg sync.WaitGroup
	for i, h := range hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = swInstall(h, "LOG_LEVEL=debug", "WEFT_SCOPE=global", "WEFT_GOSSIP_KEY="+gossipKey,
				"WEFT_VTEP_ADDR="+vteps[h].String(), "WEFT_LEASE_TTL="+swTTL.String(), "WEFT_RESERVATION_GRACE="+swGrace.String())
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	ref := mp(h1).ref
	t.Logf("plugin %s installed on 3 hosts (WEFT_SCOPE=global, one WEFT_GOSSIP_KEY, own WEFT_VTEP_ADDR, WEFT_LEASE_TTL=%s, own state.source) in %s",
		ref, swTTL, time.Since(t0).Round(time.Millisecond))

	// The swarm: h1 the manager, h2 and h3 workers, on the underlay.
	t0 = time.Now()
	a1 := vteps[h1].String()
	h1.Docker(t, "swarm", "init", "--advertise-addr", a1, "--listen-addr", a1+":2377")
	token := h1.Docker(t, "swarm", "join-token", "-q", "worker")
	for i, h := range hosts[1:] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a := vteps[h].String()
			_, _, errs[i] = h.DockerErr("swarm", "join", "--token", token, "--advertise-addr", a, "--listen-addr", a+":2377", a1+":2377")
		}()
	}
	wg.Wait()
	if err := errors.Join(errs[:2]...); err != nil {
		t.Fatalf("docker swarm join: %v", err)
	}
	// Cleanups run last first: these run after the service's and the
	// network's, below.
	for _, h := range []*Host{h1, h2, h3} {
		t.Cleanup(func() {
			if _, stderr, err := h.DockerErr("swarm", "leave", "--force"); err != nil && !strings.Contains(stderr, "not part of a swarm") {
				t.Logf("host %s: docker swarm leave --force: %v", h.Name, err)
			}
		})
	}
	var nodes string
	err := testhost.Poll(60*time.Second, func() error {
		nodes = h1.Docker(t, "node", "ls", "--format", "{{.Hostname}} {{.Status}} {{.ManagerStatus}}")
		if n := strings.Count(nodes, " Ready"); n != 3 {
			return fmt.Errorf("%d nodes ready", n)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("the swarm did not get 3 ready nodes: %v\n%s", err, nodes)
	}
	t.Logf("swarm of 3 nodes ready in %s:\n%s", time.Since(t0).Round(time.Millisecond), nodes)

	// The wefts find each other: nothing but the node addresses dockerd
	// sends (DiscoverNew) tells a weft where the others are, so each must
	// log every other node joining its gossip, at that node's VTEP.
	t0 = time.Now()
	var noJoin []string
	err = testhost.Poll(swConverge, func() error {
		noJoin = nil
		for _, h := range hosts {
			id, err := mp(h).id(h)
			if err != nil {
				return err
			}
			lines := weftLog(h, id, 0)
			for _, o := range hosts {
				if o != h && !slices.ContainsFunc(lines, func(l weftLogLine) bool {
					return strings.Contains(l.Msg, "gossip: node joined") && strings.Contains(l.Msg, " addr="+vteps[o].String())
				}) {
					noJoin = append(noJoin, fmt.Sprintf("%s has not seen %s (%s) join", h.Name, o.Name, vteps[o]))
				}
			}
		}
		if len(noJoin) > 0 {
			return fmt.Errorf("%d of 6 joins missing", len(noJoin))
		}
		return nil
	})
	if err != nil {
		t.Errorf("the wefts' gossip did not connect every node within %s (seeded by DiscoverNew): %v\n  %s", swConverge, err, strings.Join(noJoin, "\n  "))
	} else {
		t.Logf("every weft logged the other two nodes joining its gossip %s after the swarm was ready", time.Since(t0).Round(time.Millisecond))
	}

	// 1. The network, made on the manager.
	t0 = time.Now()
	netID := h1.Docker(t, "network", "create", "-d", ref, "--attachable", "--subnet", swSubnet, swNet)
	t.Cleanup(func() {
		if _, stderr, err := h1.DockerErr("network", "rm", swNet); err != nil && !strings.Contains(stderr, "not found") && !strings.Contains(stderr, "No such network") {
			t.Errorf("removing network %s: %v", swNet, err)
		}
	})
	t.Logf("docker network create -d %s --attachable --subnet %s %s: %s", ref, swSubnet, swNet, time.Since(t0).Round(time.Millisecond))
	var inspect struct {
		Scope   string
		Driver  string
		Options map[string]string
		IPAM    struct{ Driver string }
	}
	if err := json.Unmarshal([]byte(h1.Docker(t, "network", "inspect", "-f", "{{json .}}", swNet)), &inspect); err != nil {
		t.Fatal(err)
	}
	t.Logf("network %s (%s): scope %s, driver %s, IPAM driver %s, options %v", swNet, netID[:12], inspect.Scope, inspect.Driver, inspect.IPAM.Driver, inspect.Options)
	if inspect.Scope != "swarm" {
		t.Errorf("network %s has scope %q; want swarm", swNet, inspect.Scope)
	}
	vni, err := strconv.Atoi(inspect.Options["vni"])
	if err != nil {
		t.Fatalf("network %s has no vni option (the manager's weft allocates one): options %v", swNet, inspect.Options)
	}
	if vni != swFirstVNI {
		t.Errorf("network %s has vni %d; want %d, the first weft chooses in a fresh swarm", swNet, vni, swFirstVNI)
	}

	// 2. A global service: a task on every node.
	t.Cleanup(func() {
		if _, stderr, err := h1.DockerErr("service", "rm", swSvc); err != nil && !strings.Contains(stderr, "not found") {
			t.Errorf("removing service %s: %v", swSvc, err)
		}
	})
	for _, h := range hosts {
		// Standalone containers go first (cleanups run last first).
		t.Cleanup(func() {
			for _, c := range []string{"sw-c2", "sw-c3"} {
				if _, stderr, err := h.DockerErr("rm", "-f", c); err != nil && !strings.Contains(stderr, "No such container") {
					t.Errorf("host %s: removing %s: %v", h.Name, c, err)
				}
			}
		})
	}
	t0 = time.Now()
	h1.Docker(t, "service", "create", "--detach", "--mode", "global", "--endpoint-mode", "dnsrr", "--network", swNet,
		"--name", swSvc, "--no-resolve-image", "--stop-grace-period", "1s", testImage, "sleep", "86400")
	tasks := map[*Host]string{}
	err = testhost.Poll(swTasksMax, func() error {
		var missing []string
		for _, h := range hosts {
			if tasks[h] != "" {
				continue
			}
			ids := strings.Fields(h.Docker(t, "ps", "-q", "--filter", "label=com.docker.swarm.service.name="+swSvc))
			switch len(ids) {
			case 0:
				missing = append(missing, h.Name)
			case 1:
				tasks[h] = ids[0]
			default:
				return testhost.RetryStop(fmt.Errorf("host %s runs %d tasks of the global service: %v", h.Name, len(ids), ids))
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("no running task on %v", missing)
		}
		return nil
	})
	if err != nil {
		out, _, _ := h1.DockerErr("service", "ps", "--no-trunc", "--format", "{{.Node}} {{.CurrentState}} {{.Error}}", swSvc)
		t.Fatalf("global service %s: %v\ndocker service ps:\n%s", swSvc, err, out)
	}
	t.Logf("global service %s: a task running on each of the 3 nodes %s after docker service create", swSvc, time.Since(t0).Round(time.Millisecond))

	ep := func(t testing.TB, h *Host, ctr string) vxEP {
		t.Helper()
		e := vxEndpoint(t, h, ctr, swNet)
		e.vtep = vteps[h]
		return e
	}
	subnet := netip.MustParsePrefix(swSubnet)
	var taskEPs []vxEP
	seen := map[netip.Addr]string{}
	for _, h := range hosts {
		e := ep(t, h, tasks[h])
		if !subnet.Contains(e.ip) {
			t.Errorf("%s: address %s is outside %s", e, e.ip, subnet)
		}
		if other, dup := seen[e.ip]; dup {
			t.Errorf("%s has %s, which %s has too", e, e.ip, other)
		}
		seen[e.ip] = e.String()
		taskEPs = append(taskEPs, e)
	}
	t.Logf("tasks: %s; %s; %s", taskEPs[0], taskEPs[1], taskEPs[2])
	for _, h := range hosts {
		if got := vxLinkVNI(t, h, swNet); got != vni {
			t.Errorf("host %s: %s's vxlan link has vni %d; want the allocated %d", h.Name, swNet, got, vni)
		}
		vx, _ := vxLinks(t, h, swNet)
		if got := vx.data("local"); got != vteps[h].String() {
			t.Errorf("host %s: %s has local address %q; want the VTEP %s", h.Name, vx.Name, got, vteps[h])
		}
	}
	t0 = time.Now()
	vxAwait(t, "the tasks' endpoints through the gossip", swConverge, swWants(hosts, taskEPs))
	t.Logf("every node's kernel holds the other nodes' tasks %s after the last task was found", time.Since(t0).Round(time.Millisecond))
	t0 = time.Now()
	vxPingAll(t, "tasks across nodes, by address", swConverge, vxPairs(taskEPs)...)
	t.Logf("tasks ping each other by address across nodes: %s", time.Since(t0).Round(time.Millisecond))

	// tasks.NAME from Docker's DNS: every task's address, asked in each task.
	t.Run("TasksDNS", func(t *testing.T) {
		want := []string{}
		for _, e := range taskEPs {
			want = append(want, e.ip.String())
		}
		slices.Sort(want)
		t0 := time.Now()
		for _, e := range taskEPs {
			var got []string
			var out string
			err := testhost.Poll(swConverge, func() error {
				var err error
				out, err = e.h.Exec(e.ctr, "nslookup", "tasks."+swSvc)
				got = swAnswers(out, subnet)
				if !slices.Equal(got, want) {
					return fmt.Errorf("answers %v (%v)", got, err)
				}
				return nil
			})
			if err != nil {
				t.Errorf("%s: Docker's DNS does not answer tasks.%s with every task's address %v: %v\nnslookup said:\n%s", e, swSvc, want, err, out)
				continue
			}
			e.h.AssertPing(t, e.ctr, "tasks."+swSvc)
		}
		if !t.Failed() {
			t.Logf("tasks.%s answers %v in every task (%s), and pings", swSvc, want, time.Since(t0).Round(time.Millisecond))
		}
	})

	// 3. A standalone container on the attachable network, on a worker.
	t0 = time.Now()
	h2.Docker(t, h2.runArgs("sw-c2", []string{"--network", swNet})...)
	c2 := ep(t, h2, "sw-c2")
	t.Logf("standalone container %s started in %s", c2, time.Since(t0).Round(time.Millisecond))
	t0 = time.Now()
	vxPingAll(t, "a standalone container and the other nodes' tasks", swConverge,
		vxPair{c2, taskEPs[2]}, vxPair{taskEPs[2], c2}, vxPair{c2, taskEPs[0]}, vxPair{taskEPs[0], c2})
	t.Logf("standalone container on %s and tasks on %s and %s ping each other: %s", h2.Name, h1.Name, h3.Name, time.Since(t0).Round(time.Millisecond))

	// 4. Worker h3's weft SIGKILLed: dockerd restarts it.
	t.Run("WeftKilled", func(t *testing.T) {
		p := mp(h3)
		old, err := p.pid(h3)
		if err != nil {
			t.Fatal(err)
		}
		id, _ := p.id(h3)
		mark := testhost.FileSize(filepath.Join(h3.Dir, "dockerd.log"))
		if err := p.kill(h3); err != nil {
			t.Fatal(err)
		}
		killed := time.Now()
		t.Logf("host %s: weft (pid %d) SIGKILLed", h3.Name, old)
		// While it is down, and while it comes back: the other nodes'
		// tasks keep talking, among themselves and to h3's task.
		during := []vxPair{{taskEPs[0], taskEPs[1]}, {taskEPs[1], taskEPs[0]}, {taskEPs[0], taskEPs[2]}, {c2, taskEPs[2]}}
		vxPingAll(t, "with "+h3.Name+"'s weft killed", 5*time.Second, during...)
		var pid int
		err = testhost.Poll(30*time.Second, func() error {
			if pid, err = p.pid(h3); err != nil {
				return err
			}
			if pid == old {
				return fmt.Errorf("weft (pid %d) is still the old process", pid)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("dockerd did not restart the killed plugin: %v", err)
		}
		if err := p.waitReady(h3); err != nil {
			t.Fatal(err)
		}
		t.Logf("host %s: weft back (pid %d) and answering %s after the kill", h3.Name, pid, time.Since(killed).Round(time.Millisecond))
		vxPingAll(t, "with "+h3.Name+"'s weft back", 5*time.Second, append(during, vxPair{taskEPs[2], taskEPs[0]})...)

		// It converges: a container started on h3 now is published to the
		// other nodes (the restarted weft is in the gossip again), and h3
		// still holds theirs.
		t0 := time.Now()
		h3.Docker(t, h3.runArgs("sw-c3", []string{"--network", swNet})...)
		c3 := ep(t, h3, "sw-c3")
		vxAwait(t, "after "+h3.Name+"'s weft came back", swConverge, []vxWant{
			{h: h1, net: swNet, has: []vxEP{taskEPs[1], taskEPs[2], c2, c3}},
			{h: h2, net: swNet, has: []vxEP{taskEPs[0], taskEPs[2], c3}},
			{h: h3, net: swNet, has: []vxEP{taskEPs[0], taskEPs[1], c2}},
		})
		vxPingAll(t, "to and from a container started after the weft came back", swConverge,
			vxPair{c3, taskEPs[0]}, vxPair{taskEPs[0], c3}, vxPair{c2, c3}, vxPair{c3, c2})
		t.Logf("container %s on %s started after the restart: in the other kernels and answering %s after its start (%s after the kill)",
			c3, h3.Name, time.Since(t0).Round(time.Millisecond), time.Since(killed).Round(time.Millisecond))
		var joined []string
		for _, l := range weftLog(h3, id, mark) {
			if strings.Contains(l.Msg, "gossip: node joined") || strings.Contains(l.Msg, "gossip started") {
				joined = append(joined, l.Msg)
			}
		}
		t.Logf("host %s: the restarted weft's gossip lines:\n  %s", h3.Name, strings.Join(joined, "\n  "))
	})

	// weft's IPAM for a second swarm network (swarmipam_test.go).
	t.Run("WeftIPAM", func(t *testing.T) { swIPAMStep(t, hosts, ref, vteps) })

	// 5. Everything removed: no vxlan link left on any node.
	t0 = time.Now()
	for _, hc := range []struct {
		h *Host
		c string
	}{{h2, "sw-c2"}, {h3, "sw-c3"}} {
		if _, stderr, err := hc.h.DockerErr("rm", "-f", hc.c); err != nil && !strings.Contains(stderr, "No such container") {
			t.Errorf("host %s: removing %s: %v", hc.h.Name, hc.c, err)
		}
	}
	h1.Docker(t, "service", "rm", swSvc)
	err = testhost.Poll(swCleanMax, func() error {
		for _, h := range hosts {
			if ids := strings.Fields(h.Docker(t, "ps", "-aq", "--filter", "label=com.docker.swarm.service.name="+swSvc)); len(ids) > 0 {
				return fmt.Errorf("host %s still has task containers %v", h.Name, ids)
			}
		}
		return nil
	})
	if err != nil {
		t.Errorf("after docker service rm: %v", err)
	}
	tasksGone := time.Since(t0)
	err = testhost.Poll(swCleanMax, func() error {
		_, _, err := h1.DockerErr("network", "rm", swNet)
		return err
	})
	if err != nil {
		t.Fatalf("docker network rm %s: %v", swNet, err)
	}
	netGone := time.Since(t0)
	var left []string
	err = testhost.Poll(swCleanMax, func() error {
		left = nil
		for _, h := range hosts {
			ls, err := hostLinks(h)
			if err != nil {
				return err
			}
			for _, l := range ls {
				if isVxlanLink(l.Name, l.Alias) {
					left = append(left, h.Name+": "+l.String())
				}
			}
		}
		if len(left) > 0 {
			return fmt.Errorf("%d vxlan links", len(left))
		}
		return nil
	})
	if err != nil {
		t.Errorf("%s after the service and the network were removed, vxlan links are left: %v\n  %s", swCleanMax, err, strings.Join(left, "\n  "))
	} else {
		t.Logf("service removed: its tasks gone from every node after %s, network removed after %s, no vxlan link on any node after %s",
			tasksGone.Round(time.Millisecond), netGone.Round(time.Millisecond), time.Since(t0).Round(time.Millisecond))
	}
	for _, h := range hosts {
		if objs, err := vxObjects(h); err == nil && len(objs) > 0 {
			t.Logf("host %s: weft vxlan objects after the removal: %s", h.Name, strings.Join(objs, "; "))
		}
		id, _ := mp(h).id(h)
		nErr := 0
		for _, l := range weftLog(h, id, 0) {
			if l.Level == "ERROR" {
				nErr++
				if nErr <= 5 {
					t.Logf("host %s: weft logged: %s", h.Name, l.Msg)
				}
			}
		}
		t.Logf("host %s: weft logged %d ERROR lines", h.Name, nErr)
	}
	t.Logf("test body took %s; of its own (after the plugin build) %s", time.Since(start).Round(time.Millisecond), time.Since(own).Round(time.Millisecond))
}

// startSwarmHosts gives the test managed-plugin hosts, made at once, with
// the plugin not yet installed (swInstall), torn down when the test ends.
func startSwarmHosts(t *testing.T, names []string) []*Host {
	t.Helper()
	requireManagedPlugin(t)
	hs := make([]*Host, len(names))
	errs := make([]error, len(names))
	for i, name := range names {
		p := &managedPlugin{ref: managedRef(managedTag1)}
		h := &Host{Name: name, Machine: testhost.NewMachine(nsPrefix+name, filepath.Join(cfg.dir, name)), plugin: p}
		hs[i] = h
		t.Cleanup(func() {
			if err := h.close(); err != nil {
				t.Errorf("tearing down host %s: %v", name, err)
			}
			if p.fwd != nil {
				_ = p.fwd.Close()
			}
		})
	}
	var wg sync.WaitGroup
	for i, h := range hs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := mp(h).setUp(h, nil); err != nil {
				errs[i] = fmt.Errorf("starting host %s: %w", h.Name, err)
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	for _, h := range hs {
		h.dumpLogsOnFailure(t)
	}
	return hs
}

// swInstall installs the plugin on h from the registry with the settings
// and h's own state directory, and waits until it answers.
func swInstall(h *Host, settings ...string) error {
	p := mp(h)
	if err := os.MkdirAll(p.stateDir, 0o755); err != nil {
		return err
	}
	args := append([]string{"plugin", "install", "--grant-all-permissions", p.ref, "state.source=" + p.stateDir}, settings...)
	if _, _, err := h.DockerErr(args...); err != nil {
		return fmt.Errorf("host %s: %w", h.Name, err)
	}
	if err := p.waitReady(h); err != nil {
		return fmt.Errorf("host %s: %w", h.Name, err)
	}
	return nil
}

// swWants is, for every host, the endpoints of the other hosts.
func swWants(hosts []*Host, eps []vxEP) []vxWant {
	var ws []vxWant
	for _, h := range hosts {
		w := vxWant{h: h, net: swNet}
		for _, e := range eps {
			if e.h != h {
				w.has = append(w.has, e)
			}
		}
		ws = append(ws, w)
	}
	return ws
}

// swAnswers is the addresses in subnet that busybox nslookup printed,
// sorted, without duplicates.
func swAnswers(out string, subnet netip.Prefix) []string {
	var as []string
	for _, f := range strings.Fields(out) {
		if a, err := netip.ParseAddr(f); err == nil && subnet.Contains(a) && !slices.Contains(as, a.String()) {
			as = append(as, a.String())
		}
	}
	slices.Sort(as)
	return as
}
