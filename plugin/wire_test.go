package plugin

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/weftnet/weft/store/memstore"
)

// wireClient talks HTTP to the plugin over a unix socket, as dockerd does.
type wireClient struct {
	t *testing.T
	c *http.Client
}

func serveWire(t *testing.T) (*wireClient, *fakeMode) {
	t.Helper()
	d, m := startDriver(t, memstore.New())
	sock := filepath.Join(t.TempDir(), "weft.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: NewHandler(d, testLogger())}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	return &wireClient{t: t, c: c}, m
}

// post sends body to path and returns the status and decoded JSON object.
func (w *wireClient) post(path, body string) (int, map[string]any) {
	w.t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://plugin.moby.localhost"+path, strings.NewReader(body))
	if err != nil {
		w.t.Fatal(err)
	}
	req.Header.Set("Accept", "application/vnd.docker.plugins.v1.2+json")
	resp, err := w.c.Do(req)
	if err != nil {
		w.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		w.t.Fatalf("%s: answer is not a JSON object: %q", path, raw)
	}
	return resp.StatusCode, out
}

// ok posts and requires HTTP 200 with no error field.
func (w *wireClient) ok(path, body string) map[string]any {
	w.t.Helper()
	status, out := w.post(path, body)
	if status != http.StatusOK || out["Err"] != nil && out["Err"] != "" {
		w.t.Fatalf("%s: status %d, answer %v", path, status, out)
	}
	return out
}

// fails posts and requires a non-200 answer whose Err and Error mention want.
func (w *wireClient) fails(path, body, want string) {
	w.t.Helper()
	status, out := w.post(path, body)
	if status == http.StatusOK {
		w.t.Fatalf("%s: succeeded, want an error mentioning %q", path, want)
	}
	for _, field := range []string{"Err", "Error"} {
		msg, _ := out[field].(string)
		if !strings.Contains(msg, want) {
			w.t.Fatalf("%s: %s = %q, want it to mention %q", path, field, msg, want)
		}
	}
}

const (
	wireNet = "6be157a936145f5d1d2d8d1e3b1c4e2d9c7e8f1a0b2c3d4e5f60718293a4b5c6"
	wireEp  = "4111a99c1e5c8f6e7d2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f80"
)

// TestWireGwAllocCheck: Docker ≥ 28 reserves no gateway address for a
// network weft says needs none; everything else keeps its gateway, and a bad
// option is refused here already.
func TestWireGwAllocCheck(t *testing.T) {
	w, _ := serveWire(t)
	for _, c := range []struct {
		name, opts string
		skip       bool
	}{
		{"bridge", `{}`, false},
		{"bridge internal", `{"com.docker.network.internal":true}`, false},
		{"macvlan with parent", `{"com.docker.network.generic":{"mode":"macvlan","parent":"eth0"}}`, false},
		{"macvlan without parent", `{"com.docker.network.generic":{"mode":"macvlan"}}`, true},
		{"macvlan internal", `{"com.docker.network.internal":true,"com.docker.network.generic":{"mode":"macvlan","parent":"eth0"}}`, true},
		{"vxlan", `{"com.docker.network.generic":{"mode":"vxlan","vni":"42"}}`, false},
		{"vxlan internal", `{"com.docker.network.internal":true,"com.docker.network.generic":{"mode":"vxlan"}}`, true},
	} {
		got := w.ok("/NetworkDriver.GwAllocCheck", `{"Options":`+c.opts+`}`)
		if got["SkipIPv4"] != c.skip || got["SkipIPv6"] != c.skip {
			t.Errorf("%s: GwAllocCheck = %v, want skip %v for both families", c.name, got, c.skip)
		}
	}
	w.fails("/NetworkDriver.GwAllocCheck", `{"Options":{"com.docker.network.generic":{"mode":"ipvlan"}}}`, `mode="ipvlan" is not a weft mode`)
	w.fails("/NetworkDriver.GwAllocCheck", `{"Options":{"com.docker.network.generic":{"parent":"eth0"}}}`, `parent`)
	w.fails("/NetworkDriver.GwAllocCheck", `{"Options":{"com.docker.network.internal":"maybe"}}`, `com.docker.network.internal`)
}

// TestWireLifecycle walks every route in the order dockerd calls them for
// `docker network create`, `docker run`, `docker stop` and `docker network rm`.
func TestWireLifecycle(t *testing.T) {
	w, m := serveWire(t)
	act := w.ok("/Plugin.Activate", "")
	if impl, _ := json.Marshal(act["Implements"]); string(impl) != `["NetworkDriver","IpamDriver"]` {
		t.Fatalf("Activate implements %s", impl)
	}
	caps := w.ok("/NetworkDriver.GetCapabilities", "")
	if caps["Scope"] != "local" || caps["ConnectivityScope"] != "local" || caps["GwAllocChecker"] != true {
		t.Fatalf("capabilities %v", caps)
	}
	if ic := w.ok("/IpamDriver.GetCapabilities", ""); ic["RequiresMACAddress"] != false {
		t.Fatalf("ipam capabilities %v", ic)
	}
	if sp := w.ok("/IpamDriver.GetDefaultAddressSpaces", ""); sp["LocalDefaultAddressSpace"] != "weft-local" {
		t.Fatalf("spaces %v", sp)
	}
	gac := w.ok("/NetworkDriver.GwAllocCheck", `{"Options":{"com.docker.network.generic":{}}}`)
	if gac["SkipIPv4"] != false || gac["SkipIPv6"] != false {
		t.Fatalf("GwAllocCheck %v", gac)
	}
	pool := w.ok("/IpamDriver.RequestPool", `{"AddressSpace":"weft-local","Pool":"10.1.0.0/24","SubPool":"","Options":{},"V6":false}`)
	poolID, _ := pool["PoolID"].(string)
	if pool["Pool"] != "10.1.0.0/24" || poolID == "" {
		t.Fatalf("RequestPool %v", pool)
	}
	gw := w.ok("/IpamDriver.RequestAddress", `{"PoolID":"`+poolID+`","Address":"","Options":{"RequestAddressType":"com.docker.network.gateway"}}`)
	if gw["Address"] != "10.1.0.1/24" {
		t.Fatalf("gateway %v", gw)
	}
	w.ok("/NetworkDriver.CreateNetwork", `{"NetworkID":"`+wireNet+`","Options":{"com.docker.network.enable_ipv6":false,
		"com.docker.network.generic":{"com.docker.network.bridge.enable_icc":"true"}},
		"IPv4Data":[{"AddressSpace":"weft-local","Pool":"10.1.0.0/24","Gateway":"10.1.0.1/24","AuxAddresses":{}}],"IPv6Data":[]}`)
	addr := w.ok("/IpamDriver.RequestAddress", `{"PoolID":"`+poolID+`","Address":"","Options":{"com.docker.network.endpoint.name":"c1"}}`)
	if addr["Address"] != "10.1.0.2/24" {
		t.Fatalf("address %v", addr)
	}
	ep := w.ok("/NetworkDriver.CreateEndpoint", `{"NetworkID":"`+wireNet+`","EndpointID":"`+wireEp+`",
		"Interface":{"Address":"10.1.0.2/24","AddressIPv6":"","MacAddress":""},
		"Options":{"com.docker.network.endpoint.exposedports":[],"com.docker.network.portmap":[]}}`)
	iface, _ := ep["Interface"].(map[string]any)
	if mac, _ := iface["MacAddress"].(string); len(mac) != 17 || iface["Address"] != "" {
		t.Fatalf("CreateEndpoint %v", ep)
	}
	if info := w.ok("/NetworkDriver.EndpointOperInfo", `{"NetworkID":"`+wireNet+`","EndpointID":"`+wireEp+`"}`); info["Value"] == nil {
		t.Fatalf("EndpointOperInfo %v", info)
	}
	join := w.ok("/NetworkDriver.Join", `{"NetworkID":"`+wireNet+`","EndpointID":"`+wireEp+`","SandboxKey":"/var/run/docker/netns/6be157a93614","Options":{}}`)
	names, _ := join["InterfaceName"].(map[string]any)
	if names["SrcName"] == "" || names["DstPrefix"] != "eth" || join["Gateway"] != "10.1.0.1" {
		t.Fatalf("Join %v", join)
	}
	w.ok("/NetworkDriver.ProgramExternalConnectivity", `{"NetworkID":"`+wireNet+`","EndpointID":"`+wireEp+`","Options":{"com.docker.network.portmap":[]}}`)
	w.fails("/NetworkDriver.ProgramExternalConnectivity", `{"NetworkID":"`+wireNet+`","EndpointID":"`+wireEp+`",
		"Options":{"com.docker.network.portmap":[{"Proto":6,"IP":"","Port":80,"HostIP":"","HostPort":8080,"HostPortEnd":8080}]}}`, "publish ports")
	w.ok("/NetworkDriver.RevokeExternalConnectivity", `{"NetworkID":"`+wireNet+`","EndpointID":"`+wireEp+`"}`)
	w.ok("/NetworkDriver.DiscoverNew", `{"DiscoveryType":1,"DiscoveryData":{"Address":"10.0.0.5","BindAddress":"0.0.0.0","Self":true}}`)
	w.ok("/NetworkDriver.DiscoverDelete", `{"DiscoveryType":1,"DiscoveryData":{"Address":"10.0.0.5"}}`)
	w.fails("/NetworkDriver.AllocateNetwork", `{"NetworkID":"abcdefghijklmnopqrstuvwxy","Options":{},"IPv4Data":[{"AddressSpace":"","Pool":"10.0.9.0/24","Gateway":"10.0.9.1/24"}],"IPv6Data":null}`, "swarm")
	w.ok("/NetworkDriver.FreeNetwork", `{"NetworkID":"abcdefghijklmnopqrstuvwxy"}`)
	w.ok("/NetworkDriver.Leave", `{"NetworkID":"`+wireNet+`","EndpointID":"`+wireEp+`"}`)
	w.ok("/NetworkDriver.DeleteEndpoint", `{"NetworkID":"`+wireNet+`","EndpointID":"`+wireEp+`"}`)
	w.ok("/IpamDriver.ReleaseAddress", `{"PoolID":"`+poolID+`","Address":"10.1.0.2"}`)
	w.ok("/IpamDriver.ReleaseAddress", `{"PoolID":"`+poolID+`","Address":"10.1.0.1"}`)
	w.ok("/IpamDriver.ReleasePool", `{"PoolID":"`+poolID+`"}`)
	w.ok("/NetworkDriver.DeleteNetwork", `{"NetworkID":"`+wireNet+`"}`)
	if len(m.nets) != 0 || len(m.eps) != 0 {
		t.Fatalf("kernel state left: %v %v", m.nets, m.eps)
	}
}

func TestWireBadRequests(t *testing.T) {
	w, _ := serveWire(t)
	w.fails("/NetworkDriver.CreateNetwork", `{"NetworkID":`, "malformed JSON")
	w.fails("/NetworkDriver.CreateNetwork", `{"NetworkID":42}`, "malformed JSON")
	big := `{"NetworkID":"` + strings.Repeat("a", MaxRequestBytes) + `"}`
	w.fails("/NetworkDriver.CreateNetwork", big, "larger than")
	w.fails("/NetworkDriver.NoSuchCall", `{}`, "does not implement")
	w.fails("/NetworkDriver.CreateNetwork", `{"NetworkID":"`+wireNet+`","Options":{"com.docker.network.generic":{"foo":"bar"}},
		"IPv4Data":[{"AddressSpace":"weft-local","Pool":"10.1.0.0/24","Gateway":"10.1.0.1/24"}]}`, `unknown option "foo"`)
	w.fails("/IpamDriver.RequestPool", `{"AddressSpace":"weft-local","Pool":"10.1.0.0/33"}`, "10.1.0.0/33")
	w.fails("/IpamDriver.RequestAddress", `{"PoolID":"weft-local/10.9.0.0/24","Address":""}`, "10.9.0.0/24")

	req, _ := http.NewRequest(http.MethodGet, "http://x/NetworkDriver.GetCapabilities", nil)
	resp, err := w.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		t.Fatal("GET accepted")
	}
	// A huge body must not have broken the server for later calls.
	w.ok("/NetworkDriver.GetCapabilities", "")
}
