//go:build bench

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/weftnet/weft/test/testhost"
)

// image is the busybox image the docker host gets (test/image/mkimage.sh).
const image = "weft-bench/busybox:latest"

// nsPrefix starts the name of every namespace and cgroup the harness creates
// (testhost.CleanupStale removes a crashed run's). The end-to-end suite owns
// weft-e2e* (PREFIX-*, WEFT_E2E_PREFIX); nothing here touches those.
const nsPrefix = "weft-bench-"

// dockerHost is one "machine" with its own dockerd and weft (legacy plugin),
// built like an end-to-end test host (test/e2e/doc.go) from the same
// testhost.Machine: a network namespace, a holder process in it with a
// private mount namespace, and dockerd and weft entered into both.
type dockerHost struct {
	name string // short name, e.g. "main"
	// Machine has the namespace (NetNS: weft-bench-<name>), the directory
	// (Dir: <work dir>/<name>), dockerd's socket (Sock), the holder and
	// dockerd.
	testhost.Machine
	weft *testhost.Proc
	// weftEnv is added to weft's environment (WEFT_STORE, WEFT_VTEP_ADDR).
	weftEnv []string
}

// hostOptions are what a host beyond the plain docker host needs.
type hostOptions struct {
	weftEnv []string
	// netReady, if set, runs once the host's namespace exists, before
	// weft and dockerd start (e.g. to plug it into an underlay).
	netReady func(netns string) error
}

func startDockerHost(name string) (h *dockerHost, err error) {
	return startDockerHostWith(name, hostOptions{})
}

func startDockerHostWith(name string, opt hostOptions) (h *dockerHost, err error) {
	h = &dockerHost{name: name, Machine: testhost.NewMachine(nsPrefix+name, filepath.Join(cfg.dir, name)), weftEnv: opt.weftEnv}
	defer func() {
		if err != nil {
			err = fmt.Errorf("starting docker host %s: %w", name, err)
			if cerr := h.close(); cerr != nil {
				err = fmt.Errorf("%w (and cleaning up: %v)", err, cerr)
			}
		}
	}()
	for _, d := range []string{"data", "exec", "weft-state"} {
		if err := os.MkdirAll(filepath.Join(h.Dir, d), 0o755); err != nil {
			return h, err
		}
	}
	if err := testhost.AddNetNS(h.NetNS); err != nil {
		return h, err
	}
	if opt.netReady != nil {
		if err := opt.netReady(h.NetNS); err != nil {
			return h, err
		}
	}
	if err := h.StartHolder("weft-bench"); err != nil {
		return h, err
	}
	// weft first: dockerd's start-up may already look for its IPAM driver.
	if err := h.startWeft(); err != nil {
		return h, err
	}
	if err := h.startDockerd(); err != nil {
		return h, err
	}
	mkimage := filepath.Join(cfg.repo, "test", "image", "mkimage.sh")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := testhost.RunEnv(ctx, dockerEnv(), mkimage, "-H", "unix://"+h.Sock, image); err != nil {
		return h, fmt.Errorf("importing the test image: %w", err)
	}
	return h, nil
}

func (h *dockerHost) startWeft() error {
	argv := append(h.InHost(), cfg.weftBin, "serve",
		"--socket", "/run/docker/plugins/weft.sock",
		"--state-dir", filepath.Join(h.Dir, "weft-state"),
		"--log-level", cfg.logLevel,
	)
	p, err := testhost.StartProcEnv("weft", filepath.Join(h.Dir, "weft.log"), filepath.Join(h.Dir, "weft.pid"), h.weftEnv, argv...)
	if err != nil {
		return err
	}
	h.weft = p
	return waitActivate(p, filepath.Join(h.PluginDir(), "weft.sock"))
}

// startDockerd starts dockerd (live-restore off, log level info) and waits
// until it answers.
func (h *dockerHost) startDockerd() error {
	if err := h.WriteDaemonConfig(false); err != nil {
		return err
	}
	if err := h.SpawnDockerd(h.DockerdArgv(cfg.dockerd, "info")); err != nil {
		return err
	}
	return h.WaitDockerd(90 * time.Second)
}

// close tears the host down: containers (while weft still runs), dockerd,
// weft, everything left in its namespace or cgroups, the namespace and the
// directory. It always does all of it and returns every error.
func (h *dockerHost) close() error {
	return errors.Join(
		h.ShutDownDocker(h.docker),
		h.weft.Stop(10*time.Second),
		h.Remove(nil),
	)
}

// dockerEnv is the CLI's environment (testhost.DockerEnv) with the run's own
// configuration directory.
func dockerEnv() []string { return testhost.DockerEnv(filepath.Join(cfg.dir, "docker-config")) }

// docker runs the docker CLI against the host's dockerd and returns stdout.
func (h *dockerHost) docker(ctx context.Context, args ...string) (string, error) {
	return testhost.RunDocker(ctx, cfg.docker, dockerEnv(), h.Sock, args...)
}

// D runs docker with a 3-minute timeout and returns trimmed stdout.
func (h *dockerHost) D(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := h.docker(ctx, args...)
	return strings.TrimSpace(out), err
}

// timedDocker runs docker and returns how long the CLI took.
func (h *dockerHost) timedDocker(args ...string) (time.Duration, error) {
	start := time.Now()
	_, err := h.D(args...)
	return time.Since(start), err
}

// containerNet returns a running container's PID (for nsenter) and its IPv4
// address on network netName.
func (h *dockerHost) containerNet(ctr, netName string) (int, string, error) {
	out, err := h.D("inspect", "-f", fmt.Sprintf(`{{.State.Pid}} {{with index .NetworkSettings.Networks %q}}{{.IPAddress}}{{end}}`, netName), ctr)
	if err != nil {
		return 0, "", err
	}
	f := strings.Fields(out)
	if len(f) != 2 {
		return 0, "", fmt.Errorf("inspect %s said %q", ctr, out)
	}
	pid, err := strconv.Atoi(f[0])
	if err != nil || pid <= 0 {
		return 0, "", fmt.Errorf("container %s has no PID (inspect said %q)", ctr, out)
	}
	return pid, f[1], nil
}

// iptablesSave dumps the host namespace's IPv4 rules.
func (h *dockerHost) iptablesSave() (string, error) {
	return testhost.RunT(30*time.Second, append(h.InNet(), "iptables-save")...)
}

// waitActivate waits until weft answers Plugin.Activate on sock.
func waitActivate(p *testhost.Proc, sock string) error {
	c := newPluginClient(sock)
	return testhost.Poll(15*time.Second, func() error {
		if !p.Alive() {
			return testhost.RetryStop(fmt.Errorf("weft: %w; last lines of %s:\n%s", p.ExitErr(), p.LogPath(), testhost.Tail(p.LogPath(), 30)))
		}
		_, err := c.call("/Plugin.Activate", "")
		return err
	})
}

// pluginClient speaks the plugin protocol over a unix socket, as dockerd's
// plugin client does (HTTP/1.1 with keep-alive, POST, JSON bodies).
type pluginClient struct {
	c *http.Client
}

func newPluginClient(sock string) *pluginClient {
	return &pluginClient{c: &http.Client{
		Timeout: 60 * time.Second,
		Transport: &http.Transport{
			DisableCompression: true,
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", sock)
			},
		},
	}}
}

// call posts body to path and returns the answer; an HTTP error or a
// non-empty Err field is an error.
func (p *pluginClient) call(path, body string) ([]byte, error) {
	req, err := http.NewRequest(http.MethodPost, "http://plugin"+path, strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/vnd.docker.plugins.v1.2+json")
	resp, err := p.c.Do(req)
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK || bytes.Contains(b, []byte(`"Err":"`)) && !bytes.Contains(b, []byte(`"Err":""`)) {
		return b, fmt.Errorf("%s: %s: %s", path, resp.Status, bytes.TrimSpace(b))
	}
	return b, nil
}
