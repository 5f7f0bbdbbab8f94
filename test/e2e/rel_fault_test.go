//go:build e2e

package e2e

import (
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/weftnet/weft/test/testhost"
)

// Reliability: weft SIGKILLed at defined points inside its mutating calls.
//
// A weft built with -tags weftfault kills itself (SIGKILL) when the
// environment variable WEFT_CRASH_AT names the point it reaches
// (plugin/crashpoint_weftfault.go): the kernel and the store are then
// exactly what a crash there leaves. Each case starts that binary, has
// docker do what reaches the point, waits for weft to die, and starts the
// ordinary binary again at once, as a supervisor would. dockerd meanwhile
// sees its call fail and, as it does with a plugin that does not answer,
// tries it again for up to about 30 s; the interrupted command may succeed
// or fail (either is logged), but what the user does next must work: a
// container on the network (it reaches the gateway), `docker network rm`,
// and a new network with the same --subnet. At the end of each case the
// host holds no weft object at all — no link, rule, network, endpoint,
// pool, store record or reservation (Host.AssertClean).
//
// weft releases IPAM reservations nobody claimed after
// WEFT_RESERVATION_GRACE; the host sets it to 2 s so that a pool or address
// reserved just before the crash comes back within the test. Before the
// user's next commands, each case waits until weft holds no unclaimed
// reservation (bounded), which is what those commands need.

// faultGrace is the reservation grace of the fault hosts.
const faultGrace = "2s"

// crashFamily groups crash points by the docker command that reaches them
// and by what exists before it.
type crashFamily int

const (
	// createNet: `docker network create` (RequestPool, the gateway's
	// RequestAddress, CreateNetwork).
	createNet crashFamily = iota
	// runCtr: `docker run` on an existing network (RequestAddress,
	// CreateEndpoint, Join).
	runCtr
	// rmCtr: `docker rm -f` of a running container (Leave, DeleteEndpoint,
	// ReleaseAddress).
	rmCtr
	// rmNet: `docker network rm` of an empty network (DeleteNetwork,
	// ReleasePool).
	rmNet
)

// crashPoints are the points of plugin/ the suite kills weft at, with the
// command that reaches each.
var crashPoints = []struct {
	point  string
	family crashFamily
}{
	{"RequestPool/saved", createNet},
	{"CreateNetwork/kernel", createNet},
	{"CreateNetwork/saved", createNet},
	{"RequestAddress/saved", runCtr},
	{"CreateEndpoint/kernel", runCtr},
	{"CreateEndpoint/saved", runCtr},
	{"Join/kernel", runCtr},
	{"Leave/kernel", rmCtr},
	{"DeleteEndpoint/kernel", rmCtr},
	{"DeleteEndpoint/saved", rmCtr},
	{"ReleaseAddress/saved", rmCtr},
	{"DeleteNetwork/kernel", rmNet},
	{"DeleteNetwork/saved", rmNet},
	{"ReleasePool/saved", rmNet},
}

// TestWeftCrashPoints kills weft at every crash point in turn (one host for
// all: a killed weft is restarted before the next case) and checks that the
// user's next commands work and that nothing is left.
func TestWeftCrashPoints(t *testing.T) {
	bin := weftFaultBin(t)
	h := newHost(t, "crash", hostOptions{weftEnv: []string{"WEFT_RESERVATION_GRACE=" + faultGrace}})
	h.AssertClean(t)
	survived := 0
	for i, c := range crashPoints {
		ok := t.Run(strings.ReplaceAll(c.point, "/", "-"), func(t *testing.T) {
			h.dumpLogsOnFailure(t)
			crashCase(t, h, bin, c.point, c.family, i)
		})
		if ok {
			survived++
		}
	}
	if survived == len(crashPoints) {
		t.Logf("reliability: faults survived: %d of %d crash points (weft SIGKILLed, restarted; the next docker run, docker network rm and a re-create with the same --subnet worked); objects leaked: 0", survived, len(crashPoints))
	} else {
		t.Errorf("reliability: faults survived: only %d of %d crash points (see the failed subtests)", survived, len(crashPoints))
	}
	h.WeftAlive(t)
}

// crashCase is one crash point: set up with the ordinary weft, swap in the
// crashing one, trigger, restart, check the user's next commands, clean up,
// check that nothing is left.
func crashCase(t *testing.T, h *Host, bin, point string, family crashFamily, i int) {
	net := fmt.Sprintf("c%d-net", i)
	subnet := fmt.Sprintf("10.150.%d.0/24", i)
	ctr := fmt.Sprintf("c%d-a", i)
	createArgs := []string{"--subnet", subnet}
	h.cleanupNetwork(t, net)
	h.cleanupContainer(t, ctr)

	// What exists before the command that reaches the point.
	var trigger []string
	switch family {
	case createNet:
		trigger = append([]string{"network", "create", "-d", h.Driver(), "--ipam-driver", h.Driver()}, append(createArgs, net)...)
	case runCtr:
		h.Docker(t, append([]string{"network", "create", "-d", h.Driver(), "--ipam-driver", h.Driver()}, append(createArgs, net)...)...)
		trigger = h.runArgs(ctr, []string{"--network", net})
	case rmCtr:
		h.Docker(t, append([]string{"network", "create", "-d", h.Driver(), "--ipam-driver", h.Driver()}, append(createArgs, net)...)...)
		h.Docker(t, h.runArgs(ctr, []string{"--network", net})...)
		trigger = []string{"rm", "-f", ctr}
	case rmNet:
		h.Docker(t, append([]string{"network", "create", "-d", h.Driver(), "--ipam-driver", h.Driver()}, append(createArgs, net)...)...)
		trigger = []string{"network", "rm", net}
	}

	res := h.crashWeftDuring(t, bin, point, trigger)
	if res.err != nil {
		t.Logf("reliability: crash at %s: `docker %s` failed (weft was restarted in %s): %s", point, strings.Join(trigger[:2], " "), res.restart.Round(time.Millisecond), res.stderr)
	} else {
		t.Logf("reliability: crash at %s: `docker %s` succeeded after all (dockerd retried it on the restarted weft, up in %s)", point, strings.Join(trigger[:2], " "), res.restart.Round(time.Millisecond))
	}

	// The user's next commands. A container that the interrupted command
	// left (created, not running) or that it was removing goes first.
	if _, stderr, err := h.DockerErr("rm", "-f", ctr); err != nil && !strings.Contains(stderr, "No such container") {
		t.Fatalf("docker rm -f %s after the crash: %v", ctr, err)
	}
	h.waitNoReservations(t)
	if !h.networkExists(t, net) {
		h.Docker(t, append([]string{"network", "create", "-d", h.Driver(), "--ipam-driver", h.Driver()}, append(createArgs, net)...)...)
	}
	h.Docker(t, h.runArgs(ctr, []string{"--network", net})...)
	h.AssertPing(t, ctr, h.ContainerGateway(t, ctr, net).String())
	h.Docker(t, "rm", "-f", ctr)
	h.Docker(t, "network", "rm", net)
	// The subnet is free again: a new network takes it.
	h.Docker(t, append([]string{"network", "create", "-d", h.Driver(), "--ipam-driver", h.Driver()}, append(createArgs, net)...)...)
	h.Docker(t, "network", "rm", net)

	h.AssertClean(t)
	if !t.Failed() {
		t.Logf("reliability: crash at %s: survived; objects leaked: 0", point)
	}
}

// crashResult is how the command that killed weft ended.
type crashResult struct {
	stderr  string
	err     error
	restart time.Duration // from weft's death until the restarted weft was ready
}

// crashWeftDuring replaces the host's weft by bin with WEFT_CRASH_AT=point,
// runs `docker trigger...`, waits until weft has killed itself there, starts
// the ordinary weft again and returns how the command ended. It fails the
// test if weft did not die of SIGKILL, that is, if the point was not
// reached.
func (h *Host) crashWeftDuring(t *testing.T, bin, point string, trigger []string) crashResult {
	t.Helper()
	h.restartWeftWith(t, bin, "WEFT_CRASH_AT="+point)
	p := h.weft
	done := make(chan crashResult, 1)
	go func() {
		_, stderr, err := h.DockerErr(trigger...)
		done <- crashResult{stderr: stderr, err: err}
	}()
	var res crashResult
	finished := false
	select {
	case <-p.Done():
	case res = <-done:
		finished = true
		// The command may end just before weft does (weft answered, then
		// dies in a later call of the same command): give it a moment.
		if err := p.Wait(5 * time.Second); err != nil {
			t.Fatalf("crash point %s was never reached: `docker %s` ended (%v: %s) and weft is still running",
				point, strings.Join(trigger, " "), res.err, res.stderr)
		}
	case <-time.After(2 * time.Minute):
		t.Fatalf("crash point %s: weft neither died nor did `docker %s` end within 2 minutes", point, strings.Join(trigger, " "))
	}
	died := time.Now()
	if !killedBySIGKILL(p) {
		t.Fatalf("weft with %s=%s ended, but not by SIGKILL: %v; last lines of %s:\n%s", "WEFT_CRASH_AT", point, p.ExitErr(), p.LogPath(), tailFrom(p.LogPath(), 0, 20))
	}
	h.StartWeft(t)
	restart := time.Since(died)
	if !finished {
		select {
		case res = <-done:
		case <-time.After(dockerTimeout + 10*time.Second):
			t.Fatalf("`docker %s` did not end after weft's restart", strings.Join(trigger, " "))
		}
	}
	res.restart = restart
	return res
}

// ContainerGateway is the IPv4 gateway of the container's endpoint on
// network net (what the driver's Join answered).
func (h *Host) ContainerGateway(t testing.TB, ctr, net string) netip.Addr {
	t.Helper()
	s := h.Docker(t, "inspect", "-f", fmt.Sprintf(`{{with index .NetworkSettings.Networks %q}}{{.Gateway}}{{end}}`, net), ctr)
	a, err := netip.ParseAddr(s)
	if err != nil {
		t.Fatalf("container %s has no IPv4 gateway on %s (inspect said %q)", ctr, net, s)
	}
	return a
}

// killedBySIGKILL reports whether the (ended) process died of SIGKILL.
func killedBySIGKILL(p *testhost.Proc) bool {
	var ee *exec.ExitError
	if !errors.As(p.ExitErr(), &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

// restartWeftWith stops the host's weft (SIGTERM) and starts bin with the
// host's weft environment plus env (legacy plugin only).
func (h *Host) restartWeftWith(t testing.TB, bin string, env ...string) {
	t.Helper()
	lp, ok := h.plugin.(*legacyPlugin)
	if !ok {
		t.Fatalf("starting another weft binary needs the legacy plugin, not %T", h.plugin)
	}
	if err := h.plugin.stop(h); err != nil {
		t.Fatalf("stopping weft: %v", err)
	}
	if err := lp.startWith(h, bin, append(slices.Clone(h.weftEnv), env...)); err != nil {
		t.Fatalf("starting %s: %v", filepath.Base(bin), err)
	}
}

// waitNoReservations waits until weft holds no unclaimed IPAM reservation
// (the host's grace is short; see faultGrace).
func (h *Host) waitNoReservations(t testing.TB) {
	t.Helper()
	var n int
	err := testhost.Poll(30*time.Second, func() error {
		st, err := h.weftState()
		if err != nil {
			return err
		}
		if n = st.Reservations; n > 0 {
			return fmt.Errorf("%d unclaimed reservations", n)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("weft still holds unclaimed IPAM reservations, though their grace is %s: %v", faultGrace, err)
	}
}

// networkExists reports whether dockerd knows network name.
func (h *Host) networkExists(t testing.TB, name string) bool {
	t.Helper()
	_, stderr, err := h.DockerErr("network", "inspect", name)
	if err != nil && !strings.Contains(stderr, "No such network") && !strings.Contains(stderr, "not found") {
		t.Fatalf("docker network inspect %s: %v", name, err)
	}
	return err == nil
}

// cleanupNetwork removes network name when the test ends, if it exists.
func (h *Host) cleanupNetwork(t testing.TB, name string) {
	t.Cleanup(func() {
		if _, stderr, err := h.DockerErr("network", "rm", name); err != nil && !strings.Contains(stderr, "not found") && !strings.Contains(stderr, "No such network") {
			t.Errorf("removing network %s: %v", name, err)
		}
	})
}

// weftFaultBin builds weft with -tags weftfault once per run.
var faultBuild struct {
	once sync.Once
	bin  string
	err  error
}

func weftFaultBin(t *testing.T) string {
	t.Helper()
	requireSuite(t)
	faultBuild.once.Do(func() {
		bin := filepath.Join(cfg.dir, "bin", "weft-fault")
		// The test runs in test/e2e; the module root is two levels up.
		if out, err := testhost.RunT(5*time.Minute, "go", "build", "-tags", "weftfault", "-o", bin, "../.."); err != nil {
			faultBuild.err = fmt.Errorf("building weft with -tags weftfault: %w\n%s", err, out)
			return
		}
		faultBuild.bin = bin
	})
	if faultBuild.err != nil {
		t.Fatal(faultBuild.err)
	}
	return faultBuild.bin
}
