//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// proc is a long-running process the suite started (holder, dockerd, weft).
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error // Wait's result; valid once done is closed
	log  string
}

// startProc starts argv with stdout and stderr appended to logPath and
// records its PID in pidPath (for the next run's stale cleanup).
func startProc(name, logPath, pidPath string, argv ...string) (*proc, error) {
	return startProcEnv(name, logPath, pidPath, nil, argv...)
}

// startProcEnv is startProc with env (KEY=VALUE) added to the environment.
func startProcEnv(name, logPath, pidPath string, env []string, argv ...string) (*proc, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	line := strings.Join(argv, " ")
	if len(env) > 0 {
		line = strings.Join(env, " ") + " " + line
	}
	fmt.Fprintf(f, "==== %s: %s\n", time.Now().Format(time.RFC3339Nano), line)
	cmd := exec.Command(argv[0], argv[1:]...)
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	cmd.Stdout, cmd.Stderr = f, f
	// Own process group: a ^C on the test does not reach dockerd half-way
	// through a restart; teardown (or the next run) stops it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{}), log: logPath}
	if pidPath != "" {
		_ = os.WriteFile(pidPath, []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o644)
	}
	go func() {
		p.err = cmd.Wait()
		_ = f.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// wait waits up to d for the process to exit.
func (p *proc) wait(d time.Duration) error {
	select {
	case <-p.done:
		return nil
	case <-time.After(d):
		return fmt.Errorf("%s (pid %d) still running after %s", p.name, p.pid(), d)
	}
}

// kill sends SIGKILL and reaps the process.
func (p *proc) kill() error {
	if !p.alive() {
		return nil
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	return p.wait(10 * time.Second)
}

// stop sends SIGTERM, waits up to grace, then SIGKILLs.
func (p *proc) stop(grace time.Duration) error {
	if !p.alive() {
		return nil
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	if p.wait(grace) == nil {
		return nil
	}
	return p.kill()
}

// exitErr describes how the process ended (for error messages).
func (p *proc) exitErr() error {
	if p.alive() {
		return nil
	}
	if p.err == nil {
		return fmt.Errorf("%s exited with status 0", p.name)
	}
	return fmt.Errorf("%s exited: %w", p.name, p.err)
}

// run runs a short command and returns its stdout; the error carries stderr.
func run(ctx context.Context, argv ...string) (string, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		msg := strings.TrimSpace(errb.String())
		if msg == "" {
			msg = strings.TrimSpace(out.String())
		}
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", err, ctx.Err())
		}
		return out.String(), fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, msg)
	}
	return out.String(), nil
}

// runT is run with a default timeout.
func runT(timeout time.Duration, argv ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return run(ctx, argv...)
}

// pidAlive reports whether pid names a live (non-zombie) process.
func pidAlive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// Field 3 is the state; the command name in field 2 may hold spaces.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] != 'Z'
}

// killPIDs SIGKILLs pids and waits up to 60s for them to be gone: on a loaded
// 2-core machine a killed process can spend over 10s in the kernel tearing
// down its mounts and namespaces (seen once with a managed plugin host).
//
// A process in a frozen cgroup (cgroup v1 freezer) does not act on SIGKILL
// until the cgroup is thawed, and runc freezes a container's cgroup for a
// moment while it changes the container's device rules: killed with the
// runc that froze it, the container would wait forever. So a process still
// there after a few seconds has its freezer cgroup thawed. One that outlives
// the wait is named with its state and kernel wait channel.
func killPIDs(pids []int) error {
	// Never this process (or init): a thread of the suite's that is in a
	// host's namespace makes ip netns pids list the suite's own PID.
	var others []int
	for _, pid := range pids {
		if pid > 1 && pid != os.Getpid() {
			others = append(others, pid)
		}
	}
	pids = others
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	start := time.Now()
	deadline := start.Add(60 * time.Second)
	for _, pid := range pids {
		thawed := false
		for pidAlive(pid) {
			if !thawed && time.Since(start) > 3*time.Second {
				thawFreezer(pid)
				thawed = true
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("process %d survived SIGKILL for %s (%s)", pid, time.Since(start).Round(time.Second), procState(pid))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return nil
}

// thawFreezer thaws pid's cgroup v1 freezer cgroup, if it has one.
func thawFreezer(pid int) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) == 3 && f[1] == "freezer" && f[2] != "/" {
			_ = os.WriteFile(filepath.Join("/sys/fs/cgroup/freezer", filepath.Clean(f[2]), "freezer.state"), []byte("THAWED"), 0o644)
		}
	}
}

// procState describes pid for an error: its name, state, kernel wait
// channel and freezer cgroup.
func procState(pid int) string {
	dir := "/proc/" + strconv.Itoa(pid) + "/"
	read := func(name string) string {
		b, err := os.ReadFile(dir + name)
		if err != nil {
			return "?"
		}
		return strings.TrimSpace(string(b))
	}
	state := "?"
	for _, line := range strings.Split(read("status"), "\n") {
		if strings.HasPrefix(line, "State:") {
			state = strings.TrimSpace(strings.TrimPrefix(line, "State:"))
		}
	}
	freezer := ""
	for _, line := range strings.Split(read("cgroup"), "\n") {
		if f := strings.SplitN(line, ":", 3); len(f) == 3 && f[1] == "freezer" {
			freezer = f[2]
		}
	}
	return fmt.Sprintf("%s, state %s, waiting in %s, freezer cgroup %q", read("comm"), state, read("wchan"), freezer)
}

// tailFrom returns the part of file path after offset, at most maxLines lines
// (the last ones), leaving out dockerd's chatter that never concerns weft.
func tailFrom(path string, offset int64, maxLines int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	if offset > int64(len(b)) {
		offset = 0
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimRight(string(b[offset:]), "\n"), "\n") {
		if !noise(l) {
			lines = append(lines, l)
		}
	}
	if len(lines) > maxLines {
		lines = append([]string{fmt.Sprintf("... (%d earlier lines in %s)", len(lines)-maxLines, path)}, lines[len(lines)-maxLines:]...)
	}
	return strings.Join(lines, "\n")
}

func fileSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}

// noise reports whether a dockerd log line is of no use to someone debugging
// weft: gRPC chatter about containerd, and debug lines (iptables commands,
// API calls) that do not mention a plugin.
func noise(line string) bool {
	if strings.Contains(line, "module=grpc") {
		return true
	}
	if strings.Contains(line, "level=debug") {
		l := strings.ToLower(line)
		return !strings.Contains(l, "weft") && !strings.Contains(l, "plugin") && !strings.Contains(l, "driver")
	}
	return false
}
