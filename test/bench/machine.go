//go:build bench

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/weftnet/weft/test/flock"
	"github.com/weftnet/weft/test/testhost"
)

// machine describes where the run happened, read at run time.
type machine struct {
	Host       string
	Kernel     string
	OS         string
	CPU        string
	Cores      int
	MemGiB     float64
	Virtual    bool
	Go         string
	Weft       string
	Commit     string
	Dockerd    string
	DockerCLI  string
	Iptables   string
	Iperf3     string
	LoadStart  string
	LoadEnd    string
	Neighbours string // other activity seen at start
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

func cmdLine(argv ...string) string {
	out, err := testhost.RunT(20*time.Second, argv...)
	if err != nil {
		return "unknown"
	}
	return firstLine(out)
}

func describeMachine() machine {
	m := machine{Cores: runtime.NumCPU(), Go: runtime.Version(), LoadStart: loadAvg()}
	m.Host, _ = os.Hostname()
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/etc/os-release"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "PRETTY_NAME="); ok {
				m.OS = strings.Trim(v, `"`)
			}
		}
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok {
				k = strings.TrimSpace(k)
				if k == "model name" && m.CPU == "" {
					m.CPU = strings.TrimSpace(v)
				}
				if k == "flags" && strings.Contains(" "+v+" ", " hypervisor ") {
					m.Virtual = true
				}
			}
		}
	}
	var si syscall.Sysinfo_t
	if syscall.Sysinfo(&si) == nil {
		m.MemGiB = float64(si.Totalram) * float64(si.Unit) / (1 << 30)
	}
	m.Weft = cmdLine(cfg.weftBin, "version")
	m.Commit = cmdLine("git", "-C", cfg.repo, "describe", "--always", "--dirty", "--abbrev=12")
	// Untracked Go files are part of the build too, and --dirty misses them.
	if out, err := testhost.RunT(20*time.Second, "git", "-C", cfg.repo, "status", "--porcelain", "--", "*.go", ":!test/**", ":!*_test.go"); err == nil {
		if out = strings.TrimSpace(out); out != "" {
			m.Commit += fmt.Sprintf(" plus uncommitted changes to %d of the Go files weft is built from", len(strings.Split(out, "\n")))
		}
	}
	m.Dockerd = cmdLine(cfg.dockerd, "--version")
	m.DockerCLI = cmdLine(cfg.docker, "--version")
	m.Iptables = cmdLine("iptables", "--version")
	m.Iperf3 = cmdLine("iperf3", "--version")
	m.Neighbours = neighbours()
	return m
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// neighbours says what else was running that could disturb the run: other
// dockerd processes and which end-to-end suite runs held their locks (one
// per WEFT_E2E_PREFIX: /run/weft-e2e*.lock, read from /proc/locks, without
// touching the locks).
func neighbours() string {
	ents, _ := os.ReadDir("/proc")
	dockerds := 0
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		comm, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "comm"))
		if strings.TrimSpace(string(comm)) == "dockerd" {
			dockerds++
		}
	}
	s := fmt.Sprintf("%d other dockerd process(es) running at start", dockerds)
	// (weft-e2e.heavy.lock is no run's own: the runs share it.)
	locks, _ := filepath.Glob("/run/weft-e2e*.lock")
	var running []string
	for _, l := range locks {
		if !strings.Contains(filepath.Base(l), ".heavy.") && flock.Held(l) {
			running = append(running, l)
		}
	}
	if len(running) > 0 {
		s += fmt.Sprintf("; %d end-to-end suite run(s) were running (they held %s)", len(running), strings.Join(running, ", "))
	}
	return s
}
