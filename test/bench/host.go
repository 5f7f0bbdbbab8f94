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
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// image is the busybox image the docker host gets (test/image/mkimage.sh).
const image = "weft-bench/busybox:latest"

// dockerHost is one "machine" with its own dockerd and weft (legacy plugin),
// built like an end-to-end test host (test/e2e/doc.go): a network namespace,
// a holder process in it with a private mount namespace, and dockerd and
// weft entered into both.
type dockerHost struct {
	name  string // short name, e.g. "main"
	netns string // weft-bench-<name>
	dir   string // <work dir>/<name>
	sock  string // dockerd's API socket

	holder, dockerd, weft *proc
}

func startDockerHost(name string) (h *dockerHost, err error) {
	h = &dockerHost{name: name, netns: nsPrefix + name, dir: filepath.Join(cfg.dir, name)}
	h.sock = filepath.Join(h.dir, "docker.sock")
	defer func() {
		if err != nil {
			err = fmt.Errorf("starting docker host %s: %w", name, err)
			if cerr := h.close(); cerr != nil {
				err = fmt.Errorf("%w (and cleaning up: %v)", err, cerr)
			}
		}
	}()
	for _, d := range []string{"data", "exec", "weft-state"} {
		if err := os.MkdirAll(filepath.Join(h.dir, d), 0o755); err != nil {
			return h, err
		}
	}
	if err := addNetNS(h.netns); err != nil {
		return h, err
	}
	if err := h.startHolder(); err != nil {
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
	if _, err := runEnv(ctx, dockerEnv(), mkimage, "-H", "unix://"+h.sock, image); err != nil {
		return h, fmt.Errorf("importing the test image: %w", err)
	}
	return h, nil
}

// startHolder starts the process whose mount namespace dockerd and weft join.
// It mounts a private tmpfs over all of /run rather than over
// /run/docker/plugins alone: the end-to-end suite, running concurrently,
// removes /run/docker/plugins in the root namespace when it created it, and
// removing a directory detaches the mounts on it in every namespace.
func (h *dockerHost) startHolder() error {
	script := "mount -t tmpfs -o mode=755 weft-bench /run && " +
		"mkdir -p /run/docker/plugins /run/containerd && exec sleep infinity"
	p, err := startProc("holder", filepath.Join(h.dir, "holder.log"), filepath.Join(h.dir, "holder.pid"),
		"nsenter", "--net=/var/run/netns/"+h.netns, "--",
		"unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script)
	if err != nil {
		return err
	}
	h.holder = p
	return poll(10*time.Second, func() error {
		if !p.alive() {
			return retryStop(fmt.Errorf("holder: %w: %s", p.exitErr(), tail(p.log, 20)))
		}
		comm, _ := os.ReadFile("/proc/" + strconv.Itoa(p.pid()) + "/comm")
		if strings.TrimSpace(string(comm)) != "sleep" {
			return errors.New("holder has not mounted its tmpfs yet")
		}
		return nil
	})
}

// inHost is the argv prefix that runs a command in the host's network and
// mount namespaces.
func (h *dockerHost) inHost() []string {
	return []string{"nsenter", "--target", strconv.Itoa(h.holder.pid()), "--mount", "--net", "--"}
}

// inNet is the argv prefix that runs a command in the host's network
// namespace only.
func (h *dockerHost) inNet() []string {
	return []string{"nsenter", "--net=/var/run/netns/" + h.netns, "--"}
}

func (h *dockerHost) startWeft() error {
	argv := append(h.inHost(), cfg.weftBin, "serve",
		"--socket", "/run/docker/plugins/weft.sock",
		"--state-dir", filepath.Join(h.dir, "weft-state"),
		"--log-level", cfg.logLevel,
	)
	p, err := startProc("weft", filepath.Join(h.dir, "weft.log"), filepath.Join(h.dir, "weft.pid"), argv...)
	if err != nil {
		return err
	}
	h.weft = p
	sock := "/proc/" + strconv.Itoa(h.holder.pid()) + "/root/run/docker/plugins/weft.sock"
	return waitActivate(p, sock)
}

func (h *dockerHost) startDockerd() error {
	// An explicit configuration: the machine's /etc/docker/daemon.json must
	// not leak in. deprecated-key-path keeps dockerd 20.10 out of /etc/docker.
	conf := fmt.Sprintf(`{"live-restore": false, "deprecated-key-path": %q}`+"\n", filepath.Join(h.dir, "key.json"))
	if err := os.WriteFile(filepath.Join(h.dir, "daemon.json"), []byte(conf), 0o644); err != nil {
		return err
	}
	argv := append(h.inHost(), cfg.dockerd,
		"--config-file", filepath.Join(h.dir, "daemon.json"),
		"--data-root", filepath.Join(h.dir, "data"),
		"--exec-root", filepath.Join(h.dir, "exec"),
		"--pidfile", filepath.Join(h.dir, "dockerd.pid"),
		"-H", "unix://"+h.sock,
		"--cgroup-parent", "/"+h.netns,
		"--log-level", "info",
	)
	p, err := startProc("dockerd", filepath.Join(h.dir, "dockerd.log"), "", argv...)
	if err != nil {
		return err
	}
	h.dockerd = p
	client := &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", h.sock)
		}},
	}
	return poll(90*time.Second, func() error {
		if !p.alive() {
			return retryStop(fmt.Errorf("dockerd: %w; last lines of %s:\n%s", p.exitErr(), p.log, tail(p.log, 30)))
		}
		resp, err := client.Get("http://docker/_ping")
		if err != nil {
			return err
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("dockerd /_ping: %s", resp.Status)
		}
		return nil
	})
}

// close tears the host down: containers, dockerd, weft, everything left in
// its namespace or cgroups, the namespace and the directory.
func (h *dockerHost) close() error {
	var errs []error
	if h.dockerd != nil && h.dockerd.alive() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		if ids, err := h.docker(ctx, "ps", "-aq"); err == nil && strings.TrimSpace(ids) != "" {
			if _, err := h.docker(ctx, append([]string{"rm", "-f"}, strings.Fields(ids)...)...); err != nil {
				errs = append(errs, err)
			}
		}
		cancel()
		if err := h.dockerd.stop(30 * time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	if err := h.weft.stop(10 * time.Second); err != nil {
		errs = append(errs, err)
	}
	if err := h.holder.kill(); err != nil {
		errs = append(errs, err)
	}
	if err := killNetNS(h.netns); err != nil {
		errs = append(errs, err)
	}
	if err := removeCgroups(h.netns); err != nil {
		errs = append(errs, err)
	}
	if err := deleteNetNS(h.netns); err != nil {
		errs = append(errs, err)
	}
	if err := removeAllUnder(h.dir); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// dockerEnv is the CLI's environment: the machine's DOCKER_* variables and
// ~/.docker (contexts) must not redirect it to another engine.
func dockerEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DOCKER_") {
			env = append(env, kv)
		}
	}
	return append(env, "DOCKER_CONFIG="+filepath.Join(cfg.dir, "docker-config"), "DOCKER_CLI_HINTS=false")
}

// docker runs the docker CLI against the host's dockerd and returns stdout.
func (h *dockerHost) docker(ctx context.Context, args ...string) (string, error) {
	full := append([]string{"-H", "unix://" + h.sock}, args...)
	cmd := exec.CommandContext(ctx, cfg.docker, full...)
	cmd.Env = dockerEnv()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", err, ctx.Err())
		}
		return out.String(), fmt.Errorf("docker %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
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
	return runT(30*time.Second, append(h.inNet(), "iptables-save")...)
}

// waitActivate waits until weft answers Plugin.Activate on sock.
func waitActivate(p *proc, sock string) error {
	c := newPluginClient(sock)
	return poll(15*time.Second, func() error {
		if !p.alive() {
			return retryStop(fmt.Errorf("weft: %w; last lines of %s:\n%s", p.exitErr(), p.log, tail(p.log, 30)))
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
