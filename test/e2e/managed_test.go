//go:build e2e

package e2e

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/weftnet/weft/test/testhost"
)

// The managed plugin, end to end (set-up in managed_host_test.go): built by
// scripts/build-plugin.sh, pushed to a local registry, installed from there
// into dockerds that run in their own network namespaces with their own
// --exec-root, and used by name:tag.

// maxListenDelay is how soon after its process starts weft must listen
// (dockerd gives a managed plugin a few seconds to listen: moby#32095).
const maxListenDelay = time.Second

// mp returns the host's managed plugin.
func mp(h *Host) *managedPlugin { return h.plugin.(*managedPlugin) }

// assertListenDelay measures the time from the plugin process's start to
// weft's "listening" line and fails the test if it exceeds maxListenDelay.
func assertListenDelay(t *testing.T, h *Host, when string) {
	t.Helper()
	d, err := mp(h).listenDelay(h)
	if err != nil {
		t.Errorf("%s: measuring the listen delay: %v", when, err)
		return
	}
	t.Logf("%s: weft listened %s after its process started", when, d.Round(time.Millisecond))
	if d > maxListenDelay {
		t.Errorf("%s: weft listened %s after its process started; must be within %s", when, d, maxListenDelay)
	}
}

// addrSet records which container holds which address.
type addrSet map[netip.Addr]string

// run starts a container on net and checks that its address is new.
func (s addrSet) run(t *testing.T, h *Host, name, net string, args ...string) netip.Addr {
	t.Helper()
	h.Run(t, name, append([]string{"--network", net}, args...)...)
	ip := h.ContainerIP(t, name, net)
	if other, dup := s[ip]; dup {
		t.Errorf("%s got %s, which %s already has", name, ip, other)
	}
	s[ip] = name
	return ip
}

// TestManagedInstallFromRegistry: the plugin pushed to the registry installs
// with `docker plugin install` and settings on the command line; a network
// with -d and --ipam-driver naming the plugin (name:tag) carries traffic;
// weft's state is in the host directory given with state.source; the
// plugin has only the capabilities config.json asks for and no Docker path
// mounted.
func TestManagedInstallFromRegistry(t *testing.T) {
	startRegistry(t)
	h := newManagedHost(t, "m-inst", managedHostOptions{settings: []string{"LOG_LEVEL=debug", "WEFT_DEFAULT_POOLS=base=10.77.0.0/16,size=24"}})
	p := mp(h)
	assertListenDelay(t, h, "after install")

	pc := p.inspect(t, h)
	if !pc.Enabled {
		t.Fatalf("plugin %s is not enabled after install", p.ref)
	}
	for _, want := range []string{"LOG_LEVEL=debug", "WEFT_DEFAULT_POOLS=base=10.77.0.0/16,size=24"} {
		if !slices.Contains(pc.Settings.Env, want) {
			t.Errorf("plugin settings %q lack %s", pc.Settings.Env, want)
		}
	}
	if err := pc.checkMounts(p.stateDir); err != nil {
		t.Error(err)
	}
	for _, m := range pc.Config.Mounts {
		if strings.Contains(m.Source, "docker") {
			t.Errorf("plugin mounts a Docker path: %+v", m)
		}
	}
	if !slices.Equal(pc.Config.Linux.Capabilities, []string{"CAP_NET_ADMIN"}) {
		t.Errorf("plugin capabilities %v, want only CAP_NET_ADMIN", pc.Config.Linux.Capabilities)
	}

	d := h.Driver()
	if d != managedRef(managedTag1) {
		t.Fatalf("driver name %q, want %q", d, managedRef(managedTag1))
	}
	// One network with an explicit subnet, one from the default pool set
	// on the command line.
	h.CreateNetwork(t, "mi-a", "--subnet", "10.93.0.0/24")
	h.CreateNetwork(t, "mi-b")
	if sub, _ := h.NetworkSubnet(t, "mi-b"); !netip.MustParsePrefix("10.77.0.0/16").Contains(sub.Addr()) {
		t.Errorf("network mi-b got %s, not from WEFT_DEFAULT_POOLS=base=10.77.0.0/16", sub)
	}
	drv := h.Docker(t, "network", "inspect", "-f", "{{.Driver}} {{.IPAM.Driver}}", "mi-a")
	if drv != d+" "+d {
		t.Errorf("network mi-a has drivers %q, want %q twice", drv, d)
	}
	addrs := addrSet{}
	addrs.run(t, h, "mi-a1", "mi-a")
	ip2 := addrs.run(t, h, "mi-a2", "mi-a")
	addrs.run(t, h, "mi-b1", "mi-b")
	h.AssertPing(t, "mi-a1", "mi-a2")
	h.AssertPing(t, "mi-a1", ip2.String())
	h.AssertPing(t, "mi-a2", "mi-a1")
	h.AssertNoPing(t, "mi-a1", h.ContainerIP(t, "mi-b1", "mi-b").String())

	// The state is in the host directory given with state.source.
	if st, err := os.Stat(filepath.Join(p.stateDir, "weft.db")); err != nil || st.Size() == 0 {
		t.Errorf("no state file in the state.source directory %s: %v", p.stateDir, err)
	}
	// LOG_LEVEL=debug took effect.
	id, _ := p.id(h)
	if !slices.ContainsFunc(weftLog(h, id, 0), func(l weftLogLine) bool { return l.Level == "DEBUG" }) {
		t.Error("LOG_LEVEL=debug was set, but weft logged no debug line")
	}

	h.Docker(t, "rm", "-f", "mi-a1", "mi-a2", "mi-b1")
	h.Docker(t, "network", "rm", "mi-a", "mi-b")
	h.AssertClean(t)
}

// TestManagedDisableEnableSet: with networks and running containers,
// `docker plugin disable` is refused, `disable -f` works, `docker plugin
// set LOG_LEVEL=debug` takes effect at the next enable, and afterwards the
// same networks work and new containers get unique addresses: the state
// came back from the mounted state directory.
func TestManagedDisableEnableSet(t *testing.T) {
	startRegistry(t)
	h := newManagedHost(t, "m-dis", managedHostOptions{settings: []string{"LOG_LEVEL=info"}})
	p := mp(h)
	h.CreateNetwork(t, "md-a", "--subnet", "10.92.0.0/24")
	h.CreateNetwork(t, "md-b", "--subnet", "10.92.1.0/24", "-o", "com.docker.network.bridge.enable_icc=false")
	addrs := addrSet{}
	addrs.run(t, h, "md-a1", "md-a")
	addrs.run(t, h, "md-a2", "md-a")
	addrs.run(t, h, "md-b1", "md-b")
	ipB2 := addrs.run(t, h, "md-b2", "md-b")
	h.AssertPing(t, "md-a1", "md-a2")
	h.AssertNoPing(t, "md-b1", ipB2.String()) // ICC off

	if _, stderr, err := h.DockerErr("plugin", "disable", p.ref); err == nil {
		t.Fatal("docker plugin disable without -f succeeded while networks use the plugin")
	} else {
		t.Logf("as expected, disable without -f was refused: %s", stderr)
	}
	id, _ := p.id(h)
	mark := testhost.FileSize(filepath.Join(h.Dir, "dockerd.log"))
	h.Docker(t, "plugin", "disable", "-f", p.ref)
	if pids, _ := weftPIDs(h); len(pids) != 0 {
		t.Errorf("weft still runs after disable: %v", pids)
	}
	// The data plane is the kernel's: the containers still talk.
	h.AssertPing(t, "md-a1", "md-a2")
	h.Docker(t, "plugin", "set", p.ref, "LOG_LEVEL=debug")
	h.Docker(t, "plugin", "enable", p.ref)
	if err := p.waitReady(h); err != nil {
		t.Fatal(err)
	}
	assertListenDelay(t, h, "after enable")

	// New containers on both networks: unique addresses, traffic as before.
	addrs.run(t, h, "md-a3", "md-a")
	addrs.run(t, h, "md-b3", "md-b")
	h.AssertPing(t, "md-a3", "md-a1")
	h.AssertPing(t, "md-a1", "md-a3")
	h.AssertNoPing(t, "md-b3", ipB2.String())
	// A new network does not collide with the old ones either.
	h.CreateNetwork(t, "md-c")
	addrs.run(t, h, "md-c1", "md-c")
	_, gw := h.NetworkSubnet(t, "md-c")
	if s, _ := h.NetworkSubnet(t, "md-c"); s.Overlaps(netip.MustParsePrefix("10.92.0.0/23")) {
		t.Errorf("the new network got %s, which overlaps md-a or md-b", s)
	}
	h.AssertPing(t, "md-c1", gw.String())

	lines := weftLog(h, id, mark)
	if !slices.ContainsFunc(lines, func(l weftLogLine) bool { return l.Level == "DEBUG" }) {
		t.Errorf("after docker plugin set LOG_LEVEL=debug and enable, weft logged no debug line (%d lines)", len(lines))
	}
	all := weftLog(h, id, 0)
	if slices.ContainsFunc(all[:len(all)-len(lines)], func(l weftLogLine) bool { return l.Level == "DEBUG" }) {
		t.Error("weft logged debug lines with LOG_LEVEL=info")
	}

	h.Docker(t, "rm", "-f", "md-a1", "md-a2", "md-a3", "md-b1", "md-b2", "md-b3", "md-c1")
	h.Docker(t, "network", "rm", "md-a", "md-b", "md-c")
	h.AssertClean(t)
}

// TestManagedUpgrade: `docker plugin upgrade` to another tag (another
// build) keeps the plugin's name, its environment settings, the networks
// and the addresses. It follows the documented procedure: dockerd (20.10
// and later) resets mount sources to config.json's defaults on upgrade
// (upgradePlugin replaces the plugin's config, which is where `set` put the
// source) while keeping environment settings, so state.source is set again
// before enable.
func TestManagedUpgrade(t *testing.T) {
	startRegistry(t)
	h := newManagedHost(t, "m-upg", managedHostOptions{settings: []string{"LOG_LEVEL=debug"}})
	p := mp(h)
	h.CreateNetwork(t, "mu-a", "--subnet", "10.91.0.0/24")
	addrs := addrSet{}
	ip1 := addrs.run(t, h, "mu-1", "mu-a")
	addrs.run(t, h, "mu-2", "mu-a")
	h.AssertPing(t, "mu-1", "mu-2")
	id, _ := p.id(h)
	if !slices.ContainsFunc(weftLog(h, id, 0), func(l weftLogLine) bool { return strings.Contains(l.Msg, "version="+managedTag1) }) {
		t.Errorf("weft did not log version=%s", managedTag1)
	}

	mark := testhost.FileSize(filepath.Join(h.Dir, "dockerd.log"))
	h.Docker(t, "plugin", "disable", "-f", p.ref)
	h.Docker(t, "plugin", "upgrade", "--grant-all-permissions", "--skip-remote-check", p.ref, managedRef(managedTag2))
	h.Docker(t, "plugin", "set", p.ref, "state.source="+p.stateDir)
	h.Docker(t, "plugin", "enable", p.ref)
	if err := p.waitReady(h); err != nil {
		t.Fatal(err)
	}
	assertListenDelay(t, h, "after upgrade")
	if !slices.ContainsFunc(weftLog(h, id, mark), func(l weftLogLine) bool { return strings.Contains(l.Msg, "version="+managedTag2) }) {
		t.Errorf("after the upgrade weft did not log version=%s", managedTag2)
	}
	// Same name, same settings.
	pc := p.inspect(t, h)
	if !slices.Contains(pc.Settings.Env, "LOG_LEVEL=debug") {
		t.Errorf("after the upgrade the plugin's environment is %q; LOG_LEVEL=debug is lost", pc.Settings.Env)
	}
	if !slices.ContainsFunc(weftLog(h, id, mark), func(l weftLogLine) bool { return l.Level == "DEBUG" }) {
		t.Error("after the upgrade weft logs no debug lines although LOG_LEVEL=debug was set before it")
	}
	if err := pc.checkMounts(p.stateDir); err != nil {
		t.Errorf("after the upgrade: %v", err)
	}
	h.AssertPing(t, "mu-1", "mu-2")
	if got := h.ContainerIP(t, "mu-1", "mu-a"); got != ip1 {
		t.Errorf("mu-1 has %s after the upgrade, had %s", got, ip1)
	}
	addrs.run(t, h, "mu-3", "mu-a")
	h.AssertPing(t, "mu-3", "mu-1")
	// A container restarted after the upgrade joins through the new build.
	h.Docker(t, "restart", "-t", "1", "mu-2")
	h.AssertPing(t, "mu-1", "mu-2")
	if ip := h.ContainerIP(t, "mu-2", "mu-a"); addrs[ip] != "" && addrs[ip] != "mu-2" {
		t.Errorf("mu-2 came back with %s, which %s has", ip, addrs[ip])
	}

	h.Docker(t, "rm", "-f", "mu-1", "mu-2", "mu-3")
	h.Docker(t, "network", "rm", "mu-a")
	h.AssertClean(t)
}

// TestManagedTwoHosts: the plugin installed into two dockerds, each in its
// own network namespace with its own --exec-root (not /var/run/docker),
// data-root and state directory, works in each independently: the same
// subnet on both, the same first addresses, and one host's plugin disabled
// does not disturb the other.
func TestManagedTwoHosts(t *testing.T) {
	startRegistry(t)
	a := newManagedHost(t, "m-two-a", managedHostOptions{})
	b := newManagedHost(t, "m-two-b", managedHostOptions{})
	if mp(a).stateDir == mp(b).stateDir {
		t.Fatal("the hosts share a state directory")
	}
	var first [2]netip.Addr
	for i, h := range []*Host{a, b} {
		h.CreateNetwork(t, "mt-net", "--subnet", "10.90.0.0/24")
		h.Run(t, "mt-1", "--network", "mt-net")
		h.Run(t, "mt-2", "--network", "mt-net")
		h.AssertPing(t, "mt-1", "mt-2")
		first[i] = h.ContainerIP(t, "mt-1", "mt-net")
	}
	if first[0] != first[1] {
		t.Errorf("the first container got %s on one host and %s on the other; independent state should give the same address", first[0], first[1])
	}

	h, other := a, b
	h.Docker(t, "plugin", "disable", "-f", mp(h).ref)
	other.Run(t, "mt-3", "--network", "mt-net")
	other.AssertPing(t, "mt-3", "mt-1")
	if pids, _ := weftPIDs(other); len(pids) != 1 {
		t.Errorf("host %s has %d weft processes, want 1", other.Name, len(pids))
	}
	h.Docker(t, "plugin", "enable", mp(h).ref)
	if err := mp(h).waitReady(h); err != nil {
		t.Fatal(err)
	}
	h.Run(t, "mt-3", "--network", "mt-net")
	h.AssertPing(t, "mt-3", "mt-1")
	if x, y := h.ContainerIP(t, "mt-3", "mt-net"), other.ContainerIP(t, "mt-3", "mt-net"); x != y {
		t.Logf("third containers: %s on %s, %s on %s", x, h.Name, y, other.Name)
	}
	for _, h := range []*Host{a, b} {
		h.Docker(t, "rm", "-f", "mt-1", "mt-2", "mt-3")
		h.Docker(t, "network", "rm", "mt-net")
		h.AssertClean(t)
	}
}

// TestManagedDockerdRestart: dockerd restarted (SIGTERM, live-restore off)
// with the plugin enabled starts it again before the containers with a
// restart policy, and those come back on their weft networks.
func TestManagedDockerdRestart(t *testing.T) {
	startRegistry(t)
	h := newManagedHost(t, "m-drst", managedHostOptions{})
	p := mp(h)
	h.CreateNetwork(t, "mr-net", "--subnet", "10.89.0.0/24")
	addrs := addrSet{}
	addrs.run(t, h, "mr-1", "mr-net", "--restart", "always")
	addrs.run(t, h, "mr-2", "mr-net", "--restart", "always")
	h.AssertPing(t, "mr-1", "mr-2")
	id, _ := p.id(h)

	h.StopDockerd(t)
	if pids, _ := weftPIDs(h); len(pids) != 0 {
		t.Errorf("weft still runs after dockerd stopped: %v", pids)
	}
	mark := testhost.FileSize(filepath.Join(h.Dir, "dockerd.log"))
	h.StartDockerd(t)
	if err := p.waitReady(h); err != nil {
		t.Fatal(err)
	}
	assertListenDelay(t, h, "after the dockerd restart")
	var listening time.Time
	for _, l := range weftLog(h, id, mark) {
		if strings.Contains(l.Msg, " msg=listening ") {
			listening = l.Time
			break
		}
	}
	for _, c := range []string{"mr-1", "mr-2"} {
		err := testhost.Poll(60*time.Second, func() error {
			if s := h.Docker(t, "inspect", "-f", "{{.State.Running}}", c); s != "true" {
				return fmt.Errorf("container %s is not running", c)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		started, err := time.Parse(time.RFC3339Nano, h.Docker(t, "inspect", "-f", "{{.State.StartedAt}}", c))
		if err != nil {
			t.Fatal(err)
		}
		if listening.IsZero() || !listening.Before(started) {
			t.Errorf("container %s started at %s, weft listened at %s: the plugin must come first", c, started, listening)
		}
	}
	h.AssertPing(t, "mr-1", "mr-2")
	h.AssertPing(t, "mr-2", "mr-1")
	addrs.run(t, h, "mr-3", "mr-net")
	h.AssertPing(t, "mr-3", "mr-1")

	h.Docker(t, "rm", "-f", "mr-1", "mr-2", "mr-3")
	h.Docker(t, "network", "rm", "mr-net")
	h.AssertClean(t)
}

// TestManagedPluginKilled: the plugin's process SIGKILLed is restarted by
// dockerd; the network keeps working and new containers get unique
// addresses.
func TestManagedPluginKilled(t *testing.T) {
	startRegistry(t)
	h := newManagedHost(t, "m-kill", managedHostOptions{})
	p := mp(h)
	h.CreateNetwork(t, "mk-net", "--subnet", "10.88.0.0/24")
	addrs := addrSet{}
	addrs.run(t, h, "mk-1", "mk-net")
	addrs.run(t, h, "mk-2", "mk-net")
	old, err := p.pid(h)
	if err != nil {
		t.Fatal(err)
	}
	h.KillWeft(t)
	h.AssertPing(t, "mk-1", "mk-2")
	err = testhost.Poll(30*time.Second, func() error {
		pid, err := p.pid(h)
		if err != nil {
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
	if err := p.waitReady(h); err != nil {
		t.Fatal(err)
	}
	assertListenDelay(t, h, "after dockerd restarted the killed plugin")
	addrs.run(t, h, "mk-3", "mk-net")
	h.AssertPing(t, "mk-3", "mk-1")

	h.Docker(t, "rm", "-f", "mk-1", "mk-2", "mk-3")
	h.Docker(t, "network", "rm", "mk-net")
	h.AssertClean(t)
}

// TestManagedLegacyIptables: a dockerd whose iptables is the legacy
// back-end (its own PATH) puts its chains and FORWARD policy DROP in the
// legacy tables; weft must notice, say so in its log, and write its rules
// there too, or its ACCEPTs would do nothing against that DROP. With Docker
// 29's nftables firewall back-end (WEFT_E2E_DOCKERD_ARGS) dockerd writes no
// iptables rules whatever its iptables is: weft must then find Docker's
// table, say so, and write its rules with the nft back-end of iptables.
func TestManagedLegacyIptables(t *testing.T) {
	startRegistry(t)
	bin := filepath.Join(cfg.dir, "legacy-iptables")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, prog := range []string{"iptables", "ip6tables", "iptables-save", "ip6tables-save", "iptables-restore", "ip6tables-restore"} {
		legacy := strings.Replace(prog, "tables", "tables-legacy", 1)
		path, err := exec.LookPath(legacy)
		if err != nil {
			t.Fatal(err)
		}
		_ = os.Remove(filepath.Join(bin, prog))
		if err := os.Symlink(path, filepath.Join(bin, prog)); err != nil {
			t.Fatal(err)
		}
	}
	h := newManagedHost(t, "m-legacy", managedHostOptions{dockerdEnv: []string{"PATH=" + bin + ":" + os.Getenv("PATH")}})
	p := mp(h)
	// Where weft's rules must go (the tables iptables-<in>-save shows), and
	// what its log must say.
	in, other, logSays := "legacy", "nft", "dockerd's firewall back-end: iptables"
	if cfg.nftables {
		in, other, logSays = "nft", "legacy", "dockerd's firewall back-end: nftables"
		if out, err := h.ns("nft", "list", "table", "ip", "docker-bridges"); err != nil {
			t.Fatalf("dockerd runs with --firewall-backend=nftables but has no table ip docker-bridges: %v\n%s", err, out)
		}
		if legacy := h.NS(t, "iptables-legacy-save"); strings.Contains(legacy, ":DOCKER") {
			t.Fatalf("dockerd on its nftables back-end wrote iptables chains:\n%s", legacy)
		}
	} else if legacy := h.NS(t, "iptables-legacy-save"); !strings.Contains(legacy, ":DOCKER-USER") || !strings.Contains(legacy, ":FORWARD DROP") {
		t.Fatalf("dockerd did not use the legacy back-end:\n%s", legacy)
	}
	h.CreateNetwork(t, "ml-net", "--subnet", "10.87.0.0/24")
	h.Run(t, "ml-1", "--network", "ml-net")
	h.Run(t, "ml-2", "--network", "ml-net")
	h.AssertPing(t, "ml-1", "ml-2")
	if rules := h.NS(t, "iptables-"+in+"-save"); !strings.Contains(rules, ":WEFT-") {
		t.Errorf("weft's chains are not in the %s tables, where they belong:\n%s", in, rules)
	}
	if rules := h.NS(t, "iptables-"+other+"-save"); strings.Contains(rules, ":WEFT-") {
		t.Errorf("weft wrote chains into the %s tables:\n%s", other, rules)
	}
	id, _ := p.id(h)
	if !slices.ContainsFunc(weftLog(h, id, 0), func(l weftLogLine) bool {
		return strings.Contains(l.Msg, logSays) && strings.Contains(l.Msg, "back-end "+in)
	}) {
		t.Errorf("weft's log does not say %q and that it uses iptables back-end %s", logSays, in)
	}
	h.Docker(t, "rm", "-f", "ml-1", "ml-2")
	h.Docker(t, "network", "rm", "ml-net")
	if rules := h.NS(t, "iptables-"+in+"-save"); strings.Contains(rules, "WEFT-") || strings.Contains(rules, "weft:") {
		t.Errorf("with no weft network left, the %s tables still hold weft rules:\n%s", in, rules)
	}
	h.AssertClean(t)
}
