package doctor

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"path/filepath"
	"strings"
	"time"

	"github.com/weftnet/weft/dataplane"
	"github.com/weftnet/weft/dataplane/bridge"
	"github.com/weftnet/weft/dataplane/fw"
	"github.com/weftnet/weft/plugin"
	"github.com/weftnet/weft/status"
)

// Env is everything the checks do to the host; tests give fakes.
type Env interface {
	// ProbeLink creates a throwaway link of kind (a Feature's Kind) in a
	// new network namespace and deletes it; nil means the kernel has it.
	ProbeLink(kind string) error
	// ProbeBackends reads both iptables back-ends' tables (read-only).
	ProbeBackends(ctx context.Context) fw.Probe
	// ReadFile reads a file (a /proc/sys setting).
	ReadFile(path string) ([]byte, error)
	// TryWrite creates and removes a file in dir.
	TryWrite(dir string) error
	// DialCluster opens and closes the cluster store.
	DialCluster(ctx context.Context, es plugin.EtcdSettings) error
	// Status is weft's status, from the running weft or its state file
	// (status.Read).
	Status(ctx context.Context) (*plugin.Status, error)
	// KernelCheck asks the running weft to run its modes' checks
	// (plugin.CheckPath); an error wrapping status.ErrNotRunning means weft
	// is not running.
	KernelCheck(ctx context.Context) (*plugin.KernelCheck, error)
	// LinkExists says whether the host namespace has a link of that name.
	LinkExists(name string) (bool, error)
	// VxlanLink reads a VXLAN link's local address and the peers its
	// neighbour and forwarding entries hold (vxlan.LinkPeers); found is
	// false when there is no such link.
	VxlanLink(name string) (local netip.Addr, peers []dataplane.Peer, found bool, err error)
	// StorePeers reads from the cluster store the other hosts' endpoints
	// that host self, with VTEP address local, programs, by VNI
	// (plugin.StorePeers).
	StorePeers(ctx context.Context, es plugin.EtcdSettings, self string, local netip.Addr) (map[uint32][]dataplane.Peer, error)
	// ClusterClock reads an etcd member's clock.
	ClusterClock(ctx context.Context, es plugin.EtcdSettings) (ClockReading, error)
	// UDPPort lists the sockets of the host's network namespace bound to
	// a UDP port.
	UDPPort(port uint16) ([]PortHolder, error)
	// Wait waits for d or until ctx ends.
	Wait(ctx context.Context, d time.Duration) error
}

// Feature is a kernel feature weft uses, probed by making a link.
type Feature struct {
	Name string
	// Kind is what ProbeLink makes: bridge, veth, macvlan, vxlan, vlan,
	// ipset (a set, not a link).
	Kind string
	// Mode is the mode that needs it; "" when every mode does.
	Mode dataplane.ModeName
	Fix  string
}

// Features are the kernel features weft uses.
func Features() []Feature {
	return []Feature{
		{"bridge", "bridge", "", "load the bridge module (modprobe bridge; CONFIG_BRIDGE)"},
		{"veth", "veth", "", "load the veth module (modprobe veth; CONFIG_VETH)"},
		{"macvlan", "macvlan", dataplane.Macvlan, "load the macvlan module (modprobe macvlan; CONFIG_MACVLAN); only macvlan networks need it"},
		{"802.1Q VLAN", "vlan", dataplane.Macvlan, "load the 8021q module (modprobe 8021q; CONFIG_VLAN_8021Q); only macvlan networks with parent=IFACE.VID need it"},
		{"vxlan", "vxlan", dataplane.Vxlan, "load the vxlan module (modprobe vxlan; CONFIG_VXLAN); only vxlan networks need it"},
		{"ipset", "ipset", "", "load ip_set and ip_set_hash_net (modprobe ip_set_hash_net; CONFIG_IP_SET); without it weft keeps per-network iptables rules (WEFT_FIREWALL=auto) or does not start (fixed)"},
	}
}

// Run runs every check and returns their results in a fixed order.
func Run(ctx context.Context, env Env, st plugin.Settings) []Result {
	sctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	s, statusErr := env.Status(sctx)
	cancel()
	var rs []Result
	rs = append(rs, checkKernel(env, st, s)...)
	probe := env.ProbeBackends(ctx)
	backend := fw.ChooseBackend(probe)
	cluster := checkCluster(ctx, env, st)
	clusterOK := cluster.Verdict == OK
	rs = append(rs, checkBackend(probe, backend), checkForward(env, probe, backend), checkStateDir(env, st), cluster,
		checkClock(ctx, env, st, clusterOK), checkVxlanPorts(env, s))
	rs = append(rs, checkDrift(ctx, env, s, statusErr, probe, backend)...)
	entries, load := checkVxlanEntries(ctx, env, st, s, statusErr, clusterOK)
	rs = append(rs, entries, checkNeighbours(env, s, load))
	return rs
}

// modesInUse are the modes of the networks in s.
func modesInUse(s *plugin.Status) map[dataplane.ModeName]bool {
	used := map[dataplane.ModeName]bool{}
	if s != nil {
		for _, n := range s.Networks {
			used[dataplane.ModeName(n.Mode)] = true
		}
	}
	return used
}

func checkKernel(env Env, st plugin.Settings, s *plugin.Status) []Result {
	used := modesInUse(s)
	var rs []Result
	for _, f := range Features() {
		r := Result{Name: "kernel: " + f.Name}
		err := env.ProbeLink(f.Kind)
		switch {
		case err == nil:
			r.Verdict, r.Detail = OK, "available"
		case f.Kind == "ipset" && st.Firewall != plugin.FirewallFixed:
			r.Verdict, r.Detail, r.Fix = Warn, fmt.Sprintf("not available (%v); weft falls back to per-network iptables rules", err), f.Fix
		case f.Mode == "" || used[f.Mode]:
			r.Verdict, r.Detail, r.Fix = Fail, fmt.Sprintf("not available: %v", err), f.Fix
			if f.Mode != "" {
				r.Detail += fmt.Sprintf(" (weft has %s networks)", f.Mode)
			}
		default:
			r.Verdict, r.Detail, r.Fix = Warn, fmt.Sprintf("not available (%v); no %s network uses it yet", err, f.Mode), f.Fix
		}
		rs = append(rs, r)
	}
	return rs
}

// weftChains says whether an iptables-save dump holds weft's chains.
func weftChains(dump fw.Dump) bool {
	return dump.Found && dump.Err == nil && strings.Contains(dump.Output, "\n:"+bridge.ChainForward+" ")
}

func checkBackend(p fw.Probe, b fw.Backend) Result {
	r := Result{Name: "iptables back-end"}
	if b.Name == "" {
		r.Verdict, r.Detail = Fail, "neither iptables-nft nor iptables-legacy can be used: "+b.Reason
		r.Fix = "install iptables (apt-get install iptables), which brings both back-ends; the managed plugin has it in its image"
		return r
	}
	other, otherDump := fw.BackendLegacy, p.Legacy
	if b.Name == fw.BackendLegacy {
		other, otherDump = fw.BackendNFT, p.NFT
	}
	switch {
	case weftChains(otherDump):
		r.Verdict = Fail
		r.Detail = fmt.Sprintf("weft's chains are in the %s tables, but dockerd's back-end is %s (%s): rules there do not override dockerd's FORWARD DROP", other, b.Name, b.Reason)
		r.Fix = fmt.Sprintf("restart weft (docker plugin disable weft:latest && docker plugin enable weft:latest): it detects dockerd's back-end again at start; then remove the stale chains: iptables-%s-save | grep WEFT", other)
	case b.DockerFirewall == fw.FirewallNftables:
		r.Verdict, r.Detail = OK, "dockerd uses its nftables firewall; weft writes iptables rules with the nft back-end beside it ("+b.Reason+")"
	case !b.FromDocker:
		r.Verdict = Warn
		r.Detail = "dockerd's chains are in neither back-end, so weft would guess " + b.Name + " (" + b.Reason + ")"
		r.Fix = "start dockerd (with its default --iptables=true) before weft, so that weft writes its rules where dockerd's are; weft detects again at each start"
	case strings.Contains(b.Reason, "in both"):
		r.Verdict = Warn
		r.Detail = "dockerd's chains are in both back-ends (the host switched back-ends without a reboot); weft uses " + b.Name + ": " + b.Reason
		r.Fix = "reboot, or remove the stale back-end's DOCKER chains, so that only the one dockerd uses holds them"
	default:
		r.Verdict, r.Detail = OK, b.Name+", as dockerd: "+b.Reason
	}
	return r
}

// forwardPolicy is the policy of filter FORWARD in an iptables-save dump,
// or "" when the dump has none.
func forwardPolicy(dump string) string {
	table := ""
	for line := range strings.Lines(dump) {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "*"):
			table = line[1:]
		case table == fw.Filter && strings.HasPrefix(line, ":FORWARD "):
			if f := strings.Fields(line); len(f) > 1 {
				return f[1]
			}
		}
	}
	return ""
}

func checkForward(env Env, p fw.Probe, b fw.Backend) Result {
	r := Result{Name: "forwarding"}
	if raw, err := env.ReadFile("/proc/sys/net/ipv4/ip_forward"); err == nil && strings.TrimSpace(string(raw)) == "0" {
		r.Verdict = Fail
		r.Detail = "net.ipv4.ip_forward is 0: containers on weft networks reach nothing beyond their host"
		r.Fix = "sysctl -w net.ipv4.ip_forward=1 (dockerd sets it at start), and keep it in /etc/sysctl.d/"
		return r
	}
	dump := p.NFT
	if b.Name == fw.BackendLegacy {
		dump = p.Legacy
	}
	policy := forwardPolicy(dump.Output)
	switch {
	case b.DockerFirewall == fw.FirewallNftables:
		r.Verdict, r.Detail = OK, "ip_forward is on; dockerd's nftables firewall keeps its own forward policy"
	case policy == "DROP":
		r.Verdict, r.Detail = OK, "ip_forward is on; FORWARD policy DROP (dockerd's), and weft accepts its networks' traffic explicitly"
	case policy == "":
		r.Verdict, r.Detail = Warn, "could not read the FORWARD policy from the "+cmpOr(b.Name, "iptables")+" tables"
		r.Fix = "run weft doctor as root, with iptables installed"
	default:
		r.Verdict = Warn
		r.Detail = "FORWARD policy is " + policy + ": any host that routes to this one can reach containers' addresses on networks without published ports"
		r.Fix = "iptables -P FORWARD DROP (dockerd does this at start unless run with --iptables=false or --ip-forward-no-drop); weft's own rules accept its networks' traffic"
	}
	return r
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func checkStateDir(env Env, st plugin.Settings) Result {
	r := Result{Name: "state directory"}
	err := env.TryWrite(st.StateDir)
	if errors.Is(err, fs.ErrNotExist) {
		// weft creates it (mode 0700) at start: what must be writable is
		// the nearest directory above it that exists.
		dir := st.StateDir
		for errors.Is(err, fs.ErrNotExist) && dir != filepath.Dir(dir) {
			dir = filepath.Dir(dir)
			err = env.TryWrite(dir)
		}
		if err == nil {
			r.Verdict, r.Detail = OK, fmt.Sprintf("%s does not exist yet; weft creates it (%s is writable)", st.StateDir, dir)
			return r
		}
	}
	if err != nil {
		r.Verdict = Fail
		r.Detail = fmt.Sprintf("%s is not writable: %v", st.StateDir, err)
		r.Fix = "make it writable (a read-only or full file system: remount it rw, free space), or point WEFT_STATE_DIR (the managed plugin: state.source) at a directory that is; weft answers every request with this error until then"
		return r
	}
	r.Verdict, r.Detail = OK, st.StateDir+" is writable"
	return r
}

func checkCluster(ctx context.Context, env Env, st plugin.Settings) Result {
	r := Result{Name: "cluster store"}
	if !st.Etcd.Enabled() {
		r.Verdict, r.Detail = Skip, "WEFT_STORE is not set: no cluster store"
		return r
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := env.DialCluster(cctx, st.Etcd); err != nil {
		r.Verdict = Fail
		r.Detail = fmt.Sprintf("%s cannot be reached: %v", st.Etcd.Name(), err)
		r.Fix = "check that etcd answers from this host (etcdctl --endpoints=" + strings.Join(st.Etcd.Endpoints, ",") +
			" endpoint health, with the same TLS files), the firewall between them, and WEFT_ETCD_CA/CERT/KEY; bridge networks work meanwhile, shared macvlan and vxlan networks wait"
		return r
	}
	r.Verdict, r.Detail = OK, st.Etcd.Name()+" answers"
	return r
}

// checkDrift compares weft's state with the kernel: the running weft's own
// check of its firewall and sets, and the links of every network and
// endpoint weft has a record of.
func checkDrift(ctx context.Context, env Env, s *plugin.Status, statusErr error, p fw.Probe, b fw.Backend) []Result {
	if errors.Is(statusErr, status.ErrNoState) {
		return []Result{{Name: "weft's state", Verdict: Skip, Detail: "no running weft and no state file found, so nothing to compare with the kernel (" + statusErr.Error() + ")"}}
	}
	if statusErr != nil {
		return []Result{{Name: "weft's state", Verdict: Fail, Detail: "cannot read it: " + statusErr.Error(),
			Fix: "run weft doctor as root on the host; for the managed plugin give --socket /run/docker/plugins/<plugin id>/weft.sock, or --state-file /var/lib/docker/plugins/<plugin id>/propagated-mount/weft.db when it is disabled"}}
	}
	var rs []Result
	running := s.Source == plugin.SourcePlugin

	fwr := Result{Name: "firewall (weft's own check)"}
	kc, err := env.KernelCheck(ctx)
	switch {
	case errors.Is(err, status.ErrNotRunning) || (err == nil && !running):
		fwr.Verdict, fwr.Detail = Skip, "weft is not running; it checks and restores its rules itself when it runs"
		if hasMode(s, dataplane.Bridge) && !weftChains(dumpOf(p, b)) {
			fwr.Verdict = Warn
			fwr.Detail = fmt.Sprintf("weft is not running and its chains are missing from the %s tables; its bridge networks pass no traffic until it starts", b.Name)
			fwr.Fix = "start weft (docker plugin enable weft:latest): it re-creates its rules at start"
		}
	case err != nil:
		fwr.Verdict, fwr.Detail = Fail, "asking the running weft to check its rules failed: "+err.Error()
		fwr.Fix = "look at weft's log (journalctl -u docker | grep plugin=) for why its checks fail"
	default:
		var missing, failed []string
		for mode, why := range kc.Missing {
			if why != "" {
				missing = append(missing, mode+": "+why)
			}
		}
		for mode, why := range kc.Errors {
			failed = append(failed, mode+": "+why)
		}
		switch {
		case len(failed) > 0:
			fwr.Verdict, fwr.Detail = Fail, "weft could not check its kernel objects: "+strings.Join(failed, "; ")
			fwr.Fix = "the error names the program or kernel interface that failed; weft retries with back-off and says so in its log"
		case len(missing) > 0:
			fwr.Verdict, fwr.Detail = Fail, "missing from the kernel: "+strings.Join(missing, "; ")
			fwr.Fix = "weft restores this within seconds by itself; if it persists, something keeps removing it (a firewall manager such as firewalld or ufw reloading): see weft's log (\"restoring weft's kernel state failed\") and exclude WEFT-* chains and weft-* sets from that tool"
		default:
			fwr.Verdict, fwr.Detail = OK, "every rule, set member and device group weft made is in place"
		}
	}
	rs = append(rs, fwr)

	status.AddLinkNames(s)
	lr := Result{Name: "links"}
	var missingNet, missingEP []string
	var linkErr error
	for _, n := range s.Networks {
		for _, l := range n.Links {
			ok, err := env.LinkExists(l)
			if err != nil {
				linkErr = err
			} else if !ok {
				missingNet = append(missingNet, fmt.Sprintf("%s (%s network %s)", l, n.Mode, dataplane.ShortID(n.ID)))
			}
		}
	}
	for _, e := range s.Endpoints {
		if e.HostLink == "" {
			continue
		}
		ok, err := env.LinkExists(e.HostLink)
		if err != nil {
			linkErr = err
		} else if !ok {
			missingEP = append(missingEP, fmt.Sprintf("%s (endpoint %s)", e.HostLink, dataplane.ShortID(e.ID)))
		}
	}
	switch {
	case linkErr != nil:
		lr.Verdict, lr.Detail, lr.Fix = Fail, "could not list links: "+linkErr.Error(), "run weft doctor as root in the host's network namespace"
	case len(missingNet) > 0:
		lr.Verdict = Fail
		lr.Detail = "links of weft networks are missing: " + strings.Join(missingNet, ", ")
		if len(missingEP) > 0 {
			lr.Detail += "; and endpoints' links: " + strings.Join(missingEP, ", ")
		}
		lr.Fix = "a running weft puts back a bridge or vxlan network's links within seconds (its repairer); if they stay missing, see weft's log, or restart it " +
			"(docker plugin disable weft:latest && docker plugin enable weft:latest): at start it re-creates the links of every network it knows. " +
			"A missing macvlan parent is the host's own interface: bring it back"
	case len(missingEP) > 0:
		lr.Verdict = Warn
		lr.Detail = "endpoints whose host link is gone (their container went while weft could not hear of it): " + strings.Join(missingEP, ", ")
		lr.Fix = "none needed: weft forgets such endpoints at its next start and frees their addresses; restart weft to do it now"
	default:
		lr.Verdict = OK
		lr.Detail = fmt.Sprintf("every link of weft's networks (%d) and endpoints (%d) is in place", len(s.Networks), len(s.Endpoints))
	}
	rs = append(rs, lr)
	return rs
}

func hasMode(s *plugin.Status, m dataplane.ModeName) bool { return modesInUse(s)[m] }

func dumpOf(p fw.Probe, b fw.Backend) fw.Dump {
	if b.Name == fw.BackendLegacy {
		return p.Legacy
	}
	return p.NFT
}
