package doctor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/weftnet/weft/dataplane"
	"github.com/weftnet/weft/dataplane/fw"
	"github.com/weftnet/weft/dataplane/nl"
	"github.com/weftnet/weft/dataplane/vxlan"
	"github.com/weftnet/weft/plugin"
	"github.com/weftnet/weft/status"
	"github.com/weftnet/weft/store/etcd"
)

// HostEnv is the Env of the host weft doctor runs on; opts say where the
// running weft and its state file are.
func HostEnv(opts status.Options) Env { return hostEnv{opts: opts} }

type hostEnv struct{ opts status.Options }

// ProbeLink makes the throwaway link in a new network namespace, never in
// the host's: nothing of the host's is touched, and whatever the probe
// leaves goes with the namespace when its last handle is closed.
func (hostEnv) ProbeLink(kind string) error { return ProbeLink(kind) }

// ProbeLink creates a link of kind (bridge, veth, macvlan, vlan, vxlan; or
// an ipset for "ipset") in a new, unnamed network namespace and deletes
// it. Needs CAP_SYS_ADMIN (for the namespace) and CAP_NET_ADMIN.
func ProbeLink(kind string) error {
	ns, err := newNetns()
	if err != nil {
		return err
	}
	defer func() { _ = ns.Close() }()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return fmt.Errorf("opening netlink in the probe namespace: %w", err)
	}
	defer h.Close()
	if kind == "ipset" {
		if _, _, err := h.IpsetProtocol(); err != nil {
			return fmt.Errorf("the kernel's ipset interface does not answer: %w", err)
		}
		const set = "weft-doctor"
		if err := h.IpsetCreate(set, "hash:net", netlink.IpsetCreateOptions{}); err != nil {
			return fmt.Errorf("creating a hash:net set: %w", err)
		}
		return h.IpsetDestroy(set)
	}
	attrs := func(name string) netlink.LinkAttrs {
		a := netlink.NewLinkAttrs()
		a.Name = name
		return a
	}
	var link netlink.Link
	switch kind {
	case "bridge":
		link = &netlink.Bridge{LinkAttrs: attrs("wd-probe")}
	case "veth":
		link = &netlink.Veth{LinkAttrs: attrs("wd-probe"), PeerName: "wd-peer"}
	case "vxlan":
		link = &netlink.Vxlan{LinkAttrs: attrs("wd-probe"), VxlanId: 4242, Port: 4789}
	case "macvlan", "vlan":
		// Both need a parent: a bridge, as weft's isolated macvlan
		// networks have.
		parent := &netlink.Bridge{LinkAttrs: attrs("wd-parent")}
		if err := h.LinkAdd(parent); err != nil {
			return fmt.Errorf("creating a bridge as the parent: %w", err)
		}
		defer func() { _ = h.LinkDel(parent) }()
		a := attrs("wd-probe")
		a.ParentIndex = parent.Index
		if kind == "macvlan" {
			link = &netlink.Macvlan{LinkAttrs: a, Mode: netlink.MACVLAN_MODE_BRIDGE}
		} else {
			link = &netlink.Vlan{LinkAttrs: a, VlanId: 100}
		}
	default:
		return fmt.Errorf("no probe for %q", kind)
	}
	if err := h.LinkAdd(link); err != nil {
		return fmt.Errorf("creating a %s link: %w", kind, err)
	}
	if err := h.LinkDel(link); err != nil {
		return fmt.Errorf("deleting the %s link: %w", kind, err)
	}
	return nil
}

// newNetns returns a handle to a new network namespace without leaving the
// calling thread in it: the thread enters it (unshare) and comes straight
// back. A thread that cannot come back is never unlocked, so the Go runtime
// ends it rather than run other goroutines in the probe namespace.
func newNetns() (netns.NsHandle, error) {
	type result struct {
		ns  netns.NsHandle
		err error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			done <- result{err: fmt.Errorf("reading this thread's network namespace: %w", err)}
			return
		}
		defer func() { _ = orig.Close() }()
		ns, err := netns.New()
		if err != nil {
			runtime.UnlockOSThread()
			done <- result{err: fmt.Errorf("creating a network namespace for the probe (weft doctor needs root): %w", err)}
			return
		}
		if err := netns.Set(orig); err != nil {
			_ = ns.Close()
			done <- result{err: fmt.Errorf("returning from the probe namespace: %w", err)}
			return // the thread stays locked and ends with this goroutine
		}
		runtime.UnlockOSThread()
		done <- result{ns: ns}
	}()
	r := <-done
	return r.ns, r.err
}

func (hostEnv) ProbeBackends(ctx context.Context) fw.Probe {
	return fw.ProbeBackends(ctx, exec.LookPath, run, fw.ListNFTables)
}

// run runs a program (an iptables-*-save) and returns its output.
func run(ctx context.Context, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("%s: %w: %s", name, err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}

func (hostEnv) ReadFile(path string) ([]byte, error) { return os.ReadFile(path) }

func (hostEnv) TryWrite(dir string) error {
	if fi, err := os.Stat(dir); err != nil {
		return err
	} else if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	f, err := os.CreateTemp(dir, ".weft-doctor-*")
	if err != nil {
		return err
	}
	name := f.Name()
	_, werr := f.Write([]byte("weft doctor\n"))
	serr := f.Sync()
	cerr := f.Close()
	rerr := os.Remove(name)
	return errors.Join(werr, serr, cerr, rerr)
}

func (hostEnv) DialCluster(ctx context.Context, es plugin.EtcdSettings) error {
	s, err := etcd.Open(ctx, etcdConfig(es))
	if err != nil {
		return err
	}
	return s.Close()
}

func (e hostEnv) Status(ctx context.Context) (*plugin.Status, error) { return status.Read(ctx, e.opts) }

func (e hostEnv) KernelCheck(ctx context.Context) (*plugin.KernelCheck, error) {
	sock, err := e.opts.FindSocket()
	if err != nil {
		return nil, err
	}
	if sock == "" {
		return nil, fmt.Errorf("%w: no weft socket found", status.ErrNotRunning)
	}
	var kc plugin.KernelCheck
	if err := status.Post(ctx, sock, plugin.CheckPath, &kc); err != nil {
		return nil, err
	}
	return &kc, nil
}

func (hostEnv) LinkExists(name string) (bool, error) {
	_, err := netlink.LinkByName(name)
	var nf netlink.LinkNotFoundError
	switch {
	case err == nil:
		return true, nil
	case errors.As(err, &nf):
		return false, nil
	default:
		return false, err
	}
}

func (hostEnv) VxlanLink(name string) (netip.Addr, []dataplane.Peer, bool, error) {
	h, err := nl.NewHost()
	if err != nil {
		return netip.Addr{}, nil, false, err
	}
	defer h.Close()
	return vxlan.LinkPeers(h, name)
}

func etcdConfig(es plugin.EtcdSettings) etcd.Config {
	return etcd.Config{Endpoints: es.Endpoints, CAFile: es.CAFile, CertFile: es.CertFile, KeyFile: es.KeyFile}
}

func (hostEnv) StorePeers(ctx context.Context, es plugin.EtcdSettings, self string, local netip.Addr) (map[uint32][]dataplane.Peer, error) {
	s, err := etcd.Open(ctx, etcdConfig(es))
	if err != nil {
		return nil, err
	}
	defer func() { _ = s.Close() }()
	return plugin.StorePeers(ctx, s, self, local)
}

// ClusterClock asks each endpoint in turn for /version over HTTP(S), with
// weft's TLS settings, and reads the Date header Go's HTTP server (etcd's)
// puts on every answer.
func (hostEnv) ClusterClock(ctx context.Context, es plugin.EtcdSettings) (ClockReading, error) {
	tlsCfg, err := etcd.TLSConfig(etcdConfig(es))
	if err != nil {
		return ClockReading{}, err
	}
	var errs []error
	for _, ep := range es.Endpoints {
		tr := &http.Transport{TLSClientConfig: tlsCfg, DisableKeepAlives: true}
		url := ep + "/version"
		if path, ok := strings.CutPrefix(ep, "unix://"); ok {
			tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, "unix", path)
			}
			url = "http://etcd/version"
		}
		c, err := readClock(ctx, &http.Client{Transport: tr}, url)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", ep, err))
			continue
		}
		c.Endpoint = ep
		return c, nil
	}
	return ClockReading{}, errors.Join(errs...)
}

func readClock(ctx context.Context, c *http.Client, url string) (ClockReading, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return ClockReading{}, err
	}
	before := time.Now()
	resp, err := c.Do(req)
	after := time.Now()
	if err != nil {
		return ClockReading{}, err
	}
	_ = resp.Body.Close()
	date, err := http.ParseTime(resp.Header.Get("Date"))
	if err != nil {
		return ClockReading{}, fmt.Errorf("its answer has no readable Date header (%q)", resp.Header.Get("Date"))
	}
	return ClockReading{Before: before, After: after, Server: date}, nil
}

// UDPPort reads /proc/net/udp and udp6 for sockets bound to port and finds
// the process holding each through /proc/PID/fd; a socket no process has
// open is the kernel's (a VXLAN link's).
func (hostEnv) UDPPort(port uint16) ([]PortHolder, error) {
	inodes := map[uint64]string{}
	for _, f := range []string{"/proc/net/udp", "/proc/net/udp6"} {
		raw, err := os.ReadFile(f)
		if errors.Is(err, fs.ErrNotExist) {
			continue // no IPv6
		}
		if err != nil {
			return nil, err
		}
		for _, s := range parseProcUDP(string(raw), port) {
			inodes[s.inode] = s.addr
		}
	}
	if len(inodes) == 0 {
		return nil, nil
	}
	var out []PortHolder
	owned := map[uint64]bool{}
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		fds, _ := os.ReadDir(filepath.Join("/proc", p.Name(), "fd"))
		for _, fd := range fds {
			target, err := os.Readlink(filepath.Join("/proc", p.Name(), "fd", fd.Name()))
			if err != nil {
				continue
			}
			ino, ok := socketInode(target)
			if !ok {
				continue
			}
			if addr, hit := inodes[ino]; hit && !owned[ino] {
				owned[ino] = true
				comm, _ := os.ReadFile(filepath.Join("/proc", p.Name(), "comm"))
				out = append(out, PortHolder{PID: pid, Program: strings.TrimSpace(string(comm)), Addr: addr})
			}
		}
	}
	for ino, addr := range inodes {
		if !owned[ino] {
			out = append(out, PortHolder{Addr: addr})
		}
	}
	return out, nil
}

func (hostEnv) Wait(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
