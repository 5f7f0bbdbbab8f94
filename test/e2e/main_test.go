//go:build e2e

package e2e

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/weftnet/weft/test/flock"
	"github.com/weftnet/weft/test/testhost"
)

// cfg is the suite's configuration, from the environment (package doc).
var cfg struct {
	prefix       string // WEFT_E2E_PREFIX
	dir          string
	weftBin      string
	dockerd      string
	docker       string
	plugin       string
	logLevel     string
	keep         bool
	benchRuns    int
	dockerConfig string
	// dockerdArgs (WEFT_E2E_DOCKERD_ARGS) are appended to every dockerd's
	// command line; nftables is set when they choose the nftables
	// firewall back-end.
	dockerdArgs []string
	nftables    bool
	// pluginCache (WEFT_E2E_PLUGIN_CACHE) is a directory that runs share
	// the managed plugin's builds through (managed_host_test.go);
	// "" = every run builds its own.
	pluginCache string
}

// suiteErr is why the suite cannot run (set by TestMain; every test reports it).
var suiteErr error

// defaultPrefix is WEFT_E2E_PREFIX's default. A prefix names everything
// machine-wide a run creates: the lock /run/PREFIX.lock, the default
// WEFT_E2E_DIR /tmp/PREFIX, and the namespaces and cgroups PREFIX-NAME
// (nsPrefix). It is "weft-e2e" followed by at most 16 lowercase letters and
// digits, never a "-": so "PREFIX-" never starts another prefix's names
// (weft-e2e- is not the start of weft-e2e26-main, nor weft-e2e2- of
// weft-e2e26-main), and a run's start-up cleanup cannot take another run's
// namespaces or cgroups.
const defaultPrefix = "weft-e2e"

var prefixRE = regexp.MustCompile(`^weft-e2e[a-z0-9]{0,16}$`)

// lockPath is the run's lock: one run per prefix at a time.
func lockPath() string { return "/run/" + cfg.prefix + ".lock" }

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
		if err := testhost.RemoveAllUnder(cfg.dir); err != nil {
			fmt.Fprintln(os.Stderr, "e2e:", err)
			code = 1
		}
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
	cfg.prefix = env("WEFT_E2E_PREFIX", defaultPrefix)
	if !prefixRE.MatchString(cfg.prefix) {
		return nil, fmt.Errorf("WEFT_E2E_PREFIX=%q: want %s followed by at most 16 lowercase letters and digits, no \"-\" (e.g. weft-e2e26)", cfg.prefix, defaultPrefix)
	}
	nsPrefix = cfg.prefix + "-"
	cfg.dir = env("WEFT_E2E_DIR", "/tmp/"+cfg.prefix)
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
	if c := os.Getenv("WEFT_E2E_PLUGIN_CACHE"); c != "" {
		if !filepath.IsAbs(c) {
			return nil, fmt.Errorf("WEFT_E2E_PLUGIN_CACHE=%q must be an absolute path", c)
		}
		cfg.pluginCache = filepath.Clean(c)
	}
	cfg.dockerdArgs = strings.Fields(os.Getenv("WEFT_E2E_DOCKERD_ARGS"))
	for i, a := range cfg.dockerdArgs {
		if a == "--firewall-backend=nftables" || a == "--firewall-backend" && i+1 < len(cfg.dockerdArgs) && cfg.dockerdArgs[i+1] == "nftables" {
			cfg.nftables = true
		}
	}
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

	lock, err := os.OpenFile(lockPath(), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = lock.Close()
		return nil, fmt.Errorf("another e2e run holds %s (one run per prefix at a time; another WEFT_E2E_PREFIX runs beside it): %w", lockPath(), err)
	}
	// The directory is removed next: not if a run of another prefix, still
	// running, has it (a WEFT_E2E_DIR shared by mistake).
	if b, err := os.ReadFile(filepath.Join(cfg.dir, ".prefix")); err == nil {
		if other := strings.TrimSpace(string(b)); other != cfg.prefix && prefixRE.MatchString(other) && flock.Held("/run/"+other+".lock") {
			_ = lock.Close()
			return nil, fmt.Errorf("WEFT_E2E_DIR=%s is in use by the running e2e run of prefix %s: give this run its own directory", cfg.dir, other)
		}
	}
	if err := testhost.CleanupStale(nsPrefix, cfg.dir); err != nil {
		return lock, fmt.Errorf("removing an earlier run's leftovers: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(cfg.dir, "bin"), 0o755); err != nil {
		return lock, err
	}
	if err := os.WriteFile(filepath.Join(cfg.dir, ".prefix"), []byte(cfg.prefix+"\n"), 0o644); err != nil {
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
		if out, err := testhost.RunT(5*time.Minute, "go", "build", "-o", cfg.weftBin, "../.."); err != nil {
			return lock, fmt.Errorf("building weft: %w\n%s", err, out)
		}
	}
	if cfg.weftBin, err = filepath.Abs(cfg.weftBin); err != nil {
		return lock, err
	}
	if _, err := testhost.RunT(10*time.Second, cfg.weftBin, "version"); err != nil {
		return lock, fmt.Errorf("weft version: %w", err)
	}
	return lock, nil
}

// heavyLockPath is the one lock every run on the machine shares, whatever
// its prefix: a run holds it while it does what loads the whole machine —
// the load test's cycles of 32 parallel container starts, the managed
// plugin's Dockerfile build — so that two runs side by side (scripts/test.sh
// runs one per engine) take turns there instead of starving each other. Two
// load tests at once on 2 cores are several times slower than one after
// the other (netns creation and removal and link changes serialize in the
// kernel), and starve dockerd enough to hit its own races. It cannot be a
// prefix's lock (a prefix has no dot).
const heavyLockPath = "/run/weft-e2e.heavy.lock"

// heavyWaitMax bounds the wait for heavyLockPath: a run that holds it for
// longer (hung, or a long WEFT_E2E_LOAD_CYCLES) does not stop this one, which
// then goes ahead beside it.
const heavyWaitMax = 20 * time.Minute

// heavySection waits until no other run is in a heavy section (see
// heavyLockPath), at most heavyWaitMax, and returns how long it waited and
// the function that ends this one's.
func heavySection() (waited time.Duration, release func()) {
	return waitLock(heavyLockPath, heavyWaitMax)
}

// tryHeavySection enters a heavy section only if no other run is in one:
// ok reports whether it did (then release ends it).
func tryHeavySection() (release func(), ok bool) {
	f, err := os.OpenFile(heavyLockPath, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return func() {}, true // no lock to take: go ahead, as heavySection would
	}
	if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
		_ = f.Close()
		return nil, false
	}
	return func() { _ = f.Close() }, true
}

// waitLock takes an exclusive flock on path, waiting at most max, and
// returns how long it waited and the function that releases it. After max
// (or if path cannot be opened) it goes ahead without the lock.
func waitLock(path string, max time.Duration) (waited time.Duration, release func()) {
	start := time.Now()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return 0, func() {}
	}
	for {
		if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil {
			return time.Since(start), func() { _ = f.Close() }
		}
		if time.Since(start) > max {
			_ = f.Close()
			return time.Since(start), func() {}
		}
		time.Sleep(250 * time.Millisecond)
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
