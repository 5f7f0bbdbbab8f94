package testhost

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

// netnsDir is where `ip netns` keeps the named network namespaces.
const netnsDir = "/var/run/netns"

// CleanupStale removes what an earlier run that crashed (or was killed, or
// kept its hosts on purpose) left behind: processes recorded in pidfiles
// under dir (dir/*.pid and dir/*/*.pid), processes in the namespaces and
// cgroups whose names start with prefix, those namespaces, those cgroups and
// dir itself.
//
// Only objects named prefix* or under dir are touched, so prefix must end a
// name space of its own: the e2e suite passes "PREFIX-" where no prefix
// contains a "-", so that weft-e2e- never begins weft-e2e26-main, and runs of
// other prefixes (running now, or crashed) keep theirs.
func CleanupStale(prefix, dir string) error {
	if prefix == "" {
		return errors.New("CleanupStale: an empty name prefix would take every namespace")
	}
	var errs []error
	// Processes recorded in pidfiles: only if their command line names a
	// path under dir (a recycled PID belongs to someone else; a bare
	// substring test would take /tmp/weft-e2e26/... for /tmp/weft-e2e's).
	pidfiles, _ := filepath.Glob(filepath.Join(dir, "*.pid"))
	deeper, _ := filepath.Glob(filepath.Join(dir, "*", "*.pid"))
	var pids []int
	for _, f := range append(pidfiles, deeper...) {
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
	if err := KillPIDs(pids); err != nil {
		errs = append(errs, err)
	}
	names, err := netNSWithPrefix(prefix)
	if err != nil {
		errs = append(errs, err)
	}
	for _, n := range names {
		if err := KillNetNS(n); err != nil {
			errs = append(errs, err)
		}
	}
	cgs, _ := filepath.Glob("/sys/fs/cgroup/" + prefix + "*")
	more, _ := filepath.Glob("/sys/fs/cgroup/*/" + prefix + "*")
	seen := map[string]bool{}
	for _, cg := range append(cgs, more...) {
		if name := filepath.Base(cg); !seen[name] {
			seen[name] = true
			if err := RemoveCgroups(name); err != nil {
				errs = append(errs, err)
			}
		}
	}
	for _, n := range names {
		if err := DeleteNetNS(n); err != nil {
			errs = append(errs, err)
		}
	}
	if err := RemoveAllUnder(dir); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// namesPathUnder reports whether a command line (/proc/PID/cmdline: NUL
// separated) has an argument that is dir or a path under it, alone or as a
// flag's value (--data-root=DIR/x, unix://DIR/docker.sock).
func namesPathUnder(cmdline, dir string) bool {
	if dir == "" {
		return false
	}
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

// netNSWithPrefix lists the named network namespaces whose names start with
// prefix (the caller's).
func netNSWithPrefix(prefix string) ([]string, error) {
	ents, err := os.ReadDir(netnsDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), prefix) {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

// AddNetNS creates a named network namespace with loopback up.
func AddNetNS(name string) error {
	if _, err := RunT(10*time.Second, "ip", "netns", "add", name); err != nil {
		return err
	}
	_, err := RunT(10*time.Second, "ip", "-n", name, "link", "set", "lo", "up")
	return err
}

// KillNetNS SIGKILLs every process in the named network namespace (never
// this process, see KillPIDs).
func KillNetNS(name string) error {
	if _, err := os.Stat(filepath.Join(netnsDir, name)); err != nil {
		return nil
	}
	var err error
	for range 5 { // shims may fork while we kill
		var out string
		out, err = RunT(30*time.Second, "ip", "netns", "pids", name)
		if err != nil {
			return err
		}
		pids := killable(parsePIDs(out), os.Getpid())
		if len(pids) == 0 {
			return nil
		}
		err = KillPIDs(pids)
	}
	return err
}

// parsePIDs reads whitespace-separated PIDs (ip netns pids, cgroup.procs),
// skipping anything else.
func parsePIDs(s string) []int {
	var pids []int
	for _, f := range strings.Fields(s) {
		if pid, err := strconv.Atoi(f); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// RemoveCgroups kills the processes of the containers dockerd placed under
// --cgroup-parent /NAME (they outlive a SIGKILLed dockerd and shim) and
// removes those cgroups, in every hierarchy (v1 and v2).
func RemoveCgroups(name string) error {
	if name == "" || strings.Contains(name, "/") {
		return fmt.Errorf("RemoveCgroups: %q is not a cgroup name", name)
	}
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
			pids = append(pids, parsePIDs(string(b))...)
			return nil
		})
	}
	if err := KillPIDs(pids); err != nil {
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
			if err := Poll(5*time.Second, func() error { return ignoreNotExist(syscall.Rmdir(dirs[i])) }); err != nil {
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

// DeleteNetNS removes a named network namespace (the kernel frees it once the
// last process in it is gone).
func DeleteNetNS(name string) error {
	if _, err := os.Stat(filepath.Join(netnsDir, name)); err != nil {
		return nil
	}
	_, err := RunT(30*time.Second, "ip", "netns", "del", name)
	return err
}

// RemoveAllUnder removes dir after unmounting anything still mounted under
// it in our mount namespace (dockerd's mounts live in the holder's private
// namespace and vanish with it, but be safe).
func RemoveAllUnder(dir string) error {
	if dir == "" || filepath.Clean(dir) == "/" {
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
		if mp, ok := mountPointUnder(sc.Text(), dir); ok {
			mnts = append(mnts, mp)
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

// mountPointUnder returns the mount point of a /proc/self/mountinfo line
// (field 5) if it is dir or below it.
func mountPointUnder(line, dir string) (string, bool) {
	fields := strings.Fields(line)
	if len(fields) <= 4 {
		return "", false
	}
	mp := fields[4]
	return mp, mp == dir || strings.HasPrefix(mp, dir+"/")
}
