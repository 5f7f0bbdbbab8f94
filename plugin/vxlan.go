package plugin

// vxlan networks span hosts: each host that runs `docker network create -o
// mode=vxlan --subnet S` joins the one network of subnet S. Its definition
// (VNI, UDP port, subnets) lives in the cluster store, written by the first
// host and checked by every other one, so the hosts agree on the VNI and a
// mismatch is refused by name instead of silently making two networks.
// Addresses are claimed cluster-wide as for shared macvlan subnets
// (cluster.go); each host publishes its endpoints and programs the others'
// (vxlanpeers.go).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/weftnet/weft/dataplane"
	"github.com/weftnet/weft/store"
)

// Cluster buckets of the vxlan mode.
const (
	// bucketVxlanNets holds one vxlanDef per network, keyed by its first
	// subnet (vxlanKey).
	bucketVxlanNets = "vxlan-networks"
	// bucketVxlanVNIs maps each VNI in use (decimal) to its network's key.
	bucketVxlanVNIs = "vxlan-vnis"
)

// Automatic VNIs stay below Docker swarm's overlay range (4096 and up), so
// that a weft network and a swarm overlay on one host never collide.
const (
	firstAutoVNI = 1
	lastAutoVNI  = 4095
)

// vxlanDef is a vxlan network's cluster-wide definition.
type vxlanDef struct {
	VNI     uint32   `json:"vni"`
	Port    uint16   `json:"port"`
	Subnets []string `json:"subnets"`
	// Hosts are the hosts that have the network; the definition goes with
	// the last one.
	Hosts []string `json:"hosts"`
}

// vxlanKey is the cluster key of a vxlan network: its first subnet, IPv4
// first ("10.1.0.0-24").
func vxlanKey(n dataplane.Network) (string, error) {
	var first netip.Prefix
	switch {
	case len(n.IPv4) > 0:
		first = n.IPv4[0].Pool
	case len(n.IPv6) > 0:
		first = n.IPv6[0].Pool
	default:
		return "", fmt.Errorf("%w: a vxlan network needs a subnet", ErrInvalidOption)
	}
	return first.Addr().String() + "-" + strconv.Itoa(first.Bits()), nil
}

// vxlanSubnets lists a network's subnets canonically, for comparing
// definitions across hosts.
func vxlanSubnets(n dataplane.Network) []string {
	var out []string
	for _, s := range append(slices.Clone(n.IPv4), n.IPv6...) {
		out = append(out, s.Pool.String())
	}
	slices.Sort(out)
	return out
}

// vxlanMAC derives an endpoint's MAC from its IPv4 address, as Docker's
// overlay does (02:42:a.b.c.d): a container that moves to another host then
// changes only its forwarding entry, and a MAC never outlives its address.
// An IPv6-only endpoint keeps the ID-derived one.
func vxlanMAC(ep dataplane.Endpoint) net.HardwareAddr {
	if !ep.IPv4.IsValid() {
		return endpointMAC(ep.ID)
	}
	a := ep.IPv4.Addr().As4()
	return net.HardwareAddr{0x02, 0x42, a[0], a[1], a[2], a[3]}
}

// checkVxlan refuses a vxlan network this host cannot make: one
// without the cluster store or without weft's IPAM, or, on a global-scope
// weft, one the gossip cannot serve.
func (d *Driver) checkVxlan(rec *networkRecord) error {
	if rec.Network.Mode != dataplane.Vxlan {
		return nil
	}
	if d.scope == ScopeGlobal {
		return d.checkSwarmVxlan(rec.Network)
	}
	if d.deps.Cluster == nil {
		return fmt.Errorf("%w: vxlan networks span hosts through weft's cluster store, which is not set: "+
			"set WEFT_STORE=etcd://host:2379,... on every host (docker plugin set weft WEFT_STORE=...)", ErrInvalidOption)
	}
	if rec.AddressSpace == "" {
		return fmt.Errorf("%w: vxlan networks need weft's IPAM (--ipam-driver weft, and the same --subnet on every host), so that addresses are unique across hosts", ErrInvalidOption)
	}
	return nil
}

// defineVxlan agrees with the cluster on n's definition: the first host
// writes it (allocating the VNI when -o vni is not given), every other host
// checks that its own request matches and adds itself. It returns n with
// its VNI and the definition's key. d.mu is not held; clMu is.
func (d *Driver) defineVxlan(ctx context.Context, n dataplane.Network) (dataplane.Network, string, error) {
	key, err := vxlanKey(n)
	if err != nil {
		return n, "", err
	}
	cl, err := d.deps.Cluster.get()
	if err != nil {
		return n, "", d.clusterErr("a vxlan network", err)
	}
	cctx, cancel := context.WithTimeout(ctx, clusterTimeout)
	defer cancel()
	subnets := vxlanSubnets(n)
	for {
		it, ok, _, err := cl.GetItem(cctx, bucketVxlanNets, key)
		if err != nil {
			return n, "", d.clusterErr("a vxlan network", err)
		}
		if ok {
			var def vxlanDef
			if err := json.Unmarshal(it.Value, &def); err != nil {
				return n, "", fmt.Errorf("the cluster's record of vxlan network %s is unreadable: %w", key, err)
			}
			if err := matchVxlan(n, subnets, def); err != nil {
				return n, "", err
			}
			n.Vxlan.VNI = def.VNI
			if slices.Contains(def.Hosts, d.cl.hostID) {
				return n, key, nil
			}
			def.Hosts = append(def.Hosts, d.cl.hostID)
			val, _ := json.Marshal(def)
			_, err = cl.Txn(cctx, []store.Cond{store.Unchanged(bucketVxlanNets, key, it.ModRev)}, store.Put(bucketVxlanNets, key, val))
			if errors.Is(err, store.ErrConflict) {
				continue
			}
			if err != nil {
				return n, "", d.clusterErr("a vxlan network", err)
			}
			return n, key, nil
		}
		vni := n.Vxlan.VNI
		if vni == 0 {
			if vni, err = d.freeVNI(cctx, cl); err != nil {
				return n, "", err
			}
		} else if owner, taken, err := vniOwner(cctx, cl, vni); err != nil {
			return n, "", d.clusterErr("a vxlan network", err)
		} else if taken {
			return n, "", fmt.Errorf("%w: vni %d is already the vxlan network of subnet %s; choose another -o vni, or leave it out for a free one",
				ErrInvalidOption, vni, keySubnet(owner))
		}
		def := vxlanDef{VNI: vni, Port: n.Vxlan.Port, Subnets: subnets, Hosts: []string{d.cl.hostID}}
		val, _ := json.Marshal(def)
		vkey := strconv.FormatUint(uint64(vni), 10)
		_, err = cl.Txn(cctx, []store.Cond{store.Absent(bucketVxlanNets, key), store.Absent(bucketVxlanVNIs, vkey)},
			store.Put(bucketVxlanNets, key, val), store.Put(bucketVxlanVNIs, vkey, []byte(key)))
		if errors.Is(err, store.ErrConflict) {
			continue // another host got there first: read again
		}
		if err != nil {
			return n, "", d.clusterErr("a vxlan network", err)
		}
		n.Vxlan.VNI = vni
		return n, key, nil
	}
}

// matchVxlan refuses a request that does not match the network other hosts
// already have for its subnet.
func matchVxlan(n dataplane.Network, subnets []string, def vxlanDef) error {
	other := fmt.Sprintf("vxlan network %s (vni %d, vxlan_port %d)", joinSubnets(def.Subnets), def.VNI, def.Port)
	switch {
	case n.Vxlan.VNI != 0 && n.Vxlan.VNI != def.VNI:
		return fmt.Errorf("%w: subnet %s is already %s on other hosts; use -o vni=%d or leave vni out to join it",
			ErrInvalidOption, subnets[0], other, def.VNI)
	case n.Vxlan.Port != def.Port:
		return fmt.Errorf("%w: subnet %s is already %s on other hosts; use -o vxlan_port=%d to join it",
			ErrInvalidOption, subnets[0], other, def.Port)
	case !slices.Equal(subnets, def.Subnets):
		return fmt.Errorf("%w: the subnets %s do not match %s on other hosts; give the same --subnet options on every host",
			ErrInvalidOption, joinSubnets(subnets), other)
	}
	return nil
}

func joinSubnets(s []string) string { return strings.Join(s, " and ") }

// keySubnet turns a vxlanKey back into a subnet for messages.
func keySubnet(key string) string {
	if a, ok := splitSubnetKey(key); ok {
		return a.String()
	}
	return key
}

func splitSubnetKey(key string) (netip.Prefix, bool) {
	i := strings.LastIndexByte(key, '-')
	if i < 0 {
		return netip.Prefix{}, false
	}
	bits, err := strconv.Atoi(key[i+1:])
	a, err2 := netip.ParseAddr(key[:i])
	if err != nil || err2 != nil {
		return netip.Prefix{}, false
	}
	p, err := a.Prefix(bits)
	return p, err == nil
}

// vniOwner says which network (key) has vni, if any.
func vniOwner(ctx context.Context, cl store.Cluster, vni uint32) (string, bool, error) {
	it, ok, _, err := cl.GetItem(ctx, bucketVxlanVNIs, strconv.FormatUint(uint64(vni), 10))
	if err != nil || !ok {
		return "", false, err
	}
	return string(it.Value), true, nil
}

// freeVNI picks the lowest VNI of the automatic range no network has.
func (d *Driver) freeVNI(ctx context.Context, cl store.Cluster) (uint32, error) {
	items, _, err := cl.ListItems(ctx, bucketVxlanVNIs)
	if err != nil {
		return 0, d.clusterErr("a vxlan network", err)
	}
	used := map[uint32]bool{}
	for _, it := range items {
		if v, err := strconv.ParseUint(it.Key, 10, 32); err == nil {
			used[uint32(v)] = true
		}
	}
	for v := uint32(firstAutoVNI); v <= lastAutoVNI; v++ {
		if !used[v] {
			return v, nil
		}
	}
	return 0, fmt.Errorf("%w: every automatic vni (%d to %d) is taken; give one with -o vni=N (4096 and up collide with Docker swarm's overlays)",
		ErrInvalidOption, firstAutoVNI, lastAutoVNI)
}

// leaveVxlan removes this host from a vxlan network's definition, and the
// definition (and its VNI) with the last host.
func (d *Driver) leaveVxlan(ctx context.Context, cl store.Cluster, key string) error {
	for {
		it, ok, _, err := cl.GetItem(ctx, bucketVxlanNets, key)
		if err != nil || !ok {
			return err
		}
		var def vxlanDef
		if err := json.Unmarshal(it.Value, &def); err != nil {
			return nil // not ours to fix
		}
		hosts := slices.DeleteFunc(slices.Clone(def.Hosts), func(h string) bool { return h == d.cl.hostID })
		if len(hosts) == len(def.Hosts) {
			return nil
		}
		var ops []store.Op
		if len(hosts) == 0 {
			ops = []store.Op{store.Delete(bucketVxlanNets, key), store.Delete(bucketVxlanVNIs, strconv.FormatUint(uint64(def.VNI), 10))}
		} else {
			def.Hosts = hosts
			val, _ := json.Marshal(def)
			ops = []store.Op{store.Put(bucketVxlanNets, key, val)}
		}
		_, err = cl.Txn(ctx, []store.Cond{store.Unchanged(bucketVxlanNets, key, it.ModRev)}, ops...)
		if !errors.Is(err, store.ErrConflict) {
			return err
		}
	}
}
