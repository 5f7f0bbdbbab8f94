//go:build e2e

package e2e

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/weftnet/weft/test/testhost"
)

// nsPrefix starts the name of every namespace and cgroup the suite creates:
// WEFT_E2E_PREFIX and "-" (set by setupSuite; see defaultPrefix).
var nsPrefix = defaultPrefix + "-"

// testImage is the busybox image every host gets (test/image/mkimage.sh).
const testImage = "weft-e2e/busybox:latest"

// Host is one test "machine": a network namespace with its own dockerd and
// weft (see the package doc).
type Host struct {
	Name string // short name, e.g. "main"
	// Machine has the namespace (NetNS: <prefix>-<Name>), the directory
	// (Dir: WEFT_E2E_DIR/<Name>), dockerd's socket (Sock), the holder and
	// dockerd.
	testhost.Machine
	Outside *Outside

	plugin plugin
	weft   *testhost.Proc
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
		Machine:     testhost.NewMachine(nsPrefix+name, filepath.Join(cfg.dir, name)),
		weftEnv:     opt.weftEnv,
		liveRestore: opt.liveRestore,
	}
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
	if err := h.initNetNS(); err != nil {
		return h, err
	}
	if err := h.StartHolder(cfg.prefix); err != nil {
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
	if _, err := testhost.RunT(2*time.Minute, "../image/mkimage.sh", "-H", "unix://"+h.Sock, testImage); err != nil {
		return h, fmt.Errorf("importing the test image: %w", err)
	}
	return h, nil
}

// initNetNS creates the host's network namespace with loopback up, and
// sets forwarding as a fresh Docker host has it. A new namespace takes its IPv4
// settings from the machine's; start from forwarding off, whatever this
// machine has: dockerd then turns it on and sets FORWARD's policy to DROP,
// as it does on a real host (and as the firewall tests expect). Except with
// the nftables firewall back-end (WEFT_E2E_DOCKERD_ARGS), where dockerd does
// not turn forwarding on and refuses to start without it: then IPv4 and
// IPv6 forwarding are on from the start, as such a host's administrator
// must have them — in the host's namespace only.
func (h *Host) initNetNS() error {
	if err := testhost.AddNetNS(h.NetNS); err != nil {
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

// inMountNS runs a command in the host's mount namespace (the holder's)
// only, where weft and dockerd see their files.
func (h *Host) inMountNS(argv ...string) (string, error) {
	return testhost.RunT(30*time.Second, append(h.InMountNS(), argv...)...)
}

// dockerdArgv is the host's dockerd command line, WEFT_E2E_DOCKERD_ARGS last.
func (h *Host) dockerdArgv() []string {
	return h.DockerdArgv(cfg.dockerd, "debug", cfg.dockerdArgs...)
}

// startDockerd starts dockerd and waits until it answers /_ping.
func (h *Host) startDockerd() error {
	if err := h.spawnDockerd(); err != nil {
		return err
	}
	return h.waitDockerd()
}

// spawnDockerd starts dockerd without waiting for it, live-restore off
// unless the host asks for it.
func (h *Host) spawnDockerd() error {
	if err := h.WriteDaemonConfig(h.liveRestore); err != nil {
		return err
	}
	return h.SpawnDockerd(h.dockerdArgv())
}

// waitDockerd waits until the dockerd just started answers /_ping.
func (h *Host) waitDockerd() error { return h.WaitDockerd(60 * time.Second) }

// StopDockerd sends SIGTERM and waits for dockerd to exit (it stops the
// containers first, live-restore being off).
func (h *Host) StopDockerd(t testing.TB) {
	t.Helper()
	if err := h.Dockerd.SignalAndWait(60 * time.Second); err != nil {
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
	if err := h.Dockerd.Kill(); err != nil {
		t.Fatalf("killing dockerd: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return
	}
	err = testhost.Poll(30*time.Second, func() error {
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

// ns runs a command in the host's network namespace (only; not its mount
// namespace).
func (h *Host) ns(argv ...string) (string, error) {
	return testhost.RunT(30*time.Second, append(h.InNet(), argv...)...)
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

// close tears the host down: containers (while weft still runs, so it sees
// the calls), dockerd, weft, every process left in its namespace or cgroup,
// the outside namespace, the namespace and the directory (unless
// WEFT_E2E_KEEP is set). It returns every error but always does all of it.
func (h *Host) close() error {
	if cfg.keep {
		return nil
	}
	var errs []error
	if err := h.ShutDownDocker(h.docker); err != nil {
		errs = append(errs, err)
	}
	if h.plugin != nil {
		if err := h.plugin.stop(h); err != nil {
			errs = append(errs, err)
		}
	}
	if h.stateMounted && h.Holder != nil && h.Holder.Alive() {
		if _, err := h.inMountNS("umount", h.weftStateDir()); err != nil {
			errs = append(errs, err)
		} else {
			h.stateMounted = false
		}
	}
	if err := h.Remove(func() error {
		if h.Outside == nil {
			return nil
		}
		return h.Outside.close()
	}); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// tailFrom is testhost.TailFrom without dockerd's chatter that never
// concerns weft (testhost.DockerdNoise), for the suite's messages.
func tailFrom(path string, offset int64, maxLines int) string {
	return testhost.TailFrom(path, offset, maxLines, testhost.DockerdNoise)
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
		m[f] = testhost.FileSize(f)
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
