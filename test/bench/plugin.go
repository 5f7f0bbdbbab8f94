//go:build bench

package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/weftnet/weft/test/testhost"
)

// pluginResult holds per-call latencies in ms straight over weft's socket,
// Samples[size][op][round], for weft processes that already hold size
// endpoints; RSS[label] is weft's resident memory at points of the run.
type pluginResult struct {
	Sizes        []int
	Rounds       int
	Ops          []string
	Samples      map[string]map[string][]float64
	SetupSeconds map[string]float64
	RSS          map[string]rssPoint
	RSSOrder     []string
	// Kernel: the same link work done straight through netlink, per round,
	// on a bridge with KernelPorts[i] ports: "create/<ports>",
	// "delete/<ports>" (see kernelFloor).
	Kernel      map[string][]float64 `json:",omitempty"`
	KernelPorts []int                `json:",omitempty"`
	Profiles    map[string]profile   `json:",omitempty"`
	ProfileNote string               `json:",omitempty"`
}

type rssPoint struct{ RSSKiB, HWMKiB int64 }

// The calls dockerd makes for one container on a weft network, in its order
// (protocol.md §3): attach, then detach.
var (
	attachOps = []string{"RequestAddress", "CreateEndpoint", "Join", "ProgramExternalConnectivity"}
	detachOps = []string{"RevokeExternalConnectivity", "Leave", "DeleteEndpoint", "ReleaseAddress"}
)

// pluginInst is one weft process for the plugin-latency runs: its own
// network namespace, state directory and socket, no dockerd.
type pluginInst struct {
	size   int
	netns  string
	dir    string
	weft   *testhost.Proc
	c      *pluginClient
	netID  string
	poolID string
	sub    string
}

const sinkNS = nsPrefix + "sink"

func randomID() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func startPluginInst(size, idx int) (*pluginInst, error) {
	p := &pluginInst{size: size, netns: fmt.Sprintf("%spl%d", nsPrefix, size), dir: filepath.Join(cfg.dir, fmt.Sprintf("pl%d", size))}
	if err := os.MkdirAll(filepath.Join(p.dir, "state"), 0o755); err != nil {
		return nil, err
	}
	if err := testhost.AddNetNS(p.netns); err != nil {
		return nil, err
	}
	sock := filepath.Join(p.dir, "weft.sock")
	w, err := testhost.StartProc("weft", filepath.Join(p.dir, "weft.log"), filepath.Join(p.dir, "weft.pid"),
		"nsenter", "--net=/var/run/netns/"+p.netns, "--", cfg.weftBin, "serve",
		"--socket", sock, "--state-dir", filepath.Join(p.dir, "state"), "--log-level", cfg.logLevel)
	if err != nil {
		return p, err
	}
	p.weft = w
	p.c = newPluginClient(sock)
	if err := waitActivate(w, sock); err != nil {
		return p, err
	}
	// A /20 each: room for 1000 endpoints and the sampled ones.
	p.sub = fmt.Sprintf("10.210.%d.0/20", idx*16)
	return p, nil
}

func (p *pluginInst) close() error {
	var errs []error
	if err := p.weft.Stop(10 * time.Second); err != nil {
		errs = append(errs, err)
	}
	if err := testhost.KillNetNS(p.netns); err != nil {
		errs = append(errs, err)
	}
	if err := testhost.DeleteNetNS(p.netns); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// createNetwork does what `docker network create -d weft --ipam-driver weft
// --subnet S` makes dockerd send.
func (p *pluginInst) createNetwork() error {
	for _, c := range [][2]string{
		{"/IpamDriver.GetCapabilities", ""},
		{"/IpamDriver.GetDefaultAddressSpaces", ""},
		{"/NetworkDriver.GetCapabilities", ""},
	} {
		if _, err := p.c.call(c[0], c[1]); err != nil {
			return err
		}
	}
	b, err := p.c.call("/IpamDriver.RequestPool", `{"AddressSpace":"weft-local","Pool":"`+p.sub+`","SubPool":"","Options":{},"V6":false}`)
	if err != nil {
		return err
	}
	var pool struct{ PoolID string }
	if err := json.Unmarshal(b, &pool); err != nil {
		return err
	}
	p.poolID = pool.PoolID
	b, err = p.c.call("/IpamDriver.RequestAddress", `{"PoolID":"`+p.poolID+`","Address":"","Options":{"RequestAddressType":"com.docker.network.gateway"}}`)
	if err != nil {
		return err
	}
	var gw struct{ Address string }
	if err := json.Unmarshal(b, &gw); err != nil {
		return err
	}
	p.netID = randomID()
	_, err = p.c.call("/NetworkDriver.CreateNetwork", `{"NetworkID":"`+p.netID+`","Options":{"com.docker.network.enable_ipv6":false,`+
		`"com.docker.network.generic":{}},"IPv4Data":[{"AddressSpace":"weft-local","Pool":"`+p.sub+`","Gateway":"`+gw.Address+`","AuxAddresses":{}}],"IPv6Data":[]}`)
	return err
}

// endpoint is one attached endpoint.
type endpoint struct {
	id, addr, src string
}

// attach sends what dockerd sends for `docker run --network N`, timing each
// call (ms) into t (may be nil).
func (p *pluginInst) attach(t map[string]float64) (endpoint, error) {
	ep := endpoint{id: randomID()}
	timed := func(op, body string) ([]byte, error) {
		start := time.Now()
		b, err := p.c.call("/"+opPath(op), body)
		if t != nil {
			t[op] = ms(time.Since(start))
		}
		return b, err
	}
	b, err := timed("RequestAddress", `{"PoolID":"`+p.poolID+`","Address":"","Options":{}}`)
	if err != nil {
		return ep, err
	}
	var a struct{ Address string }
	if err := json.Unmarshal(b, &a); err != nil {
		return ep, err
	}
	ep.addr = a.Address
	if _, err := timed("CreateEndpoint", `{"NetworkID":"`+p.netID+`","EndpointID":"`+ep.id+`",`+
		`"Interface":{"Address":"`+ep.addr+`","AddressIPv6":"","MacAddress":""},`+
		`"Options":{"com.docker.network.endpoint.exposedports":[],"com.docker.network.portmap":[]}}`); err != nil {
		return ep, err
	}
	b, err = timed("Join", `{"NetworkID":"`+p.netID+`","EndpointID":"`+ep.id+`","SandboxKey":"/var/run/docker/netns/`+ep.id[:12]+`",`+
		`"Options":{"com.docker.network.endpoint.exposedports":[],"com.docker.network.portmap":[]}}`)
	if err != nil {
		return ep, err
	}
	var j struct{ InterfaceName struct{ SrcName string } }
	if err := json.Unmarshal(b, &j); err != nil {
		return ep, err
	}
	ep.src = j.InterfaceName.SrcName
	_, err = timed("ProgramExternalConnectivity", `{"NetworkID":"`+p.netID+`","EndpointID":"`+ep.id+`","Options":{"com.docker.network.endpoint.exposedports":[],"com.docker.network.portmap":[]}}`)
	return ep, err
}

// detach sends what dockerd sends when the container stops.
func (p *pluginInst) detach(ep endpoint, t map[string]float64) error {
	for _, c := range []struct{ op, body string }{
		{"RevokeExternalConnectivity", `{"NetworkID":"` + p.netID + `","EndpointID":"` + ep.id + `"}`},
		{"Leave", `{"NetworkID":"` + p.netID + `","EndpointID":"` + ep.id + `"}`},
		{"DeleteEndpoint", `{"NetworkID":"` + p.netID + `","EndpointID":"` + ep.id + `"}`},
		{"ReleaseAddress", `{"PoolID":"` + p.poolID + `","Address":"` + strings.Split(ep.addr, "/")[0] + `"}`},
	} {
		start := time.Now()
		_, err := p.c.call("/"+opPath(c.op), c.body)
		if t != nil {
			t[c.op] = ms(time.Since(start))
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func opPath(op string) string {
	if op == "RequestAddress" || op == "ReleaseAddress" {
		return "IpamDriver." + op
	}
	return "NetworkDriver." + op
}

// populate attaches n endpoints and, as dockerd would, moves each
// container-side link out of weft's namespace (here: into one sink
// namespace), so weft's namespace holds what a real host's does.
func (p *pluginInst) populate(ctx context.Context, n int) error {
	var batch strings.Builder
	flush := func() error {
		if batch.Len() == 0 {
			return nil
		}
		cmd := exec.CommandContext(ctx, "ip", "-n", p.netns, "-batch", "-")
		cmd.Stdin = strings.NewReader(batch.String())
		out, err := cmd.CombinedOutput()
		batch.Reset()
		if err != nil {
			return fmt.Errorf("moving links to %s: %w: %s", sinkNS, err, out)
		}
		return nil
	}
	for i := range n {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		ep, err := p.attach(nil)
		if err != nil {
			return fmt.Errorf("endpoint %d: %w", i, err)
		}
		if ep.src != "" {
			fmt.Fprintf(&batch, "link set %s netns %s\n", ep.src, sinkNS)
		}
		if (i+1)%100 == 0 {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}

func (p *pluginInst) rss(res *pluginResult, label string) {
	rss, hwm, err := rssKiB(p.weft.PID())
	if err != nil {
		return
	}
	res.RSS[label] = rssPoint{rss, hwm}
	res.RSSOrder = append(res.RSSOrder, label)
}

func benchPlugin(ctx context.Context) (res *pluginResult, err error) {
	sizes, rounds := []int{1, 100, 1000}, 250
	if cfg.quick {
		sizes, rounds = []int{1, 10, 100}, 20
	}
	res = &pluginResult{
		Sizes: sizes, Rounds: rounds, Ops: append(append([]string{}, attachOps...), detachOps...),
		Samples: map[string]map[string][]float64{}, SetupSeconds: map[string]float64{}, RSS: map[string]rssPoint{},
	}
	if err := testhost.AddNetNS(sinkNS); err != nil {
		return nil, err
	}
	var insts []*pluginInst
	defer func() {
		for _, p := range insts {
			if cerr := p.close(); cerr != nil {
				err = errors.Join(err, cerr)
			}
		}
		if cerr := testhost.KillNetNS(sinkNS); cerr != nil {
			err = errors.Join(err, cerr)
		}
		if cerr := testhost.DeleteNetNS(sinkNS); cerr != nil {
			err = errors.Join(err, cerr)
		}
	}()
	for i, n := range sizes {
		p, err := startPluginInst(n, i)
		if p != nil {
			insts = append(insts, p)
		}
		if err != nil {
			return nil, err
		}
	}
	// Idle: a weft that has answered Activate and holds nothing.
	insts[0].rss(res, "idle (no network)")
	for _, p := range insts {
		if err := p.createNetwork(); err != nil {
			return nil, err
		}
	}
	insts[0].rss(res, "1 network, 0 endpoints")
	for _, p := range insts {
		logf("plugin: populating weft %d with %d endpoints", p.size, p.size)
		t0 := time.Now()
		if err := p.populate(ctx, p.size); err != nil {
			return nil, err
		}
		res.SetupSeconds[strconv.Itoa(p.size)] = time.Since(t0).Seconds()
		p.rss(res, fmt.Sprintf("1 network, %s", plural(p.size, "endpoint")))
		res.Samples[strconv.Itoa(p.size)] = map[string][]float64{}
		for _, op := range res.Ops {
			res.Samples[strconv.Itoa(p.size)][op] = make([]float64, rounds)
		}
	}
	// Warm-up: a few cycles each, not counted.
	for _, p := range insts {
		for range 3 {
			ep, err := p.attach(nil)
			if err != nil {
				return nil, err
			}
			if err := p.detach(ep, nil); err != nil {
				return nil, err
			}
		}
	}
	big := sizes[len(sizes)-1]
	kern, err := newKernelFloor(map[string]int{"kbs": 0, "kbb": big}, sinkNS)
	defer func() {
		if kern != nil {
			err = errors.Join(err, kern.close())
		}
	}()
	if err != nil {
		return nil, err
	}
	res.KernelPorts = []int{0, big}
	res.Kernel = map[string][]float64{}
	for _, n := range res.KernelPorts {
		res.Kernel[fmt.Sprintf("create/%d", n)] = make([]float64, rounds)
		res.Kernel[fmt.Sprintf("delete/%d", n)] = make([]float64, rounds)
	}
	for r := range rounds {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		for i := range len(insts) + 1 {
			k := (r + i) % (len(insts) + 1)
			if k == len(insts) {
				for _, b := range []struct {
					br    string
					ports int
				}{{"kbs", 0}, {"kbb", big}} {
					id := randomID()
					c, err := kern.create(b.br, id)
					if err != nil {
						return nil, err
					}
					d, err := kern.remove(id)
					if err != nil {
						return nil, err
					}
					res.Kernel[fmt.Sprintf("create/%d", b.ports)][r] = c
					res.Kernel[fmt.Sprintf("delete/%d", b.ports)][r] = d
				}
				continue
			}
			p := insts[k]
			t := map[string]float64{}
			ep, err := p.attach(t)
			if err != nil {
				return nil, fmt.Errorf("weft with %d endpoints, round %d: %w", p.size, r, err)
			}
			if err := p.detach(ep, t); err != nil {
				return nil, fmt.Errorf("weft with %d endpoints, round %d: %w", p.size, r, err)
			}
			for op, v := range t {
				res.Samples[strconv.Itoa(p.size)][op][r] = v
			}
		}
		if (r+1)%50 == 0 {
			logf("plugin: %d/%d rounds", r+1, rounds)
		}
	}
	for _, p := range insts {
		p.rss(res, fmt.Sprintf("1 network, %s, after %d more attach/detach cycles", plural(p.size, "endpoint"), rounds))
	}
	// A CPU profile of weft with the fewest and the most endpoints, taken
	// after the measurement (perf would slow the measured process).
	res.Profiles, res.ProfileNote = profilePlugin(ctx, []*pluginInst{insts[0], insts[len(insts)-1]})
	return res, nil
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return strconv.Itoa(n) + " " + word + "s"
}

// rssKiB reads a process's resident set (VmRSS) and its peak (VmHWM) in KiB.
func rssKiB(pid int) (rss, hwm int64, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			rss = v
		case "VmHWM:":
			hwm = v
		}
	}
	if rss == 0 {
		return 0, 0, fmt.Errorf("no VmRSS for pid %d", pid)
	}
	return rss, hwm, nil
}
