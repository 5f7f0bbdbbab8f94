//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// nsPrefix starts the name of every namespace and cgroup the suite creates:
// WEFT_E2E_PREFIX and "-" (set by setupSuite; see defaultPrefix).
var nsPrefix = defaultPrefix + "-"

// testImage is the busybox image every host gets (test/image/mkimage.sh).
const testImage = "weft-e2e/busybox:latest"

// Host is one test "machine": a network namespace with its own dockerd and
// weft (see the package doc).
type Host struct {
	Name    string // short name, e.g. "main"
	NetNS   string // <prefix>-<Name>
	Dir     string // WEFT_E2E_DIR/<Name>
	Sock    string // dockerd's API socket
	Outside *Outside

	plugin  plugin
	holder  *proc
	dockerd *proc
	weft    *proc
	// weftEnv is added to the environment of every weft the host starts
	// (legacy plugin), e.g. WEFT_RESERVATION_GRACE=2s.
	weftEnv []string
	// liveRestore turns dockerd's live-restore on.
	liveRestore bool
	// stateMounted: a tmpfs is mounted on weft's state directory in the
	// holder's mount namespace (hostOptions.stateTmpfs).
	stateMounted bool
}

// weftStateDir is the legacy weft's --state-dir.
func (h *Host) weftStateDir() string { return filepath.Join(h.Dir, "weft-state") }

// hostOptions tune newHost.
type hostOptions struct {
	outside     bool     // create an outside namespace (see Outside)
	weftEnv     []string // see Host.weftEnv
	liveRestore bool     // dockerd with live-restore (containers outlive it)
	// stateTmpfs, if set, are the options (e.g. "size=512k") of a tmpfs
	// mounted on weft's state directory in the holder's mount namespace
	// (where weft sees it) before weft starts; it is unmounted at teardown.
	stateTmpfs string
}

// startHost brings up a host: namespace, holder, dockerd, weft, test image.
// On error it tears down what it made.
func startHost(name string, opt hostOptions) (h *Host, err error) {
	h = &Host{
		Name:        name,
		NetNS:       nsPrefix + name,
		Dir:         filepath.Join(cfg.dir, name),
		weftEnv:     opt.weftEnv,
		liveRestore: opt.liveRestore,
	}
	h.Sock = filepath.Join(h.Dir, "docker.sock")
	defer func() {
		if err != nil {
			err = fmt.Errorf("starting host %s: %w", name, err)
			if cerr := h.close(); cerr != nil {
				err = fmt.Errorf("%w (and cleaning up: %v)", err, cerr)
			}
		}
	}()
	for _, d := range []string{"data", "exec", "weft-state"} {
		if err := os.MkdirAll(filepath.Join(h.Dir, d), 0o755); err != nil {
			return h, err
		}
	}
	if _, err := runT(10*time.Second, "ip", "netns", "add", h.NetNS); err != nil {
		return h, err
	}
	if err := h.initNetNS(); err != nil {
		return h, err
	}
	if err := h.startHolder(); err != nil {
		return h, err
	}
	if opt.stateTmpfs != "" {
		if _, err := h.inMountNS("mount", "-t", "tmpfs", "-o", "mode=700,"+opt.stateTmpfs, cfg.prefix+"-state", h.weftStateDir()); err != nil {
			return h, err
		}
		h.stateMounted = true
	}
	if opt.outside {
		if h.Outside, err = newOutside(h); err != nil {
			return h, err
		}
	}
	if h.plugin, err = newPlugin(cfg.plugin); err != nil {
		return h, err
	}
	// Weft first: a legacy plugin is looked up lazily, but dockerd's start-up
	// cleanup may already need its IPAM driver.
	if err := h.plugin.start(h); err != nil {
		return h, err
	}
	if err := h.startDockerd(); err != nil {
		return h, err
	}
	if _, err := runT(2*time.Minute, "../image/mkimage.sh", "-H", "unix://"+h.Sock, testImage); err != nil {
		return h, fmt.Errorf("importing the test image: %w", err)
	}
	return h, nil
}

// initNetNS sets up the host's fresh network namespace: loopback up, and
// forwarding as a fresh Docker host has it. A new namespace takes its IPv4
// settings from the machine's; start from forwarding off, whatever this
// machine has: dockerd then turns it on and sets FORWARD's policy to DROP,
// as it does on a real host (and as the firewall tests expect). Except with
// the nftables firewall back-end (WEFT_E2E_DOCKERD_ARGS), where dockerd does
// not turn forwarding on and refuses to start without it: then IPv4 and
// IPv6 forwarding are on from the start, as such a host's administrator
// must have them — in the host's namespace only.
func (h *Host) initNetNS() error {
	if _, err := h.ns("ip", "link", "set", "lo", "up"); err != nil {
		return err
	}
	script := "echo 0 > /proc/sys/net/ipv4/ip_forward"
	if cfg.nftables {
		script = "echo 1 > /proc/sys/net/ipv4/ip_forward && " +
			"echo 1 > /proc/sys/net/ipv6/conf/all/forwarding && " +
			"echo 1 > /proc/sys/net/ipv6/conf/default/forwarding"
	}
	_, err := h.ns("sh", "-c", script)
	return err
}

// holderScript is the shell script (for unshare --mount) that gives a
// process a private /run: a tmpfs named after the run's prefix, with the
// empty /run/docker/plugins (the legacy plugin socket) and /run/containerd
// (containerd's shim sockets) that dockerd and weft expect, so that nothing
// of a host lands in the machine's /run and the machine needs no mount point
// there (one run removing a directory it made in /run would detach another
// run's mounts on it). If /etc/resolv.conf points into /run (systemd-resolved,
// resolvconf) a copy of it is put back in place. Then it execs exec.
func holderScript(exec string) string {
	return `set -e
rc=$(readlink -f /etc/resolv.conf || true)
case $rc in /run/*) conf=$(cat "$rc" 2>/dev/null || true) ;; *) rc= ;; esac
mount -t tmpfs -o mode=755 ` + cfg.prefix + ` /run
mkdir -p /run/docker/plugins /run/containerd /run/lock
if [ -n "$rc" ]; then mkdir -p "$(dirname "$rc")"; printf '%s\n' "$conf" >"$rc"; fi
exec ` + exec
}

// startHolder starts the process whose mount namespace (a private /run, see
// holderScript) dockerd and weft join. Its mounts are slaves of the
// machine's: a namespace another run deletes (unmounts from /run/netns) is
// not kept alive by a copy of its mount here.
func (h *Host) startHolder() error {
	p, err := startProc("holder", filepath.Join(h.Dir, "holder.log"), filepath.Join(h.Dir, "holder.pid"),
		"nsenter", "--net=/var/run/netns/"+h.NetNS, "--",
		"unshare", "--mount", "--propagation", "slave", "--", "sh", "-c", holderScript("sleep infinity"))
	if err != nil {
		return err
	}
	h.holder = p
	// The shell execs sleep only after the mounts succeeded.
	return poll(10*time.Second, func() error {
		if !p.alive() {
			return retryStop(fmt.Errorf("holder: %w: %s", p.exitErr(), tailFrom(p.log, 0, 20)))
		}
		comm, _ := os.ReadFile("/proc/" + strconv.Itoa(p.pid()) + "/comm")
		if strings.TrimSpace(string(comm)) != "sleep" {
			return errors.New("holder has not mounted its tmpfs yet")
		}
		return nil
	})
}

// inMountNS runs a command in the host's mount namespace (the holder's)
// only, where weft and dockerd see their files.
func (h *Host) inMountNS(argv ...string) (string, error) {
	return runT(30*time.Second, append([]string{"nsenter", "--target", strconv.Itoa(h.holder.pid()), "--mount", "--"}, argv...)...)
}

// inHost returns the argv prefix that runs a command in the host's network
// and mount namespaces.
func (h *Host) inHost() []string {
	return []string{"nsenter", "--target", strconv.Itoa(h.holder.pid()), "--mount", "--net", "--"}
}

// pluginDir is the host's private /run/docker/plugins, seen from the test
// process (through the holder's root).
func (h *Host) pluginDir() string {
	return "/proc/" + strconv.Itoa(h.holder.pid()) + "/root/run/docker/plugins"
}

// dockerdArgv is the host's dockerd command line, WEFT_E2E_DOCKERD_ARGS last.
func (h *Host) dockerdArgv() []string {
	argv := append(h.inHost(), cfg.dockerd,
		"--config-file", filepath.Join(h.Dir, "daemon.json"),
		"--data-root", filepath.Join(h.Dir, "data"),
		"--exec-root", filepath.Join(h.Dir, "exec"),
		"--pidfile", filepath.Join(h.Dir, "dockerd.pid"),
		"-H", "unix://"+h.Sock,
		"--cgroup-parent", "/"+h.NetNS,
		"--log-level", "debug",
	)
	return append(argv, cfg.dockerdArgs...)
}

// startDockerd starts dockerd and waits until it answers /_ping.
func (h *Host) startDockerd() error {
	if err := h.spawnDockerd(); err != nil {
		return err
	}
	return h.waitDockerd()
}

// spawnDockerd starts dockerd without waiting for it.
func (h *Host) spawnDockerd() error {
	// An explicit configuration: the machine's /etc/docker/daemon.json must
	// not leak in. live-restore stays off unless the host asks for it.
	// deprecated-key-path keeps dockerd 20.10 from writing /etc/docker/key.json.
	conf := fmt.Sprintf(`{"live-restore": %v, "deprecated-key-path": %q}`+"\n", h.liveRestore, filepath.Join(h.Dir, "key.json"))
	if err := os.WriteFile(filepath.Join(h.Dir, "daemon.json"), []byte(conf), 0o644); err != nil {
		return err
	}
	p, err := startProc("dockerd", filepath.Join(h.Dir, "dockerd.log"), "", h.dockerdArgv()...)
	if err != nil {
		return err
	}
	h.dockerd = p
	return nil
}

// waitDockerd waits until the dockerd just started answers /_ping.
func (h *Host) waitDockerd() error {
	p := h.dockerd
	client := h.dockerHTTP()
	return poll(60*time.Second, func() error {
		if !p.alive() {
			return retryStop(fmt.Errorf("dockerd: %w; last lines of %s:\n%s", p.exitErr(), p.log, tailFrom(p.log, 0, 30)))
		}
		resp, err := client.Get("http://docker/_ping")
		if err != nil {
			return err
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("dockerd /_ping: %s", resp.Status)
		}
		return nil
	})
}

// StopDockerd sends SIGTERM and waits for dockerd to exit (it stops the
// containers first, live-restore being off).
func (h *Host) StopDockerd(t testing.TB) {
	t.Helper()
	if err := h.dockerd.signalAndWait(60 * time.Second); err != nil {
		t.Fatalf("stopping dockerd: %v", err)
	}
}

// KillDockerd SIGKILLs dockerd, as a crash would. Its containers keep
// running (their shims outlive it); the containerd it started dies with it
// (Pdeathsig), and KillDockerd waits until that containerd is really gone —
// reaped, not a zombie — because a restarted dockerd that still sees the
// old containerd's PID waits for it and gives up.
func (h *Host) KillDockerd(t testing.TB) {
	t.Helper()
	pidFile := filepath.Join(h.Dir, "exec", "containerd", "containerd.pid")
	b, _ := os.ReadFile(pidFile)
	if err := h.dockerd.kill(); err != nil {
		t.Fatalf("killing dockerd: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return
	}
	err = poll(30*time.Second, func() error {
		if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err == nil {
			return fmt.Errorf("containerd (pid %d) of the killed dockerd is still there", pid)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// StartDockerd starts dockerd again after StopDockerd or KillDockerd.
func (h *Host) StartDockerd(t testing.TB) {
	t.Helper()
	if err := h.startDockerd(); err != nil {
		t.Fatalf("starting dockerd: %v", err)
	}
}

func (h *Host) dockerHTTP() *http.Client {
	return &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", h.Sock)
		}},
	}
}

// signalAndWait is stop without the SIGKILL fallback: a dockerd that does not
// exit on SIGTERM in time is a failure to report.
func (p *proc) signalAndWait(d time.Duration) error {
	if !p.alive() {
		return p.exitErr()
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	return p.wait(d)
}

// ns runs a command in the host's network namespace (only; not its mount
// namespace).
func (h *Host) ns(argv ...string) (string, error) {
	return runT(30*time.Second, append([]string{"nsenter", "--net=/var/run/netns/" + h.NetNS, "--"}, argv...)...)
}

// NS is ns that fails the test on error.
func (h *Host) NS(t testing.TB, argv ...string) string {
	t.Helper()
	out, err := h.ns(argv...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// close tears the host down: containers, dockerd, weft, every process left in
// its namespace or cgroup, the outside namespace, the namespace and the
// directory (unless WEFT_E2E_KEEP is set). It returns the first error but
// always does all of it.
func (h *Host) close() error {
	if cfg.keep {
		return nil
	}
	var errs []error
	if h.dockerd != nil && h.dockerd.alive() {
		// Remove containers while weft still runs, so it sees the calls.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		if ids, err := h.docker(ctx, "ps", "-aq"); err == nil && strings.TrimSpace(ids) != "" {
			if _, err := h.docker(ctx, append([]string{"rm", "-f"}, strings.Fields(ids)...)...); err != nil {
				errs = append(errs, err)
			}
		}
		cancel()
		if err := h.dockerd.stop(30 * time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	if h.plugin != nil {
		if err := h.plugin.stop(h); err != nil {
			errs = append(errs, err)
		}
	}
	if h.stateMounted && h.holder != nil && h.holder.alive() {
		if _, err := h.inMountNS("umount", h.weftStateDir()); err != nil {
			errs = append(errs, err)
		} else {
			h.stateMounted = false
		}
	}
	if h.holder != nil {
		if err := h.holder.kill(); err != nil {
			errs = append(errs, err)
		}
	}
	// Whatever still runs in the namespace (containerd, shims) or in the
	// containers' cgroups.
	if err := killNetNS(h.NetNS); err != nil {
		errs = append(errs, err)
	}
	if err := removeCgroups(h.NetNS); err != nil {
		errs = append(errs, err)
	}
	if h.Outside != nil {
		if err := h.Outside.close(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := deleteNetNS(h.NetNS); err != nil {
		errs = append(errs, err)
	}
	if err := removeAllUnder(h.Dir); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// errRetryStop wraps an error poll must not retry.
type errRetryStop struct{ error }

func retryStop(err error) error { return errRetryStop{err} }

// poll calls f until it returns nil, a retryStop error, or d elapses.
func poll(d time.Duration, f func() error) error {
	deadline := time.Now().Add(d)
	delay := 20 * time.Millisecond
	for {
		err := f()
		if err == nil {
			return nil
		}
		var stop errRetryStop
		if errors.As(err, &stop) {
			return stop.error
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %s: %w", d, err)
		}
		time.Sleep(delay)
		if delay < 500*time.Millisecond {
			delay *= 2
		}
	}
}

// logMarks remembers the sizes of the host's logs, to print only what a
// failing test added.
type logMarks map[string]int64

func (h *Host) logFiles() []string {
	return []string{filepath.Join(h.Dir, "weft.log"), filepath.Join(h.Dir, "dockerd.log")}
}

func (h *Host) markLogs() logMarks {
	m := logMarks{}
	for _, f := range h.logFiles() {
		m[f] = fileSize(f)
	}
	return m
}

// dumpLogsOnFailure registers a cleanup that prints what the host's logs got
// during the test if the test failed.
func (h *Host) dumpLogsOnFailure(t testing.TB) {
	marks := h.markLogs()
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for _, f := range h.logFiles() {
			n := 80
			if strings.HasSuffix(f, "dockerd.log") {
				n = 40
			}
			t.Logf("---- %s (host %s) during this test:\n%s", filepath.Base(f), h.Name, tailFrom(f, marks[f], n))
		}
	})
}
