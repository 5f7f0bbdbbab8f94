package doctor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/weftnet/weft/dataplane"
	"github.com/weftnet/weft/dataplane/fw"
	"github.com/weftnet/weft/plugin"
	"github.com/weftnet/weft/status"
)

// fakeEnv is a host as the tests describe it; the zero value is a host
// where everything is in order and weft runs with no networks.
type fakeEnv struct {
	missingKinds map[string]bool
	probe        fw.Probe
	ipForward    string
	unwritable   map[string]bool
	absent       map[string]bool // directories that do not exist
	clusterErr   error
	status       *plugin.Status
	statusErr    error
	kc           *plugin.KernelCheck
	kcErr        error
	links        map[string]bool
	dialed       int
	// files are what ReadFile returns beyond ip_forward (/proc/sys).
	files map[string]string
	// vxLinks are the VXLAN links, by name; storePeers the store's peers
	// by VNI (or storeErr).
	vxLinks    map[string]fakeVxLink
	storePeers map[uint32][]dataplane.Peer
	storeErr   error
	storeSelf  string
	clock      *ClockReading
	clockErr   error
	udp        map[uint16][]PortHolder
	// waits counts Wait calls; afterWait runs at each.
	waits     int
	afterWait func()
}

type fakeVxLink struct {
	local netip.Addr
	peers []dataplane.Peer
}

func (f *fakeEnv) VxlanLink(name string) (netip.Addr, []dataplane.Peer, bool, error) {
	l, ok := f.vxLinks[name]
	return l.local, l.peers, ok, nil
}

func (f *fakeEnv) StorePeers(_ context.Context, _ plugin.EtcdSettings, self string, _ netip.Addr) (map[uint32][]dataplane.Peer, error) {
	f.storeSelf = self
	return f.storePeers, f.storeErr
}

// fakeNow is the fake host's time.
var fakeNow = time.Date(2026, 12, 2, 4, 0, 0, 300e6, time.UTC)

func (f *fakeEnv) ClusterClock(context.Context, plugin.EtcdSettings) (ClockReading, error) {
	if f.clockErr != nil {
		return ClockReading{}, f.clockErr
	}
	if f.clock != nil {
		return *f.clock, nil
	}
	return ClockReading{Endpoint: "http://10.0.0.1:2379", Before: fakeNow, After: fakeNow.Add(time.Millisecond), Server: fakeNow.Truncate(time.Second)}, nil
}

func (f *fakeEnv) UDPPort(port uint16) ([]PortHolder, error) { return f.udp[port], nil }

func (f *fakeEnv) Wait(context.Context, time.Duration) error {
	f.waits++
	if f.afterWait != nil {
		f.afterWait()
	}
	return nil
}

func (f *fakeEnv) ProbeLink(kind string) error {
	if f.missingKinds[kind] {
		return errors.New("operation not supported")
	}
	return nil
}

func (f *fakeEnv) ProbeBackends(context.Context) fw.Probe { return f.probe }

func (f *fakeEnv) ReadFile(path string) ([]byte, error) {
	if v, ok := f.files[path]; ok {
		return []byte(v + "\n"), nil
	}
	if path == "/proc/sys/net/ipv4/ip_forward" {
		return []byte(f.ipForward + "\n"), nil
	}
	return nil, fs.ErrNotExist
}

func (f *fakeEnv) TryWrite(dir string) error {
	switch {
	case f.absent[dir]:
		return fs.ErrNotExist
	case f.unwritable[dir]:
		return errors.New("read-only file system")
	}
	return nil
}

func (f *fakeEnv) DialCluster(context.Context, plugin.EtcdSettings) error {
	f.dialed++
	return f.clusterErr
}

func (f *fakeEnv) Status(context.Context) (*plugin.Status, error) {
	if f.statusErr != nil {
		return nil, f.statusErr
	}
	if f.status == nil {
		return &plugin.Status{Source: "plugin"}, nil
	}
	return f.status, nil
}

func (f *fakeEnv) KernelCheck(context.Context) (*plugin.KernelCheck, error) {
	if f.kcErr != nil {
		return nil, f.kcErr
	}
	if f.kc == nil {
		return &plugin.KernelCheck{Missing: map[string]string{"bridge": ""}}, nil
	}
	return f.kc, nil
}

func (f *fakeEnv) LinkExists(name string) (bool, error) { return !f.absentLink(name), nil }

func (f *fakeEnv) absentLink(name string) bool { return f.links != nil && !f.links[name] }

// dockerNFT is a probe of a host whose dockerd writes to the nft tables.
func dockerNFT(weftIn string) fw.Probe {
	nft := "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:DOCKER - [0:0]\n:DOCKER-USER - [0:0]\n-A FORWARD -j DOCKER-USER\n"
	legacy := "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n"
	switch weftIn {
	case fw.BackendNFT:
		nft += ":WEFT-FORWARD - [0:0]\n"
	case fw.BackendLegacy:
		legacy += ":WEFT-FORWARD - [0:0]\n"
	}
	nft += "COMMIT\n"
	legacy += "COMMIT\n"
	return fw.Probe{
		NFT:    fw.Dump{Found: true, Output: nft},
		Legacy: fw.Dump{Found: true, Output: legacy},
		Paths: map[string]string{"iptables-nft": "/usr/sbin/iptables-nft", "iptables-legacy": "/usr/sbin/iptables-legacy",
			"ip6tables-nft": "/usr/sbin/ip6tables-nft", "ip6tables-legacy": "/usr/sbin/ip6tables-legacy"},
	}
}

func settings(t *testing.T, env map[string]string) plugin.Settings {
	t.Helper()
	st, err := plugin.ParseSettings(nil, func(k string) string { return env[k] }, nil)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func byName(rs []Result, name string) Result {
	for _, r := range rs {
		if r.Name == name {
			return r
		}
	}
	return Result{Name: name, Verdict: "absent"}
}

func TestHealthyHost(t *testing.T) {
	env := &fakeEnv{probe: dockerNFT(fw.BackendNFT), ipForward: "1"}
	rs := Run(context.Background(), env, settings(t, nil))
	for _, r := range rs {
		if r.Verdict != OK && r.Verdict != Skip {
			t.Errorf("%s: %s %s", r.Name, r.Verdict, r.Detail)
		}
	}
	if Failed(rs) || env.dialed != 0 {
		t.Fatalf("failed %v, cluster dialed %d times without WEFT_STORE", Failed(rs), env.dialed)
	}
	var out bytes.Buffer
	if err := Write(&out, rs); err != nil || !strings.Contains(out.String(), "no check failed") {
		t.Fatalf("%v: %s", err, out.String())
	}
}

// Each broken thing fails its own check, with a fix, and makes the run fail.
func TestEachFailureHasAFix(t *testing.T) {
	bridgeNet := &plugin.Status{Source: "plugin", Networks: []plugin.NetworkStatus{{ID: "0123456789abcdef", Mode: "bridge", Bridge: "weft-0123456789"}},
		Endpoints: []plugin.EndpointStatus{{ID: "fedcba9876543210", Network: "0123456789abcdef"}}}
	vxlanNet := &plugin.Status{Source: "plugin", Networks: []plugin.NetworkStatus{{ID: "0123456789abcdef", Mode: "vxlan", VNI: 5}}}
	cases := []struct {
		name  string
		env   *fakeEnv
		vars  map[string]string
		check string
		want  string
		fix   string
	}{
		{"no veth", &fakeEnv{missingKinds: map[string]bool{"veth": true}}, nil, "kernel: veth", "not available", "modprobe veth"},
		{"no vxlan with vxlan networks", &fakeEnv{missingKinds: map[string]bool{"vxlan": true}, status: vxlanNet, links: map[string]bool{"wxb-0123456789": true, "wxv-0123456789": true}},
			nil, "kernel: vxlan", "weft has vxlan networks", "modprobe vxlan"},
		{"no ipset with fixed firewall", &fakeEnv{missingKinds: map[string]bool{"ipset": true}}, map[string]string{"WEFT_FIREWALL": "fixed"}, "kernel: ipset", "not available", "ip_set"},
		{"weft in the wrong back-end", &fakeEnv{probe: dockerNFT(fw.BackendLegacy)}, nil, "iptables back-end", "weft's chains are in the legacy tables", "restart weft"},
		{"no iptables", &fakeEnv{probe: fw.Probe{}}, nil, "iptables back-end", "neither iptables-nft nor iptables-legacy", "apt-get install iptables"},
		{"forwarding off", &fakeEnv{ipForward: "0"}, nil, "forwarding", "ip_forward is 0", "sysctl -w net.ipv4.ip_forward=1"},
		{"read-only state dir", &fakeEnv{unwritable: map[string]bool{"/var/lib/weft": true}}, nil, "state directory", "read-only file system", "WEFT_STATE_DIR"},
		{"etcd down", &fakeEnv{clusterErr: errors.New("context deadline exceeded")}, map[string]string{"WEFT_STORE": "etcd://10.0.0.1:2379"},
			"cluster store", "cannot be reached", "etcdctl --endpoints=http://10.0.0.1:2379 endpoint health"},
		{"firewall drift", &fakeEnv{kc: &plugin.KernelCheck{Missing: map[string]string{"bridge": "chain WEFT-FORWARD is missing"}}}, nil,
			"firewall (weft's own check)", "chain WEFT-FORWARD is missing", "firewalld"},
		{"check fails", &fakeEnv{kc: &plugin.KernelCheck{Missing: map[string]string{}, Errors: map[string]string{"bridge": "iptables-save: exit 1"}}}, nil,
			"firewall (weft's own check)", "iptables-save: exit 1", "retries"},
		{"bridge gone", &fakeEnv{status: bridgeNet, links: map[string]bool{"whfedcba987654": true}}, nil, "links", "weft-0123456789 (bridge network 0123456789ab)", "re-creates the links"},
		{"status unreadable", &fakeEnv{statusErr: errors.New("weft on /run/x.sock answered 500")}, nil, "weft's state", "answered 500", "--socket /run/docker/plugins/<plugin id>/weft.sock"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.env.probe.Paths == nil && c.name != "no iptables" {
				c.env.probe = dockerNFT(fw.BackendNFT)
			}
			if c.env.ipForward == "" {
				c.env.ipForward = "1"
			}
			rs := Run(context.Background(), c.env, settings(t, c.vars))
			r := byName(rs, c.check)
			if r.Verdict != Fail || !strings.Contains(r.Detail, c.want) || !strings.Contains(r.Fix, c.fix) {
				t.Fatalf("%s: %s %q fix %q; want FAIL saying %q, fix %q", c.check, r.Verdict, r.Detail, r.Fix, c.want, c.fix)
			}
			if !Failed(rs) {
				t.Fatal("the run did not fail")
			}
			var out bytes.Buffer
			_ = Write(&out, rs)
			if !strings.Contains(out.String(), "fix: ") {
				t.Fatalf("no fix printed:\n%s", out.String())
			}
		})
	}
}

// What works today but may not be wanted is a warning, not a failure.
func TestWarnings(t *testing.T) {
	for _, c := range []struct {
		name, check, want string
		env               *fakeEnv
	}{
		{"no macvlan, no macvlan network", "kernel: macvlan", "no macvlan network uses it yet", &fakeEnv{missingKinds: map[string]bool{"macvlan": true}}},
		{"no ipset, auto", "kernel: ipset", "per-network", &fakeEnv{missingKinds: map[string]bool{"ipset": true}}},
		{"no dockerd chains", "iptables back-end", "neither back-end", &fakeEnv{probe: fw.Probe{
			NFT:   fw.Dump{Found: true, Output: "*filter\n:FORWARD ACCEPT [0:0]\nCOMMIT\n"},
			Paths: map[string]string{"iptables-nft": "/usr/sbin/iptables-nft"}}}},
		{"FORWARD accept", "forwarding", "FORWARD policy is ACCEPT", &fakeEnv{probe: fw.Probe{
			NFT:   fw.Dump{Found: true, Output: "*filter\n:FORWARD ACCEPT [0:0]\n:DOCKER - [0:0]\nCOMMIT\n"},
			Paths: map[string]string{"iptables-nft": "/usr/sbin/iptables-nft"}}}},
		{"stale endpoint", "links", "endpoints whose host link is gone", &fakeEnv{
			status: &plugin.Status{Source: "plugin", Networks: []plugin.NetworkStatus{{ID: "0123456789abcdef", Mode: "bridge", Bridge: "br0"}},
				Endpoints: []plugin.EndpointStatus{{ID: "fedcba9876543210", Network: "0123456789abcdef"}}},
			links: map[string]bool{"br0": true}}},
		{"weft down, chains gone", "firewall (weft's own check)", "chains are missing", &fakeEnv{
			status: &plugin.Status{Source: "state file", Networks: []plugin.NetworkStatus{{ID: "0123456789abcdef", Mode: "bridge", Bridge: "br0"}}},
			kcErr:  fmt.Errorf("%w: refused", status.ErrNotRunning), probe: dockerNFT("")}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.env.probe.Paths == nil {
				c.env.probe = dockerNFT(fw.BackendNFT)
			}
			c.env.ipForward = "1"
			rs := Run(context.Background(), c.env, settings(t, nil))
			if r := byName(rs, c.check); r.Verdict != Warn || !strings.Contains(r.Detail, c.want) || r.Fix == "" {
				t.Fatalf("%s: %s %q fix %q; want a warning saying %q with a fix", c.check, r.Verdict, r.Detail, r.Fix, c.want)
			}
			if Failed(rs) {
				t.Fatalf("a warning failed the run: %+v", rs)
			}
		})
	}
}

// A state directory that does not exist yet is fine when weft can make it.
func TestStateDirNotYetMade(t *testing.T) {
	env := &fakeEnv{probe: dockerNFT(fw.BackendNFT), ipForward: "1", absent: map[string]bool{"/srv/weft/state": true, "/srv/weft": true}}
	r := byName(Run(context.Background(), env, settings(t, map[string]string{"WEFT_STATE_DIR": "/srv/weft/state"})), "state directory")
	if r.Verdict != OK || !strings.Contains(r.Detail, "/srv is writable") {
		t.Fatalf("%+v", r)
	}
	env.unwritable = map[string]bool{"/srv": true}
	r = byName(Run(context.Background(), env, settings(t, map[string]string{"WEFT_STATE_DIR": "/srv/weft/state"})), "state directory")
	if r.Verdict != Fail {
		t.Fatalf("%+v", r)
	}
}

// Nothing to compare on a host where weft never ran: skipped, not failed.
func TestNoWeftYet(t *testing.T) {
	env := &fakeEnv{probe: dockerNFT(""), ipForward: "1", statusErr: fmt.Errorf("nothing: %w", status.ErrNoState)}
	rs := Run(context.Background(), env, settings(t, nil))
	if r := byName(rs, "weft's state"); r.Verdict != Skip || Failed(rs) {
		t.Fatalf("%+v", rs)
	}
}

func TestMainFlags(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := Main([]string{"--log-level", "loud"}, &out, &errOut, func(string) string { return "" }); code != 2 || !strings.Contains(errOut.String(), "LOG_LEVEL") {
		t.Fatalf("a bad serve flag: exit %d, %s", code, errOut.String())
	}
	errOut.Reset()
	if code := Main([]string{"-h"}, &out, &errOut, func(string) string { return "" }); code != 0 || !strings.Contains(errOut.String(), "weft serve") {
		t.Fatalf("-h: exit %d, %s", code, errOut.String())
	}
}

func statusOptionsForTest() status.Options { return status.Options{PluginsDir: "/nonexistent"} }
