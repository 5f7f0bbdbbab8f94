//go:build bench

package main

import (
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/weftnet/weft/test/testhost"
)

// profile is where weft spent its time during extra attach/detach cycles
// (not the measured ones): CPU time against wall time per cycle, and the
// hottest symbols of a perf cpu-clock profile (user and kernel).
type profile struct {
	Cycles        int
	WallMsPerCyc  float64
	CPUMsPerCyc   float64 // weft's user+system time per cycle
	UserMsPerCyc  float64
	SysMsPerCyc   float64
	PerfSamples   int
	Top           []profLine
	NetfilterPct  float64 `json:",omitempty"`
	PerfAvailable bool
}

type profLine struct {
	Percent float64
	Symbol  string
}

// cpuTicks reads a process's utime and stime (clock ticks).
func cpuTicks(pid int) (user, sys int64) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	f := strings.Fields(s[i+2:])
	// Fields after the command: state(0) ... utime(11) stime(12).
	if len(f) < 13 {
		return 0, 0
	}
	user, _ = strconv.ParseInt(f[11], 10, 64)
	sys, _ = strconv.ParseInt(f[12], 10, 64)
	return user, sys
}

const clkTck = 100 // USER_HZ on Linux

func profilePlugin(ctx context.Context, insts []*pluginInst) (map[string]profile, string) {
	cycles := 300
	if cfg.quick {
		cycles = 20
	}
	perf, perfErr := exec.LookPath("perf")
	note := ""
	if perfErr != nil {
		note = "perf not found (apt-get install linux-perf): CPU time only"
	}
	out := map[string]profile{}
	for _, p := range insts {
		pr := profile{Cycles: cycles}
		var rec *testhost.Proc
		data := filepath.Join(p.dir, "perf.data")
		if perfErr == nil {
			var err error
			rec, err = testhost.StartProc("perf", filepath.Join(p.dir, "perf.log"), "", perf, "record", "-e", "cpu-clock", "-F", "2000", "-g",
				"-p", strconv.Itoa(p.weft.PID()), "-o", data)
			if err != nil {
				note = "perf record failed: " + err.Error()
			}
			time.Sleep(300 * time.Millisecond)
		}
		u0, s0 := cpuTicks(p.weft.PID())
		t0 := time.Now()
		for range cycles {
			if ctx.Err() != nil {
				break
			}
			ep, err := p.attach(nil)
			if err == nil {
				err = p.detach(ep, nil)
			}
			if err != nil {
				note = "profiling cycles failed: " + err.Error()
				break
			}
		}
		wall := time.Since(t0)
		u1, s1 := cpuTicks(p.weft.PID())
		pr.WallMsPerCyc = ms(wall) / float64(cycles)
		pr.UserMsPerCyc = float64(u1-u0) * 1000 / clkTck / float64(cycles)
		pr.SysMsPerCyc = float64(s1-s0) * 1000 / clkTck / float64(cycles)
		pr.CPUMsPerCyc = pr.UserMsPerCyc + pr.SysMsPerCyc
		if rec != nil {
			_ = rec.Signal(syscall.SIGINT)
			if err := rec.Wait(30 * time.Second); err != nil {
				_ = rec.Kill()
			}
			pr.PerfAvailable = true
			pr.Top, pr.PerfSamples = perfTop(perf, data, 15)
		}
		out[strconv.Itoa(p.size)] = pr
	}
	return out, note
}

// perfTop returns the hottest symbols (self time) of a perf.data file.
// netfilterSym matches kernel symbols of the packet filter (nf_tables,
// x_tables matches, conntrack, br_netfilter).
var netfilterSym = regexp.MustCompile(`\] (nft_|nf_|__nf_|ipt_|ip6t_|xt_|br_nf|ebt_|ipv4_conntrack|hash_conntrack|tcp_packet|tcp_in_window)`)

// netfilterShare sums the self time of the packet filter's symbols in a
// perf report (only symbols above the report's 0.5% limit count).
func netfilterShare(perf, data string, extra ...string) float64 {
	args := append([]string{perf, "report", "-i", data, "--stdio", "--no-children", "--sort", "dso,symbol", "-g", "none", "--percent-limit", "0.5"}, extra...)
	outp, err := testhost.RunT(2*time.Minute, args...)
	if err != nil {
		return math.NaN()
	}
	var sum float64
	for _, l := range strings.Split(outp, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || l[0] == '#' || !netfilterSym.MatchString(l) {
			continue
		}
		if v, err := strconv.ParseFloat(strings.TrimSuffix(strings.Fields(l)[0], "%"), 64); err == nil {
			sum += v
		}
	}
	return sum
}

func perfTop(perf, data string, n int, extra ...string) ([]profLine, int) {
	args := append([]string{perf, "report", "-i", data, "--stdio", "--no-children", "--sort", "dso,symbol", "-g", "none", "--percent-limit", "0.5"}, extra...)
	outp, err := testhost.RunT(2*time.Minute, args...)
	if err != nil {
		return []profLine{{0, "perf report failed: " + firstLine(err.Error())}}, 0
	}
	var top []profLine
	samples := 0
	for _, l := range strings.Split(outp, "\n") {
		l = strings.TrimSpace(l)
		if strings.HasPrefix(l, "# Samples:") {
			f := strings.Fields(l)
			if len(f) >= 3 {
				samples = parseCount(f[2])
			}
			continue
		}
		if l == "" || l[0] == '#' || !strings.Contains(l, "%") {
			continue
		}
		f := strings.Fields(l)
		pct, err := strconv.ParseFloat(strings.TrimSuffix(f[0], "%"), 64)
		if err != nil || len(f) < 3 {
			continue
		}
		// "12.3%  weft  [.] runtime.mallocgc" or "... [kernel.kallsyms] [k] sym"
		dso := f[1]
		for len(f) > 3 && f[len(f)-1] == "-" { // empty srcline columns
			f = f[:len(f)-1]
		}
		sym := strings.Join(f[2:], " ")
		if dso == "[kernel.kallsyms]" {
			dso = "kernel"
		}
		top = append(top, profLine{pct, dso + ": " + sym})
		if len(top) == n {
			break
		}
	}
	return top, samples
}

// parseCount parses perf's sample counts like "1K" or "12345".
func parseCount(s string) int {
	mult := 1
	switch {
	case strings.HasSuffix(s, "K"):
		mult, s = 1000, strings.TrimSuffix(s, "K")
	case strings.HasSuffix(s, "M"):
		mult, s = 1000000, strings.TrimSuffix(s, "M")
	}
	v, _ := strconv.ParseFloat(s, 64)
	return int(v * float64(mult))
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// fmtMs formats milliseconds for tables.
func fmtMs(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}
