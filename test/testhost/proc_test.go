package testhost

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestStatAlive(t *testing.T) {
	for _, c := range []struct {
		stat string
		want bool
	}{
		{"42 (sleep) S 1 42 42 0 -1", true},
		{"42 (dockerd) R 1 42", true},
		{"42 (sh) Z 1 42", false},
		// The command name may hold spaces and parentheses.
		{"42 (a) Z (b)) S 1 42", true},
		{"42 (a) S (b)) Z 1 42", false},
		{"", false},
		{"42 (x)", false},
	} {
		if got := statAlive(c.stat); got != c.want {
			t.Errorf("statAlive(%q) = %v, want %v", c.stat, got, c.want)
		}
	}
}

func TestPIDAlive(t *testing.T) {
	if !PIDAlive(os.Getpid()) {
		t.Error("PIDAlive(self) = false")
	}
	if PIDAlive(-1) {
		t.Error("PIDAlive(-1) = true")
	}
}

// TestKillableNeverSelfOrInit: the harness's own PID (listed by ip netns
// pids when one of its threads is in the namespace) and init are never
// killed.
func TestKillableNeverSelfOrInit(t *testing.T) {
	got := killable([]int{0, 1, 7, 100, 7, -3, 250}, 100)
	if want := []int{7, 7, 250}; !slices.Equal(got, want) {
		t.Errorf("killable = %v, want %v", got, want)
	}
	if err := KillPIDs([]int{os.Getpid(), 1}); err != nil {
		t.Errorf("KillPIDs(self, init) = %v, want nil (and both untouched)", err)
	}
}

func TestFreezerCgroup(t *testing.T) {
	v1 := "12:pids:/docker/abc\n11:freezer:/weft-e2e-main/abc\n0::/user.slice\n"
	if got := freezerCgroup(v1); got != "/weft-e2e-main/abc" {
		t.Errorf("freezerCgroup(v1) = %q", got)
	}
	if got := freezerCgroup("0::/user.slice\n"); got != "" {
		t.Errorf("freezerCgroup(v2) = %q, want none", got)
	}
}

func TestPoll(t *testing.T) {
	n := 0
	if err := Poll(5*time.Second, func() error {
		if n++; n < 3 {
			return errors.New("not yet")
		}
		return nil
	}); err != nil || n != 3 {
		t.Errorf("Poll = %v after %d calls, want nil after 3", err, n)
	}

	stop := errors.New("hopeless")
	n = 0
	start := time.Now()
	err := Poll(time.Minute, func() error { n++; return RetryStop(stop) })
	if err != stop || n != 1 || time.Since(start) > time.Second {
		t.Errorf("Poll with RetryStop = %v after %d calls and %s, want the error itself at once", err, n, time.Since(start))
	}

	last := errors.New("still down")
	err = Poll(50*time.Millisecond, func() error { return last })
	if !errors.Is(err, last) || !strings.HasPrefix(err.Error(), "after 50ms: ") {
		t.Errorf("Poll timing out = %v, want %q wrapped with the time", err, last)
	}
}

func TestTailFrom(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	if err := os.WriteFile(path, []byte("a\nb\nc\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	mark := FileSize(path)
	if mark != 6 {
		t.Fatalf("FileSize = %d, want 6", mark)
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.WriteString("level=debug msg=\"Calling GET /_ping\"\nd\nlevel=debug msg=\"weft answered\"\ne module=grpc\nf\n")
	_ = f.Close()

	for _, c := range []struct {
		name   string
		offset int64
		max    int
		skip   func(string) bool
		want   string
	}{
		{"all", 0, 100, nil, "a\nb\nc\nlevel=debug msg=\"Calling GET /_ping\"\nd\nlevel=debug msg=\"weft answered\"\ne module=grpc\nf"},
		{"after the mark, filtered", mark, 100, DockerdNoise, "d\nlevel=debug msg=\"weft answered\"\nf"},
		{"last lines", mark, 2, DockerdNoise, "... (1 earlier lines in " + path + ")\nlevel=debug msg=\"weft answered\"\nf"},
		{"mark beyond the end (file replaced)", 1 << 20, 1, nil, "... (7 earlier lines in " + path + ")\nf"},
	} {
		if got := TailFrom(path, c.offset, c.max, c.skip); got != c.want {
			t.Errorf("%s: TailFrom = %q, want %q", c.name, got, c.want)
		}
	}
	if got, want := Tail(path, 1), "... (7 earlier lines in "+path+")\nf"; got != want {
		t.Errorf("Tail = %q, want %q", got, want)
	}
	if got := TailFrom(filepath.Join(t.TempDir(), "none"), 0, 5, nil); !strings.HasPrefix(got, "(") {
		t.Errorf("TailFrom of a missing file = %q, want the error in parentheses", got)
	}
	if FileSize(filepath.Join(t.TempDir(), "none")) != 0 {
		t.Error("FileSize of a missing file is not 0")
	}
}

func TestDockerdNoise(t *testing.T) {
	for line, want := range map[string]bool{
		`time="x" level=info msg="ccResolverWrapper: sending update" module=grpc`:   true,
		`time="x" level=debug msg="Calling HEAD /_ping"`:                            true,
		`time="x" level=debug msg="/usr/sbin/iptables, [-t nat -C DOCKER]"`:         true,
		`time="x" level=debug msg="Plugin weft activated"`:                          false,
		`time="x" level=debug msg="RequestPool(weft, ...)" driver=x`:                false,
		`time="x" level=error msg="failed to allocate network resources" error=foo`: false,
		`plain output`: false,
	} {
		if got := DockerdNoise(line); got != want {
			t.Errorf("DockerdNoise(%q) = %v, want %v", line, got, want)
		}
	}
}

func TestProcLifecycle(t *testing.T) {
	dir := t.TempDir()
	logPath, pidPath := filepath.Join(dir, "p.log"), filepath.Join(dir, "p.pid")
	p, err := StartProcEnv("greeter", logPath, pidPath, []string{"GREETING=hello"}, "sh", "-c", `echo "$GREETING"; exit 3`)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	if p.Alive() {
		t.Error("Alive after Wait")
	}
	select {
	case <-p.Done():
	default:
		t.Error("Done not closed after Wait")
	}
	var ee *exec.ExitError
	if err := p.ExitErr(); !errors.As(err, &ee) || ee.ExitCode() != 3 || !strings.HasPrefix(err.Error(), "greeter exited: ") {
		t.Errorf("ExitErr = %v, want greeter's exit status 3", err)
	}
	b, _ := os.ReadFile(p.LogPath())
	if lines := strings.Split(strings.TrimSpace(string(b)), "\n"); len(lines) != 2 || !strings.HasPrefix(lines[0], "==== ") ||
		!strings.Contains(lines[0], "GREETING=hello sh -c") || lines[1] != "hello" {
		t.Errorf("log = %q, want the command line (with env) and hello", b)
	}
	if b, _ := os.ReadFile(pidPath); strings.TrimSpace(string(b)) == "" {
		t.Error("no pidfile")
	}

	s, err := StartProc("sleeper", filepath.Join(dir, "s.log"), "", "sleep", "60")
	if err != nil {
		t.Fatal(err)
	}
	if !s.Alive() || s.ExitErr() != nil || s.Name() != "sleeper" || !PIDAlive(s.PID()) {
		t.Fatal("a fresh sleep is not running")
	}
	if err := s.Wait(10 * time.Millisecond); err == nil {
		t.Error("Wait on a running sleep returned nil")
	}
	if err := s.SignalAndWait(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := s.ExitErr(); !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGTERM {
		t.Errorf("after SignalAndWait, ExitErr = %v, want SIGTERM", err)
	}
	if err := s.Stop(time.Second); err != nil {
		t.Errorf("Stop of an ended process = %v", err)
	}
	var never *Proc
	if never.Kill() != nil || never.Stop(time.Second) != nil {
		t.Error("Kill or Stop of a nil Proc failed")
	}

	// Stop falls back to SIGKILL for a process that ignores SIGTERM.
	st, err := StartProc("stubborn", filepath.Join(dir, "st.log"), "", "sh", "-c", `trap "" TERM; echo "rea""dy"; while :; do sleep 0.05; done`)
	if err != nil {
		t.Fatal(err)
	}
	if err := Poll(10*time.Second, func() error {
		// (The log's first line is the command line, which says rea""dy.)
		if b, _ := os.ReadFile(st.LogPath()); !strings.Contains(string(b), "\nready") {
			return errors.New("not ready")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := st.Stop(100 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if err := st.ExitErr(); !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Errorf("after Stop, ExitErr = %v, want SIGKILL", err)
	}
}

func TestRun(t *testing.T) {
	out, err := RunT(10*time.Second, "sh", "-c", "echo out; echo err >&2")
	if err != nil || out != "out\n" {
		t.Errorf("RunT = %q, %v", out, err)
	}
	_, err = RunT(10*time.Second, "sh", "-c", "echo out; echo why >&2; exit 2")
	if err == nil || !strings.HasSuffix(err.Error(), ": why") || !strings.HasPrefix(err.Error(), "sh -c ") {
		t.Errorf("RunT failing = %v, want the command line and its stderr", err)
	}
	_, err = RunT(10*time.Second, "sh", "-c", "echo only-out; exit 2")
	if err == nil || !strings.HasSuffix(err.Error(), ": only-out") {
		t.Errorf("RunT failing silently on stderr = %v, want its stdout", err)
	}
	_, err = RunT(50*time.Millisecond, "sleep", "10")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("RunT timing out = %v, want it to say the deadline passed", err)
	}
	out, err = RunEnv(context.Background(), []string{"ONLY=this"}, "sh", "-c", `echo "$ONLY ${HOME:-nohome}"`)
	if err != nil || out != "this nohome\n" {
		t.Errorf("RunEnv = %q, %v; want the given environment only", out, err)
	}
}
