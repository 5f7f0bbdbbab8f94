package doctor

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/weftnet/weft/dataplane"
	"github.com/weftnet/weft/dataplane/fw"
	"github.com/weftnet/weft/dataplane/vxlan"
	"github.com/weftnet/weft/plugin"
)

const vxID = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

var (
	localVTEP = netip.MustParseAddr("192.0.2.1")
	peer      = dataplane.Peer{VTEP: netip.MustParseAddr("192.0.2.2"), MAC: net.HardwareAddr{0x02, 0x42, 0x0a, 0xf0, 0, 3}, IPv4: netip.MustParseAddr("10.240.0.3")}
	storeEtcd = map[string]string{"WEFT_STORE": "etcd://10.0.0.1:2379"}
)

// vxEnv is a host with one vxlan network (vni 5) and one local endpoint,
// whose VXLAN link holds have, and a store that publishes peer.
func vxEnv(source string, have ...dataplane.Peer) *fakeEnv {
	return &fakeEnv{
		probe: dockerNFT(fw.BackendNFT), ipForward: "1",
		status: &plugin.Status{Source: source, HostID: "h1",
			Networks:  []plugin.NetworkStatus{{ID: vxID, Mode: "vxlan", VNI: 5, RemoteEndpoints: 1}},
			Endpoints: []plugin.EndpointStatus{{ID: "fedcba9876543210", Network: vxID, IPv4: "10.240.0.2/24"}}},
		vxLinks:    map[string]fakeVxLink{vxlan.LinkName(vxID): {local: localVTEP, peers: have}},
		storePeers: map[uint32][]dataplane.Peer{5: {peer}},
		files:      map[string]string{"/proc/sys/kernel/osrelease": "6.1.0-18-amd64", "/proc/sys/net/ipv4/neigh/default/gc_thresh3": "1024", "/proc/sys/net/ipv6/neigh/default/gc_thresh3": "1024"},
	}
}

// The peers' entries are compared with the store, weft running or not; a
// missing forwarding entry fails naming the peer, and passes once repaired.
func TestVxlanEntries(t *testing.T) {
	run := func(env *fakeEnv, vars map[string]string) Result {
		t.Helper()
		return byName(Run(context.Background(), env, settings(t, vars)), "vxlan entries")
	}
	env := vxEnv(plugin.SourcePlugin, peer)
	if r := run(env, storeEtcd); r.Verdict != OK || !strings.Contains(r.Detail, "1 IPv4") || env.storeSelf != "h1" {
		t.Fatalf("in order: %+v (self %q)", r, env.storeSelf)
	}

	// The FDB entry deleted (bridge fdb del) while weft is stopped.
	noFDB := dataplane.Peer{MAC: peer.MAC, IPv4: peer.IPv4}
	env = vxEnv(plugin.SourceStateFile, noFDB)
	rs := Run(context.Background(), env, settings(t, storeEtcd))
	r := byName(rs, "vxlan entries")
	if r.Verdict != Fail || !strings.Contains(r.Detail, peer.MAC.String()+" via 192.0.2.2") || !strings.Contains(r.Detail, vxlan.LinkName(vxID)) ||
		!strings.Contains(r.Fix, "start weft") || !Failed(rs) || env.waits != 0 {
		t.Fatalf("FDB entry gone, weft stopped: %+v (waited %d)", r, env.waits)
	}
	// A stale entry of no peer.
	stale := dataplane.Peer{VTEP: netip.MustParseAddr("192.0.2.9"), MAC: net.HardwareAddr{2, 0, 0, 0, 0, 9}, IPv4: netip.MustParseAddr("10.240.0.9")}
	if r := run(vxEnv(plugin.SourceStateFile, peer, stale), storeEtcd); r.Verdict != Fail || !strings.Contains(r.Detail, "stale entries") {
		t.Fatalf("stale entry: %+v", r)
	}

	// Running: weft repairs it before the doctor looks again.
	env = vxEnv(plugin.SourcePlugin, noFDB)
	env.afterWait = func() {
		env.vxLinks[vxlan.LinkName(vxID)] = fakeVxLink{local: localVTEP, peers: []dataplane.Peer{peer}}
	}
	if r := run(env, storeEtcd); r.Verdict != OK || env.waits != 1 {
		t.Fatalf("repaired while the doctor waited: %+v (waited %d)", r, env.waits)
	}
	// Running, and it stays missing.
	env = vxEnv(plugin.SourcePlugin, noFDB)
	if r := run(env, storeEtcd); r.Verdict != Fail || !strings.Contains(r.Detail, "still") || !strings.Contains(r.Fix, "repairer") {
		t.Fatalf("still missing: %+v", r)
	}

	// Nothing to compare with: no store, store down, no link.
	if r := run(vxEnv(plugin.SourcePlugin, noFDB), nil); r.Verdict != Skip {
		t.Fatalf("no store: %+v", r)
	}
	env = vxEnv(plugin.SourcePlugin, noFDB)
	env.clusterErr = errors.New("context deadline exceeded")
	if r := run(env, storeEtcd); r.Verdict != Skip {
		t.Fatalf("store down: %+v", r)
	}
	env = vxEnv(plugin.SourcePlugin)
	env.vxLinks = nil
	if r := run(env, storeEtcd); r.Verdict != Skip {
		t.Fatalf("no VXLAN link: %+v", r)
	}
	env = vxEnv(plugin.SourcePlugin, peer)
	env.storeErr = errors.New("etcdserver: request timed out")
	if r := run(env, storeEtcd); r.Verdict != Fail || !strings.Contains(r.Detail, "request timed out") {
		t.Fatalf("store read fails: %+v", r)
	}
}

// A program on a vxlan network's port fails naming it; the kernel's own
// VXLAN socket there is fine; a program on 4789 with no network there warns.
func TestVxlanPort(t *testing.T) {
	env := vxEnv(plugin.SourcePlugin, peer)
	env.status.Networks[0].Port = 4790
	env.udp = map[uint16][]PortHolder{4790: {{Addr: "00000000:12B6"}}}
	r := byName(Run(context.Background(), env, settings(t, nil)), "vxlan port")
	if r.Verdict != OK || !strings.Contains(r.Detail, "4789 free") || !strings.Contains(r.Detail, "4790 held by the kernel's VXLAN socket") {
		t.Fatalf("kernel socket: %+v", r)
	}
	env.udp[4790] = append(env.udp[4790], PortHolder{PID: 42, Program: "socat", Addr: "00000000:12B6"})
	rs := Run(context.Background(), env, settings(t, nil))
	if r := byName(rs, "vxlan port"); r.Verdict != Fail || !strings.Contains(r.Detail, "socat (pid 42)") || !strings.Contains(r.Detail, "0123456789ab") ||
		!strings.Contains(r.Fix, "vxlan_port") || !Failed(rs) {
		t.Fatalf("program on the port: %+v", r)
	}
	env = &fakeEnv{probe: dockerNFT(fw.BackendNFT), ipForward: "1", udp: map[uint16][]PortHolder{4789: {{PID: 7, Addr: "00000000:12B5"}}}}
	rs = Run(context.Background(), env, settings(t, nil))
	if r := byName(rs, "vxlan port"); r.Verdict != Warn || !strings.Contains(r.Detail, "process 7") || Failed(rs) {
		t.Fatalf("program on 4789, no vxlan network: %+v", r)
	}
}

// The neighbour table's limit against what the vxlan networks may need.
func TestNeighbourLimits(t *testing.T) {
	run := func(env *fakeEnv) Result {
		t.Helper()
		return byName(Run(context.Background(), env, settings(t, storeEtcd)), "neighbour table")
	}
	if r := run(vxEnv(plugin.SourcePlugin, peer)); r.Verdict != OK || !strings.Contains(r.Detail, "up to 2 entries") || !strings.Contains(r.Detail, "exempt") {
		t.Fatalf("small: %+v", r)
	}
	// 20 local containers, 100 remote endpoints: 20 × 120 may be learned.
	many := func(release string) *fakeEnv {
		var remote, have []dataplane.Peer
		for i := range 100 {
			p := dataplane.Peer{VTEP: peer.VTEP, MAC: net.HardwareAddr{2, 0, 0, 0, 1, byte(i)}, IPv4: netip.AddrFrom4([4]byte{10, 240, 1, byte(i)})}
			remote = append(remote, p)
			have = append(have, p)
		}
		env := vxEnv(plugin.SourcePlugin, have...)
		env.storePeers = map[uint32][]dataplane.Peer{5: remote}
		for i := range 19 {
			env.status.Endpoints = append(env.status.Endpoints, plugin.EndpointStatus{ID: "e" + string(rune('a'+i)), Network: vxID, IPv4: "10.240.0.9/24"})
		}
		env.files["/proc/sys/kernel/osrelease"] = release
		return env
	}
	r := run(many("6.1.0"))
	if r.Verdict != Warn || !strings.Contains(r.Detail, "up to 2400 entries") || !strings.Contains(r.Fix, "net.ipv4.neigh.default.gc_thresh3=8192") {
		t.Fatalf("many: %+v", r)
	}
	// A kernel that counts permanent entries, with more remote endpoints
	// than the limit: weft cannot even write them.
	env := many("4.19.0-26-amd64")
	env.files["/proc/sys/net/ipv4/neigh/default/gc_thresh3"] = "64"
	if r := run(env); r.Verdict != Fail || !strings.Contains(r.Detail, "counted on kernels before 5.0") {
		t.Fatalf("old kernel: %+v", r)
	}
	if !kernelBefore("4.19.0", 5, 0) || kernelBefore("5.0.0", 5, 0) || kernelBefore("6.18.44-fc-v1045", 5, 0) || !kernelBefore("junk", 5, 0) {
		t.Fatal("kernelBefore")
	}
	env = vxEnv(plugin.SourcePlugin, peer)
	delete(env.files, "/proc/sys/net/ipv4/neigh/default/gc_thresh3")
	if r := run(env); r.Verdict != Skip || !strings.Contains(r.Detail, "host's network namespace") {
		t.Fatalf("not in the initial namespace: %+v", r)
	}
	if r := byName(Run(context.Background(), &fakeEnv{probe: dockerNFT(fw.BackendNFT), ipForward: "1"}, settings(t, nil)), "neighbour table"); r.Verdict != Skip {
		t.Fatalf("no vxlan network: %+v", r)
	}
}

// etcd's clock against this host's: the Date header's second is allowed
// for, a few seconds warn, minutes with TLS fail.
func TestClockSkew(t *testing.T) {
	reading := func(skew time.Duration) *ClockReading {
		server := fakeNow.Add(skew)
		return &ClockReading{Endpoint: "https://10.0.0.1:2379", Before: fakeNow, After: fakeNow.Add(20 * time.Millisecond), Server: server.Truncate(time.Second)}
	}
	if got := reading(0).Skew(); got != 0 {
		t.Fatalf("no skew read as %s", got)
	}
	if got := reading(10 * time.Second).Skew(); got < 8*time.Second || got > 10*time.Second {
		t.Fatalf("10 s ahead read as %s", got)
	}
	if got := reading(-10 * time.Second).Skew(); got > -9*time.Second || got < -11*time.Second {
		t.Fatalf("10 s behind read as %s", got)
	}
	tlsVars := map[string]string{"WEFT_STORE": "etcd://10.0.0.1:2379", "WEFT_ETCD_CA": "/etc/weft/ca.pem"}
	for _, c := range []struct {
		name    string
		env     *fakeEnv
		vars    map[string]string
		verdict string
		want    string
	}{
		{"no store", &fakeEnv{}, nil, Skip, "WEFT_STORE"},
		{"store down", &fakeEnv{clusterErr: errors.New("refused")}, storeEtcd, Skip, "cannot be reached"},
		{"in time", &fakeEnv{}, storeEtcd, OK, "within a second"},
		{"10 s ahead", &fakeEnv{clock: reading(10 * time.Second)}, storeEtcd, Warn, "ahead of this host's; leases are not affected"},
		{"10 min behind, TLS", &fakeEnv{clock: reading(-10 * time.Minute)}, tlsVars, Fail, "behind this host's: with TLS"},
		{"10 min behind, no TLS", &fakeEnv{clock: reading(-10 * time.Minute)}, storeEtcd, Warn, "behind"},
		{"no Date", &fakeEnv{clockErr: errors.New("its answer has no readable Date header")}, storeEtcd, Warn, "could not read etcd's clock"},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.env.probe, c.env.ipForward = dockerNFT(fw.BackendNFT), "1"
			r := byName(Run(context.Background(), c.env, settings(t, c.vars)), "cluster clock")
			if r.Verdict != c.verdict || !strings.Contains(r.Detail, c.want) || ((r.Verdict == Warn || r.Verdict == Fail) && r.Fix == "") {
				t.Fatalf("%+v; want %s saying %q", r, c.verdict, c.want)
			}
		})
	}
}

func TestParseProcUDP(t *testing.T) {
	const udp = `   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  832: 00000000:12B5 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 21774458 2 00000000dd4aadbc 0
  833: 0100007F:12B6 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 21773634 2 000000009d995117 0
`
	got := parseProcUDP(udp, 4789)
	if len(got) != 1 || got[0].inode != 21774458 || got[0].addr != "00000000:12B5" {
		t.Fatalf("%+v", got)
	}
	if got := parseProcUDP(udp, 53); len(got) != 0 {
		t.Fatalf("%+v", got)
	}
	if n, ok := socketInode("socket:[21773634]"); !ok || n != 21773634 {
		t.Fatal(n, ok)
	}
	if _, ok := socketInode("/dev/null"); ok {
		t.Fatal("a file read as a socket")
	}
}
