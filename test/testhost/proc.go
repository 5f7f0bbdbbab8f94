// Package testhost is what weft's end-to-end suite (test/e2e) and benchmark
// harness (test/bench) share to run test machines on one real machine:
// processes they start and stop (Proc, Run, KillPIDs, Poll), the removal of
// what a crashed earlier run left behind (CleanupStale, KillNetNS,
// RemoveCgroups, DeleteNetNS, RemoveAllUnder), and the part of a Docker host
// that lives in namespaces (Machine: a named network namespace, a holder
// process with a private /run, a dockerd entered into both).
//
// It imports nothing from weft: both callers build their hosts (weft, the
// docker CLI, their configuration) on top of it. Everything machine-wide it
// touches is named by the caller: a name prefix (PREFIX-*) and a directory;
// it never touches anything else.
package testhost

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Proc is a long-running process a harness started (holder, dockerd, weft,
// a registry, benchmark servers).
type Proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error // Wait's result; valid once done is closed
	log  string
}

// StartProc starts argv with stdout and stderr appended to logPath and, if
// pidPath is set, records its PID there (for the next run's stale cleanup,
// CleanupStale).
func StartProc(name, logPath, pidPath string, argv ...string) (*Proc, error) {
	return StartProcEnv(name, logPath, pidPath, nil, argv...)
}

// StartProcEnv is StartProc with env (KEY=VALUE) added to the environment.
func StartProcEnv(name, logPath, pidPath string, env []string, argv ...string) (*Proc, error) {
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
	// Own process group: a ^C on the test or the harness does not reach
	// dockerd half-way through a restart; teardown (or the next run's
	// cleanup) stops it, in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &Proc{name: name, cmd: cmd, done: make(chan struct{}), log: logPath}
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

// Name is the name the process was started with (for messages).
func (p *Proc) Name() string { return p.name }

// LogPath is the file the process's stdout and stderr go to.
func (p *Proc) LogPath() string { return p.log }

// PID is the process's PID.
func (p *Proc) PID() int { return p.cmd.Process.Pid }

// Alive reports whether the process has not exited (been reaped) yet.
func (p *Proc) Alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Done is closed once the process has exited and been reaped.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Wait waits up to d for the process to exit.
func (p *Proc) Wait(d time.Duration) error {
	select {
	case <-p.done:
		return nil
	case <-time.After(d):
		return fmt.Errorf("%s (pid %d) still running after %s", p.name, p.PID(), d)
	}
}

// Signal sends sig to the process, e.g. SIGINT to perf or strace, which
// then write out what they recorded and exit.
func (p *Proc) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// Kill sends SIGKILL and reaps the process. A nil Proc (never started) is
// already gone.
func (p *Proc) Kill() error {
	if p == nil || !p.Alive() {
		return nil
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	return p.Wait(10 * time.Second)
}

// Stop sends SIGTERM, waits up to grace, then SIGKILLs. A nil Proc (never
// started) is already gone.
func (p *Proc) Stop(grace time.Duration) error {
	if p == nil || !p.Alive() {
		return nil
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	if p.Wait(grace) == nil {
		return nil
	}
	return p.Kill()
}

// SignalAndWait is Stop without the SIGKILL fallback: a dockerd that does
// not exit on SIGTERM in time is a failure to report.
func (p *Proc) SignalAndWait(d time.Duration) error {
	if !p.Alive() {
		return p.ExitErr()
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	return p.Wait(d)
}

// ExitErr describes how the process ended (for error messages); nil while
// it runs. It wraps Wait's error (an *exec.ExitError for errors.As).
func (p *Proc) ExitErr() error {
	if p.Alive() {
		return nil
	}
	if p.err == nil {
		return fmt.Errorf("%s exited with status 0", p.name)
	}
	return fmt.Errorf("%s exited: %w", p.name, p.err)
}

// Run runs a short command and returns its stdout; the error carries stderr.
func Run(ctx context.Context, argv ...string) (string, error) {
	return RunEnv(ctx, nil, argv...)
}

// RunEnv is Run with env as the command's whole environment (nil: this
// process's), e.g. the docker CLI's without the machine's DOCKER_*.
func RunEnv(ctx context.Context, env []string, argv ...string) (string, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
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

// RunT is Run with a timeout.
func RunT(timeout time.Duration, argv ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return Run(ctx, argv...)
}

// PIDAlive reports whether pid names a live (non-zombie) process.
func PIDAlive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	return statAlive(string(b))
}

// statAlive reports whether a /proc/PID/stat line is of a process that is
// not a zombie. Field 3 is the state; the command name in field 2 may hold
// spaces and parentheses, so the state follows the last ')'.
func statAlive(stat string) bool {
	i := strings.LastIndexByte(stat, ')')
	return i >= 0 && i+2 < len(stat) && stat[i+2] != 'Z'
}

// killWait is how long KillPIDs waits for the killed processes to be gone.
const killWait = 60 * time.Second

// KillPIDs SIGKILLs pids and waits up to 60s for them to be gone: on a loaded
// 2-core machine a killed process can spend over 10s in the kernel tearing
// down its mounts and namespaces (seen once with a managed plugin host).
//
// A process in a frozen cgroup (cgroup v1 freezer) does not act on SIGKILL
// until the cgroup is thawed, and runc freezes a container's cgroup for a
// moment while it changes the container's device rules: killed with the
// runc that froze it, the container would wait forever. So a process still
// there after a few seconds has its freezer cgroup thawed. One that outlives
// the wait is named with its state and kernel wait channel.
//
// It never kills this process or init (see killable).
func KillPIDs(pids []int) error {
	pids = killable(pids, os.Getpid())
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	start := time.Now()
	deadline := start.Add(killWait)
	for _, pid := range pids {
		thawed := false
		for PIDAlive(pid) {
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

// killable is pids without self and without init (and anything below 2):
// a thread of the harness's that is in a host's namespace (nsenter'd, or a
// socket opened there) makes `ip netns pids` list the harness's own PID, and
// a fresh-clone run once failed tearing down a host with "process <the test
// binary's pid> survived SIGKILL".
func killable(pids []int, self int) []int {
	var others []int
	for _, pid := range pids {
		if pid > 1 && pid != self {
			others = append(others, pid)
		}
	}
	return others
}

// thawFreezer thaws pid's cgroup v1 freezer cgroup, if it has one.
func thawFreezer(pid int) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		return
	}
	if cg := freezerCgroup(string(b)); cg != "" && cg != "/" {
		_ = os.WriteFile(filepath.Join("/sys/fs/cgroup/freezer", filepath.Clean(cg), "freezer.state"), []byte("THAWED"), 0o644)
	}
}

// freezerCgroup is the freezer hierarchy's path in a /proc/PID/cgroup file
// ("" if it has none: cgroup v2, or no freezer controller).
func freezerCgroup(procCgroup string) string {
	for _, line := range strings.Split(procCgroup, "\n") {
		if f := strings.SplitN(line, ":", 3); len(f) == 3 && f[1] == "freezer" {
			return f[2]
		}
	}
	return ""
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
	return fmt.Sprintf("%s, state %s, waiting in %s, freezer cgroup %q", read("comm"), state, read("wchan"), freezerCgroup(read("cgroup")))
}

// errRetryStop wraps an error Poll must not retry.
type errRetryStop struct{ error }

// RetryStop makes Poll return err (unwrapped) at once instead of retrying.
func RetryStop(err error) error { return errRetryStop{err} }

// Poll calls f until it returns nil, a RetryStop error, or d elapses; then
// it returns f's last error, saying how long it tried. The pause between
// calls starts at 20ms and doubles up to about half a second.
func Poll(d time.Duration, f func() error) error {
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

// Tail returns the last n lines of a file (for error messages).
func Tail(path string, n int) string { return TailFrom(path, 0, n, nil) }

// TailFrom returns the part of file path after offset (FileSize before the
// part of interest; from the start if the file is now shorter), at most
// maxLines lines (the last ones, after a line saying how many came before),
// leaving out the lines skip reports (nil: none), e.g. DockerdNoise.
func TailFrom(path string, offset int64, maxLines int, skip func(line string) bool) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	if offset > int64(len(b)) || offset < 0 {
		offset = 0
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimRight(string(b[offset:]), "\n"), "\n") {
		if skip == nil || !skip(l) {
			lines = append(lines, l)
		}
	}
	if len(lines) > maxLines {
		lines = append([]string{fmt.Sprintf("... (%d earlier lines in %s)", len(lines)-maxLines, path)}, lines[len(lines)-maxLines:]...)
	}
	return strings.Join(lines, "\n")
}

// FileSize is the size of the file at path, 0 if it cannot be read (a log
// mark for TailFrom).
func FileSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}

// DockerdNoise reports whether a dockerd log line is of no use to someone
// debugging weft: gRPC chatter about containerd, and debug lines (iptables
// commands, API calls) that do not mention a plugin.
func DockerdNoise(line string) bool {
	if strings.Contains(line, "module=grpc") {
		return true
	}
	if strings.Contains(line, "level=debug") {
		l := strings.ToLower(line)
		return !strings.Contains(l, "weft") && !strings.Contains(l, "plugin") && !strings.Contains(l, "driver")
	}
	return false
}
