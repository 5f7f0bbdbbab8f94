package doctor

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/weftnet/weft/dataplane"
	"github.com/weftnet/weft/dataplane/vxlan"
	"github.com/weftnet/weft/plugin"
	"github.com/weftnet/weft/status"
)

// The vxlan checks: the peers' neighbour and forwarding entries against the
// cluster store (drift), the UDP ports of weft's VXLAN links, and the
// neighbour table's limit against the number of peers.

// repairSettle is how long the doctor waits before it looks again at entries
// that differ from the store while weft runs: weft's repairer checks every
// 2 s, and a container that just started on another host reaches this
// host's kernel within a moment; what is still wrong after that is drift.
const repairSettle = 3 * time.Second

// vxlanLoad is what the vxlan networks of this host ask of the neighbour
// table, per family: the permanent entries weft writes for other hosts'
// endpoints and the entries containers may learn (every address of their
// network).
type vxlanLoad struct {
	known              bool
	remote4, remote6   int
	learned4, learned6 int
}

func vxlanNetworks(s *plugin.Status) []plugin.NetworkStatus {
	if s == nil {
		return nil
	}
	var out []plugin.NetworkStatus
	for _, n := range s.Networks {
		if n.Mode == string(dataplane.Vxlan) {
			out = append(out, n)
		}
	}
	return out
}

// checkVxlanEntries compares, for each vxlan network, the neighbour and
// forwarding entries of its VXLAN link with the endpoints the other hosts
// published in the cluster store, selected as the running weft selects them
// (plugin.StorePeers) and compared as its own check compares them
// (vxlan.DiffPeers). It works whether or not weft runs. It also returns the
// load those entries put on the neighbour table.
func checkVxlanEntries(ctx context.Context, env Env, st plugin.Settings, s *plugin.Status, statusErr error, clusterOK bool) (Result, vxlanLoad) {
	r := Result{Name: "vxlan entries"}
	nets := vxlanNetworks(s)
	var load vxlanLoad
	switch {
	case statusErr != nil || len(nets) == 0:
		r.Verdict, r.Detail = Skip, "no vxlan network"
		return r, load
	case !st.Etcd.Enabled():
		r.Verdict, r.Detail = Skip, "no cluster store (WEFT_STORE): the other hosts' endpoints come through weft's gossip, which only the running weft knows; its own check (above) covers them"
		addStatusLoad(&load, s)
		return r, load
	case !clusterOK:
		r.Verdict, r.Detail = Skip, "the cluster store cannot be reached (above), so there is nothing to compare the kernel with"
		addStatusLoad(&load, s)
		return r, load
	}
	running := s.Source == plugin.SourcePlugin
	diffs, local, err := vxlanDiffs(ctx, env, st, s, nets, &load)
	if err == nil && len(diffs) > 0 && running {
		// weft may be putting it right at this moment: look again once
		// its repairer has had its turn.
		if werr := env.Wait(ctx, repairSettle); werr == nil {
			load = vxlanLoad{}
			diffs, local, err = vxlanDiffs(ctx, env, st, s, nets, &load)
		}
	}
	switch {
	case err != nil:
		r.Verdict, r.Detail = Fail, err.Error()
		r.Fix = "run weft doctor as root on the host, with weft's WEFT_STORE and WEFT_ETCD_* settings; check that etcd answers (etcdctl endpoint health)"
	case !local.IsValid():
		r.Verdict, r.Detail = Skip, "no VXLAN link of weft's vxlan networks is in the kernel (see links), so there are no entries to compare"
	case len(diffs) > 0:
		r.Verdict = Fail
		r.Detail = "the kernel's neighbour and forwarding entries differ from the endpoints the other hosts published in the cluster store: " + strings.Join(diffs, "; ")
		if running {
			r.Detail += fmt.Sprintf(" (still, %s later)", repairSettle)
		}
		r.Fix = "a running weft puts them back within seconds (its repairer checks every 2 s) and rewrites every network's entries at each change and every 30 s; " +
			"if they stay wrong, see weft's log (\"programming a vxlan network's remote endpoints failed\") and whether something else edits the VXLAN link's entries (bridge fdb, ip neigh). " +
			"Stopped, start weft (docker plugin enable weft:latest): it writes them again from the store"
	default:
		r.Verdict = OK
		r.Detail = fmt.Sprintf("every vxlan network's neighbour and forwarding entries (%d IPv4, %d IPv6 addresses of other hosts) match the cluster store", load.remote4, load.remote6)
	}
	return r, load
}

// vxlanDiffs reads each network's VXLAN link and the store's peers and
// describes each network whose entries differ; local is this host's VTEP
// address, read from the links (invalid when none exists).
func vxlanDiffs(ctx context.Context, env Env, st plugin.Settings, s *plugin.Status, nets []plugin.NetworkStatus, load *vxlanLoad) (diffs []string, local netip.Addr, err error) {
	have := map[string][]dataplane.Peer{}
	vx := status.VxlanFlavour(s)
	for _, n := range nets {
		l, peers, found, err := env.VxlanLink(vx.LinkName(n.ID))
		if err != nil {
			return nil, local, fmt.Errorf("reading the entries of VXLAN link %s: %w", vx.LinkName(n.ID), err)
		}
		if found {
			have[n.ID] = peers
			if !local.IsValid() {
				local = l
			}
		}
	}
	if !local.IsValid() {
		return nil, local, nil
	}
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	want, err := env.StorePeers(sctx, st.Etcd, s.HostID, local)
	if err != nil {
		return nil, local, err
	}
	load.known = true
	for _, n := range nets {
		w := want[n.VNI]
		local4, local6 := 0, 0
		for _, e := range s.Endpoints {
			if e.Network == n.ID {
				local4 += btoi(e.IPv4 != "")
				local6 += btoi(e.IPv6 != "")
			}
		}
		remote4, remote6 := 0, 0
		for _, p := range w {
			remote4 += btoi(p.IPv4.IsValid())
			remote6 += btoi(p.IPv6.IsValid())
		}
		load.remote4 += remote4
		load.remote6 += remote6
		// Each container may learn every other address of its network
		// and its gateway.
		load.learned4 += local4 * (local4 + remote4)
		load.learned6 += local6 * (local6 + remote6)
		peers, ok := have[n.ID]
		if !ok {
			continue // the links check names the missing link
		}
		if d := vxlan.DiffPeers(peers, w); d != "" {
			diffs = append(diffs, fmt.Sprintf("network %s (VXLAN link %s, vni %d): %s", dataplane.ShortID(n.ID), vx.LinkName(n.ID), n.VNI, d))
		}
	}
	return diffs, local, nil
}

// addStatusLoad estimates the load from the counts in the status when the
// store cannot be read: remote endpoints are taken as IPv4.
func addStatusLoad(load *vxlanLoad, s *plugin.Status) {
	for _, n := range vxlanNetworks(s) {
		local := 0
		for _, e := range s.Endpoints {
			local += btoi(e.Network == n.ID)
		}
		load.remote4 += n.RemoteEndpoints
		load.learned4 += local * (local + n.RemoteEndpoints)
	}
	load.known = s.Cluster != nil && s.Cluster.Connected
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// defaultVxlanPort is the IANA VXLAN port, a network's port unless
// vxlan_port says otherwise.
const defaultVxlanPort = 4789

// checkVxlanPorts looks at who holds the UDP port of each vxlan network (and
// 4789, the default of networks to come): the kernel's VXLAN sockets
// (weft's, or another tunnel's on the same port, which share it) are fine;
// a program's socket keeps the kernel from opening its own, so a VXLAN link
// on that port cannot come up.
func checkVxlanPorts(env Env, s *plugin.Status) Result {
	r := Result{Name: "vxlan port"}
	used := map[uint16][]string{}
	for _, n := range vxlanNetworks(s) {
		p := n.Port
		if p == 0 {
			p = defaultVxlanPort
		}
		used[p] = append(used[p], dataplane.ShortID(n.ID))
	}
	ports := []uint16{defaultVxlanPort}
	for p := range used {
		if p != defaultVxlanPort {
			ports = append(ports, p)
		}
	}
	slices.Sort(ports)
	var fails, warns, oks []string
	for _, port := range ports {
		holders, err := env.UDPPort(port)
		if err != nil {
			r.Verdict, r.Detail, r.Fix = Warn, fmt.Sprintf("could not read the UDP sockets: %v", err), "run weft doctor as root in the host's namespaces"
			return r
		}
		var progs []string
		kernel := false
		for _, h := range holders {
			if h.PID == 0 {
				kernel = true
				continue
			}
			progs = append(progs, h.String())
		}
		switch {
		case len(progs) > 0 && len(used[port]) > 0:
			fails = append(fails, fmt.Sprintf("UDP port %d of network(s) %s is held by %s", port, strings.Join(used[port], ", "), strings.Join(progs, ", ")))
		case len(progs) > 0:
			warns = append(warns, fmt.Sprintf("UDP port %d (the default of new vxlan networks) is held by %s", port, strings.Join(progs, ", ")))
		case kernel:
			oks = append(oks, fmt.Sprintf("%d held by the kernel's VXLAN socket", port))
		default:
			oks = append(oks, fmt.Sprintf("%d free", port))
		}
	}
	const fix = "stop that program or move it to another port, or give weft's vxlan networks another port (docker network create -o vxlan_port=P); a program's socket on the port keeps the kernel from opening the VXLAN socket, so the network's VXLAN link cannot come up"
	switch {
	case len(fails) > 0:
		r.Verdict, r.Detail, r.Fix = Fail, strings.Join(append(fails, warns...), "; "), fix
	case len(warns) > 0:
		r.Verdict, r.Detail, r.Fix = Warn, strings.Join(warns, "; ")+"; no weft network uses it yet", fix
	default:
		r.Verdict, r.Detail = OK, "UDP port "+strings.Join(oks, ", port ")
	}
	return r
}

// PortHolder is a socket bound to a UDP port: a program's (PID, Program),
// or the kernel's (PID 0: no process has it open, as a VXLAN link's).
type PortHolder struct {
	PID     int
	Program string
	Addr    string // the bound address, as in /proc/net/udp
}

func (h PortHolder) String() string {
	if h.Program == "" {
		return fmt.Sprintf("process %d", h.PID)
	}
	return fmt.Sprintf("%s (pid %d)", h.Program, h.PID)
}

// neighLimitShare is the share of gc_thresh3 past which the neighbour check
// warns: the estimate is an upper bound, but a table that fills drops
// packets ("neighbour table overflow").
const neighLimitShare = 0.75

// checkNeighbours compares the neighbour entries the vxlan networks may need
// with the kernel's hard limit, net.ipv4/ipv6.neigh.default.gc_thresh3. The
// table is one for the whole host: every container's namespace counts
// against it. weft's own entries for other hosts' endpoints are permanent,
// which kernels from 5.0 on leave out of the count; what containers learn
// (up to every address of their network) counts everywhere.
func checkNeighbours(env Env, s *plugin.Status, load vxlanLoad) Result {
	r := Result{Name: "neighbour table"}
	if len(vxlanNetworks(s)) == 0 {
		r.Verdict, r.Detail = Skip, "no vxlan network"
		return r
	}
	permCounts := true
	if raw, err := env.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		permCounts = kernelBefore(strings.TrimSpace(string(raw)), 5, 0)
	}
	var fails, warns, oks, fixes []string
	for _, fam := range []struct {
		name, sysctl    string
		remote, learned int
	}{
		{"IPv4", "net.ipv4.neigh.default.gc_thresh3", load.remote4, load.learned4},
		{"IPv6", "net.ipv6.neigh.default.gc_thresh3", load.remote6, load.learned6},
	} {
		if fam.remote+fam.learned == 0 {
			continue
		}
		raw, err := env.ReadFile("/proc/sys/" + strings.ReplaceAll(fam.sysctl, ".", "/"))
		if errors.Is(err, fs.ErrNotExist) {
			// Only the initial network namespace has the table's
			// settings: the doctor runs in another one.
			r.Verdict = Skip
			r.Detail = fmt.Sprintf("%s: this network namespace has no %s (the limits are the initial namespace's, whose table every namespace shares): run weft doctor in the host's network namespace", fam.name, fam.sysctl)
			return r
		}
		limit, perr := strconv.Atoi(strings.TrimSpace(string(raw)))
		if err != nil || perr != nil {
			warns = append(warns, fmt.Sprintf("%s: cannot read %s", fam.name, fam.sysctl))
			continue
		}
		need := fam.learned
		perm := "exempt from the limit on this kernel"
		if permCounts {
			need += fam.remote
			perm = "counted on kernels before 5.0"
		}
		desc := fmt.Sprintf("%s: up to %d entries (%d permanent for other hosts' endpoints, %s; up to %d that containers may learn) against %s = %d",
			fam.name, need, fam.remote, perm, fam.learned, fam.sysctl, limit)
		switch {
		case permCounts && fam.remote >= limit:
			fails = append(fails, desc)
		case float64(need) >= neighLimitShare*float64(limit):
			warns = append(warns, desc)
		default:
			oks = append(oks, desc)
			continue
		}
		to := suggestLimit(need)
		pre := strings.TrimSuffix(fam.sysctl, "3")
		fixes = append(fixes, fmt.Sprintf("sysctl -w %s3=%d %s2=%d", pre, to, pre, to/2))
	}
	fix := ""
	if len(fixes) > 0 {
		fix = "raise the limits: " + strings.Join(fixes, "; ") + ", and keep them in /etc/sysctl.d/ (a full table drops packets; the kernel logs \"neighbour table overflow\")"
	}
	switch {
	case len(fails) > 0:
		r.Verdict, r.Detail, r.Fix = Fail, strings.Join(append(fails, warns...), "; "), fix
	case len(warns) > 0:
		r.Verdict, r.Detail, r.Fix = Warn, strings.Join(warns, "; "), fix
	case len(oks) == 0:
		r.Verdict, r.Detail = OK, "no vxlan endpoint yet"
	default:
		r.Verdict, r.Detail = OK, strings.Join(oks, "; ")
	}
	if !load.known && r.Verdict != Fail {
		r.Detail += " (the other hosts' endpoints are not known: the cluster store was not read)"
	}
	return r
}

// suggestLimit is a gc_thresh3 with room for twice need: a power of two, at
// least 1024 (the kernel's default).
func suggestLimit(need int) int {
	to := 1024
	for to < 2*need {
		to *= 2
	}
	return to
}

// kernelBefore says whether a kernel release ("6.1.0-18-amd64") is older
// than major.minor; an unreadable one counts as older.
func kernelBefore(release string, major, minor int) bool {
	f := strings.FieldsFunc(release, func(r rune) bool { return r < '0' || r > '9' })
	if len(f) < 2 {
		return true
	}
	ma, err1 := strconv.Atoi(f[0])
	mi, err2 := strconv.Atoi(f[1])
	if err1 != nil || err2 != nil {
		return true
	}
	return ma < major || (ma == major && mi < minor)
}
