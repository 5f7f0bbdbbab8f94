package plugin

// Fuzz targets, one per route NewHandler serves (TestEveryRouteIsFuzzed
// keeps it so). Each POSTs the fuzzed body to the handler over a fresh
// driver that already holds what dockerd would have made by then (a pool, a
// network, an endpoint), and checks what must hold for any input:
//
//   - no panic (the handler would turn it into a 500 "internal error");
//   - an answer within fuzzCallBound;
//   - the answer's shape: 200 with a JSON object, or an error status with
//     exactly {"Err","Error"}, the same non-empty, sanitized message in both;
//   - a refused call changed nothing: no record in the store, no kernel
//     object in the fake mode, no IPAM pool or address, no reservation;
//   - an acknowledged create is in the store (durable before acknowledged).
//
// scripts/test.sh runs each for a few seconds (WEFT_FUZZ_TIME); go test
// without -fuzz runs the seeds as ordinary tests.

import (
	"bytes"
	"context"
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	dipam "github.com/docker/go-plugins-helpers/ipam"
	"github.com/docker/go-plugins-helpers/network"
	"github.com/docker/go-plugins-helpers/sdk"

	"github.com/weftnet/weft/dataplane"
	"github.com/weftnet/weft/ipam"
	"github.com/weftnet/weft/store/memstore"
)

// fuzzMaxBody bounds request bodies in the fuzz targets instead of
// MaxRequestBytes: an oversized body is then a few mutations away, and
// inputs stay small enough to run thousands a second. The real bound, and
// inputs too big to be seeds, are TestRoutesTakeHostileBodies's.
const fuzzMaxBody = 16 << 10

// fuzzCallBound is how long one call may take. Every call is in-memory and
// takes well under a millisecond; the bound only catches a hang.
const fuzzCallBound = 10 * time.Second

// The fixture's objects, as dockerd creates them.
const (
	fuzzPoolID = "weft-local/10.1.0.0/24"
	fuzzNet2   = "9ab157a936145f5d1d2d8d1e3b1c4e2d9c7e8f1a0b2c3d4e5f60718293a4b5c6"
	fuzzEp2    = "5222a99c1e5c8f6e7d2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f80"
)

// fixtureCalls build the state every input starts from: dockerd's calls for
// `docker network create --subnet 10.1.0.0/24` and `docker run`.
var fixtureCalls = []struct{ path, body string }{
	{"/IpamDriver.RequestPool", `{"AddressSpace":"weft-local","Pool":"10.1.0.0/24","SubPool":"","Options":{},"V6":false}`},
	{"/IpamDriver.RequestAddress", `{"PoolID":"` + fuzzPoolID + `","Address":"","Options":{"RequestAddressType":"com.docker.network.gateway"}}`},
	{"/NetworkDriver.CreateNetwork", `{"NetworkID":"` + wireNet + `","Options":{"com.docker.network.enable_ipv6":false,
		"com.docker.network.generic":{"com.docker.network.bridge.enable_icc":"true"}},
		"IPv4Data":[{"AddressSpace":"weft-local","Pool":"10.1.0.0/24","Gateway":"10.1.0.1/24","AuxAddresses":{}}],"IPv6Data":[]}`},
	{"/IpamDriver.RequestAddress", `{"PoolID":"` + fuzzPoolID + `","Address":"","Options":{"com.docker.network.endpoint.name":"c1"}}`},
	{"/NetworkDriver.CreateEndpoint", `{"NetworkID":"` + wireNet + `","EndpointID":"` + wireEp + `",
		"Interface":{"Address":"10.1.0.2/24","AddressIPv6":"","MacAddress":""},
		"Options":{"com.docker.network.endpoint.exposedports":[],"com.docker.network.portmap":[]}}`},
}

// fuzzFixture is one input's world.
type fuzzFixture struct {
	d    *Driver
	m    *fakePublisher
	st   *memstore.Store
	h    http.Handler
	logs *bytes.Buffer // errors the handler logged: a panic shows here
}

func newFuzzFixture(t *testing.T, maxBody int64) *fuzzFixture {
	t.Helper()
	st := memstore.New()
	m := newFakePublisher()
	d, err := NewDriver(testLogger(), ScopeLocal)
	if err != nil {
		t.Fatal(err)
	}
	pools, err := ipam.ParseDefaultPools(ipam.DefaultPoolsSetting)
	if err != nil {
		t.Fatal(err)
	}
	deps := Deps{Store: st, IPAM: ipam.New(pools), Routes: fakeRoutes{netip.MustParsePrefix("10.208.0.0/24")},
		Modes: map[dataplane.ModeName]dataplane.Mode{dataplane.Bridge: m, dataplane.Macvlan: m}}
	if err := d.Start(context.Background(), deps); err != nil {
		t.Fatal(err)
	}
	logs := &bytes.Buffer{}
	fx := &fuzzFixture{d: d, m: m, st: st, logs: logs,
		h: logRequests(slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn})), newRouter(d, maxBody))}
	for _, c := range fixtureCalls {
		if status, raw := fx.post(t, c.path, []byte(c.body)); status != http.StatusOK {
			t.Fatalf("fixture %s: %d %s", c.path, status, raw)
		}
	}
	return fx
}

// post runs one call through the handler, as the server would.
func (fx *fuzzFixture) post(t *testing.T, path string, body []byte) (int, []byte) {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "http://plugin"+path, bytes.NewReader(body))
	rec := httptest.NewRecorder()
	done := make(chan struct{})
	go func() {
		defer close(done)
		fx.h.ServeHTTP(rec, req)
	}()
	timer := time.NewTimer(fuzzCallBound)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
		t.Fatalf("%s did not answer within %v", path, fuzzCallBound)
	}
	if ct := rec.Header().Get("Content-Type"); ct != sdk.DefaultContentTypeV1_1 {
		t.Fatalf("%s: Content-Type %q", path, ct)
	}
	return rec.Code, rec.Body.Bytes()
}

// fuzzSnapshot is everything a call could change.
type fuzzSnapshot struct {
	Records   map[string]map[string]string // bucket → key → value
	Networks  []string                     // in the fake kernel
	Endpoints []string
	Ports     map[string][]dataplane.PublishedPort
	Live      int // creates the fake kernel saw minus deletes
	State     *State
}

func (fx *fuzzFixture) snapshot(t *testing.T) fuzzSnapshot {
	t.Helper()
	ctx := context.Background()
	s := fuzzSnapshot{Records: map[string]map[string]string{}}
	for _, b := range []string{bucketNetworks, bucketEndpoints, bucketPools, bucketAddresses, bucketReservations, bucketPorts} {
		recs, err := fx.st.List(ctx, b)
		if err != nil {
			t.Fatal(err)
		}
		s.Records[b] = map[string]string{}
		for k, v := range recs {
			s.Records[b][k] = string(v)
		}
	}
	fx.m.mu.Lock()
	s.Networks = slices.Sorted(maps.Keys(fx.m.nets))
	s.Endpoints = slices.Sorted(maps.Keys(fx.m.eps))
	for _, c := range fx.m.calls {
		switch c {
		case "CreateNetwork", "CreateEndpoint":
			s.Live++
		case "DeleteNetwork", "DeleteEndpoint":
			s.Live--
		}
	}
	fx.m.mu.Unlock()
	fx.m.pmu.Lock()
	s.Ports = maps.Clone(fx.m.published)
	for k, v := range s.Ports {
		if len(v) == 0 {
			delete(s.Ports, k)
		}
	}
	fx.m.pmu.Unlock()
	var err error
	if s.State, err = fx.d.State(ctx); err != nil {
		t.Fatal(err)
	}
	return s
}

// fuzzRoute is the body of every target: seeds, then the checks above.
// check, if not nil, checks a 200 answer further.
func fuzzRoute(f *testing.F, path string, check func(t *testing.T, fx *fuzzFixture, body []byte, answer map[string]json.RawMessage), seeds ...string) {
	for _, s := range append(seeds, hostileSeeds()...) {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		callChecked(t, path, body, fuzzMaxBody, check)
	})
}

// callChecked POSTs body to path on a fresh fixture taking bodies of up to
// maxBody bytes, and checks the answer and what the call changed.
func callChecked(t *testing.T, path string, body []byte, maxBody int64, check func(t *testing.T, fx *fuzzFixture, body []byte, answer map[string]json.RawMessage)) {
	t.Helper()
	fx := newFuzzFixture(t, maxBody)
	before := fx.snapshot(t)
	status, raw := fx.post(t, path, body)
	if strings.Contains(fx.logs.String(), "request panicked") || bytes.Contains(raw, []byte("internal error")) {
		t.Fatalf("%s panicked on %q:\n%s", path, clip(body), fx.logs)
	}
	var answer map[string]json.RawMessage
	if err := json.Unmarshal(raw, &answer); err != nil || answer == nil {
		t.Fatalf("%s: status %d, answer is not a JSON object: %q", path, status, clip(raw))
	}
	if status == http.StatusOK {
		if e, ok := answer["Err"]; ok && string(e) != `""` {
			t.Fatalf("%s: 200 with an error: %s", path, e)
		}
		if check != nil {
			check(t, fx, body, answer)
		}
		return
	}
	checkErrorAnswer(t, path, status, raw)
	if after := fx.snapshot(t); !reflect.DeepEqual(before, after) {
		t.Fatalf("%s refused %q with %d %s but changed weft's state:\nbefore %+v\nafter  %+v", path, clip(body), status, clip(raw), before, after)
	}
}

// checkErrorAnswer: exactly Err and Error, the same message, not empty,
// bounded, with nothing a terminal would act on.
func checkErrorAnswer(t *testing.T, path string, status int, raw []byte) {
	t.Helper()
	if status < 400 || status > 599 {
		t.Fatalf("%s: status %d is neither 200 nor an error", path, status)
	}
	var e map[string]any
	_ = json.Unmarshal(raw, &e)
	msg, _ := e["Err"].(string)
	if len(e) != 2 || msg == "" || e["Error"] != msg {
		t.Fatalf("%s: status %d, error answer %q is not {\"Err\":msg,\"Error\":msg}", path, status, clip(raw))
	}
	if len(msg) > maxErrorBytes {
		t.Fatalf("%s: error message of %d bytes", path, len(msg))
	}
	if bad := unsafeRune(msg); bad != "" {
		t.Fatalf("%s: error message holds %s: %q", path, bad, msg)
	}
}

func clip(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "…(" + strconv.Itoa(len(b)) + " bytes)"
	}
	return string(b)
}

// hostileSeeds go to every target: malformed, oversized, wrong types,
// control characters, nesting deeper than encoding/json goes (10000).
func hostileSeeds() []string {
	return []string{
		"", "null", "{}", "[]", `"a string"`, "42", "true", "{", "}", `{"a":1}{"b":2}`, "\x00", "\xff\xfe\xfd",
		`{"NetworkID":"\u0000","EndpointID":"\u0000","PoolID":"\u0000","Address":"\u0000"}`,
		"{\"NetworkID\":\"a\x00b\"}",
		`{"NetworkID":42,"EndpointID":[],"PoolID":{},"Options":"x","Interface":7,"IPv4Data":{},"Address":false,"V6":"yes"}`,
		`{"Options":null,"IPv4Data":[null],"IPv6Data":[null],"Interface":null}`,
		`{"Options":{"com.docker.network.generic":"not an object","com.docker.network.portmap":"x"}}`,
		`{"NetworkID":"` + "\\u001b[31m\\u202e\\n" + `","EndpointID":"\ud800","PoolID":"\u202e","Address":"\u001b]0;x\u0007"}`,
		`{"NetworkID":"` + strings.ToUpper(wireNet) + `","EndpointID":"` + strings.ToUpper(wireEp) + `"}`,
		`{"NetworkID":"` + strings.Repeat("a", 6<<10) + `","PoolID":"` + strings.Repeat("\\u202e", 1000) + `"}`,
		strings.Repeat("[", 10001),
		`{"Options":` + strings.Repeat(`{"a":`, 2000) + "1" + strings.Repeat("}", 2001),
		strings.Repeat(" ", fuzzMaxBody) + "{}",
	}
}

// Seeds shared by the routes that name an endpoint.
func endpointSeeds() []string {
	return []string{
		`{"NetworkID":"` + wireNet + `","EndpointID":"` + wireEp + `"}`,
		`{"NetworkID":"` + wireNet + `","EndpointID":"` + fuzzEp2 + `"}`,
		`{"NetworkID":"` + fuzzNet2 + `","EndpointID":"` + wireEp + `"}`,
		`{"NetworkID":"` + wireNet + `","EndpointID":"` + wireEp[:12] + `"}`,
		`{"NetworkID":"` + wireNet + `","EndpointID":"../../etc"}`,
		`{"NetworkID":"","EndpointID":""}`,
	}
}

func checkCreated(t *testing.T, fx *fuzzFixture, bucket, id string) {
	t.Helper()
	if _, ok, err := fx.st.Get(context.Background(), bucket, id); err != nil || !ok {
		t.Fatalf("acknowledged, but %s/%s is not in the store (%v)", bucket, id, err)
	}
}

func FuzzPluginActivate(f *testing.F) {
	fuzzRoute(f, "/Plugin.Activate", func(t *testing.T, _ *fuzzFixture, _ []byte, a map[string]json.RawMessage) {
		if string(a["Implements"]) != `["NetworkDriver","IpamDriver"]` {
			t.Fatalf("Activate: %s", a["Implements"])
		}
	}, "null\n")
}

func FuzzNetworkGetCapabilities(f *testing.F) {
	fuzzRoute(f, "/NetworkDriver.GetCapabilities", func(t *testing.T, _ *fuzzFixture, _ []byte, a map[string]json.RawMessage) {
		if string(a["Scope"]) != `"local"` {
			t.Fatalf("GetCapabilities: %v", a)
		}
	})
}

func FuzzCreateNetwork(f *testing.F) {
	v4 := func(pool, gw string) string {
		return `"IPv4Data":[{"AddressSpace":"weft-local","Pool":"` + pool + `","Gateway":"` + gw + `","AuxAddresses":{}}]`
	}
	net2 := func(generic, data string) string {
		return `{"NetworkID":"` + fuzzNet2 + `","Options":{"com.docker.network.enable_ipv6":false,"com.docker.network.generic":{` + generic + `}},` + data + `}`
	}
	seeds := []string{
		fixtureCalls[2].body, // a repeat: succeeds
		`{"NetworkID":"` + wireNet + `","Options":{"com.docker.network.generic":{"com.docker.network.bridge.enable_icc":"false"}},` + v4("10.1.0.0/24", "10.1.0.1/24") + `}`,
		net2(``, v4("10.2.0.0/24", "10.2.0.1/24")),
		net2(``, v4("10.1.0.0/25", "10.1.0.1/25")),
		net2(``, `"IPv4Data":[{"AddressSpace":"","Pool":"10.3.0.0/24","Gateway":"10.3.0.1/24"}],"IPv6Data":[{"AddressSpace":"","Pool":"fd00:3::/64","Gateway":"fd00:3::1/64"}]`),
		net2(`"com.docker.network.bridge.name":"br+"`, v4("10.2.0.0/24", "10.2.0.1/24")),
		net2(`"com.docker.network.bridge.name":"br%d"`, v4("10.2.0.0/24", "10.2.0.1/24")),
		net2(`"com.docker.network.bridge.name":"+"`, v4("10.2.0.0/24", "10.2.0.1/24")),
		net2(`"com.docker.network.bridge.name":"weft-0123456789ab"`, v4("10.2.0.0/24", "10.2.0.1/24")),
		net2(`"com.docker.network.bridge.name":"-x"`, v4("10.2.0.0/24", "10.2.0.1/24")),
		net2(`"com.docker.network.bridge.name":"\u001b[31m\u202e\n"`, v4("10.2.0.0/24", "10.2.0.1/24")),
		net2(`"com.docker.network.bridge.name":"`+dataplane.DefaultBridgeName(wireNet)+`"`, v4("10.2.0.0/24", "10.2.0.1/24")),
		net2(``, v4("0.0.0.0/0", "0.0.0.1/0")),
		net2(``, `"IPv6Data":[{"AddressSpace":"weft-local","Pool":"::/0","Gateway":"::1/0"}]`),
		net2(``, v4("::ffff:10.4.0.0/120", "::ffff:10.4.0.1/120")),
		net2(``, `"IPv6Data":[{"AddressSpace":"weft-local","Pool":"::ffff:10.4.0.0/120","Gateway":"::ffff:10.4.0.1/120"}]`),
		net2(``, v4("10.2.0.0/24", "10.9.0.1/24")),
		net2(``, v4("10.2.0.5/24", "10.2.0.1")),
		net2(``, v4("10.2.0.0/31", "10.2.0.0/31")),
		net2(`"com.docker.network.driver.mtu":"0"`, v4("10.2.0.0/24", "10.2.0.1/24")),
		net2(`"com.docker.network.driver.mtu":"9000"`, v4("10.2.0.0/24", "10.2.0.1/24")),
		net2(`"com.docker.network.driver.mtu":"1e3"`, v4("10.2.0.0/24", "10.2.0.1/24")),
		net2(`"mode":"macvlan","parent":"eth0.100","macvlan_mode":"vepa"`, v4("192.168.5.0/24", "192.168.5.1/24")),
		net2(`"mode":"macvlan","parent":"eth0+"`, v4("192.168.5.0/24", "192.168.5.1/24")),
		net2(`"mode":"vxlan"`, v4("10.2.0.0/24", "10.2.0.1/24")),
		net2(`"mode":"bogus"`, v4("10.2.0.0/24", "10.2.0.1/24")),
		net2(`"com.docker.network.bridge.enable_icc":"maybe","com.docker.network.bridge.enable_ip_masquerade":1`, v4("10.2.0.0/24", "10.2.0.1/24")),
		net2(`"com.docker.network.bridge.host_binding_ipv4":"::ffff:1.2.3.4"`, v4("10.2.0.0/24", "10.2.0.1/24")),
		net2(`"com.docker.network.bridge.gateway_mode_ipv6":"routed"`, `"IPv6Data":[{"AddressSpace":"weft-local","Pool":"fd00:5::/64","Gateway":"fd00:5::1/64"}]`),
		`{"NetworkID":"` + fuzzNet2 + `","Options":{"com.docker.network.enable_ipv6":"true","com.docker.network.internal":true},` + v4("10.2.0.0/24", "10.2.0.1/24") + `}`,
		`{"NetworkID":"` + wireNet[:12] + strings.Repeat("f", 52) + `","Options":{},` + v4("10.2.0.0/24", "10.2.0.1/24") + `}`,
	}
	fuzzRoute(f, "/NetworkDriver.CreateNetwork", func(t *testing.T, fx *fuzzFixture, body []byte, _ map[string]json.RawMessage) {
		var req network.CreateNetworkRequest
		_ = json.Unmarshal(body, &req)
		checkCreated(t, fx, bucketNetworks, dataplane.CanonicalID(req.NetworkID))
	}, seeds...)
}

func FuzzDeleteNetwork(f *testing.F) {
	fuzzRoute(f, "/NetworkDriver.DeleteNetwork", nil,
		`{"NetworkID":"`+wireNet+`"}`, `{"NetworkID":"`+fuzzNet2+`"}`, `{"NetworkID":"`+strings.ToUpper(wireNet)+`"}`,
		`{"NetworkID":"`+wireNet[:12]+`"}`, `{"NetworkID":""}`)
}

func FuzzAllocateNetwork(f *testing.F) {
	fuzzRoute(f, "/NetworkDriver.AllocateNetwork", nil,
		`{"NetworkID":"abcdefghijklmnopqrstuvwxy","Options":{},"IPv4Data":[{"AddressSpace":"","Pool":"10.0.9.0/24","Gateway":"10.0.9.1/24"}],"IPv6Data":null}`)
}

func FuzzFreeNetwork(f *testing.F) {
	fuzzRoute(f, "/NetworkDriver.FreeNetwork", nil, `{"NetworkID":"abcdefghijklmnopqrstuvwxy"}`, `{"NetworkID":"`+wireNet+`"}`)
}

func FuzzCreateEndpoint(f *testing.F) {
	ep2 := func(iface string) string {
		return `{"NetworkID":"` + wireNet + `","EndpointID":"` + fuzzEp2 + `","Interface":{` + iface + `},
			"Options":{"com.docker.network.endpoint.exposedports":[],"com.docker.network.portmap":[]}}`
	}
	seeds := []string{
		fixtureCalls[4].body, // a repeat: succeeds
		`{"NetworkID":"` + wireNet + `","EndpointID":"` + wireEp + `","Interface":{"Address":"10.1.0.9/24"}}`,
		ep2(`"Address":"10.1.0.3/24","AddressIPv6":"","MacAddress":""`),
		ep2(`"Address":"10.1.0.3/24","MacAddress":"02:42:0a:01:00:03"`),
		ep2(`"Address":"10.1.0.3/24","MacAddress":"01:00:5e:00:00:01"`),
		ep2(`"Address":"10.1.0.3/24","MacAddress":"00:00:00:00:00:00"`),
		ep2(`"Address":"10.1.0.3/24","MacAddress":"02:42:0a:01:00:03:04:05"`),
		ep2(`"Address":"10.1.0.3/24","MacAddress":"zz"`),
		ep2(`"Address":"10.9.0.3/24"`),
		ep2(`"Address":"10.1.0.3/33"`),
		ep2(`"Address":"0.0.0.0/0"`),
		ep2(`"Address":"10.1.0.3"`),
		ep2(`"Address":"::ffff:10.1.0.5/120"`),
		ep2(`"AddressIPv6":"::ffff:10.1.0.5/120"`),
		ep2(`"AddressIPv6":"fe80::1%eth0/64"`),
		ep2(`"Address":"fd00::5/64"`),
		`{"NetworkID":"` + wireNet + `","EndpointID":"` + wireEp[:12] + strings.Repeat("0", 52) + `","Interface":{"Address":"10.1.0.3/24"}}`,
		`{"NetworkID":"` + fuzzNet2 + `","EndpointID":"` + fuzzEp2 + `","Interface":{"Address":"10.1.0.3/24"}}`,
		`{"NetworkID":"` + wireNet + `","EndpointID":"` + fuzzEp2 + `","Interface":null}`,
	}
	fuzzRoute(f, "/NetworkDriver.CreateEndpoint", func(t *testing.T, fx *fuzzFixture, body []byte, a map[string]json.RawMessage) {
		var req network.CreateEndpointRequest
		_ = json.Unmarshal(body, &req)
		checkCreated(t, fx, bucketEndpoints, dataplane.CanonicalID(req.EndpointID))
		var resp network.CreateEndpointResponse
		if err := json.Unmarshal(mustJSON(t, a), &resp); err != nil {
			t.Fatalf("CreateEndpoint answer: %v", err)
		}
		if resp.Interface != nil && resp.Interface.MacAddress != "" {
			if _, err := net.ParseMAC(resp.Interface.MacAddress); err != nil {
				t.Fatalf("CreateEndpoint answered MAC %q", resp.Interface.MacAddress)
			}
		}
	}, seeds...)
}

func mustJSON(t *testing.T, a map[string]json.RawMessage) []byte {
	t.Helper()
	b, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func FuzzEndpointOperInfo(f *testing.F) {
	fuzzRoute(f, "/NetworkDriver.EndpointOperInfo", nil, endpointSeeds()...)
}

func FuzzDeleteEndpoint(f *testing.F) {
	fuzzRoute(f, "/NetworkDriver.DeleteEndpoint", nil, endpointSeeds()...)
}

func FuzzJoin(f *testing.F) {
	fuzzRoute(f, "/NetworkDriver.Join", func(t *testing.T, _ *fuzzFixture, _ []byte, a map[string]json.RawMessage) {
		var resp network.JoinResponse
		if err := json.Unmarshal(mustJSON(t, a), &resp); err != nil || resp.InterfaceName.SrcName == "" {
			t.Fatalf("Join answered %v (%v)", a, err)
		}
	}, append(endpointSeeds(),
		`{"NetworkID":"`+wireNet+`","EndpointID":"`+wireEp+`","SandboxKey":"/var/run/docker/netns/6be157a93614","Options":{}}`,
		`{"NetworkID":"`+wireNet+`","EndpointID":"`+wireEp+`","SandboxKey":"\u001b[31m","Options":{"x":[1,{"y":null}]}}`)...)
}

func FuzzLeave(f *testing.F) {
	fuzzRoute(f, "/NetworkDriver.Leave", nil, endpointSeeds()...)
}

func FuzzDiscoverNew(f *testing.F) {
	fuzzRoute(f, "/NetworkDriver.DiscoverNew", nil,
		`{"DiscoveryType":1,"DiscoveryData":{"Address":"10.0.0.5","BindAddress":"0.0.0.0","Self":true}}`,
		`{"DiscoveryType":-1,"DiscoveryData":[1,2,3]}`)
}

func FuzzDiscoverDelete(f *testing.F) {
	fuzzRoute(f, "/NetworkDriver.DiscoverDelete", nil, `{"DiscoveryType":1,"DiscoveryData":{"Address":"10.0.0.5"}}`)
}

func FuzzProgramExternalConnectivity(f *testing.F) {
	pec := func(portmap string) string {
		return `{"NetworkID":"` + wireNet + `","EndpointID":"` + wireEp + `","Options":{"com.docker.network.portmap":` + portmap + `}}`
	}
	fuzzRoute(f, "/NetworkDriver.ProgramExternalConnectivity", nil,
		pec(`[]`),
		pec(`[{"Proto":6,"IP":"","Port":80,"HostIP":"","HostPort":8080,"HostPortEnd":8080}]`),
		pec(`[{"Proto":17,"IP":"","Port":53,"HostIP":"127.0.0.1","HostPort":0,"HostPortEnd":0},{"Proto":132,"Port":9,"HostPort":9000,"HostPortEnd":9010}]`),
		pec(`[{"Proto":999,"Port":80,"HostPort":8080}]`),
		pec(`[{"Proto":6,"Port":0,"HostPort":70000,"HostPortEnd":1}]`),
		pec(`[{"Proto":6,"Port":80,"HostIP":"::ffff:1.2.3.4","HostPort":8080}]`),
		pec(`[{"Proto":6,"Port":80,"HostIP":"\u001b[31m","HostPort":8080}]`),
		pec(`[{"Proto":6,"Port":-1,"HostPort":-8080}]`),
		pec(`{"Proto":6}`),
		pec(`[null,1,"x"]`),
		`{"NetworkID":"`+wireNet+`","EndpointID":"`+fuzzEp2+`","Options":{"com.docker.network.portmap":[{"Proto":6,"Port":80,"HostPort":8080}]}}`,
	)
}

func FuzzRevokeExternalConnectivity(f *testing.F) {
	fuzzRoute(f, "/NetworkDriver.RevokeExternalConnectivity", nil, endpointSeeds()...)
}

func FuzzGwAllocCheck(f *testing.F) {
	fuzzRoute(f, "/NetworkDriver.GwAllocCheck", nil, `{"Options":{"com.docker.network.generic":{}}}`, `{"Options":[]}`)
}

func FuzzIpamGetCapabilities(f *testing.F) {
	fuzzRoute(f, "/IpamDriver.GetCapabilities", func(t *testing.T, _ *fuzzFixture, _ []byte, a map[string]json.RawMessage) {
		if string(a["RequiresMACAddress"]) != "false" {
			t.Fatalf("IPAM GetCapabilities: %v", a)
		}
	})
}

func FuzzGetDefaultAddressSpaces(f *testing.F) {
	fuzzRoute(f, "/IpamDriver.GetDefaultAddressSpaces", func(t *testing.T, _ *fuzzFixture, _ []byte, a map[string]json.RawMessage) {
		if string(a["LocalDefaultAddressSpace"]) != `"weft-local"` {
			t.Fatalf("GetDefaultAddressSpaces: %v", a)
		}
	})
}

func FuzzRequestPool(f *testing.F) {
	pool := func(space, pool, sub string, v6 bool) string {
		return `{"AddressSpace":"` + space + `","Pool":"` + pool + `","SubPool":"` + sub + `","Options":{},"V6":` + strconv.FormatBool(v6) + `}`
	}
	fuzzRoute(f, "/IpamDriver.RequestPool", func(t *testing.T, fx *fuzzFixture, _ []byte, a map[string]json.RawMessage) {
		var resp dipam.RequestPoolResponse
		if err := json.Unmarshal(mustJSON(t, a), &resp); err != nil {
			t.Fatalf("RequestPool answer: %v", err)
		}
		if _, err := netip.ParsePrefix(resp.Pool); err != nil || resp.PoolID == "" {
			t.Fatalf("RequestPool answered %+v", resp)
		}
		checkCreated(t, fx, bucketPools, resp.PoolID)
	},
		pool("weft-local", "10.2.0.0/24", "", false),
		pool("weft-local", "", "", false),
		pool("weft-local", "", "", true),
		pool("weft-global", "10.2.0.0/24", "", false),
		pool("weft-local", "10.1.0.0/24", "", false),
		pool("weft-local", "10.1.0.0/16", "", false),
		pool("weft-local", "10.2.0.0/16", "10.2.5.0/24", false),
		pool("weft-local", "10.2.0.0/16", "10.3.5.0/24", false),
		pool("weft-local", "10.2.0.1/24", "", false),
		pool("weft-local", "0.0.0.0/0", "", false),
		pool("weft-local", "::/0", "", true),
		pool("weft-local", "::ffff:10.0.0.0/104", "", true),
		pool("weft-local", "::ffff:10.0.0.0/104", "", false),
		pool("weft-local", "fd00:1::/64", "fd00:1::/80", true),
		pool("weft-local", "1.2.3.4/32", "", false),
		pool("weft-local", "224.0.0.0/4", "", false),
		pool("weft-local", "127.0.0.0/8", "", false),
		pool("weft-local", "fe80::/10", "", true),
		pool("weft-local", "10.208.0.0/24", "", false),
		pool("other-space", "10.2.0.0/24", "", false),
		pool("", "", "", false),
		`{"AddressSpace":"weft-local","Pool":"10.2.0.0/24","Options":{"foo":"bar"}}`,
		`{"AddressSpace":"weft-local","Pool":"10.2.0.0/24","Options":{"com.docker.network.ipam.serial":"true"}}`,
	)
}

func FuzzReleasePool(f *testing.F) {
	fuzzRoute(f, "/IpamDriver.ReleasePool", nil,
		`{"PoolID":"`+fuzzPoolID+`"}`, `{"PoolID":"weft-local/10.9.0.0/24"}`, `{"PoolID":"weft-local/10.1.0.0/24|10.1.0.2"}`, `{"PoolID":""}`)
}

func FuzzRequestAddress(f *testing.F) {
	addr := func(a, opts string) string {
		return `{"PoolID":"` + fuzzPoolID + `","Address":"` + a + `","Options":{` + opts + `}}`
	}
	fuzzRoute(f, "/IpamDriver.RequestAddress", func(t *testing.T, _ *fuzzFixture, _ []byte, a map[string]json.RawMessage) {
		var resp dipam.RequestAddressResponse
		if err := json.Unmarshal(mustJSON(t, a), &resp); err != nil {
			t.Fatalf("RequestAddress answer: %v", err)
		}
		if _, err := netip.ParsePrefix(resp.Address); err != nil {
			t.Fatalf("RequestAddress answered %+v", resp)
		}
	},
		addr("", `"com.docker.network.endpoint.name":"c2"`),
		addr("", `"RequestAddressType":"com.docker.network.gateway"`),
		addr("10.1.0.5", ""), addr("10.1.0.5/24", ""), addr("10.1.0.2", ""), addr("10.1.0.1", ""),
		addr("10.1.0.0", ""), addr("10.1.0.255", ""), addr("10.2.0.1", ""), addr("::ffff:10.1.0.6", ""),
		addr("fe80::1%eth0", ""), addr("10.1.0.7", `"RequestAddressType":"com.docker.network.gateway"`),
		`{"PoolID":"weft-local/10.9.0.0/24","Address":""}`,
		`{"PoolID":"`+fuzzPoolID+`|10.1.0.5","Address":""}`,
		`{"PoolID":"|","Address":"10.1.0.5"}`,
	)
}

func FuzzReleaseAddress(f *testing.F) {
	rel := func(pool, a string) string { return `{"PoolID":"` + pool + `","Address":"` + a + `"}` }
	fuzzRoute(f, "/IpamDriver.ReleaseAddress", nil,
		rel(fuzzPoolID, "10.1.0.2"), rel(fuzzPoolID, "10.1.0.1"), rel(fuzzPoolID, "10.1.0.2/24"), rel(fuzzPoolID, "::ffff:10.1.0.2"),
		rel(fuzzPoolID, "10.1.0.99"), rel(fuzzPoolID, "garbage"), rel(fuzzPoolID, ""), rel("weft-local/10.9.0.0/24", "10.9.0.2"),
		rel(fuzzPoolID+"|10.1.0.2", "10.1.0.2"))
}

func FuzzWeftCheck(f *testing.F) {
	fuzzRoute(f, "/Weft.Check", func(t *testing.T, _ *fuzzFixture, _ []byte, a map[string]json.RawMessage) {
		var kc KernelCheck
		if err := json.Unmarshal(mustJSON(t, a), &kc); err != nil || kc.Missing == nil {
			t.Fatalf("Check answered %v (%v)", a, err)
		}
	})
}

func FuzzWeftStatus(f *testing.F) {
	fuzzRoute(f, "/Weft.Status", func(t *testing.T, _ *fuzzFixture, _ []byte, a map[string]json.RawMessage) {
		var s Status
		if err := json.Unmarshal(mustJSON(t, a), &s); err != nil || len(s.Networks) != 1 || len(s.Endpoints) != 1 {
			t.Fatalf("Status answered %v (%v)", a, err)
		}
	})
}

func FuzzWeftState(f *testing.F) {
	fuzzRoute(f, "/Weft.State", func(t *testing.T, _ *fuzzFixture, _ []byte, a map[string]json.RawMessage) {
		var s State
		if err := json.Unmarshal(mustJSON(t, a), &s); err != nil || len(s.Networks) != 1 || len(s.Endpoints) != 1 {
			t.Fatalf("State answered %v (%v)", a, err)
		}
	})
}

// TestEveryRouteIsFuzzed: each route the handler serves has a Fuzz target
// in this file, so a new route cannot go unfuzzed.
func TestEveryRouteIsFuzzed(t *testing.T) {
	file, err := parser.ParseFile(token.NewFileSet(), "fuzz_test.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	fuzzed := map[string]string{} // path → target
	for _, decl := range file.Decls {
		fn, ok := decl.(*ast.FuncDecl)
		if !ok || !strings.HasPrefix(fn.Name.Name, "Fuzz") {
			continue
		}
		ast.Inspect(fn.Body, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || len(call.Args) < 2 {
				return true
			}
			if id, ok := call.Fun.(*ast.Ident); ok && id.Name == "fuzzRoute" {
				if lit, ok := call.Args[1].(*ast.BasicLit); ok {
					path, _ := strconv.Unquote(lit.Value)
					fuzzed[path] = fn.Name.Name
				}
			}
			return true
		})
	}
	d, _ := startDriver(t, memstore.New())
	served := slices.Sorted(maps.Keys(newRouter(d, MaxRequestBytes).routes))
	for _, path := range served {
		if fuzzed[path] == "" {
			t.Errorf("route %s has no fuzz target in fuzz_test.go", path)
		}
	}
	for path, target := range fuzzed {
		if !slices.Contains(served, path) {
			t.Errorf("%s fuzzes %s, which the handler does not serve", target, path)
		}
	}
}

// TestRoutesTakeHostileBodies runs the fuzz targets' checks on every route,
// under the real MaxRequestBytes, with the inputs too big to be fuzz seeds
// (a fuzzer would spend its seconds on them, not on mutations).
func TestRoutesTakeHostileBodies(t *testing.T) {
	huge := strings.Repeat(`\u001b[31m\u202e\n`, 8<<10) // about 100 KiB of escapes, 40 KiB decoded
	bodies := map[string]string{
		"oversized": strings.Repeat(" ", MaxRequestBytes) + "{}",
		"huge strings": `{"NetworkID":"` + huge + `","EndpointID":"` + huge + `","PoolID":"` + huge + `","Address":"` + huge +
			`","Pool":"` + huge + `","Interface":{"Address":"` + huge + `","MacAddress":"` + huge + `"},` +
			`"Options":{"com.docker.network.generic":{"com.docker.network.bridge.name":"` + huge + `"},"` + huge + `":1}}`,
		"huge option": `{"NetworkID":"` + fuzzNet2 + `","Options":{"com.docker.network.generic":{"com.docker.network.bridge.name":"` + huge +
			`"}},"IPv4Data":[{"AddressSpace":"weft-local","Pool":"10.2.0.0/24","Gateway":"10.2.0.1/24"}]}`,
		"deep arrays":  strings.Repeat("[", 100000),
		"deep objects": `{"Options":` + strings.Repeat(`{"a":`, 9000) + "1" + strings.Repeat("}", 9001),
	}
	d, _ := startDriver(t, memstore.New())
	for _, path := range slices.Sorted(maps.Keys(newRouter(d, MaxRequestBytes).routes)) {
		for _, name := range slices.Sorted(maps.Keys(bodies)) {
			t.Run(path[1:]+"/"+name, func(t *testing.T) {
				callChecked(t, path, []byte(bodies[name]), MaxRequestBytes, nil)
			})
		}
	}
}
