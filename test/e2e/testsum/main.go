// Command testsum reads `go test -json` on stdin, prints the test log, and
// ends with a summary of what ran, passed, failed and was skipped (with the
// reasons). It exits non-zero if a test or package failed, if a test was
// skipped for any reason but a missing kernel feature, or if no test ran.
//
//	go test -json ./... 2>&1 | go run ./test/e2e/testsum -phase unit
//
// scripts/test.sh uses it for every go test phase: a skip is a failure
// unless its message contains KernelFeatureMarker (test/nstest's
// RequireKernelFeature writes such messages), so a privileged or e2e test
// cannot silently stop running in CI.
//
// Flags: -phase NAME (label of the summary), -v (print every test's output,
// not only failing and skipped ones), -summary FILE (also write the final
// summary there as "STATUS PASSED FAILED SKIPPED LINE", STATUS ok or FAILED).
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// KernelFeatureMarker is the text a skip message must contain to be allowed:
// the test needs a kernel feature this machine lacks.
const KernelFeatureMarker = "missing kernel feature:"

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Action  string
	Package string
	Test    string
	Output  string
	Elapsed float64
}

type result struct {
	pkg, test string
	action    string // run, pass, fail, skip
	output    strings.Builder
	elapsed   float64
}

func (r *result) name() string {
	if r.test == "" {
		return r.pkg
	}
	return r.pkg + "." + r.test
}

// reason is the test's output without the framework's own lines.
func (r *result) reason() string {
	var keep []string
	for _, l := range strings.Split(r.output.String(), "\n") {
		t := strings.TrimSpace(l)
		if t == "" || strings.HasPrefix(t, "=== ") || strings.HasPrefix(t, "--- ") {
			continue
		}
		keep = append(keep, t)
	}
	return strings.Join(keep, " | ")
}

func allowedSkip(msg string) bool {
	return strings.Contains(msg, KernelFeatureMarker)
}

type summary struct {
	phase    string
	verbose  bool
	out      io.Writer
	tests    map[string]*result
	order    []string
	pkgs     map[string]*result
	pkgOrder []string
}

func newSummary(phase string, verbose bool, out io.Writer) *summary {
	return &summary{phase: phase, verbose: verbose, out: out, tests: map[string]*result{}, pkgs: map[string]*result{}}
}

// add handles one input line: a test2json event, or anything else (printed
// as is: build errors, vet output).
func (s *summary) add(line string) {
	var e event
	if !strings.HasPrefix(line, "{") || json.Unmarshal([]byte(line), &e) != nil || e.Action == "" {
		fmt.Fprintln(s.out, line)
		return
	}
	if e.Test == "" {
		p := s.pkgs[e.Package]
		if p == nil {
			p = &result{pkg: e.Package, action: "run"}
			s.pkgs[e.Package] = p
			s.pkgOrder = append(s.pkgOrder, e.Package)
		}
		switch e.Action {
		case "output", "build-output":
			p.output.WriteString(e.Output)
			// Package lines ("ok  pkg 1.2s", "FAIL pkg", panics, build
			// errors) are always worth seeing.
			fmt.Fprint(s.out, e.Output)
		case "pass", "fail", "skip":
			p.action, p.elapsed = e.Action, e.Elapsed
		case "build-fail":
			p.action = "fail"
		}
		return
	}
	key := e.Package + "\x00" + e.Test
	r := s.tests[key]
	if r == nil {
		r = &result{pkg: e.Package, test: e.Test, action: "run"}
		s.tests[key] = r
		s.order = append(s.order, key)
	}
	switch e.Action {
	case "output":
		r.output.WriteString(e.Output)
		if s.verbose {
			fmt.Fprint(s.out, e.Output)
		}
	case "pass", "fail", "skip":
		r.action, r.elapsed = e.Action, e.Elapsed
		if !s.verbose && (e.Action == "fail" || (e.Action == "skip" && !allowedSkip(r.output.String()))) {
			fmt.Fprint(s.out, r.output.String())
		}
	}
}

// counts are a phase's totals.
type counts struct{ passed, failed, skipped int }

// finish prints the summary and reports whether the phase is a success.
func (s *summary) finish() (string, counts, bool) {
	var passed, failed, skipped, allowed int
	var failures, badSkips, okSkips []string
	pkgHasFailure := map[string]bool{}
	for _, k := range s.order {
		r := s.tests[k]
		switch r.action {
		case "pass":
			passed++
		case "fail":
			failed++
			failures = append(failures, r.name())
			pkgHasFailure[r.pkg] = true
		case "run":
			failed++
			failures = append(failures, r.name()+" (never finished: panic, timeout or killed)")
			pkgHasFailure[r.pkg] = true
		case "skip":
			skipped++
			msg := r.reason()
			if allowedSkip(r.output.String()) {
				allowed++
				okSkips = append(okSkips, r.name()+": "+msg)
			} else {
				badSkips = append(badSkips, r.name()+": "+msg)
			}
		}
	}
	var pkgFailures []string
	for _, p := range s.pkgOrder {
		r := s.pkgs[p]
		// A package whose failure no test explains: build error, vet
		// error, TestMain, a panic outside tests, or no end event at all.
		if (r.action == "fail" || r.action == "run") && !pkgHasFailure[p] {
			pkgFailures = append(pkgFailures, p)
		}
	}
	sort.Strings(pkgFailures)

	w := s.out
	fmt.Fprintf(w, "\n==== %s summary ====\n", s.phase)
	list := func(title string, items []string) {
		if len(items) == 0 {
			return
		}
		fmt.Fprintf(w, "%s (%d):\n", title, len(items))
		for _, it := range items {
			fmt.Fprintf(w, "  %s\n", it)
		}
	}
	list("FAILED tests", failures)
	list("FAILED packages (build error, panic, TestMain or timeout)", pkgFailures)
	list("SKIPPED without \""+KernelFeatureMarker+"\" (not allowed)", badSkips)
	list("skipped for a missing kernel feature (allowed)", okSkips)
	ok := failed == 0 && len(pkgFailures) == 0 && len(badSkips) == 0 && passed > 0
	if passed == 0 && failed == 0 {
		fmt.Fprintln(w, "no test ran")
	} else {
		fmt.Fprintf(w, "tests run: %d (subtests count as tests)\n", passed+failed+skipped)
	}
	line := fmt.Sprintf("%s: %d passed, %d failed, %d skipped", s.phase, passed, failed+len(pkgFailures), skipped)
	if skipped > 0 {
		line += fmt.Sprintf(" (%d allowed: missing kernel feature)", allowed)
	}
	fmt.Fprintln(w, line)
	return line, counts{passed, failed + len(pkgFailures), skipped}, ok
}

func main() {
	phase := flag.String("phase", "tests", "label of the summary")
	verbose := flag.Bool("v", false, "print the output of every test, not only of failed and skipped ones")
	sumFile := flag.String("summary", "", "also write the final summary line to this file")
	flag.Parse()

	s := newSummary(*phase, *verbose, os.Stdout)
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1024*1024), 64*1024*1024)
	for sc.Scan() {
		s.add(sc.Text())
	}
	if err := sc.Err(); err != nil {
		fmt.Fprintln(os.Stderr, "testsum: reading input:", err)
		os.Exit(2)
	}
	line, n, ok := s.finish()
	if *sumFile != "" {
		status := "ok"
		if !ok {
			status = "FAILED"
		}
		// "STATUS PASSED FAILED SKIPPED line", for scripts/test.sh's totals.
		rec := fmt.Sprintf("%s %d %d %d %s\n", status, n.passed, n.failed, n.skipped, line)
		if err := os.WriteFile(*sumFile, []byte(rec), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "testsum:", err)
		}
	}
	if !ok {
		os.Exit(1)
	}
}
