//go:build e2e

package e2e

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// cfg is the suite's configuration, from the environment (package doc).
var cfg struct {
	dir          string
	weftBin      string
	dockerd      string
	docker       string
	plugin       string
	logLevel     string
	keep         bool
	benchRuns    int
	dockerConfig string
}

// suiteErr is why the suite cannot run (set by TestMain; every test reports it).
var suiteErr error

const lockPath = "/run/weft-e2e.lock"

func TestMain(m *testing.M) {
	os.Exit(runSuite(m))
}

func runSuite(m *testing.M) int {
	start := time.Now()
	lock, err := setupSuite()
	if err != nil {
		suiteErr = err
	}
	code := m.Run()
	if err := teardownShared(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: tearing down the shared host:", err)
		code = 1
	}
	if suiteErr == nil && !cfg.keep {
		if err := removeAllUnder(cfg.dir); err != nil {
			fmt.Fprintln(os.Stderr, "e2e:", err)
			code = 1
		}
		removeMountPoints()
	}
	if lock != nil {
		_ = lock.Close()
	}
	fmt.Fprintf(os.Stderr, "e2e: suite took %s\n", time.Since(start).Round(time.Second))
	return code
}

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// setupSuite reads the configuration, takes the machine-wide lock, removes a
// crashed run's leftovers and builds weft.
func setupSuite() (*os.File, error) {
	if os.Geteuid() != 0 {
		return nil, errNotRoot
	}
	cfg.dir = env("WEFT_E2E_DIR", "/tmp/weft-e2e")
	if !filepath.IsAbs(cfg.dir) || filepath.Clean(cfg.dir) == "/" {
		return nil, fmt.Errorf("WEFT_E2E_DIR=%q must be an absolute path other than /", cfg.dir)
	}
	cfg.dir = filepath.Clean(cfg.dir)
	cfg.plugin = env("WEFT_E2E_PLUGIN", "legacy")
	cfg.logLevel = env("WEFT_E2E_LOG_LEVEL", "debug")
	cfg.keep = os.Getenv("WEFT_E2E_KEEP") == "1"
	n, err := strconv.Atoi(env("WEFT_E2E_BENCH_RUNS", "5"))
	if err != nil || n < 1 {
		return nil, fmt.Errorf("WEFT_E2E_BENCH_RUNS=%q must be a positive number", os.Getenv("WEFT_E2E_BENCH_RUNS"))
	}
	cfg.benchRuns = n
	for _, b := range []struct {
		dst       *string
		env, name string
	}{{&cfg.dockerd, "WEFT_E2E_DOCKERD", "dockerd"}, {&cfg.docker, "WEFT_E2E_DOCKER", "docker"}} {
		p, err := exec.LookPath(env(b.env, b.name))
		if err != nil {
			return nil, fmt.Errorf("%s not found (apt-get install -y docker.io, or set %s): %w", b.name, b.env, err)
		}
		*b.dst = p
	}
	for _, tool := range []string{"ip", "nsenter", "unshare", "iptables-save", "ip6tables-save"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("%s not found (apt-get install -y iproute2 util-linux iptables): %w", tool, err)
		}
	}

	lock, err := os.OpenFile(lockPath, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = lock.Close()
		return nil, fmt.Errorf("another e2e run holds %s (one run per machine at a time): %w", lockPath, err)
	}
	if err := cleanupStale(cfg.dir); err != nil {
		return lock, fmt.Errorf("removing an earlier run's leftovers: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(cfg.dir, "bin"), 0o755); err != nil {
		return lock, err
	}
	// Mount points for the hosts' private tmpfs mounts (see startHolder).
	if err := makeMountPoints(); err != nil {
		return lock, err
	}
	cfg.dockerConfig = filepath.Join(cfg.dir, "docker-config")
	if err := os.MkdirAll(cfg.dockerConfig, 0o700); err != nil {
		return lock, err
	}
	cfg.weftBin = os.Getenv("WEFT_E2E_BIN")
	if cfg.weftBin == "" {
		cfg.weftBin = filepath.Join(cfg.dir, "bin", "weft")
		// The test runs in test/e2e; the module root is two levels up.
		if out, err := runT(5*time.Minute, "go", "build", "-o", cfg.weftBin, "../.."); err != nil {
			return lock, fmt.Errorf("building weft: %w\n%s", err, out)
		}
	}
	if cfg.weftBin, err = filepath.Abs(cfg.weftBin); err != nil {
		return lock, err
	}
	if _, err := runT(10*time.Second, cfg.weftBin, "version"); err != nil {
		return lock, fmt.Errorf("weft version: %w", err)
	}
	return lock, nil
}

// mountPoints are directories in the machine's /run that the holders mount
// over; createdDirs are those of them (and their parents) the suite created,
// removed again at the end if still empty.
var (
	mountPoints = []string{"/run/docker/plugins", "/run/containerd"}
	createdDirs []string
)

func makeMountPoints() error {
	for _, mp := range mountPoints {
		var missing []string
		for d := mp; d != "/run"; d = filepath.Dir(d) {
			if _, err := os.Stat(d); errors.Is(err, os.ErrNotExist) {
				missing = append(missing, d)
			}
		}
		if err := os.MkdirAll(mp, 0o755); err != nil {
			return err
		}
		createdDirs = append(createdDirs, missing...) // deepest first
	}
	return nil
}

func removeMountPoints() {
	for _, d := range createdDirs {
		_ = os.Remove(d) // fails harmlessly if someone else uses it now
	}
}

var errNotRoot = errors.New("the e2e tests need root (network namespaces, dockerd)")

// requireSuite skips the test if the suite cannot run as this user and
// fails it if the suite's set-up failed.
func requireSuite(t *testing.T) {
	t.Helper()
	if errors.Is(suiteErr, errNotRoot) {
		t.Skip(suiteErr)
	}
	if suiteErr != nil {
		t.Fatal(suiteErr)
	}
}

var shared struct {
	once sync.Once
	host *Host
	err  error
}

// sharedHost returns the host most tests share (with an outside host),
// creating it on first use. It registers, for the calling test, a check that
// the test left no weft link or rule behind and a dump of the logs on failure.
func sharedHost(t *testing.T) *Host {
	t.Helper()
	requireSuite(t)
	shared.once.Do(func() {
		shared.host, shared.err = startHost("main", hostOptions{outside: true})
	})
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	h := shared.host
	before := h.Snapshot(t)
	// Registered first, so it runs after the test's own cleanups (which
	// remove its containers and networks).
	t.Cleanup(func() {
		h.AssertNothingNew(t, before, t.Name())
		h.WeftAlive(t)
	})
	h.dumpLogsOnFailure(t)
	return h
}

func teardownShared() error {
	if shared.host == nil {
		return nil
	}
	return shared.host.close()
}

// newHost gives the test a fresh host of its own, torn down when it ends.
func newHost(t *testing.T, name string, opt hostOptions) *Host {
	t.Helper()
	requireSuite(t)
	h, err := startHost(name, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := h.close(); err != nil {
			t.Errorf("tearing down host %s: %v", name, err)
		}
	})
	h.dumpLogsOnFailure(t)
	return h
}
