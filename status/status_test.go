package status

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weftnet/weft/plugin"
	"github.com/weftnet/weft/store"
	"github.com/weftnet/weft/store/bolt"
)

const (
	netID = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	epID  = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
)

// shortDir is a temporary directory short enough for a socket path.
func shortDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("/tmp", "ws")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// fakeWeft serves s on StatusPath at sock, as a running weft does.
func fakeWeft(t *testing.T, sock string, s *plugin.Status) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(sock), 0o700); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != plugin.StatusPath {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		_ = json.NewEncoder(w).Encode(s)
	})}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
}

// writeStateFile makes a weft.db holding one bridge network with one
// endpoint, as weft writes them.
func writeStateFile(t *testing.T, path string) {
	t.Helper()
	db, err := bolt.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = db.Close() }()
	err = db.Apply(context.Background(),
		store.Put("networks", netID, []byte(`{"network":{"id":"`+netID+`","mode":"bridge","ipv4":[{"pool":"10.1.0.0/24","gateway":"10.1.0.1"}],"bridge":{"name":"weft-0123456789"}}}`)),
		store.Put("endpoints", epID, []byte(`{"endpoint":{"id":"`+epID+`","network_id":"`+netID+`","ipv4":"10.1.0.2/24","mac":"AkIKAQAC"}}`)),
		store.Put("ipam-pools", "weft-local/10.1.0.0/24", []byte(`{"id":"weft-local/10.1.0.0/24","space":"weft-local","prefix":"10.1.0.0/24"}`)),
		store.Put("ipam-addresses", "weft-local/10.1.0.0/24|10.1.0.1", []byte(`{}`)),
		store.Put("ipam-addresses", "weft-local/10.1.0.0/24|10.1.0.2", []byte(`{}`)),
		store.Put("host", "id", []byte("abcd1234")),
	)
	if err != nil {
		t.Fatal(err)
	}
}

// A managed plugin's socket is found under its ID's directory and asked.
func TestReadFromRunningWeft(t *testing.T) {
	root := shortDir(t)
	want := &plugin.Status{Source: "plugin", HostID: "h1", Networks: []plugin.NetworkStatus{{ID: netID, Mode: "vxlan", VNI: 7}}}
	fakeWeft(t, filepath.Join(root, "5f3c9e", "weft.sock"), want)
	got, err := Read(context.Background(), Options{PluginsDir: root})
	if err != nil {
		t.Fatal(err)
	}
	if got.HostID != "h1" || len(got.Networks) != 1 || got.Networks[0].VNI != 7 {
		t.Fatalf("got %+v", got)
	}
	// Two instances: the operator must choose.
	fakeWeft(t, filepath.Join(root, "weft.sock"), want)
	if _, err := Read(context.Background(), Options{PluginsDir: root}); err == nil || !strings.Contains(err.Error(), "--socket") {
		t.Fatalf("two sockets: %v", err)
	}
}

// With weft stopped (its socket left behind, nobody listening), the state
// file is read; the file is not changed and its lock is not kept.
func TestReadFromStateFileWhenWeftIsDown(t *testing.T) {
	root := shortDir(t)
	sock := filepath.Join(root, "weft.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	_ = l.Close() // a stale socket, as a killed weft leaves
	file := filepath.Join(root, "weft.db")
	writeStateFile(t, file)
	before, _ := os.ReadFile(file)

	s, err := Read(context.Background(), Options{PluginsDir: root, StateFile: file})
	if err != nil {
		t.Fatal(err)
	}
	if s.Source != "state file" || s.HostID != "abcd1234" || len(s.Networks) != 1 || len(s.Endpoints) != 1 || len(s.Pools) != 1 {
		t.Fatalf("status %+v", s)
	}
	if s.Pools[0].Allocated != 2 || s.Pools[0].Size != 256 || s.Endpoints[0].MAC != "02:42:0a:01:00:02" {
		t.Fatalf("pool %+v endpoint %+v", s.Pools[0], s.Endpoints[0])
	}
	after, _ := os.ReadFile(file)
	if !bytes.Equal(before, after) {
		t.Fatal("reading the status changed the state file")
	}
	// A weft starting now gets its lock at once.
	start := time.Now()
	db, err := bolt.Open(file)
	if err != nil {
		t.Fatalf("weft could not open its state file after weft status read it: %v", err)
	}
	if took := time.Since(start); took > 500*time.Millisecond {
		t.Fatalf("weft waited %s for its state file", took)
	}
	// And while a weft holds it, status says so instead of waiting.
	_, err = FromFile(context.Background(), file)
	_ = db.Close()
	if err == nil || !strings.Contains(err.Error(), "held by a running weft") {
		t.Fatalf("reading a held state file: %v", err)
	}
}

func TestNothingToRead(t *testing.T) {
	root := shortDir(t)
	_, err := Read(context.Background(), Options{PluginsDir: root, StateFile: filepath.Join(root, "missing.db")})
	if err == nil || !strings.Contains(err.Error(), "is weft running") {
		t.Fatalf("error %v", err)
	}
	// An old weft without the route says what to do.
	sock := filepath.Join(root, "old", "weft.sock")
	if err := os.MkdirAll(filepath.Dir(sock), 0o700); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.NotFoundHandler()}
	go func() { _ = srv.Serve(l) }()
	defer func() { _ = srv.Close() }()
	if _, err := FromSocket(context.Background(), sock); err == nil || !strings.Contains(err.Error(), "upgrade it") {
		t.Fatalf("old weft: %v", err)
	}
}

func TestTableAndLinkNames(t *testing.T) {
	at := time.Date(2026, 12, 2, 4, 0, 0, 0, time.UTC)
	s := &plugin.Status{Source: "plugin", HostID: "h1",
		Networks: []plugin.NetworkStatus{
			{ID: netID, Mode: "bridge", Bridge: "weft-0123456789", Subnets: []plugin.SubnetStatus{{Pool: "10.1.0.0/24", Gateway: "10.1.0.1"}}, Endpoints: 1},
			{ID: "1111111111111111", Mode: "macvlan", Parent: "eth0.100", MacvlanMode: "bridge"},
			{ID: "2222222222222222", Mode: "vxlan", VNI: 42, Port: 4789, RemoteEndpoints: 3, Internal: true},
		},
		Endpoints: []plugin.EndpointStatus{
			{ID: epID, Network: netID, IPv4: "10.1.0.2/24", MAC: "02:42:0a:01:00:02"},
			{ID: "3333333333333333", Network: "1111111111111111", IPv4: "192.168.1.5/24"},
			{ID: "4444444444444444", Network: "2222222222222222", IPv4: "10.50.0.2/24"},
		},
		Pools: []plugin.PoolStatus{{ID: "weft-local/10.1.0.0/24", Size: 256, Allocated: 2}, {ID: "weft-local/fd00::/64", Size: 1 << 64}},
		Cluster: &plugin.ClusterStatus{Store: "etcd at http://10.0.0.11:2379", Connected: true, Peers: []plugin.PeerStatus{
			{Host: "h2", VTEP: "10.0.0.22", Endpoints: 3, LastSeen: at.Add(-7 * time.Second), Wanted: 2, Programmed: 2},
			{Host: "h3", VTEP: "10.0.0.23", Endpoints: 2, LastSeen: at.Add(-31 * time.Second), Wanted: 2, Programmed: 0, ProgramError: "programming peers on \"wxv-2222222222\": file exists"},
			{Host: "h4", VTEP: "10.0.0.24", Endpoints: 1, LastSeen: at, Wanted: 0},
		}},
		At: at,
	}
	AddLinkNames(s)
	if got := s.Endpoints[0].HostLink; got != "whfedcba987654" {
		t.Errorf("bridge endpoint's host link %q", got)
	}
	if got := s.Endpoints[1].HostLink; got != "eth0.100" {
		t.Errorf("macvlan endpoint's host link %q", got)
	}
	if got := strings.Join(s.Networks[2].Links, ","); got != "wxb-2222222222,wxv-2222222222" {
		t.Errorf("vxlan links %q", got)
	}
	var out bytes.Buffer
	if err := WriteTable(&out, s); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"host h1", "0123456789ab  bridge", "10.1.0.0/24 gw 10.1.0.1", "parent eth0.100, bridge",
		"vni 42, port 4789, internal", "0 (+3 remote)", "whfedcba987654", "0.8%", "2^64", "etcd at http://10.0.0.11:2379, connected",
		"h2         10.0.0.22  3          7s ago     yes (2/2)", "h3         10.0.0.23  2          31s ago    NO (0/2)", "none needed",
		`programming failed for h3: programming peers on "wxv-2222222222": file exists`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	if err := WriteJSON(&out, s); err != nil {
		t.Fatal(err)
	}
	var back plugin.Status
	if err := json.Unmarshal(out.Bytes(), &back); err != nil || back.Endpoints[0].HostLink != "whfedcba987654" || back.Cluster.Peers[0].VTEP != "10.0.0.22" {
		t.Fatalf("JSON does not read back: %v\n%s", err, out.String())
	}
}

func TestMainUsage(t *testing.T) {
	var out, errOut bytes.Buffer
	env := func(string) string { return "" }
	if code := Main([]string{"extra"}, &out, &errOut, env); code != 2 {
		t.Errorf("an extra argument: exit %d", code)
	}
	root := shortDir(t)
	file := filepath.Join(root, "weft.db")
	writeStateFile(t, file)
	if code := Main([]string{"--json", "--socket", filepath.Join(root, "none.sock"), "--state-file", file}, &out, &errOut, env); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if !strings.Contains(out.String(), `"source": "state file"`) || !strings.Contains(out.String(), `"host_link": "whfedcba987654"`) {
		t.Fatalf("output %s", out.String())
	}
}

// A disabled managed plugin's state file is found in Docker's directory for
// it when no state file was given and the default one does not exist.
func TestManagedStateFileFound(t *testing.T) {
	root := shortDir(t)
	dir := filepath.Join(root, "plugins", "5f3c9e", "propagated-mount")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	writeStateFile(t, filepath.Join(dir, "weft.db"))
	o := Options{PluginsDir: root, StateFile: filepath.Join(root, "none", "weft.db"), StateFileIsDefault: true, DockerPluginsRoot: filepath.Join(root, "plugins")}
	s, err := Read(context.Background(), o)
	if err != nil || s.Source != "state file" || len(s.Networks) != 1 {
		t.Fatalf("status %+v, %v", s, err)
	}
	// Given explicitly, the missing file is not replaced.
	o.StateFileIsDefault = false
	if _, err := Read(context.Background(), o); err == nil {
		t.Fatal("a missing --state-file was replaced by another")
	}
	// Two plugins: the operator chooses.
	dir2 := filepath.Join(root, "plugins", "77aa00", "propagated-mount")
	if err := os.MkdirAll(dir2, 0o700); err != nil {
		t.Fatal(err)
	}
	writeStateFile(t, filepath.Join(dir2, "weft.db"))
	o.StateFileIsDefault = true
	if _, err := Read(context.Background(), o); err == nil || !strings.Contains(err.Error(), "--state-file") {
		t.Fatalf("two plugins: %v", err)
	}
}
