//go:build e2e

package e2e

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/weftnet/weft/doctor"
	weftplugin "github.com/weftnet/weft/plugin"
	"github.com/weftnet/weft/store/etcd/etcdtest"
)

// TestOperationsVxlan: weft status and weft doctor on a vxlan network
// across two hosts. status shows the other host as a peer, seen moments ago,
// its endpoint programmed; doctor's vxlan checks pass (entries as the store
// says, the VXLAN port held by the kernel, etcd's clock in time). A
// forwarding entry deleted with `bridge fdb del` while weft runs is back
// within seconds (weft's repairer); deleted while weft is down, the doctor
// exits 1 naming it, and once weft is started again it exits 0.
func TestOperationsVxlan(t *testing.T) {
	requireSuite(t)
	if cfg.plugin != "legacy" {
		t.Skipf("WEFT_E2E_PLUGIN=%s: this test gives weft WEFT_STORE and WEFT_VTEP_ADDR through the environment of the legacy weft process", cfg.plugin)
	}
	vxRequireKernel(t)
	start := time.Now()
	cluster := etcdtest.StartCluster(t, 1)
	hosts, vteps, _ := vxStartHosts(t, cluster, "vo", []string{"vo1", "vo2"}, vxTTL)
	h1, h2 := hosts[0], hosts[1]
	const net = "vo-net"
	for _, h := range hosts {
		h.CreateNetwork(t, net, "-o", "mode=vxlan", "--subnet", "10.246.0.0/24")
		t.Cleanup(func() { removeAllContainers(t, h) })
	}
	t.Cleanup(func() {
		if h2.weft != nil && !h2.weft.Alive() {
			h2.StartWeft(t)
		}
	})
	h1.Run(t, "vo-a", "--network", net)
	h2.Run(t, "vo-b", "--network", net)
	a := vxEndpoint(t, h1, "vo-a", net)
	a.vtep = vteps[h1.Name]
	if err := vxAwait(t, "h2 programs h1's container", vxConverge, []vxWant{{h: h2, net: net, has: []vxEP{a}}}); err != nil {
		t.FailNow()
	}
	t.Logf("2 hosts, etcd, a network and two containers up after %s", time.Since(start).Round(time.Millisecond))
	sock2 := h2.PluginDir() + "/weft.sock"
	store := []string{"WEFT_STORE=etcd://" + strings.Join(cluster.Endpoints(), ",")}
	link, _ := vxLinkName(t, h2, net)

	// status: h1 is a peer of h2, seen within a re-sync, programmed.
	var st weftplugin.Status
	out := weftCmd(t, nil, "status", "--json", "--socket", sock2)
	if err := json.Unmarshal([]byte(out), &st); err != nil || st.Cluster == nil || len(st.Cluster.Peers) != 1 {
		t.Fatalf("weft status on %s: %v\n%s", h2.Name, err, out)
	}
	p := st.Cluster.Peers[0]
	if p.VTEP != vteps[h1.Name].String() || p.Endpoints != 1 || p.Wanted != 1 || p.Programmed != 1 || p.LastSeen.IsZero() || st.At.Sub(p.LastSeen) > 45*time.Second {
		t.Errorf("weft status on %s, peer: %+v (status at %s)", h2.Name, p, st.At)
	}
	table := weftCmd(t, nil, "status", "--socket", sock2)
	if !strings.Contains(table, "LAST SEEN") || !strings.Contains(table, "yes (1/1)") {
		t.Errorf("weft status table:\n%s", table)
	}

	// doctor, all in order.
	rs, code := runDoctorEnv(t, h2, sock2, store)
	for name, want := range map[string]string{"vxlan entries": "match the cluster store", "vxlan port": "4789 held by the kernel's VXLAN socket", "cluster clock": "etcd's clock"} {
		if r := rs[name]; r.Verdict != doctor.OK || !strings.Contains(r.Detail, want) {
			t.Errorf("doctor %s: %+v", name, r)
		}
	}
	if code != 0 {
		t.Errorf("doctor exited %d with everything in place:\n  %s", code, failedChecks(rs))
	}

	// weft running: the deleted entry is back within seconds.
	fdbDel := func() {
		t.Helper()
		h2.NS(t, "bridge", "fdb", "del", a.mac, "dev", link, "dst", a.vtep.String(), "self")
	}
	fdbDel()
	t0 := time.Now()
	if err := vxAwait(t, "the running weft puts the FDB entry back", 15*time.Second, []vxWant{{h: h2, net: net, has: []vxEP{a}}}); err != nil {
		t.FailNow()
	}
	t.Logf("FDB entry deleted while weft runs: back after %s", time.Since(t0).Round(time.Millisecond))

	// weft down: nobody repairs, the doctor names it and exits 1.
	h2.KillWeft(t)
	fdbDel()
	rs, code = runDoctorEnv(t, h2, sock2, store)
	r := rs["vxlan entries"]
	if code != 1 || r.Verdict != doctor.Fail || !strings.Contains(r.Detail, strings.ToLower(a.mac)+" via "+a.vtep.String()) || !strings.Contains(r.Detail, link) {
		t.Fatalf("doctor with the FDB entry of %s deleted and weft down: exit %d, %+v", a, code, r)
	}
	t.Logf("doctor, FDB entry deleted, weft down: exit %d: %s", code, r.Detail)

	// weft started again: it writes the entries from the store; the
	// doctor passes.
	h2.StartWeft(t)
	t0 = time.Now()
	err := pollUntil(30*time.Second, func() bool {
		rs, code = runDoctorEnv(t, h2, sock2, store)
		return code == 0 && rs["vxlan entries"].Verdict == doctor.OK
	})
	if err != nil {
		t.Fatalf("doctor after weft was started again: exit %d, vxlan entries %+v\n  %s", code, rs["vxlan entries"], failedChecks(rs))
	}
	t.Logf("doctor passes %s after weft was started again", time.Since(t0).Round(time.Millisecond))
	b := vxEndpoint(t, h2, "vo-b", net)
	vxPingAll(t, "after the repair", vxConverge, vxPair{a, b}, vxPair{b, a})
}
