//go:build bench

package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/weftnet/weft/test/testhost"
)

// cfg is the run's configuration (flags of "run").
var cfg struct {
	dir      string // work directory, removed at start and end
	repo     string // repository root (test image script, go test of ipam)
	weftBin  string
	selfBin  string // this binary, for rr-server/rr-client under nsenter
	dockerd  string
	docker   string
	logLevel string
	quick    bool
	networks int // netcreate's networks of each driver (0: 1000, quick 20)
	only     map[string]bool
}

// sections in the order they run.
var sections = []string{"plugin", "attach", "dataplane", "multihost", "netcreate", "footprint"}

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "run":
		err = cmdRun(os.Args[2:])
	case "render":
		err = cmdRender(os.Args[2:])
	case "rr-server":
		err = rrServer(os.Args[2:])
	case "rr-client":
		err = rrClient(os.Args[2:])
	case "tcp-probe":
		err = tcpProbe(os.Args[2:])
	default:
		usage()
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, `usage: bench run -weft BIN [-quick] [-networks N] [-only s1,s2] [-out DIR] [-raw FILE]
       bench render -raw FILE [-merge LATER -save MERGED] -out DIR
       bench rr-server -addr ADDR | rr-client -addr ADDR -duration D | tcp-probe -addr ADDR
sections: `+strings.Join(sections, ", "))
}

func logf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "%s bench: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, a...))
}

func cmdRun(args []string) error {
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	fs.StringVar(&cfg.dir, "dir", "/tmp/weft-bench", "work directory (removed at start and at the end)")
	fs.StringVar(&cfg.repo, "repo", ".", "repository root")
	fs.StringVar(&cfg.weftBin, "weft", "", "weft binary (required)")
	fs.StringVar(&cfg.logLevel, "log-level", "debug", "weft's --log-level (debug logs each request with its duration, which the netcreate section sums into weft's own time per create; a line per request costs microseconds)")
	fs.BoolVar(&cfg.quick, "quick", false, "smoke run: few iterations")
	fs.IntVar(&cfg.networks, "networks", 0, fmt.Sprintf("netcreate: networks of each driver, 2 to %d (default 1000; with -quick 20)", maxNetworks))
	only := fs.String("only", "", "comma-separated sections to run (default: all)")
	out := fs.String("out", "docs", "directory for benchmarks.md and img/")
	raw := fs.String("raw", "", "where to write the raw samples as JSON (default: /tmp/weft-bench-results.json; -quick: /tmp/weft-bench-results-quick.json; -only: /tmp/weft-bench-results-partial.json)")
	_ = fs.Parse(args)
	if os.Geteuid() != 0 {
		return errors.New("run as root: the harness creates network namespaces and starts dockerd")
	}
	if cfg.weftBin == "" {
		return errors.New("-weft BIN is required")
	}
	if cfg.networks != 0 && (cfg.networks < 2 || cfg.networks > maxNetworks) {
		return fmt.Errorf("-networks %d: choose 2 to %d", cfg.networks, maxNetworks)
	}
	cfg.only = map[string]bool{}
	for _, s := range strings.Split(*only, ",") {
		if s = strings.TrimSpace(s); s != "" {
			if !contains(sections, s) {
				return fmt.Errorf("-only: unknown section %q (sections: %s)", s, strings.Join(sections, ", "))
			}
			cfg.only[s] = true
		}
	}
	var err error
	for _, p := range []*string{&cfg.dir, &cfg.repo, &cfg.weftBin} {
		if *p, err = filepath.Abs(*p); err != nil {
			return err
		}
	}
	if cfg.dir == "/" || !strings.HasPrefix(cfg.dir, "/") {
		return fmt.Errorf("-dir %q: choose a directory of its own", cfg.dir)
	}
	if cfg.selfBin, err = os.Executable(); err != nil {
		return err
	}
	for _, b := range []struct {
		dst  *string
		name string
	}{{&cfg.dockerd, "dockerd"}, {&cfg.docker, "docker"}} {
		if *b.dst, err = exec.LookPath(b.name); err != nil {
			return fmt.Errorf("%s not found (scripts/bench.sh installs docker.io): %w", b.name, err)
		}
	}
	for _, tool := range []string{"ip", "nsenter", "unshare", "iptables-save", "iperf3"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not found (scripts/bench.sh installs iproute2 util-linux iptables iperf3): %w", tool, err)
		}
	}
	if *raw == "" {
		// A run of some sections keeps its own file, so that the full
		// run's (which docs/benchmarks.md is rendered from, and render
		// -merge merges into) survives it.
		switch {
		case cfg.quick:
			*raw = "/tmp/weft-bench-results-quick.json"
		case len(cfg.only) > 0:
			*raw = "/tmp/weft-bench-results-partial.json"
		default:
			*raw = "/tmp/weft-bench-results.json"
		}
	}

	lock, err := os.OpenFile("/run/weft-bench.lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return err
	}
	defer func() { _ = lock.Close() }()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return fmt.Errorf("another benchmark run holds /run/weft-bench.lock: %w", err)
	}
	if err := testhost.CleanupStale(nsPrefix, cfg.dir); err != nil {
		return fmt.Errorf("removing an earlier run's leftovers: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(cfg.dir, "docker-config"), 0o700); err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	res := &results{Quick: cfg.quick, Start: time.Now(), Errors: map[string]string{}}
	res.Machine = describeMachine()
	runErr := measure(ctx, res)
	res.End = time.Now()
	res.Machine.LoadEnd = loadAvg()

	if err := testhost.CleanupStale(nsPrefix, cfg.dir); err != nil {
		runErr = errors.Join(runErr, fmt.Errorf("final cleanup: %w", err))
	}
	b, err := json.MarshalIndent(res, "", " ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(*raw, b, 0o644); err != nil {
		return err
	}
	logf("raw samples in %s", *raw)
	if err := render(res, *out); err != nil {
		return errors.Join(runErr, err)
	}
	logf("wrote %s and its plots (%s)", filepath.Join(*out, "benchmarks.md"), res.End.Sub(res.Start).Round(time.Second))
	if len(res.Errors) > 0 {
		for s, e := range res.Errors {
			runErr = errors.Join(runErr, fmt.Errorf("section %s: %s", s, e))
		}
	}
	return runErr
}

func cmdRender(args []string) error {
	fs := flag.NewFlagSet("render", flag.ExitOnError)
	raw := fs.String("raw", "/tmp/weft-bench-results.json", "raw samples written by run")
	out := fs.String("out", "docs", "directory for benchmarks.md and img/")
	merge := fs.String("merge", "", "raw samples of a later run of some sections (run -only ...): its sections replace -raw's, and the page names the run they came from")
	save := fs.String("save", "", "with -merge: write the merged raw samples here")
	_ = fs.Parse(args)
	res, err := readResults(*raw)
	if err != nil {
		return err
	}
	if *merge != "" {
		later, err := readResults(*merge)
		if err != nil {
			return err
		}
		if err := mergeResults(res, later); err != nil {
			return err
		}
		if *save != "" {
			b, err := json.MarshalIndent(res, "", " ")
			if err != nil {
				return err
			}
			if err := os.WriteFile(*save, b, 0o644); err != nil {
				return err
			}
		}
	}
	return render(res, *out)
}

func readResults(path string) (*results, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var res results
	if err := json.Unmarshal(b, &res); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &res, nil
}

// mergeResults puts the sections later measured into res (replacing res's
// own of the same name) and records where they came from (results.Merged).
// Only sections whose raw data stand alone can be merged: the footprint
// reads the plugin section's, and netcreate's scale comparison the
// dataplane's when it has no measurement of its own without the networks
// (Scale0: older runs, or one that failed).
func mergeResults(res, later *results) error {
	var secs []string
	for _, s := range later.Seconds {
		secs = append(secs, s.Section)
	}
	if len(secs) == 0 {
		return errors.New("-merge: the later run measured no section")
	}
	m := mergedRun{Sections: secs, Start: later.Start, End: later.End, Quick: later.Quick,
		LoadStart: later.Machine.LoadStart, LoadEnd: later.Machine.LoadEnd, Commit: later.Machine.Commit}
	for _, s := range secs {
		switch s {
		case "multihost":
			res.Multi = later.Multi
		case "attach":
			res.Attach = later.Attach
		case "dataplane":
			res.Data = later.Data
		case "netcreate":
			if later.NetCreate == nil || later.NetCreate.Scale0 == nil {
				return errors.New("-merge: the later run's netcreate section has no data-plane measurement without the networks of its own, so it reads the dataplane section's; rerun the whole benchmark")
			}
			res.NetCreate = later.NetCreate
		default:
			return fmt.Errorf("-merge: section %s cannot be merged into another run's page (others read its raw data); rerun the whole benchmark", s)
		}
		delete(res.Errors, s)
		if e, ok := later.Errors[s]; ok {
			if res.Errors == nil {
				res.Errors = map[string]string{}
			}
			res.Errors[s] = e
		}
		res.Seconds = slices.DeleteFunc(res.Seconds, func(t sectionTime) bool { return t.Section == s })
	}
	res.Seconds = append(res.Seconds, later.Seconds...)
	// An earlier merge of the same sections no longer describes the page.
	var kept []mergedRun
	for _, e := range res.Merged {
		e.Sections = slices.DeleteFunc(slices.Clone(e.Sections), func(s string) bool { return slices.Contains(secs, s) })
		if len(e.Sections) > 0 {
			kept = append(kept, e)
		}
	}
	res.Merged = append(kept, m)
	return nil
}

// mergedRun is a later run whose sections render -merge put into a page.
type mergedRun struct {
	Sections           []string
	Start, End         time.Time
	Quick              bool
	LoadStart, LoadEnd string
	Commit             string
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func want(section string) bool { return len(cfg.only) == 0 || cfg.only[section] }

// measure runs the sections; a failing section is recorded and the others
// still run. The docker host is shared by the sections that need dockerd.
func measure(ctx context.Context, res *results) error {
	var host *dockerHost
	defer func() {
		if host != nil {
			logf("tearing down the docker host")
			if err := host.close(); err != nil {
				logf("tearing down the docker host: %v", err)
			}
		}
	}()
	needHost := want("attach") || want("dataplane") || want("netcreate")
	if needHost {
		logf("starting the docker host (netns %s%s, own dockerd and weft)", nsPrefix, "main")
		var err error
		if host, err = startDockerHost("main"); err != nil {
			return err
		}
	}
	for _, s := range sections {
		if !want(s) {
			continue
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		logf("section %s", s)
		t0 := time.Now()
		var err error
		switch s {
		case "attach":
			res.Attach, err = benchAttach(ctx, host)
		case "plugin":
			res.Plugin, err = benchPlugin(ctx)
		case "netcreate":
			res.NetCreate, err = netCreateOnTwoHosts(ctx, host)
		case "dataplane":
			res.Data, err = benchDataplane(ctx, host)
		case "multihost":
			res.Multi, err = benchMultihost(ctx)
		case "footprint":
			res.Foot, err = benchFootprint(ctx, res.Plugin)
		}
		res.Seconds = append(res.Seconds, sectionTime{s, time.Since(t0).Seconds()})
		if err != nil {
			logf("section %s failed: %v", s, err)
			res.Errors[s] = err.Error()
		}
		if host != nil && (host.weft == nil || !host.weft.Alive()) {
			return fmt.Errorf("weft on the docker host died: %s", testhost.Tail(filepath.Join(host.Dir, "weft.log"), 30))
		}
	}
	return nil
}

// netCreateOnTwoHosts runs the netcreate section with weft's networks on
// the shared docker host and Docker's bridge networks on a second host
// started for it, torn down after.
func netCreateOnTwoHosts(ctx context.Context, host *dockerHost) (*netcreateResult, error) {
	logf("starting a second docker host for Docker's bridge networks (netns %s%s)", nsPrefix, "bridge")
	hd, err := startDockerHost("bridge")
	if err != nil {
		return nil, err
	}
	defer func() {
		logf("tearing down the second docker host")
		if err := hd.close(); err != nil {
			logf("tearing down the second docker host: %v", err)
		}
	}()
	return benchNetCreate(ctx, netHosts{host, hd})
}

type sectionTime struct {
	Section string
	Seconds float64
}

// results is everything a run measured: raw samples only; every figure in
// the report is computed from these by render.
type results struct {
	Quick     bool
	Start     time.Time
	End       time.Time
	Machine   machine
	Seconds   []sectionTime
	Attach    *attachResult    `json:",omitempty"`
	Plugin    *pluginResult    `json:",omitempty"`
	NetCreate *netcreateResult `json:",omitempty"`
	Data      *dataResult      `json:",omitempty"`
	Multi     *multiResult     `json:",omitempty"`
	Foot      *footResult      `json:",omitempty"`
	Errors    map[string]string
	// Merged: later runs whose sections replaced this run's (render -merge).
	Merged []mergedRun `json:",omitempty"`
}
