//go:build bench

package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// footResult: the Go benchmarks of ipam and plugin (allocator speed, the
// store's share, the heap of 10^6 addresses in a /64), parsed from go test.
// weft's RSS is measured in the plugin section (pluginResult.RSS).
type footResult struct {
	Commands []string
	Benches  []goBench
}

type goBench struct {
	Pkg     string
	Name    string
	Iters   int
	Metrics map[string]float64 // unit -> value: ns/op, B/op, heap-bytes/1M-addrs, ...
}

func benchFootprint(ctx context.Context, _ *pluginResult) (*footResult, error) {
	res := &footResult{}
	speed, count := "1s", "3"
	// plugin's RequestAddress benchmarks never release, so a fixed count
	// that fits in their /16 (65533 addresses) instead of a duration.
	pluginN := "20000x"
	if cfg.quick {
		speed, count, pluginN = "2000x", "1", "2000x"
	}
	runs := [][]string{
		{"test", "-run", "^$", "-bench", "^BenchmarkMemory1MAllocationsV6$", "-benchtime", "1x", "-count", count, "./ipam"},
		{"test", "-run", "^$", "-bench", "^BenchmarkRequestAddressV(4Slash16|4Slash16Fragmented|6Slash64)$", "-benchtime", speed, "-benchmem", "./ipam"},
		{"test", "-run", "^$", "-bench", "^BenchmarkRequestAddress", "-benchtime", pluginN, "-benchmem", "./plugin"},
	}
	var errs []error
	for _, args := range runs {
		res.Commands = append(res.Commands, "go "+strings.Join(args, " "))
		ctx2, cancel := context.WithTimeout(ctx, 10*time.Minute)
		cmd := exec.CommandContext(ctx2, "go", args...)
		cmd.Dir = cfg.repo
		cmd.Env = os.Environ()
		out, err := cmd.CombinedOutput()
		cancel()
		// Keep what did run even if one benchmark failed.
		res.Benches = append(res.Benches, parseGoBench(string(out))...)
		if err != nil {
			errs = append(errs, &benchErr{args: args, err: err, out: string(out)})
		}
	}
	return res, errors.Join(errs...)
}

type benchErr struct {
	args []string
	err  error
	out  string
}

func (e *benchErr) Error() string {
	return "go " + strings.Join(e.args, " ") + ": " + e.err.Error() + "\n" + tailString(e.out, 20)
}

func tailString(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// parseGoBench reads `go test -bench` output: "pkg: X" lines and
// "BenchmarkName-N  iters  value unit  value unit ..." lines.
func parseGoBench(out string) []goBench {
	var res []goBench
	pkg := ""
	for _, l := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(l, "pkg: "); ok {
			pkg = strings.TrimSpace(v)
			continue
		}
		f := strings.Fields(l)
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		iters, err := strconv.Atoi(f[1])
		if err != nil {
			continue
		}
		name := f[0]
		if i := strings.LastIndexByte(name, '-'); i > 0 {
			name = name[:i]
		}
		b := goBench{Pkg: pkg, Name: name, Iters: iters, Metrics: map[string]float64{}}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				break
			}
			b.Metrics[f[i+1]] = v
		}
		res = append(res, b)
	}
	return res
}
