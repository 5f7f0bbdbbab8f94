//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	weftplugin "github.com/weftnet/weft/plugin"
	"github.com/weftnet/weft/test/testhost"
)

// plugin is how weft is installed into a host's dockerd. The legacy plugin
// (a process serving /run/docker/plugins/weft.sock) is the only one so far;
// the managed plugin (docker plugin install/enable) will be a second
// implementation selected with WEFT_E2E_PLUGIN=managed.
type plugin interface {
	// driver is the name for -d and --ipam-driver.
	driver() string
	// start makes weft available to the host's dockerd and waits until it
	// answers.
	start(h *Host) error
	// kill ends weft abruptly (SIGKILL), as a crash would.
	kill(h *Host) error
	// stop ends weft gracefully (SIGTERM) during teardown.
	stop(h *Host) error
	// socket is the path of weft's plugin socket, as the test process
	// sees it.
	socket(h *Host) (string, error)
}

func newPlugin(kind string) (plugin, error) {
	switch kind {
	case "legacy":
		return &legacyPlugin{}, nil
	case "managed":
		return nil, fmt.Errorf("WEFT_E2E_PLUGIN=managed: the managed plugin is not part of the suite yet; use legacy")
	default:
		return nil, fmt.Errorf("WEFT_E2E_PLUGIN=%q: use legacy", kind)
	}
}

// legacyPlugin runs the weft binary in the host's namespaces on the private
// /run/docker/plugins/weft.sock; dockerd finds it by that name.
type legacyPlugin struct{}

func (legacyPlugin) driver() string { return "weft" }

func (l legacyPlugin) start(h *Host) error {
	return l.startWith(h, cfg.weftBin, h.weftEnv)
}

// startWith starts the weft binary bin with env added to its environment,
// and waits until it is ready: it accepts dockerd's handshake (within a
// second or two, as dockerd requires) and then answers a request that waits
// for its start-up to finish (loading the state, reconciling the kernel,
// re-opening published ports). Only then is every network, container and
// published port it had back, and tests can assert that.
func (legacyPlugin) startWith(h *Host, bin string, env []string) error {
	argv := append(h.InHost(), bin, "serve",
		"--socket", "/run/docker/plugins/weft.sock",
		"--state-dir", h.weftStateDir(),
		"--log-level", cfg.logLevel,
	)
	p, err := testhost.StartProcEnv("weft", filepath.Join(h.Dir, "weft.log"), filepath.Join(h.Dir, "weft.pid"), env, argv...)
	if err != nil {
		return err
	}
	h.weft = p
	sock := filepath.Join(h.PluginDir(), "weft.sock")
	dead := func() error {
		return testhost.RetryStop(fmt.Errorf("weft: %w; last lines of %s:\n%s", p.ExitErr(), p.LogPath(), tailFrom(p.LogPath(), 0, 30)))
	}
	// Listen first: the socket must accept within a second or two.
	err = testhost.Poll(10*time.Second, func() error {
		if !p.Alive() {
			return dead()
		}
		return activate(sock)
	})
	if err != nil {
		return err
	}
	return testhost.Poll(60*time.Second, func() error {
		if !p.Alive() {
			return dead()
		}
		return weftReady(sock)
	})
}

// weftReady returns nil once weft at sock has finished starting:
// /Weft.State waits for that, then answers — 200, or an error if the
// start-up failed, which is no reason to wait longer either.
func weftReady(sock string) error {
	_, err := pluginCall(sock, weftplugin.StatePath, 5*time.Second)
	var se *pluginStatusError
	if errors.As(err, &se) {
		if se.code == http.StatusNotFound {
			return testhost.RetryStop(fmt.Errorf("this weft does not serve %s: %w", weftplugin.StatePath, err))
		}
		return nil
	}
	return err
}

func (legacyPlugin) socket(h *Host) (string, error) {
	return filepath.Join(h.PluginDir(), "weft.sock"), nil
}

func (legacyPlugin) kill(h *Host) error {
	if h.weft == nil {
		return nil
	}
	return h.weft.Kill()
}

func (legacyPlugin) stop(h *Host) error {
	if h.weft == nil {
		return nil
	}
	return h.weft.Stop(10 * time.Second)
}

// activate does dockerd's handshake with a legacy plugin and checks that
// both interfaces are implemented.
func activate(sock string) error {
	c := &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		}},
	}
	resp, err := c.Post("http://plugin.moby.localhost/Plugin.Activate", "application/vnd.docker.plugins.v1.2+json", nil)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("Plugin.Activate: %s: %s", resp.Status, b)
	}
	for _, want := range []string{"NetworkDriver", "IpamDriver"} {
		if !strings.Contains(string(b), want) {
			return testhost.RetryStop(fmt.Errorf("Plugin.Activate answered %s: %s is missing", b, want))
		}
	}
	return nil
}

// KillWeft SIGKILLs weft (the kernel state and the store stay).
func (h *Host) KillWeft(t testing.TB) {
	t.Helper()
	if err := h.plugin.kill(h); err != nil {
		t.Fatalf("killing weft: %v", err)
	}
}

// StartWeft starts weft again after KillWeft and waits until it is ready
// (see legacyPlugin.startWith).
func (h *Host) StartWeft(t testing.TB) {
	t.Helper()
	if err := h.plugin.start(h); err != nil {
		t.Fatalf("starting weft: %v", err)
	}
}

// WeftAlive fails the test if weft is no longer running (it must not crash
// on anything the tests do).
func (h *Host) WeftAlive(t testing.TB) {
	t.Helper()
	if h.weft != nil && !h.weft.Alive() {
		t.Errorf("weft is not running: %v; last lines of %s:\n%s", h.weft.ExitErr(), h.weft.LogPath(), tailFrom(h.weft.LogPath(), 0, 30))
	}
}
