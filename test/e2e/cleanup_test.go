//go:build e2e

package e2e

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cleanupStale removes what an earlier run of the same prefix that crashed
// (or was killed, or ran with WEFT_E2E_KEEP) left behind: processes in its
// namespaces and cgroups (named nsPrefix*, i.e. PREFIX-*), processes
// recorded in pidfiles under dir, the namespaces, the cgroups and dir
// itself. Only objects named PREFIX-* or under dir are touched; runs of
// other prefixes (running now, or crashed) are not (see defaultPrefix).
func cleanupStale(dir string) error {
	var errs []error
	// Processes recorded in pidfiles: only if their command line names a
	// path under dir (a recycled PID belongs to someone else; a bare
	// substring test would take /tmp/weft-e2e26/... for /tmp/weft-e2e's).
	pidfiles, _ := filepath.Glob(filepath.Join(dir, "*", "*.pid"))
	var pids []int
	for _, f := range pidfiles {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 1 {
			continue
		}
		cmdline, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
		if namesPathUnder(string(cmdline), dir) {
			pids = append(pids, pid)
		}
	}
	if err := killPIDs(pids); err != nil {
		errs = append(errs, err)
	}
	names, err := staleNetNS()
	if err != nil {
		errs = append(errs, err)
	}
	for _, n := range names {
		if err := killNetNS(n); err != nil {
			errs = append(errs, err)
		}
	}
	cgs, _ := filepath.Glob("/sys/fs/cgroup/" + nsPrefix + "*")
	more, _ := filepath.Glob("/sys/fs/cgroup/*/" + nsPrefix + "*")
	seen := map[string]bool{}
	for _, cg := range append(cgs, more...) {
		if name := filepath.Base(cg); !seen[name] {
			seen[name] = true
			if err := removeCgroups(name); err != nil {
				errs = append(errs, err)
			}
		}
	}
	for _, n := range names {
		if err := deleteNetNS(n); err != nil {
			errs = append(errs, err)
		}
	}
	if err := removeAllUnder(dir); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// namesPathUnder reports whether a command line (/proc/PID/cmdline: NUL
// separated) has an argument that is dir or a path under it, alone or as a
// flag's value (--data-root=DIR/x, unix://DIR/docker.sock).
func namesPathUnder(cmdline, dir string) bool {
	for _, arg := range strings.Split(cmdline, "\x00") {
		for off := 0; ; {
			i := strings.Index(arg[off:], dir)
			if i < 0 {
				break
			}
			i += off
			rest := arg[i+len(dir):]
			if (i == 0 || strings.ContainsRune("=:/", rune(arg[i-1]))) && (rest == "" || rest[0] == '/') {
				return true
			}
			off = i + 1
		}
	}
	return false
}

// staleNetNS lists the named namespaces the suite owns (this prefix's).
func staleNetNS() ([]string, error) {
	ents, err := os.ReadDir("/var/run/netns")
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), nsPrefix) {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

// killNetNS SIGKILLs every process in the named network namespace.
func killNetNS(name string) error {
	if _, err := os.Stat("/var/run/netns/" + name); err != nil {
		return nil
	}
	var err error
	for i := 0; i < 5; i++ { // shims may fork while we kill
		var out string
		out, err = runT(30*time.Second, "ip", "netns", "pids", name)
		if err != nil {
			return err
		}
		var pids []int
		for _, f := range strings.Fields(out) {
			if pid, e := strconv.Atoi(f); e == nil {
				pids = append(pids, pid)
			}
		}
		if len(pids) == 0 {
			return nil
		}
		err = killPIDs(pids)
	}
	return err
}

// removeCgroups kills the processes of the containers dockerd placed under
// --cgroup-parent /NAME (they outlive a SIGKILLed dockerd and shim) and
// removes those cgroups, in every hierarchy (v1 and v2).
func removeCgroups(name string) error {
	roots, _ := filepath.Glob("/sys/fs/cgroup/" + name)
	more, _ := filepath.Glob("/sys/fs/cgroup/*/" + name)
	roots = append(roots, more...)
	if len(roots) == 0 {
		return nil
	}
	var pids []int
	for _, root := range roots {
		_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || d.Name() != "cgroup.procs" {
				return nil
			}
			b, _ := os.ReadFile(p)
			for _, f := range strings.Fields(string(b)) {
				if pid, e := strconv.Atoi(f); e == nil {
					pids = append(pids, pid)
				}
			}
			return nil
		})
	}
	if err := killPIDs(pids); err != nil {
		return err
	}
	var errs []error
	for _, root := range roots {
		// Depth first: a cgroup directory goes only once it has no children.
		var dirs []string
		_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			// A cgroup empties asynchronously after its last process died.
			if err := poll(5*time.Second, func() error { return ignoreNotExist(syscall.Rmdir(dirs[i])) }); err != nil {
				errs = append(errs, fmt.Errorf("removing cgroup %s: %w", dirs[i], err))
			}
		}
	}
	return errors.Join(errs...)
}

func ignoreNotExist(err error) error {
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

// deleteNetNS removes a named network namespace (the kernel frees it once the
// last process in it is gone).
func deleteNetNS(name string) error {
	if _, err := os.Stat("/var/run/netns/" + name); err != nil {
		return nil
	}
	_, err := runT(30*time.Second, "ip", "netns", "del", name)
	return err
}

// removeAllUnder removes dir after unmounting anything still mounted under
// it in our mount namespace (dockerd's mounts live in the holder's private
// namespace and vanish with it, but be safe).
func removeAllUnder(dir string) error {
	if dir == "" || dir == "/" {
		return fmt.Errorf("refusing to remove %q", dir)
	}
	if err := unmountUnder(dir); err != nil {
		return err
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("removing %s: %w", dir, err)
	}
	return nil
}

func unmountUnder(dir string) error {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }()
	var mnts []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 {
			mp := fields[4]
			if mp == dir || strings.HasPrefix(mp, dir+"/") {
				mnts = append(mnts, mp)
			}
		}
	}
	// Deepest first.
	for i := len(mnts) - 1; i >= 0; i-- {
		if err := syscall.Unmount(mnts[i], syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) {
			return fmt.Errorf("unmounting %s: %w", mnts[i], err)
		}
	}
	return nil
}
