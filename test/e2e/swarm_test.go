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

	"github.com/weftnet/weft/dataplane"
	"github.com/weftnet/weft/dataplane/vxlan"
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
	// swVTEPSet is a global-scope weft's known-VTEP set (dataplane/vxlan,
	// the swarm flavour).
	swVTEPSet = "weft-swarm-vteps4"
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
// nodes and they it; a replicated dnsrr service scaled to 6 and back to 1
// has unique addresses, and the removed tasks' endpoints leave weft's state,
// their veths and the other kernels; worker h3 drained loses its tasks (and
// the other nodes their entries) and, with no task of the network left, its
// vxlan links, and gets a global task back once active; through the
// manager's dockerd restart the workers' tasks ping each other without a
// loss, and tasks scaled up afterwards get unique addresses; h3 leaving the
// swarm (its weft still running) loses its tasks' entries and, after the
// grace period, its VTEP on the other nodes; removing the services and the
// network leaves no link, rule, set or state of weft on any node.
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

	// The global tasks and the standalone container, as the steps below
	// follow them.
	glob := map[*Host]swTask{}
	for _, h := range hosts {
		task, err := swTaskInfo(h, vteps[h], tasks[h])
		if err != nil {
			t.Fatal(err)
		}
		glob[h] = task
	}
	globEPs := func() []vxEP {
		var eps []vxEP
		for _, h := range hosts {
			if task, ok := glob[h]; ok {
				eps = append(eps, task.vxEP)
			}
		}
		return eps
	}
	sc2, err := swTaskInfo(h2, vteps[h2], "sw-c2")
	if err != nil {
		t.Fatal(err)
	}
	const swRep = "sw-rep"
	t.Cleanup(func() {
		if _, stderr, err := h1.DockerErr("service", "rm", swRep); err != nil && !strings.Contains(stderr, "not found") {
			t.Errorf("removing service %s: %v", swRep, err)
		}
	})
	var reps []swTask

	// 5. A replicated service (dnsrr) scaled up to 6 and down to 1: unique
	// addresses, and the removed tasks' endpoints gone from every kernel
	// and from weft's state.
	t.Run("Scale", func(t *testing.T) {
		t0 := time.Now()
		h1.Docker(t, "service", "create", "--detach", "--replicas", "2", "--endpoint-mode", "dnsrr", "--network", swNet,
			"--name", swRep, "--no-resolve-image", "--stop-grace-period", "1s", testImage, "sleep", "86400")
		swRunning(t, h1, hosts, vteps, swRep, 2, swTasksMax)
		h1.Docker(t, "service", "scale", "--detach", swRep+"=6")
		reps = swRunning(t, h1, hosts, vteps, swRep, 6, swTasksMax)
		var where []string
		for _, r := range reps {
			where = append(where, r.h.Name+" "+r.ip.String())
		}
		t.Logf("service %s: 6 tasks running %s after docker service create (2) and scale (6): %s", swRep, time.Since(t0).Round(time.Millisecond), strings.Join(where, ", "))
		swUnique(t, "6 replicas, the global tasks and "+sc2.ctr, slices.Concat(swEPs(reps), globEPs(), []vxEP{sc2.vxEP}))
		vxAwait(t, "the 6 replicas in the other kernels", swConverge, swTables(hosts, swEPs(reps), nil))
		swLocal(t, "the 6 replicas in weft's state", swConverge, reps, nil)
		var pairs []vxPair
		for i, r := range reps {
			// Each replica to and from a global task on another node.
			o := glob[hosts[(slices.Index(hosts, r.h)+1+i%2)%len(hosts)]]
			pairs = append(pairs, vxPair{r.vxEP, o.vxEP}, vxPair{o.vxEP, r.vxEP})
		}
		vxPingAll(t, "replicas and global tasks across nodes", swConverge, pairs...)

		t0 = time.Now()
		h1.Docker(t, "service", "scale", "--detach", swRep+"=1")
		kept := swRunning(t, h1, hosts, vteps, swRep, 1, swTasksMax)
		var removed []swTask
		for _, r := range reps {
			if r.epID != kept[0].epID {
				removed = append(removed, r)
			}
		}
		if len(removed) != 5 {
			t.Fatalf("after scaling to 1, the task left (%s) is none of the 6 (%v)", kept[0], where)
		}
		reps = kept
		swLocal(t, "5 replicas removed, on their nodes", swConverge, kept, removed)
		vxAwait(t, "5 replicas removed, on the other nodes", swConverge, swTables(hosts, slices.Concat(swEPs(kept), globEPs()), swEPs(removed)))
		t.Logf("scaled down to 1 (%s): the 5 others' endpoints gone from weft's state, their veths and the other kernels' entries %s after docker service scale",
			kept[0], time.Since(t0).Round(time.Millisecond))
	})

	// 6. Worker h3 drained: its tasks stop, their endpoints leave every
	// node; with no task of the network left there, Docker deletes the
	// network on h3 and weft its links. Active again, h3 gets a global
	// task back.
	t.Run("Drain", func(t *testing.T) {
		if _, stderr, err := h3.DockerErr("rm", "-f", "sw-c3"); err != nil && !strings.Contains(stderr, "No such container") {
			t.Fatalf("host %s: removing sw-c3: %v", h3.Name, err)
		}
		var on3 []swTask
		for _, task := range slices.Concat([]swTask{glob[h3]}, reps) {
			if task.h == h3 {
				on3 = append(on3, task)
			}
		}
		id3 := h3.Docker(t, "info", "-f", "{{.Swarm.NodeID}}")
		t0 := time.Now()
		h1.Docker(t, "node", "update", "--availability", "drain", id3)
		swRunning(t, h1, []*Host{h3}, vteps, swSvc, 0, swTasksMax)
		reps = swRunning(t, h1, hosts, vteps, swRep, 1, swTasksMax)
		if reps[0].h == h3 {
			t.Errorf("the replica still runs on drained %s", h3.Name)
		}
		delete(glob, h3)
		swLocal(t, "h3's tasks after the drain, on h3", swConverge, nil, on3)
		vxAwait(t, "h3's tasks after the drain, on the other nodes", swConverge,
			swTables([]*Host{h1, h2}, slices.Concat(swEPs(reps), globEPs()), swEPs(on3)))
		t.Logf("node %s drained: its %d tasks' endpoints gone from it and from the other nodes %s after docker node update", h3.Name, len(on3), time.Since(t0).Round(time.Millisecond))
		if left, err := swLinksGone(h3, swCleanMax); err != nil {
			nets, _, _ := h3.DockerErr("network", "ls", "--filter", "name="+swNet, "--format", "{{.Name}} {{.Scope}}")
			ps, _, _ := h3.DockerErr("ps", "-a", "--format", "{{.Names}} {{.Status}}")
			t.Errorf("drained %s keeps links of weft's vxlan mode %s after the drain (docker lists networks %q; containers:\n%s): %v\n  %s",
				h3.Name, swCleanMax, nets, ps, err, strings.Join(left, "\n  "))
		} else {
			t.Logf("drained %s: no task of %s left there, and no vxlan link %s after docker node update", h3.Name, swNet, time.Since(t0).Round(time.Millisecond))
		}
		if st, err := h3.weftState(); err != nil {
			t.Error(err)
		} else if len(st.Networks) != 0 || len(st.Endpoints) != 0 {
			t.Errorf("weft's state on drained %s: networks %v, endpoints %v; want none", h3.Name, st.Networks, st.Endpoints)
		}
		// h1 and h2 keep talking.
		vxPingAll(t, "with "+h3.Name+" drained", swConverge, vxPair{glob[h1].vxEP, glob[h2].vxEP}, vxPair{glob[h2].vxEP, reps[0].vxEP})

		t0 = time.Now()
		h1.Docker(t, "node", "update", "--availability", "active", id3)
		glob[h3] = swRunning(t, h1, []*Host{h3}, vteps, swSvc, 1, swTasksMax)[0]
		if got := vxLinkVNI(t, h3, swNet); got != vni {
			t.Errorf("host %s: %s's vxlan link is back with vni %d; want %d", h3.Name, swNet, got, vni)
		}
		swUnique(t, "the global tasks, the replica and "+sc2.ctr, slices.Concat(globEPs(), swEPs(reps), []vxEP{sc2.vxEP}))
		vxAwait(t, "h3 active again", swConverge, swTables(hosts, slices.Concat(globEPs(), swEPs(reps), []vxEP{sc2.vxEP}), nil))
		vxPingAll(t, "h3's new global task", swConverge,
			vxPair{glob[h3].vxEP, glob[h1].vxEP}, vxPair{glob[h1].vxEP, glob[h3].vxEP}, vxPair{glob[h3].vxEP, sc2.vxEP}, vxPair{sc2.vxEP, glob[h3].vxEP})
		t.Logf("node %s active again: a new global task (%s) there and reaching the other nodes %s after docker node update", h3.Name, glob[h3], time.Since(t0).Round(time.Millisecond))
	})

	// 7. The manager's dockerd restarted (its tasks and its weft with it):
	// the workers' tasks keep talking throughout; afterwards new tasks get
	// addresses unique against the existing ones.
	restartMark := testhost.FileSize(filepath.Join(h1.Dir, "dockerd.log"))
	t.Run("ManagerRestart", func(t *testing.T) {
		p23, p32 := swPinger(t, glob[h2].vxEP, glob[h3].vxEP), swPinger(t, glob[h3].vxEP, glob[h2].vxEP)
		p23.waitReplies(t, 2)
		p32.waitReplies(t, 2)
		t0 := time.Now()
		h1.StopDockerd(t)
		stopped := time.Since(t0)
		h1.StartDockerd(t)
		if err := mp(h1).waitReady(h1); err != nil {
			t.Fatal(err)
		}
		back := time.Since(t0)
		err := testhost.Poll(60*time.Second, func() error {
			out, _, err := h1.DockerErr("node", "ls", "--format", "{{.Status}} {{.Availability}}")
			if err != nil {
				return err
			}
			if n := strings.Count(out, "Ready Active"); n != 3 {
				return fmt.Errorf("%d nodes ready and active:\n%s", n, out)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("after the manager's restart: %v", err)
		}
		glob[h1] = swRunning(t, h1, []*Host{h1}, vteps, swSvc, 1, swTasksMax)[0]
		reps = swRunning(t, h1, hosts, vteps, swRep, 1, swTasksMax)
		t.Logf("manager %s: dockerd stopped in %s, back with its weft in %s, the swarm ready with a new global task there (%s) %s after the stop",
			h1.Name, stopped.Round(time.Millisecond), back.Round(time.Millisecond), glob[h1], time.Since(t0).Round(time.Millisecond))
		for _, p := range []*pinger{p23, p32} {
			l := p.waitReplies(t, 0)
			sent, lost := p.waitReplies(t, l.max+5).summary()
			if len(lost) > 0 {
				t.Errorf("host %s: task %s pinging the other worker's task every 200 ms through the manager's restart: %d of %d echo requests unanswered (seq %v)",
					p.h.Name, p.name, len(lost), sent, vxFirst(strings.Fields(fmt.Sprint(lost)), 20))
			} else {
				t.Logf("host %s: task %s pinging the other worker's task every 200 ms: %d sent, none lost, through the manager's restart", p.h.Name, p.name, sent)
			}
		}
		vxAwait(t, "after the manager's restart", swConverge, swTables(hosts, slices.Concat(globEPs(), swEPs(reps), []vxEP{sc2.vxEP}), nil))
		vxPingAll(t, "the manager's new global task", swConverge,
			vxPair{glob[h1].vxEP, glob[h2].vxEP}, vxPair{glob[h2].vxEP, glob[h1].vxEP}, vxPair{glob[h3].vxEP, glob[h1].vxEP}, vxPair{glob[h1].vxEP, glob[h3].vxEP})

		t0 = time.Now()
		h1.Docker(t, "service", "scale", "--detach", swRep+"=4")
		old := reps[0]
		reps = swRunning(t, h1, hosts, vteps, swRep, 4, swTasksMax)
		if !slices.ContainsFunc(reps, func(r swTask) bool { return r.epID == old.epID && r.ip == old.ip }) {
			t.Errorf("the replica %s is not among the 4 after scaling up", old)
		}
		swUnique(t, "4 replicas after the manager's restart, the global tasks and "+sc2.ctr, slices.Concat(swEPs(reps), globEPs(), []vxEP{sc2.vxEP}))
		vxAwait(t, "the new replicas", swConverge, swTables(hosts, swEPs(reps), nil))
		var pairs []vxPair
		for _, r := range reps {
			o := glob[hosts[(slices.Index(hosts, r.h)+1)%len(hosts)]]
			pairs = append(pairs, vxPair{r.vxEP, o.vxEP}, vxPair{o.vxEP, r.vxEP})
		}
		vxPingAll(t, "the new replicas", swConverge, pairs...)
		t.Logf("scaled up to 4 after the manager's restart: unique addresses, in every kernel and answering %s after docker service scale", time.Since(t0).Round(time.Millisecond))
	})

	// 8. Worker h3 leaves the swarm (its weft keeps running): after the
	// grace period the other nodes hold neither its tasks nor its VTEP.
	t.Run("WorkerLeaves", func(t *testing.T) {
		// dockerd tells its drivers of a node leaving only if its own
		// gossip (networkDB) knew the node: the manager's dockerd, restarted
		// above, may take a minute to learn h3 again (it logs "Node
		// ID/ADDR, joined gossip cluster"). Until then nothing would tell
		// the manager's weft that h3 left; that is Docker's, and not
		// what this step is about.
		waited := time.Now()
		err := testhost.Poll(2*time.Minute, func() error {
			known := func(l string) bool {
				return strings.Contains(l, "/"+vteps[h3].String()+", joined gossip cluster") || strings.Contains(l, "/"+vteps[h3].String()+", added to nodes list")
			}
			if !known(testhost.TailFrom(filepath.Join(h1.Dir, "dockerd.log"), restartMark, 1, func(l string) bool { return !known(l) })) {
				return fmt.Errorf("the manager's dockerd has not logged %s (%s) joining its gossip since its restart", h3.Name, vteps[h3])
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("the manager's dockerd knows %s again (waited %s)", h3.Name, time.Since(waited).Round(time.Millisecond))
		var on3 []swTask
		for _, task := range slices.Concat([]swTask{glob[h3]}, reps) {
			if task.h == h3 {
				on3 = append(on3, task)
			}
		}
		for _, h := range []*Host{h1, h2} {
			if m := vxSetMembersOf(t, h, swVTEPSet); !slices.Contains(m, vteps[h3].String()) {
				t.Errorf("host %s: known VTEPs %v lack %s's %s before it leaves", h.Name, m, h3.Name, vteps[h3])
			}
		}
		marks := map[*Host]int64{}
		for _, h := range []*Host{h1, h2} {
			marks[h] = testhost.FileSize(filepath.Join(h.Dir, "dockerd.log"))
		}
		t0 := time.Now()
		h3.Docker(t, "swarm", "leave", "--force")
		delete(glob, h3)
		var rest []swTask
		for _, r := range reps {
			if r.h != h3 {
				rest = append(rest, r)
			}
		}
		reps = rest
		vxAwait(t, h3.Name+"'s tasks after it left", swConverge,
			swTables([]*Host{h1, h2}, slices.Concat(globEPs(), swEPs(reps), []vxEP{sc2.vxEP}), swEPs(on3)))
		tasksGone := time.Since(t0)
		var sets map[string][]string
		err = testhost.Poll(swTTL+swConverge, func() error {
			sets = map[string][]string{}
			for _, h := range []*Host{h1, h2} {
				m := vxSetMembersOf(t, h, swVTEPSet)
				sets[h.Name] = m
				if slices.Contains(m, vteps[h3].String()) {
					return fmt.Errorf("host %s still lets %s's VTEP %s through", h.Name, h3.Name, vteps[h3])
				}
			}
			return nil
		})
		if err != nil {
			t.Errorf("%s after %s left the swarm (grace %s): %v; known VTEPs %v", swTTL+swConverge, h3.Name, swTTL, err, sets)
		} else {
			t.Logf("%s left the swarm: its %d tasks gone from the other kernels after %s, its VTEP from their known-VTEP sets after %s (grace %s): %v",
				h3.Name, len(on3), tasksGone.Round(time.Millisecond), time.Since(t0).Round(time.Millisecond), swTTL, sets)
		}
		for _, h := range []*Host{h1, h2} {
			id, _ := mp(h).id(h)
			for _, l := range weftLog(h, id, marks[h]) {
				if strings.Contains(l.Msg, "gossip: the swarm says") || strings.Contains(l.Msg, "gossip: node left") {
					t.Logf("host %s: weft logged: %s", h.Name, l.Msg)
				}
			}
		}
		if left, err := swLinksGone(h3, swCleanMax); err != nil {
			t.Errorf("%s, out of the swarm, keeps links of weft's vxlan mode: %v\n  %s", h3.Name, err, strings.Join(left, "\n  "))
		}
		vxPingAll(t, "with "+h3.Name+" gone", swConverge, vxPair{glob[h1].vxEP, glob[h2].vxEP}, vxPair{glob[h2].vxEP, glob[h1].vxEP})
	})

	// 9. Everything removed: nothing of weft's left on any node.
	t0 = time.Now()
	for _, hc := range []struct {
		h *Host
		c string
	}{{h2, "sw-c2"}, {h3, "sw-c3"}} {
		if _, stderr, err := hc.h.DockerErr("rm", "-f", hc.c); err != nil && !strings.Contains(stderr, "No such container") {
			t.Errorf("host %s: removing %s: %v", hc.h.Name, hc.c, err)
		}
	}
	for _, svc := range []string{swSvc, swRep} {
		if _, stderr, err := h1.DockerErr("service", "rm", svc); err != nil && !strings.Contains(stderr, "not found") {
			t.Errorf("docker service rm %s: %v", svc, err)
		}
	}
	err = testhost.Poll(swCleanMax, func() error {
		for _, h := range hosts {
			for _, svc := range []string{swSvc, swRep} {
				if ids := strings.Fields(h.Docker(t, "ps", "-aq", "--filter", "label=com.docker.swarm.service.name="+svc)); len(ids) > 0 {
					return fmt.Errorf("host %s still has task containers %v of %s", h.Name, ids, svc)
				}
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
	// Nothing left: no link, firewall rule or known-VTEP set of weft's
	// vxlan mode (so no forwarding or neighbour entry either), and no
	// network, endpoint, address or record in weft's state but the node
	// addresses it keeps (gossip-seeds, gossip-left).
	var left []string
	err = testhost.Poll(swCleanMax, func() error {
		left = nil
		for _, h := range hosts {
			objs, err := vxObjects(h)
			if err != nil {
				return err
			}
			for _, o := range objs {
				left = append(left, h.Name+": "+o)
			}
			st, err := h.weftState()
			if err != nil {
				return err
			}
			if len(st.Networks)+len(st.Endpoints) > 0 {
				left = append(left, fmt.Sprintf("%s: weft's state has networks %v, endpoints %v", h.Name, st.Networks, st.Endpoints))
			}
			for _, p := range st.Pools {
				if p.Allocated+p.OtherHosts > 0 {
					left = append(left, fmt.Sprintf("%s: weft's pool %s holds %d addresses", h.Name, p.ID, p.Allocated+p.OtherHosts))
				}
			}
			for b, n := range st.Records {
				if n > 0 && b != "gossip-seeds" && b != "gossip-left" {
					left = append(left, fmt.Sprintf("%s: %d records in weft's %s", h.Name, n, b))
				}
			}
		}
		if len(left) > 0 {
			return fmt.Errorf("%d things left", len(left))
		}
		return nil
	})
	if err != nil {
		t.Errorf("%s after the services and the network were removed, weft left: %v\n  %s", swCleanMax, err, strings.Join(left, "\n  "))
	} else {
		t.Logf("services removed: their tasks gone from every node after %s, network removed after %s, nothing of weft's vxlan mode in any kernel nor in any weft's state after %s",
			tasksGone.Round(time.Millisecond), netGone.Round(time.Millisecond), time.Since(t0).Round(time.Millisecond))
	}
	for _, h := range hosts {
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

// swTask is a running task's (or container's) endpoint on swNet and the
// endpoint's ID, which names its veth and its entry in weft's state.
type swTask struct {
	vxEP
	epID string
}

// swTaskInfo reads container ctr's endpoint on swNet: address and
// endpoint ID from docker, MAC from the interface holding the address.
func swTaskInfo(h *Host, vtep netip.Addr, ctr string) (swTask, error) {
	out, _, err := h.DockerErr("inspect", "-f",
		fmt.Sprintf(`{{.State.Pid}} {{with index .NetworkSettings.Networks %q}}{{.IPAddress}} {{.EndpointID}}{{end}}`, swNet), ctr)
	if err != nil {
		return swTask{}, err
	}
	f := strings.Fields(out)
	if len(f) != 3 {
		return swTask{}, fmt.Errorf("host %s: container %s: no endpoint on %s (inspect said %q)", h.Name, ctr, swNet, out)
	}
	ip, err := netip.ParseAddr(f[1])
	if err != nil {
		return swTask{}, fmt.Errorf("host %s: container %s: address %q", h.Name, ctr, f[1])
	}
	js, err := testhost.RunT(30*time.Second, "nsenter", "--target", f[0], "--net", "--", "ip", "-j", "addr", "show")
	if err != nil {
		return swTask{}, fmt.Errorf("host %s: container %s: %w", h.Name, ctr, err)
	}
	var ifs []vxIface
	if err := json.Unmarshal([]byte(js), &ifs); err != nil {
		return swTask{}, fmt.Errorf("host %s: container %s: parsing ip -j addr: %w", h.Name, ctr, err)
	}
	for _, i := range ifs {
		for _, a := range i.AddrInfo {
			if a.Local == ip.String() {
				return swTask{vxEP: vxEP{h: h, ctr: ctr[:min(12, len(ctr))], net: swNet, ip: ip, mac: i.Address, vtep: vtep}, epID: f[2]}, nil
			}
		}
	}
	return swTask{}, fmt.Errorf("host %s: container %s has no interface with its address %s", h.Name, ctr, ip)
}

// swRunning polls, up to d, until service svc has exactly n running task
// containers on hosts (the same ones twice in a row, so that none is on
// its way out), and returns them with their endpoints.
func swRunning(t testing.TB, mgr *Host, hosts []*Host, vteps map[*Host]netip.Addr, svc string, n int, d time.Duration) []swTask {
	t.Helper()
	var ts []swTask
	var prev string
	err := testhost.Poll(d, func() error {
		ts = nil
		var ids []string
		for _, h := range hosts {
			out, _, err := h.DockerErr("ps", "-q", "--no-trunc", "--filter", "label=com.docker.swarm.service.name="+svc)
			if err != nil {
				return err
			}
			for _, id := range strings.Fields(out) {
				ids = append(ids, h.Name+"/"+id)
				if len(ids) > n {
					continue
				}
				task, err := swTaskInfo(h, vteps[h], id)
				if err != nil {
					return err
				}
				ts = append(ts, task)
			}
		}
		if len(ids) != n {
			prev = ""
			return fmt.Errorf("%d running tasks; want %d", len(ids), n)
		}
		if cur := strings.Join(ids, " "); cur != prev {
			prev = cur
			return errors.New("the task set changed since the last look")
		}
		return nil
	})
	if err != nil {
		out, _, _ := mgr.DockerErr("service", "ps", "--format", "{{.Name}} {{.Node}} {{.DesiredState}} {{.CurrentState}} {{.Error}}", svc)
		t.Fatalf("service %s: %v\ndocker service ps:\n%s", svc, err, out)
	}
	return ts
}

// swEPs is the endpoints of tasks.
func swEPs(tasks ...[]swTask) []vxEP {
	var eps []vxEP
	for _, ts := range tasks {
		for _, t := range ts {
			eps = append(eps, t.vxEP)
		}
	}
	return eps
}

// swUnique fails the test if two endpoints share an address.
func swUnique(t testing.TB, what string, eps []vxEP) {
	t.Helper()
	seen := map[netip.Addr]vxEP{}
	for _, e := range eps {
		if o, dup := seen[e.ip]; dup {
			t.Errorf("%s: %s has address %s, which %s has too", what, e, e.ip, o)
		}
		seen[e.ip] = e
	}
}

// swTables is, for each host of on, the endpoints of has on the other
// hosts present, and those of gone on the other hosts absent.
func swTables(on []*Host, has, gone []vxEP) []vxWant {
	var ws []vxWant
	for _, h := range on {
		w := vxWant{h: h, net: swNet}
		for _, e := range has {
			if e.h != h {
				w.has = append(w.has, e)
			}
		}
		for _, e := range gone {
			if e.h != h {
				w.gone = append(w.gone, e)
			}
		}
		ws = append(ws, w)
	}
	return ws
}

// swLocal polls, up to d, until on each task's own host weft's state holds
// the endpoints of has and neither weft's state nor the kernel (its veth)
// holds those of gone.
func swLocal(t testing.TB, what string, d time.Duration, has, gone []swTask) {
	t.Helper()
	var problems []string
	err := testhost.Poll(d, func() error {
		problems = nil
		states := map[*Host]map[string]bool{}
		links := map[*Host]map[string]bool{}
		for _, task := range slices.Concat(has, gone) {
			h := task.h
			if states[h] != nil {
				continue
			}
			st, err := h.weftState()
			if err != nil {
				return err
			}
			states[h] = map[string]bool{}
			for _, id := range st.Endpoints {
				states[h][id] = true
			}
			ls, err := hostLinks(h)
			if err != nil {
				return err
			}
			links[h] = map[string]bool{}
			for _, l := range ls {
				links[h][l.Name] = true
			}
		}
		for _, task := range has {
			if !states[task.h][task.epID] {
				problems = append(problems, fmt.Sprintf("weft's state on %s lacks %s's endpoint %s", task.h.Name, task, dataplane.ShortID(task.epID)))
			}
		}
		for _, task := range gone {
			if states[task.h][task.epID] {
				problems = append(problems, fmt.Sprintf("weft's state on %s still has %s's endpoint %s", task.h.Name, task, dataplane.ShortID(task.epID)))
			}
			if veth, _ := vxlan.Swarm().VethNames(task.epID); links[task.h][veth] {
				problems = append(problems, fmt.Sprintf("host %s still has %s's veth %s", task.h.Name, task, veth))
			}
		}
		if len(problems) > 0 {
			return fmt.Errorf("%d differences", len(problems))
		}
		return nil
	})
	if err != nil {
		t.Errorf("%s: after %s: %v:\n  %s", what, d, err, strings.Join(problems, "\n  "))
	}
}

// swLinksGone polls, up to d, until h has no link of weft's vxlan mode.
func swLinksGone(h *Host, d time.Duration) ([]string, error) {
	var left []string
	err := testhost.Poll(d, func() error {
		ls, err := hostLinks(h)
		if err != nil {
			return err
		}
		left = nil
		for _, l := range ls {
			if isVxlanLink(l.Name, l.Alias) {
				left = append(left, l.String())
			}
		}
		if len(left) > 0 {
			return fmt.Errorf("host %s: %d links of weft's vxlan mode", h.Name, len(left))
		}
		return nil
	})
	return left, err
}

// swPinger starts, in task from, a ping of to's address five times a
// second for at most five minutes, logged in the task (see pinger).
func swPinger(t testing.TB, from, to vxEP) *pinger {
	t.Helper()
	from.h.Docker(t, "exec", "-d", from.ctr, "sh", "-c", "exec ping -i 0.2 -w 300 "+to.ip.String()+" >/tmp/ping.log 2>&1")
	return &pinger{h: from.h, name: from.ctr}
}
