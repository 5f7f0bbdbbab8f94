package gossip

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// The members of a test listen on loopback ports the kernel picks, so no
// test depends on a fixed port.

var testKey = []byte("0123456789abcdef0123456789abcdef")

type node struct {
	*Gossip
	changes chan struct{}
}

func start(t *testing.T, name string, key []byte, grace time.Duration) *node {
	t.Helper()
	n := &node{changes: make(chan struct{}, 100)}
	g, err := Start(Config{
		Node:     name,
		Bind:     netip.MustParseAddrPort("127.0.0.1:0"),
		Key:      key,
		VTEP:     netip.MustParseAddr("192.0.2." + strings.TrimPrefix(name, "n")),
		Grace:    grace,
		PushPull: time.Second,
		Fast:     true,
		OnChange: func() {
			select {
			case n.changes <- struct{}{}:
			default:
			}
		},
		Log: testLog(t, name),
	})
	if err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	n.Gossip = g
	t.Cleanup(func() { _ = g.Close(time.Second) })
	return n
}

func testLog(t *testing.T, name string) *slog.Logger {
	if os.Getenv("WEFT_GOSSIP_TEST_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name(), "node", name)
}

func ep(vni uint32, id, ip string) Endpoint {
	a := netip.MustParseAddr(ip)
	b := a.As4()
	return Endpoint{VNI: vni, ID: id, MAC: fmt.Sprintf("02:42:%02x:%02x:%02x:%02x", b[0], b[1], b[2], b[3]), IPv4: a}
}

// await polls until cond holds, for at most d.
func await(t *testing.T, what string, d time.Duration, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		msg := cond()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %s: %s", what, d, msg)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// sees reports "" when n's view of node holds exactly want (nil: no record).
func sees(n *node, node string, want []Endpoint) string {
	for _, r := range n.Peers() {
		if r.Node == node {
			if want == nil {
				return fmt.Sprintf("%s still has %s's record %v", n.cfg.Node, node, r.Endpoints)
			}
			if !slices.Equal(r.Endpoints, want) {
				return fmt.Sprintf("%s has %s's endpoints %v; want %v", n.cfg.Node, node, r.Endpoints, want)
			}
			return ""
		}
	}
	if want == nil {
		return ""
	}
	return fmt.Sprintf("%s has no record of %s", n.cfg.Node, node)
}

func join(t *testing.T, n *node, to ...*node) {
	t.Helper()
	var addrs []string
	for _, o := range to {
		addrs = append(addrs, o.Addr().String())
	}
	if got, err := n.Join(addrs); err != nil || got != len(addrs) {
		t.Fatalf("%s joining %v: %d answered, %v", n.cfg.Node, addrs, got, err)
	}
}

func TestEndpointsReachEveryNode(t *testing.T) {
	n1, n2, n3 := start(t, "n1", testKey, time.Minute), start(t, "n2", testKey, time.Minute), start(t, "n3", testKey, time.Minute)
	// n3 knows only n2: n1's record reaches it through n2's membership.
	join(t, n2, n1)
	join(t, n3, n2)
	a := []Endpoint{ep(42, "ea", "10.0.0.2"), ep(42, "eb", "10.0.0.3")}
	if err := n1.SetEndpoints(a); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	for _, n := range []*node{n2, n3} {
		await(t, "n1's endpoints on "+n.cfg.Node, 10*time.Second, func() string { return sees(n, "n1", a) })
	}
	t.Logf("two endpoints of n1 on n2 and n3 after %s", time.Since(t0).Round(time.Millisecond))
	for _, r := range n2.Peers() {
		if r.Node == "n1" && r.VTEP != netip.MustParseAddr("192.0.2.1") {
			t.Errorf("n1's VTEP on n2 = %s; want 192.0.2.1", r.VTEP)
		}
	}
	select {
	case <-n2.changes:
	case <-time.After(5 * time.Second):
		t.Error("n2's OnChange was not called after n1's endpoints arrived")
	}

	// A removal and an addition, in one change.
	b := []Endpoint{ep(42, "eb", "10.0.0.3"), ep(7, "ec", "10.1.0.2")}
	if err := n1.SetEndpoints(b); err != nil {
		t.Fatal(err)
	}
	want := []Endpoint{ep(7, "ec", "10.1.0.2"), ep(42, "eb", "10.0.0.3")} // sorted by VNI
	for _, n := range []*node{n2, n3} {
		await(t, "n1's changed endpoints on "+n.cfg.Node, 10*time.Second, func() string { return sees(n, "n1", want) })
	}
	// Nothing of its own in a node's peers.
	for _, r := range n1.Peers() {
		if r.Node == "n1" {
			t.Errorf("n1 lists its own record among its peers")
		}
	}
	// Members: n1 sees both others alive, with when it last heard of them.
	await(t, "n1's members", 10*time.Second, func() string {
		ms := n1.Members()
		if len(ms) != 2 || !ms[0].Alive || !ms[1].Alive || ms[0].Node != "n2" || ms[1].Node != "n3" {
			return fmt.Sprintf("members %+v; want n2 and n3 alive", ms)
		}
		return ""
	})
}

func TestDepartedNodeStaysForGrace(t *testing.T) {
	const grace = 2 * time.Second
	n1, n2 := start(t, "n1", testKey, grace), start(t, "n2", testKey, grace)
	join(t, n2, n1)
	a := []Endpoint{ep(42, "ea", "10.0.0.2")}
	if err := n2.SetEndpoints(a); err != nil {
		t.Fatal(err)
	}
	await(t, "n2's endpoint on n1", 10*time.Second, func() string { return sees(n1, "n2", a) })
	if err := n2.Close(time.Second); err != nil {
		t.Fatalf("n2 leaving: %v", err)
	}
	left := time.Now()
	// Still there during the grace period...
	await(t, "n1 noticing n2 left", 10*time.Second, func() string {
		for _, m := range n1.Members() {
			if m.Node == "n2" && !m.Alive {
				return ""
			}
		}
		return "n2 still a member"
	})
	if msg := sees(n1, "n2", a); msg != "" && time.Since(left) < grace*3/4 {
		t.Errorf("%s %s after n2 left (grace %s): the endpoints must stay for the grace period", msg, time.Since(left).Round(time.Millisecond), grace)
	}
	// ...gone after it.
	await(t, "n2's endpoint gone from n1", grace+5*time.Second, func() string { return sees(n1, "n2", nil) })
	t.Logf("n2's endpoints left n1's peers %s after n2 left (grace %s)", time.Since(left).Round(time.Millisecond), grace)
}

// A node the swarm says left (Evict, from DiscoverDelete) goes from Peers
// after the grace period although its weft still gossips — a worker after
// `docker swarm leave` keeps its plugin running — and comes back, with its
// current endpoints, when the swarm says it is back (Admit).
func TestEvictedNodeLeavesAfterGrace(t *testing.T) {
	const grace = 2 * time.Second
	n1, n2 := start(t, "n1", testKey, grace), start(t, "n2", testKey, grace)
	join(t, n2, n1)
	a := []Endpoint{ep(42, "ea", "10.0.0.2")}
	if err := n2.SetEndpoints(a); err != nil {
		t.Fatal(err)
	}
	await(t, "n2's endpoint on n1", 10*time.Second, func() string { return sees(n1, "n2", a) })
	for len(n1.changes) > 0 {
		<-n1.changes
	}
	n1.Evict(netip.MustParseAddr("192.0.2.2")) // n2's VTEP (both gossip from 127.0.0.1)
	evicted := time.Now()
	if msg := sees(n1, "n2", a); msg != "" {
		t.Errorf("%s at once after the eviction: the endpoints must stay for the grace period", msg)
	}
	await(t, "n2's endpoint gone from n1", grace+5*time.Second, func() string { return sees(n1, "n2", nil) })
	t.Logf("n2's endpoints left n1's peers %s after its eviction (grace %s)", time.Since(evicted).Round(time.Millisecond), grace)
	select {
	case <-n1.changes:
	case <-time.After(5 * time.Second):
		t.Error("no OnChange after the evicted node's grace period ended")
	}
	// Still gone after n2 publishes again, and after a push-pull (1 s).
	b := []Endpoint{ep(42, "eb", "10.0.0.3")}
	if err := n2.SetEndpoints(b); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	if msg := sees(n1, "n2", nil); msg != "" {
		t.Errorf("%s after n2 published again: an evicted node stays out", msg)
	}
	if m := n1.Members(); len(m) != 1 || !m[0].Alive {
		t.Errorf("n1's members %+v: n2 is still a live gossip member, only left out of Peers", m)
	}
	n1.Admit(netip.MustParseAddr("192.0.2.2"))
	await(t, "n2's current endpoint back on n1", 5*time.Second, func() string { return sees(n1, "n2", b) })
	select {
	case <-n1.changes:
	case <-time.After(5 * time.Second):
		t.Error("no OnChange after the evicted node was admitted again")
	}
}

// A node the swarm said left whose weft restarts and joins again (its
// dockerd restarted) counts again at once, before dockerd announces it.
func TestEvictedNodeThatRestartsIsBack(t *testing.T) {
	const grace = time.Second
	n1, n2 := start(t, "n1", testKey, grace), start(t, "n2", testKey, grace)
	join(t, n2, n1)
	if err := n2.SetEndpoints([]Endpoint{ep(42, "ea", "10.0.0.2")}); err != nil {
		t.Fatal(err)
	}
	await(t, "n2's endpoint on n1", 10*time.Second, func() string { return sees(n1, "n2", []Endpoint{ep(42, "ea", "10.0.0.2")}) })
	n1.Evict(netip.MustParseAddr("192.0.2.2")) // n2's VTEP
	if err := n2.Close(time.Second); err != nil {
		t.Fatal(err)
	}
	await(t, "n2's endpoint gone from n1", grace+5*time.Second, func() string { return sees(n1, "n2", nil) })
	g, err := Start(Config{Node: "n2", Bind: netip.MustParseAddrPort("127.0.0.1:0"), Key: testKey, VTEP: netip.MustParseAddr("192.0.2.2"), Grace: grace, Fast: true, PushPull: time.Second, Log: testLog(t, "n2b")})
	if err != nil {
		t.Fatalf("restarting n2: %v", err)
	}
	t.Cleanup(func() { _ = g.Close(time.Second) })
	n2b := &node{Gossip: g}
	now := []Endpoint{ep(42, "eb", "10.0.0.3")}
	if err := n2b.SetEndpoints(now); err != nil {
		t.Fatal(err)
	}
	join(t, n2b, n1)
	await(t, "the restarted n2's endpoint on n1, without Admit", 10*time.Second, func() string { return sees(n1, "n2", now) })
}

func TestRestartedNodeReplacesItsRecord(t *testing.T) {
	n1, n2 := start(t, "n1", testKey, time.Minute), start(t, "n2", testKey, time.Minute)
	join(t, n2, n1)
	old := []Endpoint{ep(42, "ea", "10.0.0.2"), ep(42, "eb", "10.0.0.3")}
	for range 3 { // a high sequence number in the first life
		_ = n2.SetEndpoints(nil)
		_ = n2.SetEndpoints(old)
	}
	await(t, "n2's first endpoints on n1", 10*time.Second, func() string { return sees(n1, "n2", old) })
	if err := n2.Close(time.Second); err != nil {
		t.Fatal(err)
	}
	// The same node, restarted: a new epoch with sequence 1 replaces a
	// record of sequence 6.
	g, err := Start(Config{Node: "n2", Bind: netip.MustParseAddrPort("127.0.0.1:0"), Key: testKey, VTEP: netip.MustParseAddr("192.0.2.2"), Fast: true, PushPull: time.Second, Log: testLog(t, "n2b")})
	if err != nil {
		t.Fatalf("restarting n2: %v", err)
	}
	t.Cleanup(func() { _ = g.Close(time.Second) })
	n2b := &node{Gossip: g}
	join(t, n2b, n1)
	now := []Endpoint{ep(42, "eb", "10.0.0.3")}
	if err := n2b.SetEndpoints(now); err != nil {
		t.Fatal(err)
	}
	await(t, "the restarted n2's endpoints on n1", 10*time.Second, func() string { return sees(n1, "n2", now) })
}

func TestWrongKeyCannotJoin(t *testing.T) {
	n1 := start(t, "n1", testKey, time.Minute)
	other := []byte("fedcba9876543210fedcba9876543210")
	n2 := start(t, "n2", other, time.Minute)
	if got, err := n2.Join([]string{n1.Addr().String()}); err == nil && got > 0 {
		t.Fatalf("a node with another key joined (%d answered)", got)
	} else {
		t.Logf("refused as wanted: %v", err)
	}
	if ms := n1.Members(); len(ms) != 0 {
		t.Errorf("n1's members after a join with the wrong key: %+v", ms)
	}
}

func TestStartRefusesBadConfig(t *testing.T) {
	good := Config{Node: "n1", Bind: netip.MustParseAddrPort("127.0.0.1:0"), Key: testKey, VTEP: netip.MustParseAddr("192.0.2.1")}
	for name, mod := range map[string]func(*Config){
		"short key":  func(c *Config) { c.Key = []byte("short") },
		"no node":    func(c *Config) { c.Node = "" },
		"long node":  func(c *Config) { c.Node = strings.Repeat("x", 65) },
		"no VTEP":    func(c *Config) { c.VTEP = netip.Addr{} },
		"no address": func(c *Config) { c.Bind = netip.AddrPort{} },
	} {
		c := good
		mod(&c)
		if g, err := Start(c); err == nil {
			_ = g.Close(time.Second)
			t.Errorf("%s: started", name)
		}
	}
}

// A hostile or broken record is refused whole, and never replaces a good
// one; records of the node itself are never taken from others.
func TestMergeRefusesBadRecords(t *testing.T) {
	g := &Gossip{cfg: Config{Node: "self", Grace: time.Minute}, epoch: 5, log: slog.New(slog.DiscardHandler),
		records: map[string]*Record{}, heard: map[string]time.Time{}, departed: map[string]time.Time{}, members: map[string]netip.Addr{"n1": {}}}
	good := Record{Node: "n1", Epoch: 1, Seq: 2, VTEP: netip.MustParseAddr("192.0.2.1"), Endpoints: []Endpoint{ep(42, "ea", "10.0.0.2")}}
	if !g.merge(&good) {
		t.Fatal("a good record was not taken")
	}
	bad := map[string]func(*Record){
		"no VTEP":         func(r *Record) { r.VTEP = netip.Addr{} },
		"multicast VTEP":  func(r *Record) { r.VTEP = netip.MustParseAddr("239.1.1.1") },
		"VNI 0":           func(r *Record) { r.Endpoints[0].VNI = 0 },
		"VNI 2^24":        func(r *Record) { r.Endpoints[0].VNI = 1 << 24 },
		"multicast MAC":   func(r *Record) { r.Endpoints[0].MAC = "01:00:5e:00:00:01" },
		"bad MAC":         func(r *Record) { r.Endpoints[0].MAC = "zz" },
		"long MAC":        func(r *Record) { r.Endpoints[0].MAC = "02:42:0a:00:00:02:00:00" },
		"no address":      func(r *Record) { r.Endpoints[0].IPv4 = netip.Addr{} },
		"v6 as v4":        func(r *Record) { r.Endpoints[0].IPv4 = netip.MustParseAddr("fd00::1") },
		"mapped v6":       func(r *Record) { r.Endpoints[0].IPv6 = netip.MustParseAddr("::ffff:10.0.0.1") },
		"empty ID":        func(r *Record) { r.Endpoints[0].ID = "" },
		"long node name":  func(r *Record) { r.Node = strings.Repeat("n", 65) },
		"empty node name": func(r *Record) { r.Node = "" },
	}
	for name, mod := range bad {
		r := good
		r.Seq = 10
		r.Endpoints = slices.Clone(good.Endpoints)
		mod(&r)
		if g.merge(&r) {
			t.Errorf("%s: taken", name)
		}
		if got := g.records["n1"]; got.Seq != 2 {
			t.Errorf("%s: replaced the good record", name)
		}
	}
	older := good
	older.Seq = 1
	if g.merge(&older) || g.records["n1"].Seq != 2 {
		t.Error("an older record replaced a newer one")
	}
	mine := good
	mine.Node, mine.Epoch = "self", 99
	if g.merge(&mine) || g.records["self"] != nil {
		t.Error("a record under this node's own name was taken from another node")
	}
	// A state of garbage, of nulls, or of the wrong shape changes nothing.
	d := (*delegate)(g)
	for _, s := range []string{"", "{", "null", "[null]", `{"node":"n1"}`, `[{"node":"n1","epoch":9,"vtep":"x"}]`} {
		d.MergeRemoteState([]byte(s), false)
	}
	d.NotifyMsg([]byte("r{"))
	d.NotifyMsg([]byte{msgRecord})
	if got := g.records["n1"]; got.Seq != 2 || len(g.records) != 1 {
		t.Errorf("garbage changed the records: %+v", g.records)
	}
	// A good state from a push-pull is taken.
	newer := good
	newer.Seq = 3
	b, _ := json.Marshal([]*Record{&newer})
	d.MergeRemoteState(b, false)
	if g.records["n1"].Seq != 3 {
		t.Error("a newer record in a push-pull state was not taken")
	}
}
