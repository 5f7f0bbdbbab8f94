//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
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

func (legacyPlugin) start(h *Host) error {
	argv := append(h.inHost(), cfg.weftBin, "serve",
		"--socket", "/run/docker/plugins/weft.sock",
		"--state-dir", filepath.Join(h.Dir, "weft-state"),
		"--log-level", cfg.logLevel,
	)
	p, err := startProc("weft", filepath.Join(h.Dir, "weft.log"), filepath.Join(h.Dir, "weft.pid"), argv...)
	if err != nil {
		return err
	}
	h.weft = p
	sock := filepath.Join(h.pluginDir(), "weft.sock")
	// Listen first: the socket must accept within a second or two.
	return poll(10*time.Second, func() error {
		if !p.alive() {
			return retryStop(fmt.Errorf("weft: %w; last lines of %s:\n%s", p.exitErr(), p.log, tailFrom(p.log, 0, 30)))
		}
		return activate(sock)
	})
}

func (legacyPlugin) kill(h *Host) error {
	if h.weft == nil {
		return nil
	}
	return h.weft.kill()
}

func (legacyPlugin) stop(h *Host) error {
	if h.weft == nil {
		return nil
	}
	return h.weft.stop(10 * time.Second)
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
			return retryStop(fmt.Errorf("Plugin.Activate answered %s: %s is missing", b, want))
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

// StartWeft starts weft again after KillWeft.
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
	if h.weft != nil && !h.weft.alive() {
		t.Errorf("weft is not running: %v; last lines of %s:\n%s", h.weft.exitErr(), h.weft.log, tailFrom(h.weft.log, 0, 30))
	}
}
