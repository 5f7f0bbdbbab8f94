//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	weftvxlan "github.com/weftnet/weft/dataplane/vxlan"
	"github.com/weftnet/weft/store/etcd/etcdtest"
	"github.com/weftnet/weft/test/testhost"
)

// The vxlan mode (-o mode=vxlan) across hosts: three test hosts, each with
// its own dockerd and weft, whose wefts share a real three-member etcd
// cluster (WEFT_STORE, as in cluster_test.go) and whose VTEPs
// (WEFT_VTEP_ADDR) are addresses on one underlay: a LAN (macvlan_lan_test.go)
// whose switch has a veth port into each host. The same network (same
// subnet, and vni when given) is created on every host; containers on
// different hosts reach each other through VXLAN over that underlay, with
// the kernel's forwarding and neighbour entries written by weft from what the
// other hosts published in etcd.

const (
	// The underlay: TEST-NET-1, the switch's own address plays the LAN's
	// router (the target of the egress checks); host i is .1i. Its MTU is
	// not 1500, so that "the network's MTU is the underlay's less 50" is
	// not the 1450 of a default.
	vxUnderRouter = "192.0.2.254/24"
	vxUnderMTU    = 1400
	vxUnderPort   = "vxu0" // each host's underlay link (its "NIC")

	vxNet     = "vx-net" // all hosts, vni chosen by weft
	vxSubnet  = "10.240.0.0/24"
	vxTwo     = "vx-two" // hosts 1 and 2, explicit vni and UDP port
	vxTwoSub  = "10.241.0.0/24"
	vxTwoVNI  = 4242
	vxTwoPort = 4790
	vxInt     = "vx-int" // hosts 1 and 2, --internal
	vxIntSub  = "10.243.0.0/24"

	// vxTTL is WEFT_LEASE_TTL: how long a host's published endpoints
	// outlive its weft.
	vxTTL = 3 * time.Second
	// vxExpireMax bounds how long a dead host's entries may stay in the
	// other hosts' kernels.
	vxExpireMax = vxTTL + 20*time.Second
	// vxConverge bounds how long a change (a new container, a weft back)
	// may take to reach the other hosts' kernels.
	vxConverge = 30 * time.Second
	// vxDownMax bounds a whole `docker run` that fails because no etcd
	// member answers: weft's part is about 5 s, the rest dockerd's.
	vxDownMax = 20 * time.Second
	// vxBackMax is how long new containers may take to work again once
	// etcd is back.
	vxBackMax = 60 * time.Second
	// vxCleanMax is how long kernel objects and etcd keys may take to go
	// once everything is removed.
	vxCleanMax = 30 * time.Second
	// vxPerHost is how many containers each host starts at once on
	// vx-net (ParallelStarts).
	vxPerHost = 10
)

// vxEP is a container's endpoint on a vxlan network, as the other hosts'
// kernels must know it.
type vxEP struct {
	h    *Host
	ctr  string
	net  string
	ip   netip.Addr
	mac  string
	vtep netip.Addr // its host's VTEP address
}

func (e vxEP) String() string {
	return fmt.Sprintf("%s/%s (%s, %s, on %s, VTEP %s)", e.h.Name, e.ctr, e.ip, e.mac, e.net, e.vtep)
}

// TestVxlanAcrossHosts: one vxlan network on three hosts (containers ping
// across every pair, addresses unique, the same weft-chosen vni everywhere,
// MTU underlay-50, egress through docker_gwbridge), a second network with an
// explicit vni and port, an --internal one without egress, conflicting
// networks refused with a message naming the other network, VXLAN packets
// forged from an underlay address that is no VTEP dropped, entries deleted
// by hand put back, one etcd member (the leader) stopped changing nothing
// (new containers start on every host, reach every kernel and ping, and
// their removal goes through), 3 × 10 containers started at once with 30
// distinct addresses that reach the other hosts, etcd entirely down
// (running containers keep talking, new ones fail fast naming etcd,
// everything works again when it is back without restarting weft), a weft
// SIGKILLed and restarted at once (nothing lost, also after its old lease
// ran out), a weft down longer than its lease (its endpoints leave the other
// hosts' tables, the others keep talking, and come back with it), and nothing
// of weft left, in the kernels or in etcd, once everything is removed.
func TestVxlanAcrossHosts(t *testing.T) {
	start := time.Now()
	requireSuite(t)
	if cfg.plugin != "legacy" {
		t.Skipf("WEFT_E2E_PLUGIN=%s: this test gives weft WEFT_STORE, WEFT_VTEP_ADDR and WEFT_LEASE_TTL through the environment of the legacy weft process (hostOptions.weftEnv), which a managed plugin does not get", cfg.plugin)
	}
	vxRequireKernel(t)

	cluster := etcdtest.StartCluster(t, 3)
	cli := etcdClient(t, cluster)
	names := []string{"vx1", "vx2", "vx3"}
	hosts, vteps, lan := vxStartHosts(t, cluster, "vx", names, vxTTL)
	h1, h2, h3 := hosts[0], hosts[1], hosts[2]
	vtepOf := func(h *Host) netip.Addr { return vteps[h.Name] }
	router := lan.Router.String()
	t.Logf("etcd cluster, 3 hosts and their underlay up after %s", time.Since(start).Round(time.Millisecond))

	// Every network up front, so that the removals registered below run
	// before them (cleanups run last first).
	t0 := time.Now()
	for _, h := range hosts {
		h.CreateNetwork(t, vxNet, "-o", "mode=vxlan", "--subnet", vxSubnet)
	}
	for _, h := range []*Host{h1, h2} {
		h.CreateNetwork(t, vxTwo, "-o", "mode=vxlan", "-o", fmt.Sprintf("vni=%d", vxTwoVNI),
			"-o", fmt.Sprintf("vxlan_port=%d", vxTwoPort), "--subnet", vxTwoSub)
		h.CreateNetwork(t, vxInt, "-o", "mode=vxlan", "--internal", "--subnet", vxIntSub)
	}
	t.Logf("networks created: %s", time.Since(t0).Round(time.Millisecond))
	for _, h := range hosts {
		t.Cleanup(func() { removeAllContainers(t, h) })
	}
	// A test failing while a weft is down must not leave dockerd calling
	// a dead plugin for the removals.
	t.Cleanup(func() {
		for _, h := range hosts {
			if h.weft != nil && !h.weft.Alive() {
				t.Logf("host %s: starting weft again for the clean-up", h.Name)
				h.StartWeft(t)
			}
		}
	})

	// No two containers of the test, on any host, may get the same address
	// on one network (while both exist: release takes a removed
	// container's address back).
	owners := map[string]string{}
	handed, released := 0, 0
	claim := func(t testing.TB, eps ...vxEP) {
		t.Helper()
		for _, e := range eps {
			k := e.net + " " + e.ip.String()
			if other, dup := owners[k]; dup {
				t.Errorf("%s got %s on %s, which %s has: one address handed out twice in the cluster", e.h.Name+"/"+e.ctr, e.ip, e.net, other)
			}
			owners[k] = e.h.Name + "/" + e.ctr
			handed++
		}
	}
	release := func(eps ...vxEP) {
		for _, e := range eps {
			delete(owners, e.net+" "+e.ip.String())
			released++
		}
	}
	// keysBack waits until etcd holds exactly the weft keys of want again
	// (containers removed: their address claims and published endpoints
	// gone).
	keysBack := func(t testing.TB, what string, want []string) {
		t.Helper()
		var now []string
		t0 := time.Now()
		err := testhost.Poll(vxCleanMax, func() error {
			var err error
			if now, err = weftKeys(cli); err != nil {
				return err
			}
			if !slices.Equal(now, want) {
				return fmt.Errorf("%d weft keys, %d before", len(now), len(want))
			}
			return nil
		})
		if err != nil {
			var extra, missing []string
			for _, k := range now {
				if !slices.Contains(want, k) {
					extra = append(extra, k)
				}
			}
			for _, k := range want {
				if !slices.Contains(now, k) {
					missing = append(missing, k)
				}
			}
			t.Errorf("%s: etcd's weft keys are not what they were before: %v\n  new: %s\n  gone: %s", what, err,
				strings.Join(vxFirst(extra, 20), ", "), strings.Join(vxFirst(missing, 20), ", "))
			return
		}
		t.Logf("%s: etcd holds the %d weft keys of before again after %s", what, len(want), time.Since(t0).Round(time.Millisecond))
	}
	// rmParallel removes the endpoints' containers, each host's at once.
	rmParallel := func(t testing.TB, eps []vxEP) {
		t.Helper()
		t0 := time.Now()
		errs := make([]error, len(hosts))
		var wg sync.WaitGroup
		for i, h := range hosts {
			var names []string
			for _, e := range vxOn(eps, h) {
				names = append(names, e.ctr)
			}
			if len(names) == 0 {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, _, err := h.DockerErr(append([]string{"rm", "-f"}, names...)...); err != nil {
					errs[i] = fmt.Errorf("host %s: %w", h.Name, err)
				}
			}()
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatalf("removing %d containers: %v", len(eps), err)
		}
		t.Logf("%d containers removed, each host's at once: %s", len(eps), time.Since(t0).Round(time.Millisecond))
	}
	ep := func(t testing.TB, h *Host, ctr, net string) vxEP {
		t.Helper()
		e := vxEndpoint(t, h, ctr, net)
		e.vtep = vtepOf(h)
		return e
	}

	// One container per host on vx-net, at once.
	t0 = time.Now()
	if err := errors.Join(runParallel([]runJob{{h1, "a1", vxNet}, {h2, "a2", vxNet}, {h3, "a3", vxNet}})...); err != nil {
		t.Fatalf("starting a container on %s on each host: %v", vxNet, err)
	}
	t.Logf("3 containers on %s, one per host, at once: %s", vxNet, time.Since(t0).Round(time.Millisecond))
	a1, a2, a3 := ep(t, h1, "a1", vxNet), ep(t, h2, "a2", vxNet), ep(t, h3, "a3", vxNet)
	claim(t, a1, a2, a3)
	subnet := netip.MustParsePrefix(vxSubnet)
	for _, e := range []vxEP{a1, a2, a3} {
		if !subnet.Contains(e.ip) || e.ip == subnet.Addr() || e.ip == lastAddr(subnet) {
			t.Errorf("%s: address %s is not a host address of %s", e, e.ip, subnet)
		}
	}
	t.Logf("endpoints: %s; %s; %s", a1, a2, a3)

	// The network is one VXLAN segment: the same vni on every host, chosen
	// by weft below 4096, this host's VTEP as local address, UDP 4789, and
	// the MTU the underlay's less 50.
	t.Run("Links", func(t *testing.T) {
		vnis := map[string]string{}
		for _, h := range hosts {
			vx, br := vxLinks(t, h, vxNet)
			vnis[h.Name] = vx.data("id")
			if got := vx.data("local"); got != vtepOf(h).String() {
				t.Errorf("host %s: %s has local address %q; want the VTEP %s (WEFT_VTEP_ADDR)", h.Name, vx.Name, got, vtepOf(h))
			}
			if got := vx.data("port"); got != "4789" {
				t.Errorf("host %s: %s has UDP port %s; want 4789", h.Name, vx.Name, got)
			}
			if got := vx.data("learning"); got != "false" {
				t.Errorf("host %s: %s has learning %s; want false", h.Name, vx.Name, got)
			}
			for _, l := range []ipLink{vx, br} {
				if l.MTU != vxUnderMTU-50 {
					t.Errorf("host %s: %s has MTU %d; want %d (the underlay's %d less 50)", h.Name, l, l.MTU, vxUnderMTU-50, vxUnderMTU)
				}
			}
		}
		vni, err := strconv.Atoi(vnis[h1.Name])
		if err != nil || vni < 1 || vni >= 4096 {
			t.Errorf("host %s: %s's vni is %q; want one weft chose below 4096", h1.Name, vxNet, vnis[h1.Name])
		}
		for _, h := range hosts {
			if vnis[h.Name] != vnis[h1.Name] {
				t.Errorf("%s has vni %s on host %s but %s on host %s: not one network", vxNet, vnis[h.Name], h.Name, vnis[h1.Name], h1.Name)
			}
		}
		t.Logf("%s: vni %s on every host", vxNet, vnis[h1.Name])
		for _, e := range []vxEP{a1, a2, a3} {
			if mtu := vxContainerMTU(t, e); mtu != vxUnderMTU-50 {
				t.Errorf("%s: MTU %d in the container; want %d", e, mtu, vxUnderMTU-50)
			}
		}
	})
	autoVNI := vxLinkVNI(t, h1, vxNet)

	// Every host's kernel holds every other host's endpoint, permanent, to
	// the right VTEP.
	vxAwait(t, "after the first containers started", vxConverge, []vxWant{
		{h: h1, net: vxNet, has: []vxEP{a2, a3}},
		{h: h2, net: vxNet, has: []vxEP{a1, a3}},
		{h: h3, net: vxNet, has: []vxEP{a1, a2}},
	})
	all := []vxEP{a1, a2, a3}
	vxPingAll(t, "across hosts", vxConverge, vxPairs(all)...)
	// A full-size packet (the network's MTU, DF set by busybox's ping)
	// crosses.
	if out, err := h1.Exec("a1", "ping", "-c", "1", "-W", "2", "-s", strconv.Itoa(vxUnderMTU-50-28), a2.ip.String()); err != nil {
		t.Errorf("a full-size ping (%d bytes of IP) from %s to %s: %v\n%s", vxUnderMTU-50, a1, a2, err, out)
	}
	// Egress through docker_gwbridge: the underlay's router answers the
	// container's pings only once they are masqueraded to the host's
	// address (it has no route to the container subnets).
	h1.AssertPing(t, "a1", router)
	h3.AssertPing(t, "a3", router)

	// The pool and the endpoints live in etcd: the final "no key left"
	// check would mean nothing if weft wrote nothing there.
	if keys, err := weftKeys(cli); err != nil {
		t.Fatal(err)
	} else if len(keys) == 0 {
		t.Fatalf("with containers on a vxlan network on 3 hosts, etcd holds no weft key under /weft/ (only the schema marker)")
	} else {
		t.Logf("etcd holds %d weft keys (besides the schema marker) with 3 containers:\n  %s", len(keys), strings.Join(vxFirst(keys, 30), "\n  "))
	}
	for _, h := range hosts {
		if objs, err := vxObjects(h); err == nil {
			t.Logf("host %s: vxlan objects: %s", h.Name, strings.Join(objs, "; "))
		}
	}

	// The second network: explicit vni and UDP port, hosts 1 and 2.
	t.Run("ExplicitVNI", func(t *testing.T) {
		if err := errors.Join(runParallel([]runJob{{h1, "b1", vxTwo}, {h2, "b2", vxTwo}})...); err != nil {
			t.Fatalf("starting a container on %s on hosts 1 and 2: %v", vxTwo, err)
		}
		b1, b2 := ep(t, h1, "b1", vxTwo), ep(t, h2, "b2", vxTwo)
		claim(t, b1, b2)
		for _, h := range []*Host{h1, h2} {
			vx, _ := vxLinks(t, h, vxTwo)
			if got := vx.data("id"); got != strconv.Itoa(vxTwoVNI) {
				t.Errorf("host %s: %s (%s) has vni %s; want %d", h.Name, vxTwo, vx.Name, got, vxTwoVNI)
			}
			if got := vx.data("port"); got != strconv.Itoa(vxTwoPort) {
				t.Errorf("host %s: %s (%s) has UDP port %s; want %d", h.Name, vxTwo, vx.Name, got, vxTwoPort)
			}
		}
		vxAwait(t, "on the second network", vxConverge, []vxWant{
			{h: h1, net: vxTwo, has: []vxEP{b2}},
			{h: h2, net: vxTwo, has: []vxEP{b1}},
		})
		vxPingAll(t, "on "+vxTwo, vxConverge, vxPairs([]vxEP{b1, b2})...)
	})

	// --internal: the network spans hosts, but nothing leaves it.
	t.Run("Internal", func(t *testing.T) {
		if err := errors.Join(runParallel([]runJob{{h1, "i1", vxInt}, {h2, "i2", vxInt}})...); err != nil {
			t.Fatalf("starting a container on %s on hosts 1 and 2: %v", vxInt, err)
		}
		i1, i2 := ep(t, h1, "i1", vxInt), ep(t, h2, "i2", vxInt)
		claim(t, i1, i2)
		vxPingAll(t, "on the internal network", vxConverge, vxPairs([]vxEP{i1, i2})...)
		// The control, a1 reaching the router, is above.
		h1.AssertNoPings(t, [2]string{"i1", router})
		h2.AssertNoPings(t, [2]string{"i2", router})
	})

	// Conflicts, asked on host 3, which has no vx-two: weft knows the
	// other hosts' networks from etcd.
	t.Run("Conflicts", func(t *testing.T) {
		for _, c := range []struct {
			name, subnet string
			vni          int
			want         string // what the refusal must name of the other network
			why          string
		}{
			{"vx-bad1", vxTwoSub, vxTwoVNI + 1, strconv.Itoa(vxTwoVNI), fmt.Sprintf("the subnet of %s with another vni", vxTwo)},
			{"vx-bad2", "10.244.0.0/24", vxTwoVNI, vxTwoSub, fmt.Sprintf("the vni of %s with another subnet", vxTwo)},
			{"vx-bad3", "10.245.0.0/24", autoVNI, vxSubnet, fmt.Sprintf("the vni weft chose for %s with another subnet", vxNet)},
		} {
			_, stderr, err := h3.DockerErr("network", "create", "-d", h3.Driver(), "--ipam-driver", h3.Driver(),
				"-o", "mode=vxlan", "-o", fmt.Sprintf("vni=%d", c.vni), "--subnet", c.subnet, c.name)
			if err == nil {
				t.Errorf("host %s: a vxlan network with %s (--subnet %s, vni %d) was created", h3.Name, c.why, c.subnet, c.vni)
				if _, _, err := h3.DockerErr("network", "rm", c.name); err != nil {
					t.Errorf("removing %s: %v", c.name, err)
				}
				continue
			}
			t.Logf("%s (%s): refused: %s", c.name, c.why, strings.TrimSpace(stderr))
			if !strings.Contains(stderr, c.want) {
				t.Errorf("the refusal of %s does not name the other network's %s: %s", c.why, c.want, stderr)
			}
			if _, _, err := h3.DockerErr("network", "inspect", c.name); err == nil {
				t.Errorf("host %s: network %s exists after its creation was refused", h3.Name, c.name)
			}
		}
		// The refusals changed nothing for the networks they named.
		h3.AssertPing(t, "a3", a1.ip.String())
	})

	// VXLAN packets forged from an underlay address that is no host's VTEP
	// (the LAN's router, with a VXLAN link of its own on vx-net's vni,
	// aimed at a1's MAC behind host 1's VTEP) are dropped before the
	// kernel's VXLAN socket: host 1's known-VTEP filter counts them, and
	// a1 never sees the echo requests. (A ping cannot tell: a1 could not
	// answer the forged source anyway.)
	t.Run("UnknownVTEP", func(t *testing.T) {
		const forged = 3
		dropped := vxDropCount(t, h1, 4789)
		echos := vxInEchos(t, h1, "a1")
		t.Cleanup(func() {
			if _, err := lan.ns("ip", "link", "del", "vxf0"); err != nil && !strings.Contains(err.Error(), "Cannot find device") {
				t.Errorf("removing the forger's VXLAN link: %v", err)
			}
		})
		for _, s := range [][]string{
			{"ip", "link", "add", "vxf0", "type", "vxlan", "id", strconv.Itoa(autoVNI), "local", router, "dstport", "4789", "nolearning"},
			{"ip", "addr", "add", "10.240.0.250/24", "dev", "vxf0"},
			{"ip", "link", "set", "vxf0", "up"},
			{"ip", "neigh", "replace", a1.ip.String(), "lladdr", a1.mac, "dev", "vxf0", "nud", "permanent"},
			{"bridge", "fdb", "append", a1.mac, "dev", "vxf0", "dst", vtepOf(h1).String(), "self", "permanent"},
		} {
			if _, err := lan.ns(s...); err != nil {
				t.Fatalf("forging VXLAN traffic from the LAN's router: %v", err)
			}
		}
		out, err := lan.ns("busybox", "ping", "-c", strconv.Itoa(forged), "-W", "1", a1.ip.String())
		if err == nil {
			t.Errorf("the LAN's router, no VTEP of the cluster, pinged %s through a forged VXLAN link:\n%s", a1, out)
		}
		if got := vxDropCount(t, h1, 4789) - dropped; got < forged {
			t.Errorf("host %s's known-VTEP filter on UDP 4789 dropped %d packets while %d forged ones were sent from %s", h1.Name, got, forged, router)
		} else {
			t.Logf("host %s's known-VTEP filter dropped %d packets from %s", h1.Name, got, router)
		}
		if got := vxInEchos(t, h1, "a1") - echos; got != 0 {
			t.Errorf("%s received %d echo requests while only forged ones, from %s (no VTEP), were sent to it", a1, got, router)
		}
	})

	// Entries deleted behind weft's back are put back (docs/vxlan.md:
	// checked every few seconds).
	t.Run("Repair", func(t *testing.T) {
		link, _ := vxLinkName(t, h1, vxNet)
		h1.NS(t, "bridge", "fdb", "del", a2.mac, "dev", link, "dst", a2.vtep.String(), "self")
		h1.NS(t, "ip", "neigh", "del", a2.ip.String(), "dev", link)
		t0 := time.Now()
		t.Logf("host %s: deleted %s's forwarding and neighbour entries from %s", h1.Name, a2, link)
		if vxAwait(t, "after entries were deleted by hand", vxConverge, []vxWant{{h: h1, net: vxNet, has: []vxEP{a2}}}) == nil {
			t.Logf("host %s: %s's entries put back within %s", h1.Name, a2, time.Since(t0).Round(time.Millisecond))
		}
		vxPingAll(t, "after the repair", 5*time.Second, vxPair{a1, a2}, vxPair{a2, a1})
	})

	// One etcd member stopped, the leader (so that the cluster changes
	// leader too): the other two are a quorum, and nothing changes.
	// Containers start on every host, reach the running ones and theirs
	// reach every kernel, and removals go through.
	t.Run("OneMemberDown", func(t *testing.T) {
		keys, err := weftKeys(cli)
		if err != nil {
			t.Fatal(err)
		}
		m := etcdLeader(t, cli, cluster)
		t.Cleanup(func() { // if the test stopped before the restart
			if !m.Running() {
				m.Restart(t)
			}
		})
		jobs := hostJobs(hosts, vxNet, "m", 1)
		runOneMemberDown(t, m, jobs)
		t.Logf("etcd member %s is the leader now", etcdLeader(t, cli, cluster).Name)
		var ms []vxEP
		for _, j := range jobs {
			ms = append(ms, ep(t, j.h, j.name, vxNet))
		}
		claim(t, ms...)
		t.Logf("endpoints: %s; %s; %s", ms[0], ms[1], ms[2])
		t0 := time.Now()
		now := append(slices.Clone(all), ms...)
		if vxAwait(t, "with one etcd member stopped", vxConverge, []vxWant{
			{h: h1, net: vxNet, has: vxOn(now, h2, h3)},
			{h: h2, net: vxNet, has: vxOn(now, h1, h3)},
			{h: h3, net: vxNet, has: vxOn(now, h1, h2)},
		}) == nil {
			t.Logf("the new endpoints in every other host's tables %s after they started", time.Since(t0).Round(time.Millisecond))
		}
		vxPingAll(t, "with one etcd member stopped", vxConverge, vxPairs(now)...)

		// Removed, still with the member stopped: they leave the
		// other hosts' tables and etcd, and the others' entries stay.
		rmParallel(t, ms)
		release(ms...)
		t0 = time.Now()
		if vxAwait(t, "after removals with one etcd member stopped", vxConverge, []vxWant{
			{h: h1, net: vxNet, has: vxOn(all, h2, h3), gone: vxOn(ms, h2, h3)},
			{h: h2, net: vxNet, has: vxOn(all, h1, h3), gone: vxOn(ms, h1, h3)},
			{h: h3, net: vxNet, has: vxOn(all, h1, h2), gone: vxOn(ms, h1, h2)},
		}) == nil {
			t.Logf("the removed endpoints left every other host's tables after %s", time.Since(t0).Round(time.Millisecond))
		}
		keysBack(t, "after removals with one etcd member stopped", keys)

		t0 = time.Now()
		m.Restart(t)
		t.Logf("etcd member %s serving again after %s", m.Name, time.Since(t0).Round(time.Millisecond))
	})

	// 3 × 10 containers at once on vx-net: 30 distinct addresses, each
	// reaching a new container on another host. Removed at the end, so
	// that what follows runs with the containers it had.
	t.Run("ParallelStarts", func(t *testing.T) {
		keys, err := weftKeys(cli)
		if err != nil {
			t.Fatal(err)
		}
		jobs := hostJobs(hosts, vxNet, "p", vxPerHost)
		t0 := time.Now()
		if err := errors.Join(runParallel(jobs)...); err != nil {
			t.Fatalf("starting %d containers on %s on 3 hosts at once: %v", len(jobs), vxNet, err)
		}
		t.Logf("%d containers on %s on 3 hosts at once: %s", len(jobs), vxNet, time.Since(t0).Round(time.Millisecond))
		byHost := make([][]vxEP, len(hosts))
		var ps []vxEP
		distinct := map[netip.Addr]bool{}
		for i, h := range hosts {
			names := jobNames(jobs, h)
			ips := containerIPs(t, h, vxNet, names)
			for _, n := range names {
				e := vxEP{h: h, ctr: n, net: vxNet, ip: ips[n], vtep: vtepOf(h)}
				if !subnet.Contains(e.ip) || e.ip == subnet.Addr() || e.ip == lastAddr(subnet) {
					t.Errorf("%s: address %s is not a host address of %s", e, e.ip, subnet)
				}
				distinct[e.ip] = true
				byHost[i] = append(byHost[i], e)
				ps = append(ps, e)
			}
		}
		claim(t, ps...)
		if len(distinct) != len(jobs) {
			t.Errorf("%d containers started at once on 3 hosts have %d distinct addresses; want %d", len(jobs), len(distinct), len(jobs))
		} else {
			t.Logf("%d distinct addresses, %s to %s", len(distinct), slices.MinFunc(ps, func(a, b vxEP) int { return a.ip.Compare(b.ip) }).ip,
				slices.MaxFunc(ps, func(a, b vxEP) int { return a.ip.Compare(b.ip) }).ip)
		}
		if now, err := weftKeys(cli); err != nil {
			t.Error(err)
		} else if len(now) < len(keys)+len(jobs) {
			t.Errorf("etcd holds %d weft keys with %d more containers, %d before: not one address claim each", len(now), len(jobs), len(keys))
		} else {
			t.Logf("etcd holds %d weft keys, %d before the %d containers", len(now), len(keys), len(jobs))
		}
		// Container k of each host pings container k of the next host:
		// the reply proves the sender's entries reached that host too.
		var pairs []vxPair
		for i := range hosts {
			for k := range vxPerHost {
				pairs = append(pairs, vxPair{byHost[i][k], byHost[(i+1)%len(hosts)][k]})
			}
		}
		vxPingAll(t, fmt.Sprintf("%d containers started at once", len(jobs)), vxConverge, pairs...)

		rmParallel(t, ps)
		release(ps...)
		keysBack(t, fmt.Sprintf("after removing the %d containers", len(jobs)), keys)
	})

	// etcd entirely down.
	pids := map[*Host]string{}
	for _, h := range hosts {
		pids[h] = weftPID(t, h)
	}
	for _, m := range cluster.Members {
		m.Stop(t)
	}
	t.Log("every etcd member stopped")
	t.Run("EtcdDown", func(t *testing.T) {
		t.Run("RunningContainersPing", func(t *testing.T) {
			vxPingAll(t, "with etcd down", 5*time.Second, vxPairs(all)...)
		})
		t.Run("NewContainerFails", func(t *testing.T) {
			assertRunFailsStoreDown(t, hosts, vxNet, vxDownMax)
		})
		t.Run("StillPinging", func(t *testing.T) {
			// After the failed attempts too, and well past the
			// lease TTL: nothing was taken out of the kernels.
			vxPingAll(t, "with etcd down", 5*time.Second, vxPairs(all)...)
			vxAwait(t, "with etcd down", 0, []vxWant{
				{h: h1, net: vxNet, has: []vxEP{a2, a3}},
				{h: h2, net: vxNet, has: []vxEP{a1, a3}},
				{h: h3, net: vxNet, has: []vxEP{a1, a2}},
			})
		})
	})

	// Every member back (in parallel: one alone has no quorum).
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
	t.Run("EtcdBack", func(t *testing.T) {
		t0 := time.Now()
		hs := []*Host{h1, h2}
		took := make([]time.Duration, len(hs))
		errs := make([]error, len(hs))
		var wg sync.WaitGroup
		for i, h := range hs {
			name := h.Name + "-back"
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = testhost.Poll(vxBackMax, func() error {
					_, _, err := h.DockerErr(h.runArgs(name, []string{"--network", vxNet})...)
					if err == nil {
						return nil
					}
					// The failed container was created; the retry
					// needs its name.
					if _, stderr, rmErr := h.DockerErr("rm", "-f", name); rmErr != nil && !strings.Contains(stderr, "No such container") {
						return fmt.Errorf("%w (and removing the failed container: %v)", err, rmErr)
					}
					return err
				})
				took[i] = time.Since(t0)
			}()
		}
		wg.Wait()
		for i, h := range hs {
			if errs[i] != nil {
				t.Errorf("host %s: no new container on %s within %s of etcd being back: %v", h.Name, vxNet, vxBackMax, errs[i])
			} else {
				t.Logf("host %s: a new container works %s after etcd came back", h.Name, took[i].Round(time.Millisecond))
			}
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
		n1, n2 := ep(t, h1, "vx1-back", vxNet), ep(t, h2, "vx2-back", vxNet)
		claim(t, n1, n2)
		all = append(all, n1, n2)
		// The new endpoints reach every host (the watch works again),
		// and the old ones still talk.
		vxAwait(t, "after etcd came back", vxConverge, []vxWant{
			{h: h1, net: vxNet, has: []vxEP{a2, a3, n2}},
			{h: h2, net: vxNet, has: []vxEP{a1, a3, n1}},
			{h: h3, net: vxNet, has: []vxEP{a1, a2, n1, n2}},
		})
		vxPingAll(t, "after etcd came back", vxConverge, vxPairs(all)...)
	})

	// Host 2's weft SIGKILLed and started again at once: the kernels keep
	// everything, and nothing goes when the dead weft's lease runs out.
	t.Run("WeftRestart", func(t *testing.T) {
		h2.KillWeft(t)
		t0 := time.Now()
		// Host 2's own entries may go with its lease (vxTTL): only
		// the others are bound to keep talking.
		vxPingAll(t, "with host vx2's weft killed", 5*time.Second, vxPairs(vxOn(all, h1, h3))...)
		h2.StartWeft(t)
		t.Logf("host %s: weft SIGKILLed and started again, ready after %s", h2.Name, time.Since(t0).Round(time.Millisecond))
		// Once every host holds host 2's endpoints again (at once,
		// unless the restart outlasted the lease), they never go,
		// through the old lease's end (at most vxTTL after the kill,
		// plus etcd's expiry tick): sampled until well after it.
		vxAwait(t, "after host vx2's weft restarted", vxConverge, []vxWant{
			{h: h1, net: vxNet, has: vxOn(all, h2, h3)},
			{h: h3, net: vxNet, has: vxOn(all, h1, h2)},
			{h: h2, net: vxNet, has: vxOn(all, h1, h3)},
		})
		t.Logf("host %s's endpoints in every table %s after its weft was killed", h2.Name, time.Since(t0).Round(time.Millisecond))
		vxHold(t, "after host vx2's weft restarted", t0.Add(vxTTL+4*time.Second), []vxWant{
			{h: h1, net: vxNet, has: vxOn(all, h2, h3)},
			{h: h3, net: vxNet, has: vxOn(all, h1, h2)},
		})
		// A container started through the new weft reaches the others.
		h2.Docker(t, h2.runArgs("r2", []string{"--network", vxNet})...)
		r2 := ep(t, h2, "r2", vxNet)
		claim(t, r2)
		all = append(all, r2)
		vxAwait(t, "after a container started on host vx2's new weft", vxConverge, []vxWant{
			{h: h1, net: vxNet, has: []vxEP{r2}},
			{h: h3, net: vxNet, has: []vxEP{r2}},
		})
		vxPingAll(t, "a lease TTL after host vx2's weft restarted", 5*time.Second, vxPairs(all)...)
	})

	// Host 3's weft SIGKILLed and left down past its lease.
	t.Run("HostLeaves", func(t *testing.T) {
		gone := vxOn(all, h3)
		rest := slices.DeleteFunc(slices.Clone(all), func(e vxEP) bool { return e.h == h3 })
		// The control for "gone": host 3's endpoints are there now,
		// and so is its VTEP in the known-VTEP set.
		vxAwait(t, "before host vx3's weft is killed", vxConverge, []vxWant{
			{h: h1, net: vxNet, has: gone},
			{h: h2, net: vxNet, has: gone},
		})
		for _, h := range []*Host{h1, h2} {
			if m := vxSetMembers(t, h); !slices.Contains(m, vtepOf(h3).String()) {
				t.Errorf("host %s: the known-VTEP set (ipset weft-vteps4) lacks host %s's VTEP %s while it has endpoints: %v", h.Name, h3.Name, vtepOf(h3), m)
			}
		}
		h3.KillWeft(t)
		t0 := time.Now()
		t.Logf("host %s: weft SIGKILLed", h3.Name)
		vxPingAll(t, "with host vx3's weft killed", 5*time.Second, vxPairs(rest)...)

		// Its endpoints leave the others' tables after the lease.
		err := vxAwait(t, "after host vx3's lease", vxExpireMax-time.Since(t0), []vxWant{
			{h: h1, net: vxNet, gone: gone},
			{h: h2, net: vxNet, gone: gone},
		})
		if err == nil {
			t.Logf("host %s's endpoints left the other hosts' tables %s after its weft was killed (lease TTL %s)", h3.Name, time.Since(t0).Round(time.Millisecond), vxTTL)
		}
		// A change between the live hosts still propagates.
		h1.Docker(t, h1.runArgs("k1", []string{"--network", vxNet})...)
		k1 := ep(t, h1, "k1", vxNet)
		claim(t, k1)
		vxAwait(t, "with host vx3's weft down", vxConverge, []vxWant{{h: h2, net: vxNet, has: []vxEP{k1}}})
		// ... and only those.
		vxAwait(t, "after host vx3's lease", 0, []vxWant{
			{h: h1, net: vxNet, has: vxOn(rest, h2)},
			{h: h2, net: vxNet, has: append(vxOn(rest, h1), k1)},
		})
		for _, h := range []*Host{h1, h2} {
			err := testhost.Poll(5*time.Second, func() error {
				if m := vxSetMembers(t, h); slices.Contains(m, vtepOf(h3).String()) {
					return fmt.Errorf("the known-VTEP set (ipset weft-vteps4) still holds host %s's VTEP %s after its lease ended: %v", h3.Name, vtepOf(h3), m)
				}
				return nil
			})
			if err != nil {
				t.Errorf("host %s: %v", h.Name, err)
			}
		}
		vxPingAll(t, "after host vx3's lease", 5*time.Second, vxPairs(append(slices.Clone(rest), k1))...)

		// Back: it registers again, and learns what changed meanwhile.
		t0 = time.Now()
		h3.StartWeft(t)
		all = append(all, k1)
		vxAwait(t, "after host vx3's weft came back", vxConverge, []vxWant{
			{h: h1, net: vxNet, has: vxOn(all, h2, h3)},
			{h: h2, net: vxNet, has: vxOn(all, h1, h3)},
			{h: h3, net: vxNet, has: vxOn(all, h1, h2)},
		})
		vxPingAll(t, "after host vx3's weft came back", vxConverge, vxPairs(all)...)
		t.Logf("host %s: weft back, every host converged after %s", h3.Name, time.Since(t0).Round(time.Millisecond))
		for _, h := range []*Host{h1, h2} {
			if m := vxSetMembers(t, h); !slices.Contains(m, vtepOf(h3).String()) {
				t.Errorf("host %s: the known-VTEP set (ipset weft-vteps4) lacks host %s's VTEP %s after it came back: %v", h.Name, h3.Name, vtepOf(h3), m)
			}
		}
	})
	t.Logf("%d addresses handed out across 3 hosts, never one twice at a time (%d of them released on the way)", handed, released)

	// Everything removed on every host; then no vxlan object in any
	// kernel and no weft key in etcd but the schema marker.
	t0 = time.Now()
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
			nets := []string{vxNet}
			if h != h3 {
				nets = append(nets, vxTwo, vxInt)
			}
			_, _, rmErrs[i] = h.DockerErr(append([]string{"network", "rm"}, nets...)...)
		}()
	}
	rmWG.Wait()
	if err := errors.Join(rmErrs...); err != nil {
		t.Fatalf("removing the containers and networks: %v", err)
	}
	t.Logf("everything removed on every host: %s", time.Since(t0).Round(time.Millisecond))
	for _, h := range hosts {
		var left []string
		err := testhost.Poll(vxCleanMax, func() error {
			var err error
			if left, err = vxObjects(h); err != nil {
				return err
			}
			if len(left) > 0 {
				return fmt.Errorf("%d vxlan objects", len(left))
			}
			return nil
		})
		if err != nil {
			t.Errorf("host %s: with every vxlan network removed, the kernel still holds: %v\n  %s", h.Name, err, strings.Join(left, "\n  "))
		}
	}
	var left []string
	t0 = time.Now()
	err := testhost.Poll(vxCleanMax, func() error {
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
		t.Errorf("with every container and network removed on every host, etcd still holds weft keys (besides the schema marker): %v\n  %s", err, strings.Join(vxFirst(left, 20), "\n  "))
	} else {
		t.Logf("etcd holds no weft key but the schema marker %s after the last removal", time.Since(t0).Round(time.Millisecond))
	}
	for _, h := range hosts {
		h.AssertClean(t)
		h.WeftAlive(t)
	}
	t.Logf("test body took %s", time.Since(start).Round(time.Millisecond))
}

// vxStartHosts starts hosts names with weft on the cluster store cluster
// (lease TTL ttl), each with its VTEP address 192.0.2.11, .12, … on an
// underlay LAN of its own (tagged tag), and checks that the underlay works
// before weft is asked to use it.
func vxStartHosts(t *testing.T, cluster *etcdtest.Cluster, tag string, names []string, ttl time.Duration) ([]*Host, map[string]netip.Addr, *LAN) {
	t.Helper()
	vteps := map[string]netip.Addr{}
	var opts []hostOptions
	for i, n := range names {
		vteps[n] = netip.MustParseAddr(fmt.Sprintf("192.0.2.%d", 11+i))
		opts = append(opts, hostOptions{weftEnv: []string{
			"WEFT_STORE=etcd://" + strings.Join(cluster.Endpoints(), ","),
			"WEFT_VTEP_ADDR=" + vteps[n].String(),
			"WEFT_LEASE_TTL=" + ttl.String(),
		}})
	}
	t.Logf("weft settings of host %s: %s", names[0], strings.Join(opts[0].weftEnv, " "))
	hosts := startHosts(t, names, opts) // the VTEP differs per host
	lan := newLAN(t, tag, netip.MustParsePrefix(vxUnderRouter), vxUnderMTU, false)
	for _, h := range hosts {
		lan.Attach(t, h, vxUnderPort)
		h.NS(t, "ip", "addr", "add", vteps[h.Name].String()+"/24", "dev", vxUnderPort)
	}
	for _, h := range hosts {
		for _, o := range hosts {
			if o != h {
				if out, err := h.ns("busybox", "ping", "-c", "1", "-W", "2", vteps[o.Name].String()); err != nil {
					t.Fatalf("underlay: host %s cannot ping host %s's VTEP %s: %v\n%s", h.Name, o.Name, vteps[o.Name], err, out)
				}
			}
		}
	}
	return hosts, vteps, lan
}

// etcdLeader is the member of c that its leader is, as the members say.
func etcdLeader(t testing.TB, cli *clientv3.Client, c *etcdtest.Cluster) *etcdtest.Member {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var errs []error
	for _, m := range c.Members {
		if !m.Running() {
			continue
		}
		st, err := cli.Status(ctx, m.ClientURL)
		if err != nil {
			errs = append(errs, fmt.Errorf("member %s: %w", m.Name, err))
			continue
		}
		if st.Header.MemberId == st.Leader {
			return m
		}
	}
	t.Fatalf("no running etcd member says it is the leader: %v", errors.Join(errs...))
	return nil
}

// vxRequireKernel skips the test if this kernel cannot make VXLAN links,
// found by making one in a throwaway namespace.
func vxRequireKernel(t *testing.T) {
	t.Helper()
	ns := nsPrefix + "vxprobe"
	_ = testhost.DeleteNetNS(ns) // a crashed earlier run's
	if err := testhost.AddNetNS(ns); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := testhost.DeleteNetNS(ns); err != nil {
			t.Errorf("removing %s: %v", ns, err)
		}
	}()
	_, err := testhost.RunT(30*time.Second, "ip", "-n", ns, "link", "add", "vxprobe0", "type", "vxlan", "id", "42", "dstport", "4789")
	if err == nil {
		return
	}
	if msg := err.Error(); strings.Contains(msg, "Unknown device type") || strings.Contains(msg, "not supported") {
		t.Skipf("missing kernel feature: vxlan (ip link add type vxlan: %v)", err)
	}
	t.Fatalf("probing for VXLAN support: %v", err)
}

// vxEndpoint is container ctr's endpoint on net: its address from docker,
// its MAC from the interface holding that address in the container.
func vxEndpoint(t testing.TB, h *Host, ctr, net string) vxEP {
	t.Helper()
	e := vxEP{h: h, ctr: ctr, net: net, ip: h.ContainerIP(t, ctr, net)}
	iface := vxContainerIface(t, e.h, e.ctr, e.ip)
	e.mac = iface.Address
	return e
}

// vxIface is one row of `ip -j addr show`.
type vxIface struct {
	Name     string `json:"ifname"`
	Address  string `json:"address"`
	MTU      int    `json:"mtu"`
	AddrInfo []struct {
		Family string `json:"family"`
		Local  string `json:"local"`
	} `json:"addr_info"`
}

// vxContainerIface is the interface of container ctr that holds ip, read
// with the machine's iproute2 in the container's network namespace.
func vxContainerIface(t testing.TB, h *Host, ctr string, ip netip.Addr) vxIface {
	t.Helper()
	pid := h.Docker(t, "inspect", "-f", "{{.State.Pid}}", ctr)
	out, err := testhost.RunT(30*time.Second, "nsenter", "--target", pid, "--net", "--", "ip", "-j", "addr", "show")
	if err != nil {
		t.Fatalf("host %s: container %s: %v", h.Name, ctr, err)
	}
	var ifs []vxIface
	if err := json.Unmarshal([]byte(out), &ifs); err != nil {
		t.Fatalf("host %s: container %s: parsing ip -j addr: %v\n%s", h.Name, ctr, err, out)
	}
	for _, i := range ifs {
		for _, a := range i.AddrInfo {
			if a.Local == ip.String() {
				return i
			}
		}
	}
	t.Fatalf("host %s: container %s has no interface with its address %s:\n%s", h.Name, ctr, ip, out)
	return vxIface{}
}

func vxContainerMTU(t testing.TB, e vxEP) int {
	t.Helper()
	return vxContainerIface(t, e.h, e.ctr, e.ip).MTU
}

// vxLinkName is the VXLAN link and bridge of network net on h: "wxv-"/"wxb-"
// and 10 characters of the network's ID on that host (each dockerd has its
// own), or, for a swarm network (a global-scope weft's), "wsv-"/"wsb-".
func vxLinkName(t testing.TB, h *Host, net string) (vxlan, bridge string) {
	t.Helper()
	id, scope, _ := strings.Cut(h.Docker(t, "network", "inspect", "-f", "{{.Id}} {{.Scope}}", net), " ")
	if len(id) < 10 {
		t.Fatalf("host %s: network %s has ID %q", h.Name, net, id)
	}
	names := weftvxlan.Local()
	if scope == "swarm" {
		names = weftvxlan.Swarm()
	}
	return names.LinkName(id), names.BridgeName(id)
}

// vxLinks returns network net's VXLAN link and bridge on h.
func vxLinks(t testing.TB, h *Host, net string) (vxlan, bridge ipLink) {
	t.Helper()
	vn, bn := vxLinkName(t, h, net)
	vx, ok := hostLink(t, h, vn)
	if !ok {
		t.Fatalf("host %s: network %s has no VXLAN link %s; links: %v", h.Name, net, vn, hostLinkNames(t, h))
	}
	if vx.LinkInfo.Kind != "vxlan" {
		t.Errorf("host %s: %s is a %s link, not vxlan", h.Name, vn, vx.LinkInfo.Kind)
	}
	br, ok := hostLink(t, h, bn)
	if !ok {
		t.Fatalf("host %s: network %s has no bridge %s; links: %v", h.Name, net, bn, hostLinkNames(t, h))
	}
	return vx, br
}

// vxLinkVNI is the vni of network net's VXLAN link on h.
func vxLinkVNI(t testing.TB, h *Host, net string) int {
	t.Helper()
	vx, _ := vxLinks(t, h, net)
	n, err := strconv.Atoi(vx.data("id"))
	if err != nil {
		t.Fatalf("host %s: %s has vni %q", h.Name, vx.Name, vx.data("id"))
	}
	return n
}

// vxTables is what a VXLAN link holds: forwarding entries by MAC and
// permanent neighbour entries by address.
type vxTables struct {
	fdb   map[string][]vxFDB
	neigh map[string]string // address → MAC, PERMANENT entries only
	dump  string
}

type vxFDB struct {
	MAC   string   `json:"mac"`
	Dst   string   `json:"dst"`
	State string   `json:"state"`
	Flags []string `json:"flags"`
}

func (f vxFDB) String() string {
	return fmt.Sprintf("%s dst %s %s %v", f.MAC, f.Dst, f.State, f.Flags)
}

// vxReadTables reads the forwarding and neighbour entries of link on h
// (bridge fdb show / ip neigh show in the host's namespace).
func vxReadTables(h *Host, link string) (vxTables, error) {
	tb := vxTables{fdb: map[string][]vxFDB{}, neigh: map[string]string{}}
	out, err := h.ns("bridge", "-j", "fdb", "show", "dev", link)
	if err != nil {
		return tb, err
	}
	var fdb []vxFDB
	if err := json.Unmarshal([]byte(out), &fdb); err != nil {
		return tb, fmt.Errorf("parsing bridge -j fdb: %w\n%s", err, out)
	}
	var lines []string
	for _, f := range fdb {
		f.MAC = strings.ToLower(f.MAC)
		tb.fdb[f.MAC] = append(tb.fdb[f.MAC], f)
		lines = append(lines, "fdb "+f.String())
	}
	out, err = h.ns("ip", "-j", "neigh", "show", "dev", link)
	if err != nil {
		return tb, err
	}
	var ns []struct {
		Dst    string   `json:"dst"`
		LLAddr string   `json:"lladdr"`
		State  []string `json:"state"`
	}
	if err := json.Unmarshal([]byte(out), &ns); err != nil {
		return tb, fmt.Errorf("parsing ip -j neigh: %w\n%s", err, out)
	}
	for _, n := range ns {
		lines = append(lines, fmt.Sprintf("neigh %s lladdr %s %v", n.Dst, n.LLAddr, n.State))
		if slices.Contains(n.State, "PERMANENT") {
			tb.neigh[n.Dst] = strings.ToLower(n.LLAddr)
		}
	}
	slices.Sort(lines)
	tb.dump = strings.Join(lines, "\n    ")
	return tb, nil
}

// has says what is missing for e: a permanent forwarding entry of its MAC
// to its host's VTEP, and a permanent neighbour entry of its address to its
// MAC ("" if nothing).
func (tb vxTables) has(e vxEP) string {
	mac := strings.ToLower(e.mac)
	var miss []string
	if !slices.ContainsFunc(tb.fdb[mac], func(f vxFDB) bool { return f.Dst == e.vtep.String() && f.State == "permanent" }) {
		miss = append(miss, fmt.Sprintf("no permanent fdb entry %s dst %s", mac, e.vtep))
	}
	if got := tb.neigh[e.ip.String()]; got != mac {
		miss = append(miss, fmt.Sprintf("no permanent neighbour entry %s lladdr %s (have %q)", e.ip, mac, got))
	}
	return strings.Join(miss, ", ")
}

// lacks says what is still there of e ("" if nothing).
func (tb vxTables) lacks(e vxEP) string {
	var left []string
	for _, f := range tb.fdb[strings.ToLower(e.mac)] {
		left = append(left, "fdb "+f.String())
	}
	if got, ok := tb.neigh[e.ip.String()]; ok {
		left = append(left, fmt.Sprintf("permanent neighbour entry %s lladdr %s", e.ip, got))
	}
	return strings.Join(left, ", ")
}

// vxWant is what one host's VXLAN link of a network must hold (has) and
// must not hold (gone).
type vxWant struct {
	h         *Host
	net       string
	has, gone []vxEP
}

// vxAwait polls, up to d (once if d ≤ 0), until every host's tables are as
// wanted; it fails the test with what differs, and the tables, if not.
func vxAwait(t testing.TB, what string, d time.Duration, wants []vxWant) error {
	t.Helper()
	links := make([]string, len(wants))
	for i, w := range wants {
		links[i], _ = vxLinkName(t, w.h, w.net)
	}
	var problems []string
	t0 := time.Now()
	err := testhost.Poll(max(d, 0), func() error {
		problems = nil
		for i, w := range wants {
			tb, err := vxReadTables(w.h, links[i])
			if err != nil {
				return err
			}
			var p []string
			for _, e := range w.has {
				if m := tb.has(e); m != "" {
					p = append(p, fmt.Sprintf("missing %s: %s", e, m))
				}
			}
			for _, e := range w.gone {
				if l := tb.lacks(e); l != "" {
					p = append(p, fmt.Sprintf("still there for %s: %s", e, l))
				}
			}
			if len(p) > 0 {
				problems = append(problems, fmt.Sprintf("host %s, %s (%s):\n    %s\n  its entries:\n    %s", w.h.Name, links[i], w.net, strings.Join(p, "\n    "), tb.dump))
			}
		}
		if len(problems) > 0 {
			return fmt.Errorf("%d hosts' tables differ", len(problems))
		}
		return nil
	})
	if err != nil {
		if len(problems) == 0 {
			t.Errorf("%s: reading the kernels' tables: %v", what, err)
		} else {
			t.Errorf("%s: after %s, the kernels' tables are not as they must be:\n  %s", what, time.Since(t0).Round(time.Millisecond), strings.Join(problems, "\n  "))
		}
	}
	return err
}

// vxHold checks, about every 300 ms until deadline, that every host's
// tables are as wanted; it fails the test at the first sample that differs.
func vxHold(t testing.TB, what string, deadline time.Time, wants []vxWant) {
	t.Helper()
	for _, w := range wants {
		vxLinkName(t, w.h, w.net) // fail here, not in the loop
	}
	n := 0
	for {
		n++
		if vxAwait(t, fmt.Sprintf("%s (sample %d)", what, n), 0, wants) != nil {
			return
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(300 * time.Millisecond)
	}
	t.Logf("%s: the tables held for %d samples", what, n)
}

// vxPair is a ping from one endpoint's container to another's address.
type vxPair struct{ from, to vxEP }

// vxPairs is every ordered pair of endpoints on different hosts and one
// network.
func vxPairs(eps []vxEP) []vxPair {
	var ps []vxPair
	for _, a := range eps {
		for _, b := range eps {
			if a.h != b.h && a.net == b.net {
				ps = append(ps, vxPair{a, b})
			}
		}
	}
	return ps
}

// vxPingAll fails the test unless every pair pings within d (each pair
// retried until then, all at once; at least one try each).
func vxPingAll(t testing.TB, what string, d time.Duration, pairs ...vxPair) {
	t.Helper()
	errs := make([]error, len(pairs))
	var wg sync.WaitGroup
	for i, p := range pairs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = testhost.Poll(d, func() error {
				if out, err := p.from.h.pingOnce(p.from.ctr, p.to.ip.String(), 1, 1); err != nil {
					return fmt.Errorf("%v\n%s", err, strings.TrimSpace(out))
				}
				return nil
			})
		}()
	}
	wg.Wait()
	bad := 0
	for i, p := range pairs {
		if errs[i] != nil {
			bad++
			t.Errorf("%s: %s cannot ping %s (tried for %s): %v", what, p.from, p.to, d, errs[i])
		}
	}
	if bad == 0 {
		t.Logf("%s: %d pings across hosts answered", what, len(pairs))
	}
}

// vxOn is the endpoints of eps on the given hosts.
func vxOn(eps []vxEP, hosts ...*Host) []vxEP {
	var out []vxEP
	for _, e := range eps {
		if slices.Contains(hosts, e.h) {
			out = append(out, e)
		}
	}
	return out
}

// vxSetMembers is the members of a local-scope weft's known-VTEP set
// weft-vteps4 on h (nil if there is no such set).
func vxSetMembers(t testing.TB, h *Host) []string {
	t.Helper()
	return vxSetMembersOf(t, h, "weft-vteps4")
}

// vxSetMembersOf is the members of the ipset named set on h (nil if there is
// no such set).
func vxSetMembersOf(t testing.TB, h *Host, set string) []string {
	t.Helper()
	out, err := h.ns("ipset", "list", set)
	if err != nil {
		if strings.Contains(err.Error(), "does not exist") {
			return nil
		}
		t.Fatalf("host %s: %v", h.Name, err)
	}
	_, members, _ := strings.Cut(out, "Members:")
	var m []string
	for _, f := range strings.Fields(members) {
		m = append(m, strings.TrimSuffix(f, "/32"))
	}
	return m
}

// vxObjects is every kernel object of either weft's vxlan mode on h
// (dataplane/vxlan, local-scope and global-scope flavours): links named or
// aliased as isVxlanLink knows, firewall rules tagged weft-vxlan: or
// weft-swarm: or matching one of their bridges, and the known-VTEP ipsets
// (weft-vteps4/6, weft-swarm-vteps4/6). The harness's generic check
// (Host.AssertClean) knows none of them.
func vxObjects(h *Host) ([]string, error) {
	ls, err := hostLinks(h)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, l := range ls {
		if isVxlanLink(l.Name, l.Alias) {
			out = append(out, l.String())
		}
	}
	fw, err := h.firewall()
	if err != nil {
		return nil, err
	}
	for _, r := range fw {
		if slices.ContainsFunc(vxRuleMarks, func(m string) bool { return strings.Contains(r.Spec, m) }) {
			out = append(out, "rule "+r.String())
		}
	}
	sets, err := h.ns("ipset", "list", "-n")
	if err != nil {
		return nil, err
	}
	for _, s := range strings.Fields(sets) {
		if strings.HasPrefix(s, "weft-") {
			out = append(out, "ipset "+s)
		}
	}
	slices.Sort(out)
	return out, nil
}

// vxFirst is the first n strings of s, and "..." if there are more.
func vxFirst(s []string, n int) []string {
	if len(s) > n {
		return append(slices.Clone(s[:n]), fmt.Sprintf("... (%d more)", len(s)-n))
	}
	return s
}

// vxDropCount is the packet counter of h's known-VTEP DROP rule for UDP
// port (filter INPUT, tagged weft-vxlan:known-vteps).
func vxDropCount(t testing.TB, h *Host, port int) int {
	t.Helper()
	out := h.NS(t, "iptables-save", "-c", "-t", "filter")
	for _, line := range strings.Split(out, "\n") {
		if !strings.Contains(line, "-A INPUT ") || !strings.Contains(line, "weft-vxlan:known-vteps") ||
			!strings.Contains(line, fmt.Sprintf("--dport %d ", port)) {
			continue
		}
		// [packets:bytes] -A INPUT ...
		c, _, _ := strings.Cut(strings.TrimPrefix(line, "["), ":")
		n, err := strconv.Atoi(c)
		if err != nil {
			t.Fatalf("host %s: no packet counter in %q", h.Name, line)
		}
		return n
	}
	t.Fatalf("host %s: no known-VTEP filter rule for UDP port %d in filter INPUT:\n%s", h.Name, port, out)
	return 0
}

// vxInEchos is the count of ICMP echo requests container ctr received
// (InEchos of its namespace's /proc/net/snmp).
func vxInEchos(t testing.TB, h *Host, ctr string) int {
	t.Helper()
	out, err := h.Exec(ctr, "cat", "/proc/net/snmp")
	if err != nil {
		t.Fatalf("host %s: reading %s's /proc/net/snmp: %v", h.Name, ctr, err)
	}
	var head []string
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "Icmp:" {
			continue
		}
		if head == nil {
			head = f
			continue
		}
		if i := slices.Index(head, "InEchos"); i > 0 && i < len(f) {
			if n, err := strconv.Atoi(f[i]); err == nil {
				return n
			}
		}
		break
	}
	t.Fatalf("host %s: no Icmp InEchos in %s's /proc/net/snmp:\n%s", h.Name, ctr, out)
	return 0
}
