// Package nstest runs privileged tests in throwaway network namespaces.
//
// Setup locks the test goroutine to its OS thread and moves that thread into
// a fresh namespace for the rest of the test; its cleanup moves the thread
// back before unlocking it. Both halves matter: a goroutine that is not locked
// can be moved to another thread (in another namespace) at any moment, and a
// thread unlocked while still in the test namespace would go back to the Go
// scheduler and run unrelated goroutines there (see containernetworking's
// pkg/ns README). If the way back fails, the thread stays locked and Go
// terminates it when the test goroutine ends.
//
// Programs the test starts (os/exec, and so go-iptables) inherit the
// namespace of the thread that starts them, so iptables calls made from the
// test goroutine act on the test namespace; TestExecRunsInNamespace checks it.
//
// Subtests started with t.Run run on goroutines of their own, outside the
// namespace: call Setup inside the subtest, or reach namespaces only through
// Do.
//
// Tests that need root skip without it, unless WEFT_REQUIRE_PRIVILEGED=1, in
// which case missing privileges fail the test. RequireKernelFeature is the
// one skip that stays a skip.
package nstest

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// RequireEnv is the variable that turns privilege skips into failures.
const RequireEnv = "WEFT_REQUIRE_PRIVILEGED"

// Capability bits (linux/capability.h).
const (
	capNetAdmin = 12
	capSysAdmin = 21
)

// RequirePrivileged skips t unless the process is root with CAP_NET_ADMIN and
// CAP_SYS_ADMIN (creating namespaces needs the latter); with
// WEFT_REQUIRE_PRIVILEGED=1 it fails t instead.
func RequirePrivileged(t testing.TB) {
	t.Helper()
	switch fail, msg := verdict(privileged(), os.Getenv(RequireEnv)); {
	case fail:
		t.Fatal(msg)
	case msg != "":
		t.Skip(msg)
	}
}

// verdict decides what a missing privilege (err) means: nothing (err nil), a
// skip, or with WEFT_REQUIRE_PRIVILEGED=1 a failure.
func verdict(err error, require string) (fail bool, msg string) {
	if err == nil {
		return false, ""
	}
	if require == "1" {
		return true, fmt.Sprintf("privileged test cannot run (%s=1 makes this a failure): %v", RequireEnv, err)
	}
	return false, fmt.Sprintf("privileged test skipped: %v (run as root; set %s=1 to make this a failure)", err, RequireEnv)
}

func privileged() error {
	if os.Geteuid() != 0 {
		return errors.New("not running as root")
	}
	caps, err := effectiveCaps()
	if err != nil {
		return err
	}
	for _, c := range []struct {
		bit  uint
		name string
	}{{capNetAdmin, "CAP_NET_ADMIN"}, {capSysAdmin, "CAP_SYS_ADMIN"}} {
		if caps&(1<<c.bit) == 0 {
			return fmt.Errorf("missing %s", c.name)
		}
	}
	return nil
}

func effectiveCaps() (uint64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "CapEff:"); ok {
			return strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		}
	}
	return 0, errors.New("no CapEff line in /proc/self/status")
}

// RequireKernelFeature skips t, naming the feature and the reason, if check
// fails. It skips even with WEFT_REQUIRE_PRIVILEGED=1: a kernel that lacks a
// feature is a fact of the machine, not a broken test setup.
func RequireKernelFeature(t testing.TB, name string, check func() error) {
	t.Helper()
	if err := check(); err != nil {
		t.Skipf("missing kernel feature: %s: %v", name, err)
	}
}

// Setup checks privileges (see RequirePrivileged), locks the calling
// goroutine to its thread, moves the thread into a new network namespace with
// lo up, and returns that namespace. Cleanup moves the thread back and
// unlocks it, then closes the handle. Call it from the test goroutine, first.
func Setup(t testing.TB) netns.NsHandle {
	t.Helper()
	RequirePrivileged(t)
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatalf("getting the current network namespace: %v", err)
	}
	ns, err := netns.New()
	if err != nil {
		orig.Close()
		runtime.UnlockOSThread()
		t.Fatalf("creating a network namespace: %v", err)
	}
	t.Cleanup(func() {
		if err := netns.Set(orig); err != nil {
			// Leave the thread locked: Go ends it with this goroutine
			// instead of reusing it in the test namespace.
			t.Errorf("returning to the original network namespace: %v", err)
			return
		}
		runtime.UnlockOSThread()
		orig.Close()
		ns.Close()
	})
	if err := linkUp(ns, "lo"); err != nil {
		t.Fatal(err)
	}
	return ns
}

// NewNS creates another network namespace, with lo up, without entering it
// (a throwaway locked goroutine does the work); it lives until cleanup closes
// its handle and nothing else holds it. Tests use it as a "container".
func NewNS(t testing.TB) netns.NsHandle {
	t.Helper()
	var ns netns.NsHandle
	err := onThread(func() error {
		var err error
		ns, err = netns.New()
		return err
	})
	if err != nil {
		t.Fatalf("creating a network namespace: %v", err)
	}
	t.Cleanup(func() { ns.Close() })
	if err := linkUp(ns, "lo"); err != nil {
		t.Fatal(err)
	}
	return ns
}

// Do runs fn on a goroutine locked to a thread inside ns and returns its error.
// Sockets fn opens belong to ns, and so do programs it starts. fn must not
// call t.Fatal (it does not run on the test goroutine).
func Do(ns netns.NsHandle, fn func() error) error {
	return onThread(func() error {
		if err := netns.Set(ns); err != nil {
			return fmt.Errorf("entering network namespace: %w", err)
		}
		return fn()
	})
}

// onThread runs fn on a fresh goroutine locked to its thread and, afterwards,
// moves the thread back to the namespace it started in. If that fails the
// thread stays locked and dies with the goroutine.
func onThread(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("getting the current network namespace: %w", err)
			return
		}
		defer orig.Close()
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			errc <- errors.Join(ferr, fmt.Errorf("returning to the original network namespace: %w", err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

func linkUp(ns netns.NsHandle, name string) error {
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return fmt.Errorf("netlink handle: %w", err)
	}
	defer h.Close()
	l, err := h.LinkByName(name)
	if err != nil {
		return fmt.Errorf("finding %s: %w", name, err)
	}
	if err := h.LinkSetUp(l); err != nil {
		return fmt.Errorf("setting %s up: %w", name, err)
	}
	return nil
}

// Netlink returns a netlink handle acting in ns, closed at cleanup.
func Netlink(t testing.TB, ns netns.NsHandle) *netlink.Handle {
	t.Helper()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatalf("netlink handle: %v", err)
	}
	t.Cleanup(h.Close)
	return h
}

// Inode returns the inode number that identifies ns (as in /proc/*/ns/net).
func Inode(ns netns.NsHandle) (uint64, error) {
	var st syscall.Stat_t
	if err := syscall.Fstat(int(ns), &st); err != nil {
		return 0, err
	}
	return st.Ino, nil
}

// Run runs a program from the calling thread (so, after Setup, inside the
// test namespace) and returns its standard output; failure fails t.
func Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, ee.Stderr)
		}
		t.Fatalf("%s %s: %v", name, strings.Join(args, " "), err)
	}
	return string(out)
}

// IptablesSave returns the iptables-save (or ip6tables-save, ...) output of the
// calling thread's namespace without comments and packet counters, so two
// dumps of the same rules compare equal.
func IptablesSave(t testing.TB, binary string) string {
	t.Helper()
	var b strings.Builder
	for _, line := range strings.Split(Run(t, binary), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasPrefix(line, ":") {
			if i := strings.LastIndex(line, " ["); i > 0 {
				line = line[:i]
			}
		}
		b.WriteString(line + "\n")
	}
	return b.String()
}
