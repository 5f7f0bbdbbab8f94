package testhost

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// sleeper starts a process that stands for a holder or a dockerd.
func sleeper(t *testing.T, name string) *Proc {
	t.Helper()
	p, err := StartProc(name, filepath.Join(t.TempDir(), name+".log"), "", "sleep", "60")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Kill() })
	return p
}

func TestMachineArgv(t *testing.T) {
	m := NewMachine("weft-e2e-main", "/tmp/weft-e2e/main")
	if m.Sock != "/tmp/weft-e2e/main/docker.sock" {
		t.Errorf("Sock = %q", m.Sock)
	}
	if got, want := m.InNet(), []string{"nsenter", "--net=/var/run/netns/weft-e2e-main", "--"}; !slices.Equal(got, want) {
		t.Errorf("InNet = %q, want %q", got, want)
	}
	m.Holder = sleeper(t, "holder")
	pid := strconv.Itoa(m.Holder.PID())
	if got, want := m.InHost(), []string{"nsenter", "--target", pid, "--mount", "--net", "--"}; !slices.Equal(got, want) {
		t.Errorf("InHost = %q, want %q", got, want)
	}
	if got, want := m.InMountNS(), []string{"nsenter", "--target", pid, "--mount", "--"}; !slices.Equal(got, want) {
		t.Errorf("InMountNS = %q, want %q", got, want)
	}
	if got, want := m.PluginDir(), "/proc/"+pid+"/root/run/docker/plugins"; got != want {
		t.Errorf("PluginDir = %q, want %q", got, want)
	}
	got := m.DockerdArgv("/usr/sbin/dockerd", "debug", "--firewall-backend=nftables")
	want := append(m.InHost(), "/usr/sbin/dockerd",
		"--config-file", "/tmp/weft-e2e/main/daemon.json",
		"--data-root", "/tmp/weft-e2e/main/data",
		"--exec-root", "/tmp/weft-e2e/main/exec",
		"--pidfile", "/tmp/weft-e2e/main/dockerd.pid",
		"-H", "unix:///tmp/weft-e2e/main/docker.sock",
		"--cgroup-parent", "/weft-e2e-main",
		"--log-level", "debug",
		"--firewall-backend=nftables")
	if !slices.Equal(got, want) {
		t.Errorf("DockerdArgv =\n%q\nwant\n%q", got, want)
	}
	// Every path dockerd is given names the host's directory: a later run's
	// CleanupStale finds it through its pidfile.
	if !namesPathUnder(strings.Join(got, "\x00"), m.Dir) {
		t.Error("dockerd's command line does not name the host's directory")
	}
}

func TestHolderScript(t *testing.T) {
	s := HolderScript("weft-e2e26", "sleep infinity")
	for _, want := range []string{
		"set -e\n",
		"\nmount -t tmpfs -o mode=755 weft-e2e26 /run\n",
		"mkdir -p /run/docker/plugins /run/containerd /run/lock\n",
		"\nexec sleep infinity",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("HolderScript lacks %q:\n%s", want, s)
		}
	}
	if !strings.HasSuffix(s, "\nexec sleep infinity") {
		t.Errorf("HolderScript does not end with the exec:\n%s", s)
	}
}

func TestWriteDaemonConfig(t *testing.T) {
	m := NewMachine("weft-bench-main", t.TempDir())
	for _, live := range []bool{false, true} {
		if err := m.WriteDaemonConfig(live); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(m.Dir, "daemon.json"))
		if err != nil {
			t.Fatal(err)
		}
		want := `{"live-restore": ` + strconv.FormatBool(live) + `, "deprecated-key-path": "` + filepath.Join(m.Dir, "key.json") + "\"}\n"
		if string(b) != want {
			t.Errorf("daemon.json = %q, want %q", b, want)
		}
	}
}

func TestDockerEnv(t *testing.T) {
	t.Setenv("DOCKER_HOST", "tcp://elsewhere:2375")
	t.Setenv("DOCKER_CONTEXT", "other")
	t.Setenv("TESTHOST_KEPT", "1")
	env := DockerEnv("/tmp/x/docker-config")
	for _, kv := range env {
		if strings.HasPrefix(kv, "DOCKER_") && kv != "DOCKER_CONFIG=/tmp/x/docker-config" && kv != "DOCKER_CLI_HINTS=false" {
			t.Errorf("DockerEnv keeps %s", kv)
		}
	}
	for _, want := range []string{"TESTHOST_KEPT=1", "DOCKER_CONFIG=/tmp/x/docker-config", "DOCKER_CLI_HINTS=false"} {
		if !slices.Contains(env, want) {
			t.Errorf("DockerEnv lacks %s", want)
		}
	}
}

// fakeDockerd serves /_ping on a unix socket in dir: 503 for the first
// `unready` requests, then 200.
func fakeDockerd(t *testing.T, sock string, unready int32) *atomic.Int32 {
	t.Helper()
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int32
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/_ping" {
			http.NotFound(w, r)
			return
		}
		if n.Add(1) <= unready {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("OK"))
	})}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return &n
}

func TestWaitDockerd(t *testing.T) {
	// Short: a unix socket path has a length limit.
	dir, err := os.MkdirTemp("", "th")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	m := NewMachine("weft-e2e-main", dir)
	m.Dockerd = sleeper(t, "dockerd")
	pings := fakeDockerd(t, m.Sock, 2)
	if err := m.WaitDockerd(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	if n := pings.Load(); n != 3 {
		t.Errorf("WaitDockerd returned after %d pings, want 3 (two answered 503)", n)
	}

	// A dockerd that died: its log, at once.
	dead, err := StartProc("dockerd", filepath.Join(dir, "dead.log"), "", "sh", "-c", "echo failed to start daemon; exit 1")
	if err != nil {
		t.Fatal(err)
	}
	_ = dead.Wait(10 * time.Second)
	m2 := NewMachine("weft-e2e-other", filepath.Join(dir, "nowhere"))
	m2.Dockerd = dead
	start := time.Now()
	err = m2.WaitDockerd(time.Minute)
	if err == nil || !strings.Contains(err.Error(), "failed to start daemon") || !strings.HasPrefix(err.Error(), "dockerd: dockerd exited: ") {
		t.Errorf("WaitDockerd for a dead dockerd = %v, want its exit and log", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("WaitDockerd for a dead dockerd took %s", time.Since(start))
	}
}

func TestShutDownDocker(t *testing.T) {
	m := NewMachine("weft-e2e-main", t.TempDir())
	var calls []string
	docker := func(_ context.Context, args ...string) (string, error) {
		calls = append(calls, strings.Join(args, " "))
		if args[0] == "ps" {
			return "c1\nc2\n", nil
		}
		return "", errors.New("rm failed")
	}
	if err := m.ShutDownDocker(docker); err != nil || len(calls) != 0 {
		t.Errorf("without dockerd: %v, calls %q; want nothing done", err, calls)
	}
	m.Dockerd = sleeper(t, "dockerd")
	err := m.ShutDownDocker(docker)
	if want := []string{"ps -aq", "rm -f c1 c2"}; !slices.Equal(calls, want) {
		t.Errorf("docker calls %q, want %q", calls, want)
	}
	if err == nil || !strings.Contains(err.Error(), "rm failed") {
		t.Errorf("ShutDownDocker = %v, want the failed removal", err)
	}
	if m.Dockerd.Alive() {
		t.Error("dockerd still runs after ShutDownDocker (a failed removal must not keep it)")
	}
}

func TestRunDocker(t *testing.T) {
	cli := filepath.Join(t.TempDir(), "docker")
	script := "#!/bin/sh\necho \"$@\"\necho \"config $DOCKER_CONFIG\" >&2\n[ \"$3\" = ps ]\n"
	if err := os.WriteFile(cli, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	env := []string{"PATH=/usr/bin:/bin", "DOCKER_CONFIG=/tmp/cfg"}
	out, err := RunDocker(context.Background(), cli, env, "/tmp/h/docker.sock", "ps", "-aq")
	if err != nil || out != "-H unix:///tmp/h/docker.sock ps -aq\n" {
		t.Errorf("RunDocker = %q, %v", out, err)
	}
	_, err = RunDocker(context.Background(), cli, env, "/tmp/h/docker.sock", "rm", "-f", "x")
	var de *DockerError
	if !errors.As(err, &de) || de.Stderr != "config /tmp/cfg" || !slices.Equal(de.Args, []string{"rm", "-f", "x"}) {
		t.Fatalf("RunDocker failing = %#v, want a *DockerError with stderr", err)
	}
	if got, want := err.Error(), "docker rm -f x: exit status 1: config /tmp/cfg"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Error("a DockerError does not unwrap to the CLI's exit")
	}
}
