//go:build e2e

package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"github.com/weftnet/weft/test/testhost"
)

// The managed plugin's end-to-end set-up (managed_test.go has the tests):
//
//   - a registry: Debian's docker-registry on 127.0.0.1:PORT of the test's
//     own (root) network namespace, storing under WEFT_E2E_DIR/registry. PORT
//     is one the kernel hands out (nobody else's), chosen at the first start
//     and kept while no one else takes it (another is chosen if the registry
//     cannot bind it); Docker treats any 127.0.0.0/8 registry as insecure,
//     whatever the port;
//   - a builder: a dockerd in the root network namespace (so that the
//     Dockerfile's apt-get and `go mod download` reach the package
//     registries) with its networking off (--bridge none, --iptables=false,
//     --ip-forward=false: it changes nothing in the machine's network) and a
//     private mount namespace (a private /run, see testhost.HolderScript).
//     scripts/build-plugin.sh builds the plugin into it (the first tag
//     from the Dockerfile alone, the second with --binary and a weft built
//     by the test), pushes it to the registry and the local copy is
//     removed; the builder is stopped once both tags are pushed. With
//     WEFT_E2E_PLUGIN_CACHE the builds are shared by the runs that use the
//     same directory (below: the plugin cache). TestManagedPluginBuild, the
//     first managed test, does this;
//   - managed hosts: like the legacy hosts (own network namespace, exec-root,
//     data-root, state directory), but with no weft process: the plugin is
//     installed from the registry with `docker plugin install`. A host's
//     dockerd has its own loopback, so a forwarder (a socket the test opens
//     inside the host's namespace) carries the host's 127.0.0.1:PORT to the
//     registry's. The plugin's references name 127.0.0.1:PORT (managedRef).
//
// The plugin writes to dockerd's log (lines with plugin=<id>), so a managed
// host's weft log is its dockerd.log.

// The tags are two builds that differ in their compiled-in version.
const (
	managedTag1 = "e2e1"
	managedTag2 = "e2e2"
)

// registryAddr is where the registry listens (127.0.0.1:PORT), set by the
// first runRegistry; "" before.
var registryAddr string

// managedRepo is the plugin's repository in the registry.
func managedRepo() string { return registryAddr + "/weft" }

// managedRef is the registry reference of a tag.
func managedRef(tag string) string { return managedRepo() + ":" + tag }

// ---- registry

// registry is a docker-registry process the test started.
type registry struct{ p *testhost.Proc }

// startRegistry starts the registry on 127.0.0.1:PORT (registryAddr) with
// storage under WEFT_E2E_DIR/registry (kept for the whole run, so what the
// builder pushed is there for every test) and stops it when the test ends.
func startRegistry(t *testing.T) *registry {
	t.Helper()
	requireSuite(t)
	r, err := runRegistry()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := r.p.Stop(10 * time.Second); err != nil {
			t.Errorf("stopping the registry: %v", err)
		}
	})
	return r
}

func runRegistry() (*registry, error) {
	dir := filepath.Join(cfg.dir, "registry")
	if err := os.MkdirAll(filepath.Join(dir, "storage"), 0o755); err != nil {
		return nil, err
	}
	bin, err := exec.LookPath("docker-registry")
	if err != nil {
		return nil, fmt.Errorf("docker-registry not found (apt-get install -y docker-registry): %w", err)
	}
	// The port of the earlier start first (the plugin's references name it),
	// then ports the kernel hands out: between our probe and the registry's
	// bind another program may take one, and then the registry cannot bind
	// it (or, worse, we would talk to that program): try another.
	var errs []error
	for attempt := 0; attempt < 5; attempt++ {
		addr := registryAddr
		if addr == "" || attempt > 0 {
			if addr, err = freeLoopbackAddr(); err != nil {
				return nil, err
			}
		}
		r, err := startRegistryAt(bin, dir, addr)
		if err == nil {
			registryAddr = addr
			return r, nil
		}
		errs = append(errs, fmt.Errorf("on %s: %w", addr, err))
	}
	return nil, fmt.Errorf("starting the registry: %w", errors.Join(errs...))
}

// freeLoopbackAddr returns 127.0.0.1:PORT with a port the kernel just handed
// out (and that nothing listens on now).
func freeLoopbackAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := l.Addr().String()
	return addr, l.Close()
}

// startRegistryAt starts the registry on addr and waits until it answers.
// Every answer carries a header with a token of this start, so an answer
// from another program that holds addr is never taken for the registry's.
func startRegistryAt(bin, dir, addr string) (*registry, error) {
	token := fmt.Sprintf("%s-%d-%d", cfg.prefix, os.Getpid(), time.Now().UnixNano())
	conf := fmt.Sprintf(`version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
  secret: %s
  headers:
    X-Weft-E2e: [%q]
health:
  storagedriver:
    enabled: false
`, filepath.Join(dir, "storage"), addr, cfg.prefix, token)
	confPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	p, err := testhost.StartProc("registry", filepath.Join(dir, "registry.log"), filepath.Join(dir, "registry.pid"), bin, "serve", confPath)
	if err != nil {
		return nil, err
	}
	r := &registry{p: p}
	client := &http.Client{Timeout: 2 * time.Second}
	err = testhost.Poll(20*time.Second, func() error {
		if !p.Alive() {
			return testhost.RetryStop(fmt.Errorf("registry: %w: %s", p.ExitErr(), tailFrom(p.LogPath(), 0, 20)))
		}
		resp, err := client.Get("http://" + addr + "/v2/")
		if err != nil {
			return err
		}
		_ = resp.Body.Close()
		if got := resp.Header.Get("X-Weft-E2e"); got != token {
			return testhost.RetryStop(fmt.Errorf("something else answers on %s (%s, header X-Weft-E2e %q)", addr, resp.Status, got))
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("registry /v2/: %s", resp.Status)
		}
		return nil
	})
	if err != nil {
		_ = p.Stop(5 * time.Second)
		return nil, err
	}
	return r, nil
}

// ---- builder

// built is the result of building and pushing the plugin, once per run.
var built struct {
	once sync.Once
	err  error
	// log says what the build did (sizes, timings), for the first test.
	log []string
}

// requireManagedPlugin builds the plugin and pushes both tags to the
// registry, once per run; later calls return at once. The registry must be
// running (startRegistry).
func requireManagedPlugin(t *testing.T) {
	t.Helper()
	requireSuite(t)
	built.once.Do(func() { built.log, built.err = buildAndPush() })
	for _, l := range built.log {
		t.Log(l)
	}
	built.log = nil
	if built.err != nil {
		t.Fatal(built.err)
	}
}

func buildAndPush() (log []string, err error) {
	// A private /run (testhost.HolderScript) keeps the builder's plugin
	// directory and containerd directory off the machine's.
	m, err := testhost.StartBuilder(filepath.Join(cfg.dir, "builder"), cfg.prefix, cfg.dockerd, nsPrefix+"builder", cfg.dockerdArgs...)
	if err != nil {
		return nil, err
	}
	defer func() {
		if serr := m.StopBuilder(nsPrefix + "builder"); serr != nil && err == nil {
			err = serr
		}
	}()
	b := &Host{Name: "builder", Machine: *m}

	// From WEFT_E2E_PLUGIN_CACHE if a run sharing it has built the plugin
	// already from this tree (or is building it now: its lock), else
	// built here.
	var cache *pluginCache
	if cfg.pluginCache != "" {
		c, waited, err := openPluginCache()
		if err != nil {
			return log, fmt.Errorf("WEFT_E2E_PLUGIN_CACHE: %w", err)
		}
		if waited > time.Second {
			log = append(log, fmt.Sprintf("waited %s for another run building into %s", waited.Round(time.Second), cfg.pluginCache))
		}
		if c != nil {
			defer func() { c.release() }()
			cache = c
		} else {
			log = append(log, "that run still holds the cache's lock: building here, without the cache")
		}
	}
	releaseHeavy := func() {}
	defer func() { releaseHeavy() }()
	for _, tag := range []string{managedTag1, managedTag2} {
		ref := managedRef(tag)
		start := time.Now()
		if cache != nil && cache.built[tag] != "" {
			if err := b.pushPluginDir(ref, cache.dir[tag]); err != nil {
				return log, err
			}
			log = append(log, fmt.Sprintf("created %s from %s (%s) and pushed it in %s", ref, cache.dir[tag], cache.built[tag], time.Since(start).Round(time.Second)))
			continue
		}
		args := []string{ref, "--version", tag, "--push"}
		how := "from the Dockerfile"
		switch tag {
		case managedTag1:
			// The Dockerfile's build stage compiles weft in a container,
			// with no build cache: one run's at a time on the machine
			// (heavyLockPath).
			var waited time.Duration
			waited, releaseHeavy = heavySection()
			if waited > time.Second {
				log = append(log, fmt.Sprintf("waited %s for another e2e run's heavy section (%s) to end", waited.Round(time.Second), heavyLockPath))
			}
		case managedTag2:
			// The second tag takes the other way users have, --binary,
			// with a weft built here, where Go's build cache makes it
			// seconds instead of another full compile (and the docker
			// build only builds the runtime stage, which the first tag's
			// build left in the builder's cache: not a heavy section).
			bin := filepath.Join(cfg.dir, "bin", "weft-"+tag)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-buildvcs=false",
				"-ldflags", "-s -w -X main.version="+tag, "-o", bin, "../..")
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
			out, err := cmd.CombinedOutput()
			cancel()
			if err != nil {
				return log, fmt.Errorf("building weft for %s: %w\n%s", tag, err, out)
			}
			args = append(args, "--binary", bin)
			how = "with --binary"
		}
		var extraEnv []string
		if cache != nil {
			// build-plugin.sh keeps the plugin directory (rootfs and
			// config.json) in a temporary directory on the cache's file
			// system, to be renamed into it.
			extraEnv = []string{"KEEP_DIR=1", "TMPDIR=" + cache.tmp}
		}
		out, err := b.buildPluginEnv(extraEnv, args...)
		releaseHeavy()
		releaseHeavy = func() {}
		if err != nil {
			return log, err
		}
		log = append(log, fmt.Sprintf("built and pushed %s in %s:\n%s", ref, time.Since(start).Round(time.Second), out))
		if cache != nil {
			kept, ok := testhost.KeptPluginDir(out)
			if !ok {
				return log, fmt.Errorf("scripts/build-plugin.sh with KEEP_DIR=1 did not say where it kept the plugin directory:\n%s", out)
			}
			engine, _, _ := b.DockerErr("version", "--format", "{{.Server.Version}}")
			what := fmt.Sprintf("built %s by scripts/build-plugin.sh with Docker %s in run %s in %s",
				how, strings.TrimSpace(engine), cfg.prefix, time.Since(start).Round(time.Second))
			if err := cache.store(tag, kept, what); err != nil {
				return log, fmt.Errorf("WEFT_E2E_PLUGIN_CACHE: %w", err)
			}
			log = append(log, "saved the plugin directory as "+cache.dir[tag]+" for the runs sharing "+cfg.pluginCache)
		}
		// The local copy goes: every host installs from the registry.
		ctx, cancel := context.WithTimeout(context.Background(), dockerTimeout)
		_, err = b.docker(ctx, "plugin", "rm", ref)
		cancel()
		if err != nil {
			return log, err
		}
	}
	return log, nil
}

// pushPluginDir creates the plugin ref from a plugin directory (rootfs and
// config.json, as build-plugin.sh makes it) with `docker plugin create`,
// pushes it and removes the local copy.
func (h *Host) pushPluginDir(ref, dir string) error {
	for _, args := range [][]string{{"plugin", "create", ref, dir}, {"plugin", "push", ref}, {"plugin", "rm", ref}} {
		ctx, cancel := context.WithTimeout(context.Background(), dockerTimeout)
		_, err := h.docker(ctx, args...)
		cancel()
		if err != nil {
			return err
		}
	}
	return nil
}

// ---- the plugin cache (WEFT_E2E_PLUGIN_CACHE)
//
// The Dockerfile build takes minutes; runs that share a cache directory
// (scripts/test.sh's pre-build and its engine runs) build the plugin once.
// The directory holds, per tag and key (a hash of the build's inputs: the
// files of the build context, the Go version and the tag), KEY/plugin
// (rootfs and config.json, what build-plugin.sh gives `docker plugin
// create`) and KEY/built (how it was built, written last). A run holds
// DIR/.lock from looking until it has stored its builds, so the others wait
// for those builds instead of making their own.

type pluginCache struct {
	dir    map[string]string // tag -> KEY/plugin
	built  map[string]string // tag -> KEY/built's text; "" if not built yet
	tmp    string            // a temporary directory in DIR
	unlock func()            // releases DIR/.lock; nil once released
}

// release removes the temporary directory and releases the lock (once).
func (c *pluginCache) release() {
	if c.tmp != "" {
		_ = os.RemoveAll(c.tmp)
		c.tmp = ""
	}
	if c.unlock != nil {
		c.unlock()
		c.unlock = nil
	}
}

// pluginCacheWaitMax bounds the wait for a run that is building into the
// cache; after it, this run builds on its own.
const pluginCacheWaitMax = 30 * time.Minute

// openPluginCache takes the cache's lock and returns what it holds for
// this tree's tags, built or not; nil if the lock was not had within
// pluginCacheWaitMax.
func openPluginCache() (*pluginCache, time.Duration, error) {
	if err := os.MkdirAll(cfg.pluginCache, 0o755); err != nil {
		return nil, 0, err
	}
	c := &pluginCache{dir: map[string]string{}, built: map[string]string{}}
	for _, tag := range []string{managedTag1, managedTag2} {
		key, err := pluginCacheKey(tag)
		if err != nil {
			return nil, 0, err
		}
		c.dir[tag] = filepath.Join(cfg.pluginCache, key, "plugin")
	}
	waited, release := waitLock(filepath.Join(cfg.pluginCache, ".lock"), pluginCacheWaitMax)
	if waited > pluginCacheWaitMax {
		release() // (waitLock went ahead without the lock)
		return nil, waited, nil
	}
	c.unlock = release
	for tag, dir := range c.dir {
		if b, err := os.ReadFile(filepath.Join(filepath.Dir(dir), "built")); err == nil {
			c.built[tag] = strings.TrimSpace(string(b))
		}
	}
	var err error
	if c.tmp, err = os.MkdirTemp(cfg.pluginCache, "tmp-"+cfg.prefix+"-"); err != nil {
		c.release()
		return nil, waited, err
	}
	return c, waited, nil
}

// store moves the plugin directory of tag kept by build-plugin.sh into the
// cache and marks it built.
func (c *pluginCache) store(tag, kept, what string) error {
	dir := c.dir[tag]
	if err := os.RemoveAll(filepath.Dir(dir)); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return err
	}
	if err := os.Rename(kept, dir); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(filepath.Dir(dir), "built"), []byte(what+"\n"), 0o644)
}

// pluginCacheKey hashes what the plugin's build depends on: every
// file of the source tree (tracked or untracked and not ignored, as git
// lists them) that is in the build's context (not left out by
// .dockerignore: so editing a test does not make another build), the
// Dockerfile, config.json and the build scripts, the Go version (the
// stand-in golang image is this machine's Go) and the tag (compiled in as
// the version).
func pluginCacheKey(tag string) (string, error) {
	out, err := testhost.RunT(time.Minute, "git", "-C", "../..", "ls-files", "-z", "--cached", "--others", "--exclude-standard")
	if err != nil {
		return "", fmt.Errorf("listing the source tree: %w", err)
	}
	ignore, err := os.ReadFile("../../.dockerignore")
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	always := []string{"Dockerfile", ".dockerignore", "config.json", "scripts/build-plugin.sh", "scripts/seed-base-images.sh"}
	var files []string
	for _, f := range strings.Split(strings.TrimRight(out, "\x00"), "\x00") {
		if slices.Contains(always, f) || !dockerIgnored(string(ignore), f) {
			files = append(files, f)
		}
	}
	slices.Sort(files)
	files = slices.Compact(files)
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00", runtime.Version(), tag)
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join("../..", f))
		if errors.Is(err, fs.ErrNotExist) {
			b = []byte("(deleted)")
		} else if err != nil {
			return "", err
		}
		sum := sha256.Sum256(b)
		fmt.Fprintf(h, "%s\x00%x\x00", f, sum)
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// dockerIgnored reports whether the .dockerignore text leaves path out of
// the build context, for the patterns weft's uses: NAME or DIR/NAME (that
// path and everything under it) and **/PATTERN (at any depth). It errs
// towards "not ignored" (a bigger key, never a stale build): with an
// exception (!PATTERN) in the file it ignores nothing.
func dockerIgnored(dockerignore, path string) bool {
	var pats []string
	for _, l := range strings.Split(dockerignore, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if strings.HasPrefix(l, "!") {
			return false
		}
		pats = append(pats, strings.TrimPrefix(l, "/"))
	}
	parts := strings.Split(path, "/")
	for _, p := range pats {
		anyDepth := strings.HasPrefix(p, "**/")
		p = strings.TrimPrefix(p, "**/")
		n := strings.Count(p, "/") + 1
		// The path or one of its parent directories matches, counted
		// from the top (from any depth for **/).
		for start := 0; start+n <= len(parts) && (start == 0 || anyDepth); start++ {
			if ok, _ := filepath.Match(p, strings.Join(parts[start:start+n], "/")); ok {
				return true
			}
		}
	}
	return false
}

// buildPluginEnv runs scripts/build-plugin.sh against the host's dockerd,
// with env added to its environment, and returns what it printed.
func (h *Host) buildPluginEnv(env []string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "../../scripts/build-plugin.sh", args...)
	cmd.Env = append(append(dockerEnv(), "DOCKER_HOST=unix://"+h.Sock, "DOCKER="+cfg.docker), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("scripts/build-plugin.sh %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// ---- managed hosts

// managedHostOptions tune newManagedHost.
type managedHostOptions struct {
	// tag to install (default managedTag1); "" with noInstall.
	tag string
	// settings passed to docker plugin install (KEY=VALUE), besides
	// state.source, which is always the host's own state directory.
	settings []string
	// noInstall leaves the plugin out (the test installs it).
	noInstall bool
	// dockerdEnv is added to dockerd's environment (e.g. a PATH whose
	// iptables is the legacy one).
	dockerdEnv []string
}

// newManagedHost gives the test a host with the managed plugin installed
// from the registry (which must be running), torn down when the test ends.
func newManagedHost(t *testing.T, name string, opt managedHostOptions) *Host {
	t.Helper()
	requireManagedPlugin(t)
	if opt.tag == "" {
		opt.tag = managedTag1
	}
	mp := &managedPlugin{ref: managedRef(opt.tag)}
	h := &Host{Name: name, Machine: testhost.NewMachine(nsPrefix+name, filepath.Join(cfg.dir, name)), plugin: mp}
	t.Cleanup(func() {
		if err := h.close(); err != nil {
			t.Errorf("tearing down host %s: %v", name, err)
		}
		if mp.fwd != nil {
			_ = mp.fwd.Close()
		}
	})
	if err := mp.setUp(h, opt.dockerdEnv); err != nil {
		t.Fatalf("starting host %s: %v", name, err)
	}
	h.dumpLogsOnFailure(t)
	if !opt.noInstall {
		mp.Install(t, h, opt.settings...)
	}
	return h
}

// managedPlugin is weft installed as a managed plugin into the host's
// dockerd. It implements the suite's plugin interface.
type managedPlugin struct {
	ref      string // the name it was installed under (= driver name)
	stateDir string // the host directory mounted as weft's state directory
	fwd      io.Closer
}

func (m *managedPlugin) driver() string { return m.ref }

// setUp makes the host: namespace, holder, forwarder, dockerd, test image.
func (m *managedPlugin) setUp(h *Host, dockerdEnv []string) error {
	m.stateDir = filepath.Join(h.Dir, "plugin-state")
	for _, d := range []string{"data", "exec"} {
		if err := os.MkdirAll(filepath.Join(h.Dir, d), 0o755); err != nil {
			return err
		}
	}
	if err := h.initNetNS(); err != nil {
		return err
	}
	if err := h.StartHolder(cfg.prefix); err != nil {
		return err
	}
	fwd, err := forwardLoopback("/var/run/netns/"+h.NetNS, registryAddr)
	if err != nil {
		return fmt.Errorf("forwarding the host's %s to the registry: %w", registryAddr, err)
	}
	m.fwd = fwd
	if err := h.startDockerdEnv(dockerdEnv); err != nil {
		return err
	}
	if _, err := testhost.RunT(2*time.Minute, "../image/mkimage.sh", "-H", "unix://"+h.Sock, testImage); err != nil {
		return fmt.Errorf("importing the test image: %w", err)
	}
	return nil
}

// startDockerdEnv is startDockerd with variables added to dockerd's
// environment (through env(1), after nsenter).
func (h *Host) startDockerdEnv(extra []string) error {
	if len(extra) == 0 {
		return h.startDockerd()
	}
	if err := h.WriteDaemonConfig(false); err != nil {
		return err
	}
	argv := h.dockerdArgv()
	i := slices.Index(argv, cfg.dockerd)
	if err := h.SpawnDockerd(slices.Concat(argv[:i], []string{"env"}, extra, argv[i:])); err != nil {
		return err
	}
	return h.waitDockerd()
}

// Install runs docker plugin install from the registry with the given
// settings plus state.source (the host directory is made first: dockerd does
// not create a missing bind-mount source), and waits until the plugin
// answers.
func (m *managedPlugin) Install(t testing.TB, h *Host, settings ...string) {
	t.Helper()
	if err := os.MkdirAll(m.stateDir, 0o755); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"plugin", "install", "--grant-all-permissions", m.ref, "state.source=" + m.stateDir}, settings...)
	start := time.Now()
	h.Docker(t, args...)
	t.Logf("host %s: docker plugin install %s took %s", h.Name, m.ref, time.Since(start).Round(10*time.Millisecond))
	if err := m.waitReady(h); err != nil {
		t.Fatal(err)
	}
}

func (m *managedPlugin) start(h *Host) error {
	enabled, err := m.enabled(h)
	if err != nil {
		return err
	}
	if !enabled {
		if _, _, err := h.DockerErr("plugin", "enable", m.ref); err != nil {
			return err
		}
	}
	return m.waitReady(h)
}

// kill SIGKILLs the plugin's process; dockerd restarts it.
func (m *managedPlugin) kill(h *Host) error {
	pid, err := m.pid(h)
	if err != nil {
		return err
	}
	return testhost.KillPIDs([]int{pid})
}

// stop has nothing to do: dockerd stops its plugins when it stops, and the
// host's teardown stops dockerd first.
func (m *managedPlugin) stop(h *Host) error { return nil }

func (m *managedPlugin) enabled(h *Host) (bool, error) {
	out, _, err := h.DockerErr("plugin", "inspect", "-f", "{{.Enabled}}", m.ref)
	if err != nil {
		return false, err
	}
	return strings.TrimSpace(out) == "true", nil
}

// id is the plugin's full ID.
func (m *managedPlugin) id(h *Host) (string, error) {
	out, _, err := h.DockerErr("plugin", "inspect", "-f", "{{.Id}}", m.ref)
	return strings.TrimSpace(out), err
}

// waitReady waits until the plugin is enabled, its process runs and its
// socket answers NetworkDriver.GetCapabilities.
func (m *managedPlugin) waitReady(h *Host) error {
	return testhost.Poll(30*time.Second, func() error {
		ok, err := m.enabled(h)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("plugin %s is not enabled", m.ref)
		}
		sock, err := m.socket(h)
		if err != nil {
			return err
		}
		return getCapabilities(sock)
	})
}

// socket finds the plugin's socket as the test process sees it. dockerd
// 20.10 keeps plugin sockets under /run/docker/plugins/<id>/ (the holder's
// private tmpfs), newer ones under <exec-root>/plugins/<id>/.
func (m *managedPlugin) socket(h *Host) (string, error) {
	id, err := m.id(h)
	if err != nil {
		return "", err
	}
	for _, dir := range []string{filepath.Join(h.PluginDir(), id), filepath.Join(h.Dir, "exec", "plugins", id)} {
		p := filepath.Join(dir, "weft.sock")
		if st, err := os.Stat(p); err == nil && st.Mode()&os.ModeSocket != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("no socket of plugin %s (%s) yet", m.ref, id)
}

// getCapabilities asks the plugin at sock what dockerd asks first.
func getCapabilities(sock string) error {
	// The path through /proc/PID/root and a 64-digit plugin ID is longer
	// than a socket address may be (108 bytes): dial it through an open
	// descriptor of its directory instead.
	dir, err := os.Open(filepath.Dir(sock))
	if err != nil {
		return err
	}
	defer func() { _ = dir.Close() }()
	short := fmt.Sprintf("/proc/self/fd/%d/%s", dir.Fd(), filepath.Base(sock))
	c := &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{
			DisableKeepAlives: true,
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", short)
			},
		},
	}
	resp, err := c.Post("http://plugin.moby.localhost/NetworkDriver.GetCapabilities", "application/vnd.docker.plugins.v1.2+json", strings.NewReader("{}"))
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), `"Scope"`) {
		return fmt.Errorf("NetworkDriver.GetCapabilities: %s: %s", resp.Status, b)
	}
	return nil
}

// pid finds the plugin's process: "/usr/bin/weft serve" in the host's
// network namespace (the plugin uses the host network).
func (m *managedPlugin) pid(h *Host) (int, error) {
	pids, err := weftPIDs(h)
	if err != nil {
		return 0, err
	}
	switch len(pids) {
	case 0:
		return 0, fmt.Errorf("no weft process in %s", h.NetNS)
	case 1:
		return pids[0], nil
	default:
		return 0, fmt.Errorf("%d weft processes in %s: %v", len(pids), h.NetNS, pids)
	}
}

func weftPIDs(h *Host) ([]int, error) {
	out, err := testhost.RunT(10*time.Second, "ip", "netns", "pids", h.NetNS)
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, f := range strings.Fields(out) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			continue
		}
		cmd, _ := os.ReadFile("/proc/" + f + "/cmdline")
		if string(cmd) == "/usr/bin/weft\x00serve\x00" && testhost.PIDAlive(pid) {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// ---- the plugin's log (in dockerd's)

// weftLogLine is one line weft wrote, as dockerd logged it.
type weftLogLine struct {
	Time  time.Time // weft's own timestamp
	Level string    // weft's level (DEBUG, INFO, ...)
	Msg   string    // weft's whole line (slog text)
}

var (
	// time="..." level=info msg="time=2026-11-22T15:20:01.123Z level=INFO msg=listening ..." plugin=<id>
	pluginLineRE = regexp.MustCompile(`msg="(.*)" plugin=([0-9a-f]{64})\s*$`)
	slogTimeRE   = regexp.MustCompile(`^time=(\S+) level=(\S+) `)
)

// weftLog returns the lines weft (the plugin with this id) wrote to
// dockerd's log after offset.
func weftLog(h *Host, id string, offset int64) []weftLogLine {
	b, err := os.ReadFile(filepath.Join(h.Dir, "dockerd.log"))
	if err != nil {
		return nil
	}
	if offset > int64(len(b)) {
		offset = 0
	}
	var out []weftLogLine
	for _, line := range strings.Split(string(b[offset:]), "\n") {
		m := pluginLineRE.FindStringSubmatch(line)
		if m == nil || m[2] != id {
			continue
		}
		msg := m[1]
		// dockerd quotes the line it logs: undo it.
		if s, err := strconv.Unquote(`"` + msg + `"`); err == nil {
			msg = s
		}
		l := weftLogLine{Msg: msg}
		if tm := slogTimeRE.FindStringSubmatch(msg); tm != nil {
			l.Time, _ = time.Parse(time.RFC3339Nano, tm[1])
			l.Level = tm[2]
		}
		out = append(out, l)
	}
	return out
}

// processStart is when pid started, from /proc (its start in clock ticks
// since boot, against the uptime now: both count from boot, so the result
// is good to a tick, 10 ms).
func processStart(pid int) (time.Time, error) {
	now := time.Now()
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return time.Time{}, err
	}
	uptime, err := os.ReadFile("/proc/uptime")
	if err != nil {
		return time.Time{}, err
	}
	s := string(stat)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	// Field 22 of stat is starttime; fields here start at field 3.
	ticks, err := strconv.ParseInt(fields[22-3], 10, 64)
	if err != nil {
		return time.Time{}, err
	}
	up, err := strconv.ParseFloat(strings.Fields(string(uptime))[0], 64)
	if err != nil {
		return time.Time{}, err
	}
	const hz = 100 // USER_HZ on every Linux build the suite runs on
	sinceStart := time.Duration((up - float64(ticks)/hz) * float64(time.Second))
	return now.Add(-sinceStart), nil
}

// listenDelay measures, for the plugin's running process, the time from
// the process's start to weft's "listening" log line. It waits for that
// line for a few seconds.
func (m *managedPlugin) listenDelay(h *Host) (time.Duration, error) {
	id, err := m.id(h)
	if err != nil {
		return 0, err
	}
	var d time.Duration
	err = testhost.Poll(10*time.Second, func() error {
		pid, err := m.pid(h)
		if err != nil {
			return err
		}
		start, err := processStart(pid)
		if err != nil {
			return err
		}
		var last *weftLogLine
		for _, l := range weftLog(h, id, 0) {
			if strings.Contains(l.Msg, " msg=listening ") {
				l := l
				last = &l
			}
		}
		// The line must belong to this process, not an earlier one:
		// weft logs it after it started.
		if last == nil || last.Time.Before(start.Add(-50*time.Millisecond)) {
			return errors.New("weft has not logged \"listening\" since its process started")
		}
		d = last.Time.Sub(start)
		return nil
	})
	return d, err
}

// ---- forwarding a host's loopback port to the test's

// forwardLoopback listens on addr inside the network namespace at nsPath
// and forwards every connection to addr in the test's own namespace.
func forwardLoopback(nsPath, addr string) (io.Closer, error) {
	l, err := listenInNetNS(nsPath, addr)
	if err != nil {
		return nil, err
	}
	f := &forwarder{l: l, conns: map[net.Conn]bool{}}
	go f.serve(addr)
	return f, nil
}

// listenInNetNS opens a TCP listener in another network namespace. The
// socket keeps the namespace it was made in. The thread that made it goes
// back to its own namespace before it is unlocked; if it cannot, it stays
// locked and ends with its goroutine. That is not enough on its own: a locked
// goroutine that ends on the process's main thread does not end the thread
// (the Go runtime parks it for good), and a main thread left in a host's
// namespace makes the test process one of that namespace's processes (ip
// netns pids lists it) and keeps the namespace alive.
func listenInNetNS(nsPath, addr string) (net.Listener, error) {
	type result struct {
		l   net.Listener
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		own, err := netns.Get()
		if err != nil {
			ch <- result{err: err}
			return
		}
		defer func() { _ = own.Close() }()
		ns, err := netns.GetFromPath(nsPath)
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: err}
			return
		}
		defer func() { _ = ns.Close() }()
		if err := netns.Set(ns); err != nil {
			ch <- result{err: err}
			return
		}
		l, err := net.Listen("tcp", addr)
		ch <- result{l, err}
		if netns.Set(own) == nil {
			runtime.UnlockOSThread()
		}
	}()
	r := <-ch
	return r.l, r.err
}

type forwarder struct {
	l     net.Listener
	mu    sync.Mutex
	conns map[net.Conn]bool
}

func (f *forwarder) serve(addr string) {
	for {
		c, err := f.l.Accept()
		if err != nil {
			return
		}
		go f.pipe(c, addr)
	}
}

func (f *forwarder) track(c net.Conn, add bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if add {
		f.conns[c] = true
	} else {
		delete(f.conns, c)
	}
}

func (f *forwarder) pipe(c net.Conn, addr string) {
	defer func() { _ = c.Close() }()
	d, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return
	}
	defer func() { _ = d.Close() }()
	f.track(c, true)
	f.track(d, true)
	defer f.track(c, false)
	defer f.track(d, false)
	done := make(chan struct{}, 2)
	cp := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		if tc, ok := dst.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		done <- struct{}{}
	}
	go cp(d, c)
	go cp(c, d)
	<-done
	<-done
}

func (f *forwarder) Close() error {
	err := f.l.Close()
	f.mu.Lock()
	defer f.mu.Unlock()
	for c := range f.conns {
		_ = c.Close()
	}
	return err
}

// ---- small helpers

// pluginConfig is the part of docker plugin inspect the tests read.
type pluginConfig struct {
	Enabled  bool
	Settings struct {
		Env    []string
		Mounts []struct{ Source, Destination string }
	}
	Config struct {
		Mounts []struct{ Source, Destination string }
		Linux  struct{ Capabilities []string }
	}
}

// checkMounts checks the plugin's mounts (Config.Mounts is what dockerd
// mounts; `set` changes it there): the state mount from stateSource, and the
// etcd TLS mount left unset (/dev/null).
func (pc pluginConfig) checkMounts(stateSource string) error {
	want := map[string]string{"/var/lib/weft-source": stateSource, "/etc/weft/etcd-tls": "/dev/null"}
	got := map[string]string{}
	for _, m := range pc.Config.Mounts {
		got[m.Destination] = m.Source
	}
	if !maps.Equal(got, want) {
		return fmt.Errorf("plugin mounts %+v, want %v (destination: source)", pc.Config.Mounts, want)
	}
	return nil
}

func (m *managedPlugin) inspect(t testing.TB, h *Host) pluginConfig {
	t.Helper()
	var pc pluginConfig
	if err := json.Unmarshal([]byte(h.Docker(t, "plugin", "inspect", "-f", "{{json .}}", m.ref)), &pc); err != nil {
		t.Fatal(err)
	}
	return pc
}
