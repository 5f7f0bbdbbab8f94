//go:build bench

package main

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

// nsPrefix starts the name of every namespace and cgroup the harness creates.
// The end-to-end suite owns weft-e2e* (PREFIX-*, WEFT_E2E_PREFIX); nothing
// here touches those.
const nsPrefix = "weft-bench-"

// cleanupStale removes what an earlier run that crashed (or was killed) left
// behind: processes recorded in pidfiles under dir, processes in weft-bench-*
// namespaces and cgroups, the namespaces, the cgroups and dir itself.
func cleanupStale(dir string) error {
	var errs []error
	pidfiles, _ := filepath.Glob(filepath.Join(dir, "*", "*.pid"))
	more, _ := filepath.Glob(filepath.Join(dir, "*.pid"))
	var pids []int
	for _, f := range append(pidfiles, more...) {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 1 {
			continue
		}
		// Only if its command line mentions dir: a recycled PID is someone else's.
		cmdline, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
		if strings.Contains(string(cmdline), dir) {
			pids = append(pids, pid)
		}
	}
	if err := killPIDs(pids); err != nil {
		errs = append(errs, err)
	}
	names, err := ownNetNS()
	if err != nil {
		errs = append(errs, err)
	}
	for _, n := range names {
		if err := killNetNS(n); err != nil {
			errs = append(errs, err)
		}
	}
	cgs, _ := filepath.Glob("/sys/fs/cgroup/" + nsPrefix + "*")
	more2, _ := filepath.Glob("/sys/fs/cgroup/*/" + nsPrefix + "*")
	seen := map[string]bool{}
	for _, cg := range append(cgs, more2...) {
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

// ownNetNS lists the named namespaces the harness owns.
func ownNetNS() ([]string, error) {
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
	for range 5 { // shims may fork while we kill
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
// --cgroup-parent /NAME and removes those cgroups, in every hierarchy.
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
		var dirs []string
		_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
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

func deleteNetNS(name string) error {
	if _, err := os.Stat("/var/run/netns/" + name); err != nil {
		return nil
	}
	_, err := runT(30*time.Second, "ip", "netns", "del", name)
	return err
}

// removeAllUnder removes dir after unmounting anything still mounted under it.
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
	for i := len(mnts) - 1; i >= 0; i-- {
		if err := syscall.Unmount(mnts[i], syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) {
			return fmt.Errorf("unmounting %s: %w", mnts[i], err)
		}
	}
	return nil
}

// addNetNS creates a named namespace with loopback up.
func addNetNS(name string) error {
	if _, err := runT(10*time.Second, "ip", "netns", "add", name); err != nil {
		return err
	}
	_, err := runT(10*time.Second, "ip", "-n", name, "link", "set", "lo", "up")
	return err
}
