//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/weftnet/weft/store/etcd/etcdtest"
	"github.com/weftnet/weft/test/testhost"
)

// Macvlan networks shared across hosts through etcd (WEFT_STORE=etcd://...):
// three test hosts, each with its own dockerd and weft, whose wefts share a
// real three-member etcd cluster (store/etcd/etcdtest: unix sockets under
// /tmp, which the wefts reach since the hosts share the machine's
// filesystem), and whose macvlan parents are ports of one LAN. The same
// macvlan network (same --subnet, same --gateway: the LAN's router) on every
// host draws from one cluster-wide pool.

const (
	cluNet      = "clu-net"
	cluBridge   = "clu-br"
	cluBrSubnet = "10.231.0.0/24"
	cluBrGW     = "10.231.0.1"
	// cluPerHost is how many containers each host starts at once.
	cluPerHost = 10
	// cluDownMax bounds a whole `docker run` that fails because no etcd
	// member answers: weft gives up within about 5 s; the rest is
	// dockerd's own overhead on a loaded machine.
	cluDownMax = 20 * time.Second
	// cluBackMax is how long new containers may take to work again once
	// etcd is back.
	cluBackMax = 60 * time.Second
	// cluKeysMax is how long the cluster's keys may take to go once
	// everything is removed (the removals are synchronous; this is slack).
	cluKeysMax = 30 * time.Second
)

// TestClusterMacvlanAcrossHosts: one address pool for three hosts, an --ip
// taken elsewhere refused, one etcd member down harmless, every member down
// failing new containers quickly with an error naming etcd while running
// containers and bridge networks keep working, recovery without restarting
// weft, one host's weft SIGKILLed harmless to the others, and nothing of weft
// left in etcd (but its schema marker) once every container and network is
// gone.
func TestClusterMacvlanAcrossHosts(t *testing.T) {
	start := time.Now()
	requireSuite(t)
	if cfg.plugin != "legacy" {
		t.Skipf("WEFT_E2E_PLUGIN=%s: this test gives weft WEFT_STORE through the environment of the legacy weft process (hostOptions.weftEnv), which a managed plugin does not get", cfg.plugin)
	}
	cluster := etcdtest.StartCluster(t, 3)
	cli := etcdClient(t, cluster)
	store := "WEFT_STORE=etcd://" + strings.Join(cluster.Endpoints(), ",")
	t.Logf("%s", store)
	opt := hostOptions{weftEnv: []string{store}}
	hosts := startHosts(t, []string{"clu1", "clu2", "clu3"}, []hostOptions{opt, opt, opt})
	h1, h2, h3 := hosts[0], hosts[1], hosts[2]
	lan := newLAN(t, "clu", netip.MustParsePrefix(lanARouter), lanMTU, false)
	subnet, gw := lan.Prefix, lan.Router
	for _, h := range hosts {
		lan.Attach(t, h, "lanp0")
		watchMacvlanObjects(t, h)
	}
	t.Logf("etcd cluster and 3 hosts up after %s", time.Since(start).Round(time.Millisecond))

	// The same network on every host, same subnet and same gateway.
	for _, h := range hosts {
		h.CreateNetwork(t, cluNet, macvlanArgs("lanp0", "--subnet", subnet.String(), "--gateway", gw.String())...)
		// Containers go before the networks (cleanups run last first).
		t.Cleanup(func() { removeAllContainers(t, h) })
		if s, g := h.NetworkSubnet(t, cluNet); s != subnet || g != gw {
			t.Errorf("host %s: %s has subnet %s, gateway %s; want %s, %s", h.Name, cluNet, s, g, subnet, gw)
		}
	}

	// Every address handed out, with who has it: no two containers of the
	// test, on any host, may ever get the same one.
	owners := map[netip.Addr]string{}
	claim := func(h *Host, names ...string) {
		t.Helper()
		for name, a := range containerIPs(t, h, cluNet, names) {
			who := h.Name + "/" + name
			switch {
			case !subnet.Contains(a):
				t.Errorf("%s got %s, outside the network's subnet %s", who, a, subnet)
			case a == gw:
				t.Errorf("%s got the gateway's address %s", who, a)
			case a == subnet.Addr() || a == lastAddr(subnet):
				t.Errorf("%s got the subnet's network or broadcast address %s", who, a)
			}
			if other, dup := owners[a]; dup {
				t.Errorf("%s got %s, which %s has: one address handed out twice in the cluster", who, a, other)
			}
			owners[a] = who
		}
	}

	// 3 × 10 containers at once.
	t0 := time.Now()
	jobs := hostJobs(hosts, cluNet, "c", cluPerHost)
	if err := errors.Join(runParallel(jobs)...); err != nil {
		t.Fatalf("starting %d containers on 3 hosts at once: %v", len(jobs), err)
	}
	t.Logf("%d containers on 3 hosts at once: %s", len(jobs), time.Since(t0).Round(time.Millisecond))
	for _, h := range hosts {
		claim(h, jobNames(jobs, h)...)
	}
	if len(owners) != len(jobs) {
		t.Fatalf("%d containers have %d distinct addresses; want %d", len(jobs), len(owners), len(jobs))
	}
	// The pool lives in etcd: the final "no key left" check would mean
	// nothing if weft wrote nothing there.
	if keys, err := weftKeys(cli); err != nil {
		t.Fatal(err)
	} else if len(keys) == 0 {
		t.Fatalf("with %d containers on a shared macvlan network, etcd holds no weft key under /weft/ (only the schema marker): weft does not keep the pool in etcd", len(jobs))
	} else {
		t.Logf("etcd holds %d weft keys (besides the schema marker) with %d containers", len(keys), len(jobs))
	}
	// Real packets across hosts over the LAN (the control for the same
	// check with etcd down, below).
	a1, a2 := h1.ContainerIP(t, "clu1-c01", cluNet), h2.ContainerIP(t, "clu2-c01", cluNet)
	h1.AssertPing(t, "clu1-c01", a2.String())
	h2.AssertPing(t, "clu2-c01", a1.String())
	h3.AssertPing(t, "clu3-c01", a1.String())

	// --ip of a host-1 container, on host 2: refused, nothing started.
	t.Run("IPTakenOnAnotherHost", func(t *testing.T) {
		h2.cleanupContainer(t, "clu2-dup")
		_, stderr, err := h2.DockerErr(h2.runArgs("clu2-dup", []string{"--network", cluNet, "--ip", a1.String()})...)
		if err == nil {
			t.Fatalf("docker run --ip %s on host %s succeeded, though host %s's clu1-c01 has that address", a1, h2.Name, h1.Name)
		}
		t.Logf("error: %s", stderr)
		if !strings.Contains(stderr, "already in use on another host") {
			t.Errorf("the error does not say %q: %s", "already in use on another host", stderr)
		}
		if !strings.Contains(stderr, a1.String()) {
			t.Errorf("the error does not name the address %s: %s", a1, stderr)
		}
		if running, _, _ := h2.DockerErr("inspect", "-f", "{{.State.Running}}", "clu2-dup"); strings.TrimSpace(running) == "true" {
			t.Errorf("clu2-dup is running")
		}
		h2.Docker(t, "rm", "-f", "clu2-dup")
		h1.AssertPing(t, "clu1-c01", a2.String()) // the owner is unharmed
	})

	// One member down: the other two are a quorum.
	one := hostJobs(hosts, cluNet, "m1", 1)
	runOneMemberDown(t, cluster.Members[0], one)
	for _, j := range one {
		claim(j.h, j.name)
	}

	// Every member down.
	pids := map[*Host]string{}
	for _, h := range hosts {
		pids[h] = weftPID(t, h)
	}
	for _, m := range cluster.Members[1:] {
		m.Stop(t)
	}
	t.Log("every etcd member stopped")
	t.Run("EtcdDown", func(t *testing.T) {
		t.Run("NewContainerFails", func(t *testing.T) {
			assertRunFailsStoreDown(t, hosts, cluNet, cluDownMax)
		})
		t.Run("RunningContainersPing", func(t *testing.T) {
			h1.AssertPing(t, "clu1-c01", a2.String())
			h2.AssertPing(t, "clu2-c01", a1.String())
		})
		t.Run("BridgeNetworkWorks", func(t *testing.T) {
			var steps []string
			t0 := time.Now()
			step := func(what string) {
				steps = append(steps, fmt.Sprintf("%s %s", what, time.Since(t0).Round(time.Millisecond)))
				t0 = time.Now()
			}
			h1.CreateNetwork(t, cluBridge, "--subnet", cluBrSubnet)
			step("network create")
			h1.Run(t, "clu1-br", "--network", cluBridge)
			step("run")
			h1.AssertPing(t, "clu1-br", cluBrGW)
			step("ping")
			h1.Docker(t, "rm", "-f", "clu1-br")
			step("rm")
			h1.Docker(t, "network", "rm", cluBridge)
			step("network rm")
			t.Logf("bridge network on host %s with etcd down: %s", h1.Name, strings.Join(steps, ", "))
		})
	})

	// Every member back (in parallel: a member alone has no quorum, and
	// Restart waits until it serves).
	t0 = time.Now()
	if !t.Run("EtcdRestart", func(t *testing.T) {
		for _, m := range cluster.Members {
			t.Run(m.Name, func(t *testing.T) {
				t.Parallel()
				m.Restart(t)
			})
		}
	}) {
		t.FailNow()
	}
	t.Logf("etcd members serving again after %s", time.Since(t0).Round(time.Millisecond))
	t0 = time.Now()
	back := hostJobs(hosts, cluNet, "back", 1)
	took := make([]time.Duration, len(back))
	errs := make([]error, len(back))
	var wg sync.WaitGroup
	for i, j := range back {
		j.h.cleanupContainer(t, j.name)
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = testhost.Poll(cluBackMax, func() error {
				_, _, err := j.h.DockerErr(j.h.runArgs(j.name, []string{"--network", cluNet})...)
				if err == nil {
					return nil
				}
				// The failed container was created; the retry
				// needs its name.
				if _, stderr, rmErr := j.h.DockerErr("rm", "-f", j.name); rmErr != nil && !strings.Contains(stderr, "No such container") {
					return fmt.Errorf("%w (and removing the failed container: %v)", err, rmErr)
				}
				return err
			})
			took[i] = time.Since(t0)
		}()
	}
	wg.Wait()
	for i, j := range back {
		if errs[i] != nil {
			t.Errorf("host %s: no new container on %s within %s of etcd being back: %v", j.h.Name, cluNet, cluBackMax, errs[i])
			continue
		}
		t.Logf("host %s: new container works %s after etcd came back", j.h.Name, took[i].Round(time.Millisecond))
		claim(j.h, j.name)
	}
	if errors.Join(errs...) != nil {
		t.FailNow()
	}
	for _, h := range hosts {
		h.WeftAlive(t)
		if now := weftPID(t, h); now != pids[h] {
			t.Errorf("host %s: weft was restarted during the etcd outage (pid %s before, %s now); it must recover by itself", h.Name, pids[h], now)
		}
	}
	h1.AssertPing(t, "clu1-back", h2.ContainerIP(t, "clu2-back", cluNet).String())

	// Host 3's weft SIGKILLed: hosts 1 and 2 go on.
	h3.KillWeft(t)
	t.Logf("host %s: weft SIGKILLed", h3.Name)
	t0 = time.Now()
	after := []runJob{{h1, "clu1-k", cluNet}, {h2, "clu2-k", cluNet}}
	if err := errors.Join(runParallel(after)...); err != nil {
		t.Errorf("with host %s's weft killed: %v", h3.Name, err)
	} else {
		t.Logf("one container each on hosts %s and %s with host %s's weft killed: %s", h1.Name, h2.Name, h3.Name, time.Since(t0).Round(time.Millisecond))
		for _, j := range after {
			claim(j.h, j.name)
		}
		h1.AssertPing(t, "clu1-k", h2.ContainerIP(t, "clu2-k", cluNet).String())
	}
	h3.StartWeft(t)
	// Host 3's containers were not harmed; they are removed through the
	// restarted weft below, which must release their addresses in etcd.
	h3.AssertPing(t, "clu3-c01", a1.String())
	t.Logf("%d distinct addresses handed out across 3 hosts", len(owners))

	// Everything removed on every host, then nothing of weft's in etcd but
	// the schema marker.
	var rmWG sync.WaitGroup
	rmErrs := make([]error, len(hosts))
	for i, h := range hosts {
		rmWG.Add(1)
		go func() {
			defer rmWG.Done()
			if ids, _, err := h.DockerErr("ps", "-aq"); err != nil {
				rmErrs[i] = err
				return
			} else if f := strings.Fields(ids); len(f) > 0 {
				if _, _, err := h.DockerErr(append([]string{"rm", "-f"}, f...)...); err != nil {
					rmErrs[i] = err
					return
				}
			}
			_, _, rmErrs[i] = h.DockerErr("network", "rm", cluNet)
		}()
	}
	rmWG.Wait()
	if err := errors.Join(rmErrs...); err != nil {
		t.Fatalf("removing the containers and networks: %v", err)
	}
	var left []string
	t0 = time.Now()
	err := testhost.Poll(cluKeysMax, func() error {
		var err error
		if left, err = weftKeys(cli); err != nil {
			return err
		}
		if len(left) > 0 {
			return fmt.Errorf("%d weft keys", len(left))
		}
		return nil
	})
	if err != nil {
		if len(left) > 20 {
			left = append(left[:20], "...")
		}
		t.Errorf("with every container and network removed on every host, etcd still holds weft keys (besides the schema marker): %v\n  %s", err, strings.Join(left, "\n  "))
	} else {
		t.Logf("etcd holds no weft key but the schema marker %s after the last removal", time.Since(t0).Round(time.Millisecond))
	}
	for _, h := range hosts {
		h.AssertClean(t)
		h.WeftAlive(t)
	}
	t.Logf("test body took %s", time.Since(start).Round(time.Millisecond))
}

// assertRunFailsStoreDown starts a container on net on every host at once,
// with every etcd member down: each must fail within max, with an error that
// mentions etcd, and leave no container running.
func assertRunFailsStoreDown(t *testing.T, hosts []*Host, net string, max time.Duration) {
	t.Helper()
	type result struct {
		took   time.Duration
		stderr string
		err    error
	}
	res := make([]result, len(hosts))
	var wg sync.WaitGroup
	for i, h := range hosts {
		h.cleanupContainer(t, h.Name+"-down")
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Well above max, so that a hang is reported as one.
			ctx, cancel := context.WithTimeout(context.Background(), 3*max)
			defer cancel()
			t0 := time.Now()
			_, err := h.docker(ctx, h.runArgs(h.Name+"-down", []string{"--network", net})...)
			res[i] = result{took: time.Since(t0), err: err}
			var de *testhost.DockerError
			if errors.As(err, &de) {
				res[i].stderr = de.Stderr
			}
		}()
	}
	wg.Wait()
	for i, h := range hosts {
		r, name := res[i], h.Name+"-down"
		if r.err == nil {
			t.Errorf("host %s: docker run on %s succeeded with every etcd member down (in %s)", h.Name, net, r.took.Round(time.Millisecond))
		} else {
			t.Logf("host %s: failed after %s: %s", h.Name, r.took.Round(time.Millisecond), strings.TrimSpace(r.stderr))
			if r.took > max {
				t.Errorf("host %s: docker run took %s to fail with etcd down; want under %s: %v", h.Name, r.took.Round(time.Millisecond), max, r.err)
			}
			if !strings.Contains(r.stderr, "etcd") {
				t.Errorf("host %s: the error does not mention etcd: %v", h.Name, r.err)
			}
		}
		if running, _, _ := h.DockerErr("inspect", "-f", "{{.State.Running}}", name); strings.TrimSpace(running) == "true" {
			t.Errorf("host %s: %s is running", h.Name, name)
		}
		if _, stderr, err := h.DockerErr("rm", "-f", name); err != nil && !strings.Contains(stderr, "No such container") {
			t.Errorf("host %s: %v", h.Name, err)
		}
	}
}

// startHosts starts test hosts at once, host i with opts[i], and tears them
// down when the test ends (newHost, in parallel).
func startHosts(t *testing.T, names []string, opts []hostOptions) []*Host {
	t.Helper()
	requireSuite(t)
	hs := make([]*Host, len(names))
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			hs[i], errs[i] = startHost(name, opts[i])
		}()
	}
	wg.Wait()
	for i, h := range hs {
		if errs[i] != nil {
			continue // startHost tore down what it made
		}
		t.Cleanup(func() {
			if err := h.close(); err != nil {
				t.Errorf("tearing down host %s: %v", h.Name, err)
			}
		})
		h.dumpLogsOnFailure(t)
	}
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	return hs
}

// weftPID is the PID of the host's weft, from the PID file the harness
// writes when it starts weft (a restarted weft has another).
func weftPID(t testing.TB, h *Host) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(h.Dir, "weft.pid"))
	if err != nil {
		t.Fatalf("host %s: %v", h.Name, err)
	}
	return strings.TrimSpace(string(b))
}

// runJob is a container to start on a host, on a network.
type runJob struct {
	h         *Host
	name, net string
}

// runParallel starts every job's container at once and returns each job's
// error (with docker's message). The test's cleanup (removeAllContainers)
// removes them.
func runParallel(jobs []runJob) []error {
	errs := make([]error, len(jobs))
	var wg sync.WaitGroup
	for i, j := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, _, err := j.h.DockerErr(j.h.runArgs(j.name, []string{"--network", j.net})...); err != nil {
				errs[i] = fmt.Errorf("host %s: %w", j.h.Name, err)
			}
		}()
	}
	wg.Wait()
	return errs
}

// hostJobs is n containers on net for each host, named HOST-NAMEnn (nn
// from 01), or HOST-NAME if n is 1.
func hostJobs(hosts []*Host, net, name string, n int) []runJob {
	var jobs []runJob
	for _, h := range hosts {
		if n == 1 {
			jobs = append(jobs, runJob{h, h.Name + "-" + name, net})
			continue
		}
		for i := 1; i <= n; i++ {
			jobs = append(jobs, runJob{h, fmt.Sprintf("%s-%s%02d", h.Name, name, i), net})
		}
	}
	return jobs
}

// runOneMemberDown stops etcd member m, which the rest of its cluster
// outvotes, and starts every job's container at once: each must start, as
// with every member up. m stays stopped.
func runOneMemberDown(t *testing.T, m *etcdtest.Member, jobs []runJob) {
	t.Helper()
	t0 := time.Now()
	m.Stop(t)
	t.Logf("etcd member %s stopped (%s)", m.Name, time.Since(t0).Round(time.Millisecond))
	t0 = time.Now()
	if err := errors.Join(runParallel(jobs)...); err != nil {
		t.Fatalf("with etcd member %s stopped (the others a quorum): %v", m.Name, err)
	}
	t.Logf("%d containers at once with etcd member %s stopped: %s", len(jobs), m.Name, time.Since(t0).Round(time.Millisecond))
}

// jobNames is the names of the jobs on h.
func jobNames(jobs []runJob, h *Host) []string {
	var names []string
	for _, j := range jobs {
		if j.h == h {
			names = append(names, j.name)
		}
	}
	return names
}

// containerIPs is the IPv4 address of each named container on network net
// (one docker inspect for all).
func containerIPs(t testing.TB, h *Host, net string, names []string) map[string]netip.Addr {
	t.Helper()
	out := h.Docker(t, append([]string{"inspect", "-f",
		fmt.Sprintf(`{{.Name}} {{with index .NetworkSettings.Networks %q}}{{.IPAddress}}{{end}}`, net)}, names...)...)
	ips := map[string]netip.Addr{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		name := strings.TrimPrefix(f[0], "/")
		if len(f) != 2 {
			t.Fatalf("host %s: container %s has no address on %s (inspect said %q)", h.Name, name, net, line)
		}
		a, err := netip.ParseAddr(f[1])
		if err != nil {
			t.Fatalf("host %s: container %s: %v", h.Name, name, err)
		}
		ips[name] = a
	}
	for _, n := range names {
		if _, ok := ips[n]; !ok {
			t.Fatalf("host %s: docker inspect said nothing of %s:\n%s", h.Name, n, out)
		}
	}
	return ips
}

// removeAllContainers removes every container of h (at the end of a test
// that may have left some after a failure).
func removeAllContainers(t testing.TB, h *Host) {
	ids, _, err := h.DockerErr("ps", "-aq")
	if err != nil {
		t.Errorf("host %s: %v", h.Name, err)
		return
	}
	if f := strings.Fields(ids); len(f) > 0 {
		if _, _, err := h.DockerErr(append([]string{"rm", "-f"}, f...)...); err != nil {
			t.Errorf("host %s: %v", h.Name, err)
		}
	}
}

// lastAddr is the last address of an IPv4 prefix (its broadcast address).
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	for i := p.Bits(); i < 32; i++ {
		b[i/8] |= 1 << (7 - i%8)
	}
	return netip.AddrFrom4(b)
}

// etcdClient is a client of every member of the cluster, closed when the
// test ends.
func etcdClient(t *testing.T, c *etcdtest.Cluster) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   c.Endpoints(),
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cli.Close() })
	return cli
}

// weftKeys lists weft's keys in etcd (under /weft/) other than its schema
// marker (in the cluster's meta area), sorted.
func weftKeys(cli *clientv3.Client) ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, "/weft/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, fmt.Errorf("listing /weft/ in etcd: %w", err)
	}
	var keys []string
	for _, kv := range resp.Kvs {
		if k := string(kv.Key); !strings.Contains(k, "/meta/") {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys, nil
}
