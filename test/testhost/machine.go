package testhost

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Machine is the part of a test Docker host that both harnesses build the
// same way (test/e2e/doc.go describes the whole host):
//
//   - a named network namespace NetNS;
//   - a holder process (sleep) in it and in a mount namespace of its own
//     whose /run is a private tmpfs (HolderScript), so the legacy plugin
//     socket and containerd's sockets are private to the host;
//   - a dockerd entered into the holder's network and mount namespaces with
//     nsenter (never `ip netns exec`, which remounts /sys and breaks
//     dockerd's cgroups), with everything of its own under Dir and its
//     containers' cgroups under /NetNS.
//
// What runs beside dockerd (weft as a legacy or managed plugin, an outside
// namespace, the docker CLI) is the caller's. Build one with NewMachine,
// AddNetNS(NetNS), StartHolder, then SpawnDockerd and WaitDockerd; tear it
// down with ShutDownDocker, then (once the caller stopped what it started)
// Remove.
type Machine struct {
	NetNS string // the named network namespace (the caller's PREFIX-NAME)
	Dir   string // logs, pidfiles, dockerd's data-root and exec-root
	Sock  string // dockerd's API socket, Dir/docker.sock

	Holder  *Proc // nil before StartHolder
	Dockerd *Proc // nil before SpawnDockerd
}

// NewMachine returns the Machine of namespace netns and directory dir.
func NewMachine(netns, dir string) Machine {
	return Machine{NetNS: netns, Dir: dir, Sock: filepath.Join(dir, "docker.sock")}
}

// InNet is the argv prefix that runs a command in the machine's network
// namespace only (not its mount namespace).
func (m *Machine) InNet() []string {
	return []string{"nsenter", "--net=" + filepath.Join(netnsDir, m.NetNS), "--"}
}

// InHost is the argv prefix that runs a command in the machine's network
// and mount namespaces (the holder's), where dockerd and weft run.
func (m *Machine) InHost() []string {
	return []string{"nsenter", "--target", strconv.Itoa(m.Holder.PID()), "--mount", "--net", "--"}
}

// InMountNS is the argv prefix that runs a command in the machine's mount
// namespace only, where weft and dockerd see their files.
func (m *Machine) InMountNS() []string {
	return []string{"nsenter", "--target", strconv.Itoa(m.Holder.PID()), "--mount", "--"}
}

// PluginDir is the machine's private /run/docker/plugins, seen from this
// process (through the holder's root).
func (m *Machine) PluginDir() string {
	return "/proc/" + strconv.Itoa(m.Holder.PID()) + "/root/run/docker/plugins"
}

// HolderScript is the shell script (for unshare --mount) that gives a
// process a private /run: a tmpfs with source name tmpfs (the run's prefix,
// to tell whose it is in mountinfo), with the empty /run/docker/plugins (the
// legacy plugin socket) and /run/containerd (containerd's shim sockets) that
// dockerd and weft expect, so that nothing of a host lands in the machine's
// /run and the machine needs no mount point there (one run removing a
// directory it made in /run would detach another run's mounts on it, in
// every namespace). If /etc/resolv.conf points into /run (systemd-resolved,
// resolvconf) a copy of it is put back in place. Then it execs exec.
func HolderScript(tmpfs, exec string) string {
	return `set -e
rc=$(readlink -f /etc/resolv.conf || true)
case $rc in /run/*) conf=$(cat "$rc" 2>/dev/null || true) ;; *) rc= ;; esac
mount -t tmpfs -o mode=755 ` + tmpfs + ` /run
mkdir -p /run/docker/plugins /run/containerd /run/lock
if [ -n "$rc" ]; then mkdir -p "$(dirname "$rc")"; printf '%s\n' "$conf" >"$rc"; fi
exec ` + exec
}

// StartHolder starts the process whose mount namespace (a private /run
// with tmpfs as its source name, see HolderScript) dockerd and weft join,
// in the network namespace NetNS, and waits until its mounts are made. Its
// mounts are slaves of the machine's: a namespace another run deletes
// (unmounts from /run/netns) is not kept alive by a copy of its mount here.
func (m *Machine) StartHolder(tmpfs string) error {
	p, err := StartProc("holder", filepath.Join(m.Dir, "holder.log"), filepath.Join(m.Dir, "holder.pid"),
		append(m.InNet(), "unshare", "--mount", "--propagation", "slave", "--", "sh", "-c", HolderScript(tmpfs, "sleep infinity"))...)
	if err != nil {
		return err
	}
	m.Holder = p
	// The shell execs sleep only after the mounts succeeded.
	return Poll(10*time.Second, func() error {
		if !p.Alive() {
			return RetryStop(fmt.Errorf("holder: %w: %s", p.ExitErr(), Tail(p.LogPath(), 20)))
		}
		comm, _ := os.ReadFile("/proc/" + strconv.Itoa(p.PID()) + "/comm")
		if strings.TrimSpace(string(comm)) != "sleep" {
			return errors.New("holder has not mounted its tmpfs yet")
		}
		return nil
	})
}

// WriteDaemonConfig writes Dir/daemon.json, dockerd's --config-file. An
// explicit configuration: the machine's /etc/docker/daemon.json must not
// leak in; live-restore is off unless asked for; deprecated-key-path keeps
// dockerd 20.10 from writing /etc/docker/key.json.
func (m *Machine) WriteDaemonConfig(liveRestore bool) error {
	conf := fmt.Sprintf(`{"live-restore": %v, "deprecated-key-path": %q}`+"\n", liveRestore, filepath.Join(m.Dir, "key.json"))
	return os.WriteFile(filepath.Join(m.Dir, "daemon.json"), []byte(conf), 0o644)
}

// DockerdArgv is the machine's dockerd command line: dockerd (the binary)
// in the holder's namespaces with its own config file (WriteDaemonConfig),
// data-root, exec-root, pidfile and socket under Dir, its containers'
// cgroups under /NetNS (RemoveCgroups finds them there), the log level, and
// extra last.
func (m *Machine) DockerdArgv(dockerd, logLevel string, extra ...string) []string {
	argv := append(m.InHost(), dockerd,
		"--config-file", filepath.Join(m.Dir, "daemon.json"),
		"--data-root", filepath.Join(m.Dir, "data"),
		"--exec-root", filepath.Join(m.Dir, "exec"),
		"--pidfile", filepath.Join(m.Dir, "dockerd.pid"),
		"-H", "unix://"+m.Sock,
		"--cgroup-parent", "/"+m.NetNS,
		"--log-level", logLevel,
	)
	return append(argv, extra...)
}

// SpawnDockerd starts dockerd with argv (DockerdArgv, possibly changed),
// logging to Dir/dockerd.log, without waiting for it (WaitDockerd). It
// records no pidfile: dockerd writes its own (--pidfile).
func (m *Machine) SpawnDockerd(argv []string) error {
	p, err := StartProc("dockerd", filepath.Join(m.Dir, "dockerd.log"), "", argv...)
	if err != nil {
		return err
	}
	m.Dockerd = p
	return nil
}

// WaitDockerd waits up to d until the dockerd just started answers /_ping
// on Sock, and gives up at once with its last log lines if it exits.
func (m *Machine) WaitDockerd(d time.Duration) error {
	p := m.Dockerd
	client := m.DockerHTTP()
	return Poll(d, func() error {
		if !p.Alive() {
			return RetryStop(fmt.Errorf("%s: %w; last lines of %s:\n%s", p.Name(), p.ExitErr(), p.LogPath(), TailFrom(p.LogPath(), 0, 30, DockerdNoise)))
		}
		resp, err := client.Get("http://docker/_ping")
		if err != nil {
			return err
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s /_ping: %s", p.Name(), resp.Status)
		}
		return nil
	})
}

// DockerHTTP is an HTTP client for dockerd's API on Sock (any host name).
func (m *Machine) DockerHTTP() *http.Client {
	return &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", m.Sock)
		}},
	}
}

// DockerEnv is the docker CLI's environment: this process's without the
// machine's DOCKER_* variables, and with DOCKER_CONFIG=configDir, so that
// neither they nor ~/.docker (contexts!) redirect it to another engine.
func DockerEnv(configDir string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DOCKER_") {
			env = append(env, kv)
		}
	}
	return append(env, "DOCKER_CONFIG="+configDir, "DOCKER_CLI_HINTS=false")
}

// ShutDownDocker is the first part of a teardown: if dockerd runs, it
// removes every container with docker (the caller's CLI against Sock) while
// the plugin still runs, so that it sees the calls, then stops dockerd
// (SIGTERM, 30s, SIGKILL). It always does all of it and returns every error.
func (m *Machine) ShutDownDocker(docker func(ctx context.Context, args ...string) (string, error)) error {
	if m.Dockerd == nil || !m.Dockerd.Alive() {
		return nil
	}
	var errs []error
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	if ids, err := docker(ctx, "ps", "-aq"); err == nil && strings.TrimSpace(ids) != "" {
		if _, err := docker(ctx, append([]string{"rm", "-f"}, strings.Fields(ids)...)...); err != nil {
			errs = append(errs, err)
		}
	}
	cancel()
	if err := m.Dockerd.Stop(30 * time.Second); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Remove is the last part of a teardown, once the caller stopped what it
// started beside dockerd (weft): it kills the holder and whatever still runs
// in the namespace (containerd, shims) or in the containers' cgroups,
// removes those cgroups, calls beforeDelete (if not nil; e.g. to remove a
// namespace linked to this one), then deletes the namespace and Dir. It
// always does all of it and returns every error.
func (m *Machine) Remove(beforeDelete func() error) error {
	var errs []error
	if err := m.Holder.Kill(); err != nil {
		errs = append(errs, err)
	}
	if err := KillNetNS(m.NetNS); err != nil {
		errs = append(errs, err)
	}
	if err := RemoveCgroups(m.NetNS); err != nil {
		errs = append(errs, err)
	}
	if beforeDelete != nil {
		if err := beforeDelete(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := DeleteNetNS(m.NetNS); err != nil {
		errs = append(errs, err)
	}
	if err := RemoveAllUnder(m.Dir); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// RunDocker runs the docker CLI cli against the dockerd at sock, with env as
// its whole environment (DockerEnv), and returns stdout; a failure is a
// *DockerError, which holds stderr apart (what a user would see).
func RunDocker(ctx context.Context, cli string, env []string, sock string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, cli, append([]string{"-H", "unix://" + sock}, args...)...)
	cmd.Env = env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", err, ctx.Err())
		}
		return out.String(), &DockerError{Args: args, Err: err, Stderr: strings.TrimSpace(errb.String())}
	}
	return out.String(), nil
}

// DockerError is a failed docker CLI call (RunDocker).
type DockerError struct {
	Args   []string // the CLI's arguments after -H
	Err    error    // how it failed (its exit status, and the context's error if that ended it)
	Stderr string   // what the CLI said, trimmed
}

func (e *DockerError) Error() string {
	return fmt.Sprintf("docker %s: %v: %s", strings.Join(e.Args, " "), e.Err, e.Stderr)
}

func (e *DockerError) Unwrap() error { return e.Err }
