// Package gossip spreads what each weft of a swarm publishes — its VTEP and
// its vxlan endpoints — to every other weft, without a store: swarm's raft
// is the cluster's memory and a swarm user must not need etcd, while a
// remote network driver gets no per-network peer data from Docker at all
// (only node addresses through DiscoverNew). So the wefts of a swarm gossip
// among themselves with hashicorp/memberlist, seeded from those addresses,
// on their own port (Docker's networkdb holds 7946), encrypted with a key
// they share.
//
// Each weft is the only writer of its own record (its VTEP and the whole
// list of its endpoints, versioned). A change is sent at once, whole, over
// memberlist's reliable (TCP) path to every member — a record outgrows a UDP
// gossip packet after a dozen endpoints — and memberlist's periodic
// push-pull exchanges every record each side knows, which repairs whatever a
// send missed. A record supersedes another of the same node when it is
// newer: a later epoch (the publishing weft's start time, so a restarted
// weft replaces what it published before) or, in one epoch, a higher
// sequence number.
//
// A node that leaves or fails keeps its record for a grace period before it
// disappears from Peers: a weft restarting, or a short partition, must not
// tear down every other host's forwarding entries and rebuild them seconds
// later (the churn of moby#53663).
package gossip

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// DefaultPort is the TCP and UDP port weft's gossip uses when none is set:
// next to Docker's own 7946 (networkdb), which must stay free for it.
const DefaultPort = 7947

// DefaultGrace is how long a departed node's endpoints stay programmed.
const DefaultGrace = 30 * time.Second

// Limits on what a record may hold; a record beyond them is refused whole.
const (
	maxNodeName  = 64
	maxEndpoints = 65536
	maxIDLen     = 128
	maxStateSize = 64 << 20 // one push-pull payload
)

// msgRecord tags a user message that carries one record.
const msgRecord byte = 'r'

// Endpoint is one published vxlan endpoint.
type Endpoint struct {
	VNI  uint32     `json:"vni"`
	ID   string     `json:"id"`
	MAC  string     `json:"mac"`
	IPv4 netip.Addr `json:"ipv4,omitzero"`
	IPv6 netip.Addr `json:"ipv6,omitzero"`
}

// Record is what one node publishes.
type Record struct {
	Node      string     `json:"node"`
	Epoch     int64      `json:"epoch"`
	Seq       uint64     `json:"seq"`
	VTEP      netip.Addr `json:"vtep"`
	Endpoints []Endpoint `json:"endpoints"`
}

// newer says whether r supersedes old (a record of the same node).
func (r *Record) newer(old *Record) bool {
	if r.Epoch != old.Epoch {
		return r.Epoch > old.Epoch
	}
	return r.Seq > old.Seq
}

// Validate refuses a record that does not describe a node sensibly; what it
// lets through reaches the kernel as neighbour and forwarding entries.
func (r *Record) Validate() error {
	if r.Node == "" || len(r.Node) > maxNodeName {
		return fmt.Errorf("node name %q: must be 1 to %d bytes", r.Node, maxNodeName)
	}
	if !r.VTEP.IsValid() || r.VTEP.IsUnspecified() || r.VTEP.IsMulticast() || r.VTEP.Zone() != "" {
		return fmt.Errorf("node %s: VTEP %v is not a unicast address", r.Node, r.VTEP)
	}
	if len(r.Endpoints) > maxEndpoints {
		return fmt.Errorf("node %s: %d endpoints (at most %d)", r.Node, len(r.Endpoints), maxEndpoints)
	}
	for _, e := range r.Endpoints {
		if err := e.validate(); err != nil {
			return fmt.Errorf("node %s: %w", r.Node, err)
		}
	}
	return nil
}

func (e Endpoint) validate() error {
	if e.VNI == 0 || e.VNI > 1<<24-1 {
		return fmt.Errorf("endpoint %q: VNI %d is not 1-16777215", e.ID, e.VNI)
	}
	if e.ID == "" || len(e.ID) > maxIDLen {
		return fmt.Errorf("endpoint ID %q: must be 1 to %d bytes", e.ID, maxIDLen)
	}
	mac, err := net.ParseMAC(e.MAC)
	if err != nil || len(mac) != 6 || mac[0]&1 == 1 {
		return fmt.Errorf("endpoint %s: MAC %q is not a unicast Ethernet address", e.ID, e.MAC)
	}
	if !e.IPv4.IsValid() && !e.IPv6.IsValid() {
		return fmt.Errorf("endpoint %s: no address", e.ID)
	}
	if e.IPv4.IsValid() && !e.IPv4.Is4() || e.IPv6.IsValid() && (!e.IPv6.Is6() || e.IPv6.Is4In6() || e.IPv6.Zone() != "") {
		return fmt.Errorf("endpoint %s: addresses %v and %v are not an IPv4 and an IPv6 address", e.ID, e.IPv4, e.IPv6)
	}
	return nil
}

// Config is a gossip member's setup.
type Config struct {
	// Node is this weft's name in the gossip: its host ID, unique per host.
	Node string
	// Bind is the address and port to listen on (TCP and UDP); port 0
	// picks a free one (tests).
	Bind netip.AddrPort
	// Advertise is the address other nodes reach this one at; the zero
	// value means Bind's address.
	Advertise netip.Addr
	// Key is the shared encryption key: 16, 24 or 32 bytes (AES-128/192/256).
	Key []byte
	// VTEP is this host's underlay address.
	VTEP netip.Addr
	// Grace is how long a departed node's record stays in Peers.
	Grace time.Duration
	// PushPull is the interval of the full state exchange (0: memberlist's
	// LAN default of 30 s).
	PushPull time.Duration
	// Fast selects memberlist's local-network timings (tests).
	Fast bool
	// OnChange is called, never concurrently and coalesced, after the set
	// of live peers' records changed.
	OnChange func()
	// Log receives memberlist's own lines and the package's.
	Log *slog.Logger
}

// Gossip is one member.
type Gossip struct {
	cfg   Config
	ml    *memberlist.Memberlist
	log   *slog.Logger
	epoch int64

	mu       sync.Mutex
	own      Record
	records  map[string]*Record    // other nodes' newest records
	heard    map[string]time.Time  // when each node's record last arrived
	departed map[string]time.Time  // nodes memberlist saw leave or fail
	members  map[string]netip.Addr // nodes memberlist counts as members
	// evicted are the addresses of nodes the swarm says left (Evict),
	// with when: a node at one of them counts as departed since then,
	// whatever memberlist says.
	evicted map[netip.Addr]time.Time
	// expired are the evicted addresses whose grace period is over and
	// that OnChange was called for.
	expired map[netip.Addr]bool

	send    chan struct{} // own record changed: send it to everyone
	changed chan struct{} // the peers changed: call OnChange
	stop    chan struct{}
	wg      sync.WaitGroup
	closed  bool
}

// Start joins nothing yet: it listens and runs the background work. Join
// seeds it with other nodes' addresses.
func Start(cfg Config) (*Gossip, error) {
	if cfg.Node == "" || len(cfg.Node) > maxNodeName {
		return nil, fmt.Errorf("gossip node name %q: must be 1 to %d bytes", cfg.Node, maxNodeName)
	}
	switch len(cfg.Key) {
	case 16, 24, 32:
	default:
		return nil, fmt.Errorf("the gossip key is %d bytes: it must be 16, 24 or 32 (AES-128, -192 or -256)", len(cfg.Key))
	}
	if !cfg.Bind.IsValid() {
		return nil, errors.New("no gossip bind address")
	}
	if !cfg.VTEP.IsValid() {
		return nil, errors.New("no VTEP address to publish")
	}
	if cfg.Grace <= 0 {
		cfg.Grace = DefaultGrace
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	g := &Gossip{
		cfg:      cfg,
		log:      cfg.Log,
		epoch:    time.Now().UnixNano(),
		records:  map[string]*Record{},
		heard:    map[string]time.Time{},
		departed: map[string]time.Time{},
		members:  map[string]netip.Addr{},
		evicted:  map[netip.Addr]time.Time{},
		expired:  map[netip.Addr]bool{},
		send:     make(chan struct{}, 1),
		changed:  make(chan struct{}, 1),
		stop:     make(chan struct{}),
	}
	g.own = Record{Node: cfg.Node, Epoch: g.epoch, VTEP: cfg.VTEP, Endpoints: []Endpoint{}}

	mc := memberlist.DefaultLANConfig()
	if cfg.Fast {
		mc = memberlist.DefaultLocalConfig()
	}
	mc.Name = cfg.Node
	mc.BindAddr = cfg.Bind.Addr().String()
	mc.BindPort = int(cfg.Bind.Port())
	adv := cfg.Advertise
	if !adv.IsValid() {
		adv = cfg.Bind.Addr()
	}
	mc.AdvertiseAddr = adv.String()
	mc.AdvertisePort = mc.BindPort
	mc.SecretKey = slices.Clone(cfg.Key)
	mc.GossipVerifyIncoming, mc.GossipVerifyOutgoing = true, true
	mc.Label = "weft"
	if cfg.PushPull > 0 {
		mc.PushPullInterval = cfg.PushPull
	}
	mc.Delegate = (*delegate)(g)
	mc.Events = (*events)(g)
	mc.Logger = log.New(logWriter{cfg.Log}, "", 0)
	ml, err := memberlist.Create(mc)
	if err != nil {
		return nil, fmt.Errorf("starting weft's gossip on %s: %w", cfg.Bind, err)
	}
	g.ml = ml
	g.wg.Add(2)
	go g.sender()
	go g.notifier()
	return g, nil
}

// Addr is the address and port this member listens on (the port Start
// picked when Bind's was 0).
func (g *Gossip) Addr() netip.AddrPort {
	n := g.ml.LocalNode()
	a, _ := netip.AddrFromSlice(n.Addr)
	return netip.AddrPortFrom(a.Unmap(), n.Port)
}

// Join contacts the given nodes ("host:port", or a bare address for
// DefaultPort) and returns how many answered.
func (g *Gossip) Join(addrs []string) (int, error) {
	seeds := make([]string, 0, len(addrs))
	for _, a := range addrs {
		if _, _, err := net.SplitHostPort(a); err != nil {
			a = net.JoinHostPort(a, strconv.Itoa(DefaultPort))
		}
		seeds = append(seeds, a)
	}
	n, err := g.ml.Join(seeds)
	if err != nil {
		return n, fmt.Errorf("joining weft's gossip through %v: %w", seeds, err)
	}
	return n, nil
}

// SetEndpoints replaces what this node publishes; a change is sent to every
// member at once.
func (g *Gossip) SetEndpoints(eps []Endpoint) error {
	eps = slices.Clone(eps)
	slices.SortFunc(eps, func(a, b Endpoint) int {
		return cmp.Or(cmp.Compare(a.VNI, b.VNI), strings.Compare(a.ID, b.ID))
	})
	for _, e := range eps {
		if err := e.validate(); err != nil {
			return fmt.Errorf("publishing endpoints: %w", err)
		}
	}
	g.mu.Lock()
	if slices.Equal(eps, g.own.Endpoints) {
		g.mu.Unlock()
		return nil
	}
	g.own.Endpoints = eps
	g.own.Seq++
	g.mu.Unlock()
	kick(g.send)
	return nil
}

// Peers returns the records of the other nodes that are members or left
// less than the grace period ago, by node name.
func (g *Gossip) Peers() []Record {
	now := time.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]Record, 0, len(g.records))
	for name, r := range g.records {
		if g.liveLocked(name, now) {
			out = append(out, *r)
		}
	}
	slices.SortFunc(out, func(a, b Record) int { return strings.Compare(a.Node, b.Node) })
	return out
}

// Member is one node as this member sees it, for `weft status`.
type Member struct {
	Node      string
	Addr      netip.Addr
	VTEP      netip.Addr
	Endpoints int
	// Alive is memberlist's view; a node not alive is Departed since.
	Alive    bool
	Departed time.Time
	// Heard is when its record last arrived (zero: never).
	Heard time.Time
}

// Members lists every node this member knows of, itself excluded.
func (g *Gossip) Members() []Member {
	g.mu.Lock()
	defer g.mu.Unlock()
	names := map[string]bool{}
	for n := range g.members {
		names[n] = true
	}
	for n := range g.records {
		names[n] = true
	}
	out := make([]Member, 0, len(names))
	for n := range names {
		m := Member{Node: n, Addr: g.members[n], Heard: g.heard[n]}
		_, m.Alive = g.members[n]
		m.Departed = g.departed[n]
		if r := g.records[n]; r != nil {
			m.VTEP, m.Endpoints = r.VTEP, len(r.Endpoints)
		}
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.Node, b.Node) })
	return out
}

// Evict makes the node at addr — the address it gossips from, or its VTEP
// — count as departed from now on, even while its weft still answers: the
// swarm says that node left (DiscoverDelete), and a node that left the
// swarm must not keep its endpoints in the others' tables nor its VTEP
// through their known-VTEP filter. Its record stays for the grace period,
// like any departed node's, then leaves Peers until Admit(addr).
func (g *Gossip) Evict(addr netip.Addr) {
	addr = addr.Unmap()
	g.mu.Lock()
	if _, ok := g.evicted[addr]; !ok {
		g.evicted[addr] = time.Now()
		delete(g.expired, addr)
	}
	g.mu.Unlock()
	g.log.Info("gossip: the swarm says a node left; its endpoints stay for the grace period", "addr", addr, "grace", g.cfg.Grace)
}

// Admit undoes Evict: the node at addr is in the swarm (again).
func (g *Gossip) Admit(addr netip.Addr) {
	addr = addr.Unmap()
	g.mu.Lock()
	_, was := g.evicted[addr]
	gone := g.expired[addr]
	delete(g.evicted, addr)
	delete(g.expired, addr)
	g.mu.Unlock()
	if was {
		g.log.Info("gossip: the swarm says a node is back", "addr", addr)
	}
	if gone {
		kick(g.changed)
	}
}

// Close leaves the gossip (telling the others, so their grace period
// starts now rather than after failure detection) and stops.
func (g *Gossip) Close(timeout time.Duration) error {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return nil
	}
	g.closed = true
	g.mu.Unlock()
	close(g.stop)
	g.wg.Wait()
	err := g.ml.Leave(timeout)
	if serr := g.ml.Shutdown(); serr != nil {
		err = errors.Join(err, serr)
	}
	if err != nil {
		return fmt.Errorf("leaving weft's gossip: %w", err)
	}
	return nil
}

// liveLocked says whether a node's record counts: a member, or departed
// (or never seen as a member) less than the grace period ago.
func (g *Gossip) liveLocked(name string, now time.Time) bool {
	if since, ok := g.evictedLocked(name); ok {
		return now.Sub(since) < g.cfg.Grace
	}
	if _, ok := g.members[name]; ok {
		return true
	}
	since, ok := g.departed[name]
	return ok && now.Sub(since) < g.cfg.Grace
}

// evictedLocked says whether node name is at an evicted address (its
// member address or its record's VTEP), and since when.
func (g *Gossip) evictedLocked(name string) (time.Time, bool) {
	if len(g.evicted) == 0 {
		return time.Time{}, false
	}
	if a, ok := g.members[name]; ok {
		if since, ok := g.evicted[a]; ok {
			return since, true
		}
	}
	if r := g.records[name]; r != nil {
		if since, ok := g.evicted[r.VTEP]; ok {
			return since, true
		}
	}
	return time.Time{}, false
}

// readmitLocked undoes the eviction of node name's addresses (its member
// address and its record's VTEP) and returns those that were evicted.
func (g *Gossip) readmitLocked(name string) []netip.Addr {
	var back []netip.Addr
	addrs := []netip.Addr{g.members[name]}
	if r := g.records[name]; r != nil {
		addrs = append(addrs, r.VTEP)
	}
	for _, a := range addrs {
		if _, ok := g.evicted[a]; ok {
			delete(g.evicted, a)
			delete(g.expired, a)
			back = append(back, a)
		}
	}
	return back
}

// merge takes a record from another node; it reports whether the live
// peers changed.
func (g *Gossip) merge(r *Record) bool {
	if err := r.Validate(); err != nil {
		g.log.Warn("gossip: a record was refused", "err", err)
		return false
	}
	now := time.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	if r.Node == g.cfg.Node {
		if r.Epoch != g.epoch {
			// Our own earlier life, or another host using our name.
			g.log.Debug("gossip: a record under this node's name from another epoch was ignored", "epoch", r.Epoch)
		}
		return false
	}
	g.heard[r.Node] = now
	if old := g.records[r.Node]; old != nil && !r.newer(old) {
		return false
	}
	g.records[r.Node] = r
	if _, member := g.members[r.Node]; !member {
		if _, ok := g.departed[r.Node]; !ok {
			// Heard of through a third node before memberlist told us
			// about it: counted as departed now, so that it lives for the
			// grace period unless memberlist confirms it.
			g.departed[r.Node] = now
		}
	}
	return g.liveLocked(r.Node, now)
}

// sender sends this node's record to every member whenever it changes.
func (g *Gossip) sender() {
	defer g.wg.Done()
	for {
		select {
		case <-g.stop:
			return
		case <-g.send:
		}
		g.mu.Lock()
		msg, err := json.Marshal(&g.own)
		g.mu.Unlock()
		if err != nil {
			g.log.Error("gossip: encoding this node's record", "err", err)
			continue
		}
		msg = append([]byte{msgRecord}, msg...)
		var wg sync.WaitGroup
		for _, n := range g.ml.Members() {
			if n.Name == g.cfg.Node {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := g.ml.SendReliable(n, msg); err != nil {
					// The next push-pull carries it.
					g.log.Debug("gossip: sending this node's record", "to", n.Name, "err", err)
				}
			}()
		}
		wg.Wait()
	}
}

// notifier calls OnChange after changes, and drops departed nodes once
// their grace period is over.
func (g *Gossip) notifier() {
	defer g.wg.Done()
	tick := time.NewTicker(min(g.cfg.Grace/4, time.Second))
	defer tick.Stop()
	for {
		select {
		case <-g.stop:
			return
		case <-g.changed:
		case <-tick.C:
			if !g.expire(time.Now()) {
				continue
			}
		}
		if g.cfg.OnChange != nil {
			g.cfg.OnChange()
		}
	}
}

// expire forgets the nodes whose grace period is over; it reports whether
// any was.
func (g *Gossip) expire(now time.Time) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	dropped := false
	for a, since := range g.evicted {
		if !g.expired[a] && now.Sub(since) >= g.cfg.Grace {
			// Its record leaves Peers now (liveLocked); it is kept, as
			// the node still sends it, for Admit.
			g.expired[a] = true
			dropped = true
		}
	}
	for name, since := range g.departed {
		if now.Sub(since) >= g.cfg.Grace {
			delete(g.departed, name)
			delete(g.heard, name)
			if _, ok := g.records[name]; ok {
				delete(g.records, name)
				dropped = true
			}
		}
	}
	return dropped
}

func kick(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// delegate is memberlist's view of a Gossip for user data.
type delegate Gossip

func (d *delegate) NodeMeta(int) []byte { return nil }

func (d *delegate) NotifyMsg(b []byte) {
	if len(b) < 2 || b[0] != msgRecord {
		return
	}
	var r Record
	if err := json.Unmarshal(b[1:], &r); err != nil {
		d.log.Warn("gossip: an undecodable record was ignored", "err", err)
		return
	}
	if (*Gossip)(d).merge(&r) {
		kick(d.changed)
	}
}

func (d *delegate) GetBroadcasts(int, int) [][]byte { return nil }

// LocalState is every record this node knows, its own included: a push-pull
// then repairs what either side missed, whoever published it.
func (d *delegate) LocalState(bool) []byte {
	g := (*Gossip)(d)
	g.mu.Lock()
	all := make([]*Record, 0, len(g.records)+1)
	all = append(all, &g.own)
	now := time.Now()
	for name, r := range g.records {
		if g.liveLocked(name, now) {
			all = append(all, r)
		}
	}
	b, err := json.Marshal(all)
	g.mu.Unlock()
	if err != nil {
		g.log.Error("gossip: encoding the state", "err", err)
		return nil
	}
	return b
}

func (d *delegate) MergeRemoteState(buf []byte, _ bool) {
	if len(buf) == 0 || len(buf) > maxStateSize {
		return
	}
	var all []*Record
	if err := json.Unmarshal(buf, &all); err != nil {
		d.log.Warn("gossip: an undecodable state was ignored", "err", err)
		return
	}
	g := (*Gossip)(d)
	changed := false
	for _, r := range all {
		if r != nil && g.merge(r) {
			changed = true
		}
	}
	if changed {
		kick(g.changed)
	}
}

// events is memberlist's view of a Gossip for membership.
type events Gossip

func (e *events) NotifyJoin(n *memberlist.Node) {
	g := (*Gossip)(e)
	if n.Name == g.cfg.Node {
		return
	}
	a, _ := netip.AddrFromSlice(n.Addr)
	g.mu.Lock()
	g.members[n.Name] = a.Unmap()
	delete(g.departed, n.Name)
	_, has := g.records[n.Name]
	back := g.readmitLocked(n.Name)
	g.mu.Unlock()
	g.log.Info("gossip: node joined", "node", n.Name, "addr", a.Unmap())
	if len(back) > 0 {
		// A node the swarm said left (Evict) whose weft joins anew has
		// restarted, as every weft does with its dockerd: it is back,
		// though dockerd may announce it (DiscoverNew, Admit) only much
		// later (its networkDB took 48 s after a manager's restart). A
		// node that really left the swarm keeps its weft running and
		// does not join again.
		g.log.Info("gossip: a node the swarm said left joined again (its weft restarted); its endpoints count again", "node", n.Name, "addr", back)
	}
	if has || len(back) > 0 {
		kick(g.changed)
	}
	// The newcomer gets this node's record now rather than at the next
	// push-pull.
	kick(g.send)
}

func (e *events) NotifyLeave(n *memberlist.Node) {
	g := (*Gossip)(e)
	if n.Name == g.cfg.Node {
		return
	}
	g.mu.Lock()
	delete(g.members, n.Name)
	g.departed[n.Name] = time.Now()
	g.mu.Unlock()
	g.log.Info("gossip: node left; its endpoints stay for the grace period", "node", n.Name, "grace", g.cfg.Grace)
}

func (e *events) NotifyUpdate(*memberlist.Node) {}

// logWriter turns memberlist's "[LEVEL] memberlist: ..." lines into slog
// records at that level.
type logWriter struct{ log *slog.Logger }

func (w logWriter) Write(p []byte) (int, error) {
	line, level := strings.TrimSpace(string(p)), slog.LevelDebug
	for _, l := range []struct {
		prefix string
		level  slog.Level
	}{{"[ERR]", slog.LevelError}, {"[WARN]", slog.LevelWarn}, {"[INFO]", slog.LevelDebug}, {"[DEBUG]", slog.LevelDebug}} {
		if rest, ok := strings.CutPrefix(line, l.prefix); ok {
			line, level = strings.TrimSpace(rest), l.level
			break
		}
	}
	w.log.Log(context.Background(), level, line)
	return len(p), nil
}
