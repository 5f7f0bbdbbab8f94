//go:build e2e

package e2e

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Reliability: weft's state directory full, then read-only.
//
// The host's state directory is a small tmpfs mounted where weft sees it
// (the holder's mount namespace). Full: a file takes all the space left.
// weft's store reuses the pages it freed, so small changes may still fit;
// networks are created one after another until one needs space the disk no
// longer has. That request must fail with an error naming the directory,
// leave nothing behind (no network in docker or weft, no link or rule, and
// once space is back, no pool or address either), and once the file is
// removed everything works again. Read-only: weft is restarted on the
// directory remounted read-only (a file open for writing keeps a mount from
// going read-only, so a running weft never sees it): requests fail with an
// error naming the directory, running containers keep their traffic, and
// once the directory is writable again weft starts by itself (it retries
// opening its state file) and everything is as before.
func TestStateDirFullOrReadOnly(t *testing.T) {
	h := newHost(t, "sdir", hostOptions{
		weftEnv:    []string{"WEFT_RESERVATION_GRACE=" + faultGrace},
		stateTmpfs: "size=1m",
	})
	dir := h.weftStateDir()
	driver := h.Driver()
	create := func(name, subnet string) (string, error) {
		_, stderr, err := h.DockerErr("network", "create", "-d", driver, "--ipam-driver", driver, "--subnet", subnet, name)
		return stderr, err
	}
	// What was there before the disk filled must stay and keep working.
	h.CreateNetwork(t, "sd-keep", "--subnet", "10.155.0.0/24")
	h.Run(t, "sd-a", "--network", "sd-keep")
	h.Run(t, "sd-b", "--network", "sd-keep")
	h.AssertPing(t, "sd-a", "sd-b")

	// ---- full
	fill := filepath.Join(dir, "fill")
	if _, err := h.inMountNS("sh", "-c", "dd if=/dev/zero of="+fill+" bs=16k 2>/dev/null; true"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = h.inMountNS("rm", "-f", fill) })
	if free := h.stateDirFree(t); free != 0 {
		t.Fatalf("the state directory still has %d bytes free after filling it", free)
	}
	var (
		before     snapshot
		failedName string
		failedNet  string
		stderr     string
		err        error
		attempts   int
	)
	for attempts = 1; attempts <= 30; attempts++ {
		before = h.Snapshot(t)
		failedName = fmt.Sprintf("sd-full%d", attempts)
		failedNet = fmt.Sprintf("10.156.%d.0/24", attempts)
		h.cleanupNetwork(t, failedName)
		if stderr, err = create(failedName, failedNet); err != nil {
			break
		}
	}
	if err == nil {
		t.Fatalf("%d networks were created on a full state directory; none failed", attempts-1)
	}
	t.Logf("reliability: state directory full: network create %d failed: %s", attempts, stderr)
	if !strings.Contains(stderr, dir) {
		t.Errorf("the error of a create on a full state directory does not name the directory %s: %s", dir, stderr)
	}
	if h.networkExists(t, failedName) {
		t.Errorf("network %s exists though its create failed", failedName)
	}
	// Nothing half-written: no new link, rule, network or endpoint. (The
	// pool dockerd could not release on the full disk is held until weft's
	// sweeper can write again; checked below.)
	now := h.Snapshot(t)
	if extra := append(missingFrom(now.links, before.links), missingFrom(now.rules, before.rules)...); len(extra) > 0 {
		t.Errorf("the failed create left kernel objects:\n  %s", strings.Join(extra, "\n  "))
	}
	for _, d := range stateDiff(before.state, now.state) {
		if strings.Contains(d, "weft network") || strings.Contains(d, "weft endpoint") || strings.Contains(d, "bucket networks") || strings.Contains(d, "bucket endpoints") {
			t.Errorf("the failed create left weft state: %s", d)
		}
	}
	h.AssertPing(t, "sd-a", "sd-b")

	// Space back: the held pool goes, all is as before the failed create,
	// and it works.
	if _, err := h.inMountNS("rm", "-f", fill); err != nil {
		t.Fatal(err)
	}
	h.waitNoReservations(t)
	h.AssertNothingNew(t, before, "the create that failed on a full state directory")
	if stderr, err := create(failedName, failedNet); err != nil {
		t.Fatalf("once space was back, network create still failed: %s", stderr)
	}
	h.Run(t, "sd-c", "--network", failedName)
	h.AssertPing(t, "sd-c", h.ContainerGateway(t, "sd-c", failedName).String())
	h.Docker(t, "rm", "-f", "sd-c")
	for i := 1; i <= attempts; i++ {
		h.Docker(t, "network", "rm", fmt.Sprintf("sd-full%d", i))
	}
	if !t.Failed() {
		t.Logf("reliability: state directory full: survived (%d creates before one needed space); objects leaked: 0", attempts-1)
	}

	// ---- read-only
	before = h.Snapshot(t)
	if err := h.plugin.stop(h); err != nil {
		t.Fatal(err)
	}
	if _, err := h.inMountNS("mount", "-o", "remount,ro", dir); err != nil {
		t.Fatal(err)
	}
	readOnly := true
	t.Cleanup(func() {
		if readOnly {
			_, _ = h.inMountNS("mount", "-o", "remount,rw", dir)
		}
	})
	h.StartWeft(t)
	stderr, err = create("sd-ro", "10.157.0.0/24")
	h.cleanupNetwork(t, "sd-ro")
	if err == nil {
		t.Fatal("a network was created with weft's state directory read-only")
	}
	t.Logf("reliability: state directory read-only: network create failed: %s", stderr)
	if !strings.Contains(stderr, dir) {
		t.Errorf("the error of a create with a read-only state directory does not name the directory %s: %s", dir, stderr)
	}
	if _, stderr, err := h.DockerErr(h.runArgs("sd-d", []string{"--network", "sd-keep"})...); err == nil {
		t.Error("a container started on a weft network with weft's state directory read-only")
	} else if !strings.Contains(stderr, dir) {
		t.Errorf("the error of docker run with a read-only state directory does not name the directory %s: %s", dir, stderr)
	}
	h.cleanupContainer(t, "sd-d")
	_, _, _ = h.DockerErr("rm", "-f", "sd-d")
	// Running containers do not need weft.
	h.AssertPing(t, "sd-a", "sd-b")

	if _, err := h.inMountNS("mount", "-o", "remount,rw", dir); err != nil {
		t.Fatal(err)
	}
	readOnly = false
	h.waitWeftRecovered(t)
	h.AssertNothingNew(t, before, "requests with weft's state directory read-only")
	if stderr, err := create("sd-ro", "10.157.0.0/24"); err != nil {
		t.Fatalf("with the state directory writable again, network create failed: %s", stderr)
	}
	h.Run(t, "sd-d", "--network", "sd-ro")
	h.Run(t, "sd-e", "--network", "sd-keep")
	h.AssertPing(t, "sd-e", "sd-a")
	h.Docker(t, "rm", "-f", "sd-a", "sd-b", "sd-d", "sd-e")
	h.Docker(t, "network", "rm", "sd-keep", "sd-ro")
	h.AssertClean(t)
	if !t.Failed() {
		t.Log("reliability: state directory read-only: survived; objects leaked: 0")
	}
	h.WeftAlive(t)
}

// stateDirFree is the free space of weft's state directory as weft sees it.
func (h *Host) stateDirFree(t testing.TB) uint64 {
	t.Helper()
	var st syscall.Statfs_t
	p := filepath.Join("/proc", strconv.Itoa(h.Holder.PID()), "root", h.weftStateDir())
	if err := syscall.Statfs(p, &st); err != nil {
		t.Fatal(err)
	}
	return st.Bavail * uint64(st.Bsize)
}

// waitWeftRecovered waits for weft, which keeps retrying to open its state
// file, to answer its state route again once the directory is writable: no
// restart is needed (its retries back off to 10 s, so 30 s is ample).
func (h *Host) waitWeftRecovered(t testing.TB) {
	t.Helper()
	start := time.Now()
	var err error
	for time.Since(start) < 30*time.Second {
		if _, err = h.weftState(); err == nil {
			t.Logf("reliability: weft started by itself %s after its state directory was writable again", time.Since(start).Round(100*time.Millisecond))
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("weft did not start by itself within 30 s of its state directory becoming writable again: %v", err)
}
