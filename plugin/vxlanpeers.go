package plugin

// The vxlan control plane over the cluster store. Each host publishes its
// vxlan endpoints (VTEP, MAC, addresses) under a lease it keeps alive, so
// that they vanish from the store when the host is gone for longer than the
// lease's TTL; every host follows all published endpoints through a watch
// and gives each of its vxlan networks the others' endpoints of the same VNI
// (dataplane.PeerSetter), which programs static neighbour and forwarding
// entries. What a watch misses is caught by the full list at every re-sync
// (clusterRun), and entries deleted from the kernel behind weft's back by
// the mode's own Check and Repair.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/weftnet/weft/dataplane"
	"github.com/weftnet/weft/store"
)

// bucketVxlanEPs (cluster) holds one vxlanEndpoint per endpoint of a vxlan
// network, keyed "<vni>|<endpoint id>", bound to its host's lease.
const bucketVxlanEPs = "vxlan-endpoints"

// DefaultLeaseTTL is how long a host's published endpoints outlive it
// (WEFT_LEASE_TTL): long enough not to drop a host whose weft restarts, short
// enough that a dead host's containers leave the other hosts' tables soon.
const DefaultLeaseTTL = 15 * time.Second

// vxlanEndpoint is a published endpoint.
type vxlanEndpoint struct {
	Host string     `json:"host"`
	VTEP netip.Addr `json:"vtep"`
	MAC  string     `json:"mac"`
	IPv4 netip.Addr `json:"ipv4,omitzero"`
	IPv6 netip.Addr `json:"ipv6,omitzero"`
}

// vxlanEntry is a published endpoint as this host last saw it.
type vxlanEntry struct {
	rec   vxlanEndpoint
	lease store.LeaseID
}

func vxlanEPKey(vni uint32, epID string) string {
	return strconv.FormatUint(uint64(vni), 10) + "|" + epID
}

func vniOfKey(key string) (uint32, bool) {
	v, _, ok := strings.Cut(key, "|")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(v, 10, 32)
	return uint32(n), err == nil
}

// peerSetter is the vxlan mode's peer programming, if the mode is wired.
func (d *Driver) peerSetter() (dataplane.PeerSetter, bool) {
	ps, ok := d.deps.Modes[dataplane.Vxlan].(dataplane.PeerSetter)
	return ps, ok
}

// vxlanInUse says whether this host has a vxlan mode: only then does it take
// a lease and follow the endpoints.
func (d *Driver) vxlanInUse() bool {
	_, ok := d.peerSetter()
	return ok
}

// vxlanSync lists every published endpoint and returns the revision read.
func (d *Driver) vxlanSync(ctx context.Context, cl store.Cluster) (int64, error) {
	lctx, cancel := context.WithTimeout(ctx, 2*clusterTimeout)
	defer cancel()
	items, rev, err := cl.ListItems(lctx, bucketVxlanEPs)
	if err != nil {
		return 0, err
	}
	all := parseVxlanItems(items)
	d.mu.Lock()
	d.cl.vxAll = all
	d.mu.Unlock()
	return rev, nil
}

// applyVxlanEventLocked follows one change of a published endpoint.
func (d *Driver) applyVxlanEventLocked(ev store.Event) {
	if ev.Type == store.EventDelete {
		delete(d.cl.vxAll, ev.Key)
		return
	}
	var rec vxlanEndpoint
	if json.Unmarshal(ev.Value, &rec) == nil {
		d.cl.vxAll[ev.Key] = vxlanEntry{rec: rec, lease: ev.Lease}
	}
}

// publishVxlan makes the store hold exactly this host's vxlan endpoints,
// bound to lease.
func (d *Driver) publishVxlan(ctx context.Context, cl store.Cluster, lease store.LeaseID) error {
	ps, ok := d.peerSetter()
	if !ok {
		return nil
	}
	vtep, err := ps.VTEP()
	if err != nil {
		d.mu.Lock()
		n := d.vxlanNetworksLocked()
		d.mu.Unlock()
		if n == 0 {
			return nil // no vxlan network here: nothing to publish
		}
		return err
	}
	d.mu.Lock()
	want := map[string][]byte{}
	for id, r := range d.eps {
		nr := d.nets[r.Endpoint.NetworkID]
		if nr == nil || nr.Network.Mode != dataplane.Vxlan || nr.Network.Vxlan.VNI == 0 {
			continue
		}
		ep := r.Endpoint
		val, _ := json.Marshal(vxlanEndpoint{Host: d.cl.hostID, VTEP: vtep, MAC: ep.MAC.String(), IPv4: ep.IPv4.Addr(), IPv6: ep.IPv6.Addr()})
		want[vxlanEPKey(nr.Network.Vxlan.VNI, id)] = val
	}
	var ops []store.Op
	for key, val := range want {
		have, ok := d.cl.vxAll[key]
		cur, _ := json.Marshal(have.rec)
		if !ok || have.lease != lease || string(cur) != string(val) {
			ops = append(ops, store.PutLeased(bucketVxlanEPs, key, val, lease))
		}
	}
	for key, e := range d.cl.vxAll {
		if _, keep := want[key]; !keep && e.rec.Host == d.cl.hostID {
			ops = append(ops, store.Delete(bucketVxlanEPs, key))
		}
	}
	d.mu.Unlock()
	if len(ops) == 0 {
		return nil
	}
	cctx, cancel := context.WithTimeout(ctx, clusterTimeout)
	defer cancel()
	return cl.Apply(cctx, ops...)
}

// vxlanNetworksLocked counts this host's vxlan networks.
func (d *Driver) vxlanNetworksLocked() int {
	n := 0
	for _, r := range d.nets {
		if r.Network.Mode == dataplane.Vxlan {
			n++
		}
	}
	return n
}

// parseVxlanItems reads the published endpoints of a listing, by key;
// records that do not decode are left out, as a watch event's are.
func parseVxlanItems(items []store.Item) map[string]vxlanEntry {
	all := make(map[string]vxlanEntry, len(items))
	for _, it := range items {
		var rec vxlanEndpoint
		if json.Unmarshal(it.Value, &rec) == nil {
			all[it.Key] = vxlanEntry{rec: rec, lease: it.Lease}
		}
	}
	return all
}

// remotePeers sorts the published endpoints of every host but self (this
// host's ID) into the peers of each VNI: what this host programs into its
// vxlan networks of that VNI. An endpoint published with local, this host's
// VTEP address, by another host is left out and reported to conflict (two
// hosts configured with one address); one that cannot be decoded is left
// out. It is the one definition of "the entries weft should have
// programmed", shared by programPeers and the doctor (StorePeers).
func remotePeers(all map[string]vxlanEntry, self string, local netip.Addr, conflict func(key string, e vxlanEntry)) map[uint32][]dataplane.Peer {
	byVNI := map[uint32][]dataplane.Peer{}
	for key, e := range all {
		vni, ok := vniOfKey(key)
		if !ok || e.rec.Host == self {
			continue
		}
		if local.IsValid() && e.rec.VTEP == local {
			if conflict != nil {
				conflict(key, e)
			}
			continue
		}
		mac, err := net.ParseMAC(e.rec.MAC)
		if err != nil || !e.rec.VTEP.IsValid() {
			continue
		}
		byVNI[vni] = append(byVNI[vni], dataplane.Peer{VTEP: e.rec.VTEP, MAC: mac, IPv4: e.rec.IPv4, IPv6: e.rec.IPv6})
	}
	return byVNI
}

// StorePeers reads, from the cluster store, the remote endpoints the weft
// of host self (its ID, Status.HostID) with VTEP address local programs into
// its vxlan networks, by VNI: the same selection the running weft makes. The
// doctor compares them with the kernel, whether or not weft runs.
func StorePeers(ctx context.Context, cl store.Cluster, self string, local netip.Addr) (map[uint32][]dataplane.Peer, error) {
	items, _, err := cl.ListItems(ctx, bucketVxlanEPs)
	if err != nil {
		return nil, fmt.Errorf("reading the published vxlan endpoints from the cluster store: %w", err)
	}
	return remotePeers(parseVxlanItems(items), self, local, nil), nil
}

// peerSeen is what this host knows of another host that publishes vxlan
// endpoints, for weft status.
type peerSeen struct {
	// at is when this host last read the peer's entries from the store
	// (a re-sync, or a change of any host's): they exist only while the
	// peer keeps its lease alive, so it was alive then.
	at time.Time
	// wanted counts its endpoints on VNIs this host has networks of;
	// programmed those the last programming of their network wrote.
	wanted, programmed int
	// err is the last programming error of one of those networks.
	err string
}

// programPeers gives each vxlan network of this host the endpoints other
// hosts published for its VNI, and notes, per peer host, when it was seen
// and whether its entries were written.
func (d *Driver) programPeers(ctx context.Context) {
	ps, ok := d.peerSetter()
	if !ok {
		return
	}
	local, _ := ps.VTEP()
	type job struct {
		id    string
		vni   uint32
		peers []dataplane.Peer
	}
	var jobs []job
	d.mu.Lock()
	byVNI := remotePeers(d.cl.vxAll, d.cl.hostID, local, func(key string, e vxlanEntry) {
		d.log.Error("another host publishes this host's VTEP address: its containers are left out; give each host its own WEFT_VTEP_ADDR",
			"endpoint_key", key, "other_host", e.rec.Host, "vtep", local)
	})
	for id, r := range d.nets {
		if r.Network.Mode == dataplane.Vxlan && r.Network.Vxlan.VNI != 0 {
			jobs = append(jobs, job{id, r.Network.Vxlan.VNI, byVNI[r.Network.Vxlan.VNI]})
		}
	}
	hostOf := map[string]string{} // MAC → host, for the tally below
	seen := map[string]*peerSeen{}
	now := time.Now()
	for key, e := range d.cl.vxAll {
		if e.rec.Host == d.cl.hostID {
			continue
		}
		if seen[e.rec.Host] == nil {
			seen[e.rec.Host] = &peerSeen{at: now}
		}
		if vni, ok := vniOfKey(key); ok {
			if mac, err := net.ParseMAC(e.rec.MAC); err == nil {
				hostOf[strconv.FormatUint(uint64(vni), 10)+"|"+mac.String()] = e.rec.Host
			}
		}
	}
	d.mu.Unlock()
	for _, j := range jobs {
		err := ps.SetPeers(ctx, j.id, j.peers)
		if err != nil {
			d.log.Error("programming a vxlan network's remote endpoints failed; retrying at the next change or re-sync",
				"network", dataplane.ShortID(j.id), "peers", len(j.peers), "err", err)
		}
		for _, p := range j.peers {
			s := seen[hostOf[strconv.FormatUint(uint64(j.vni), 10)+"|"+p.MAC.String()]]
			if s == nil {
				continue
			}
			s.wanted++
			if err == nil {
				s.programmed++
			} else {
				s.err = err.Error()
			}
		}
	}
	d.mu.Lock()
	d.cl.peersSeen = seen
	d.mu.Unlock()
}

// keepLease renews lease until ctx ends; it reports a lost lease on lost.
func keepLease(ctx context.Context, cl store.Cluster, lease store.LeaseID, lost chan<- error) {
	err := cl.KeepAlive(ctx, lease)
	if ctx.Err() != nil {
		return
	}
	if err == nil {
		err = errors.New("the lease's keep-alive ended")
	}
	select {
	case lost <- err:
	default:
	}
}
