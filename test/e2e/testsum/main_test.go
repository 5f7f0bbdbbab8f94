package main

import (
	"strings"
	"testing"
)

func feed(lines ...string) (string, string, counts, bool) {
	var out strings.Builder
	s := newSummary("unit", false, &out)
	for _, l := range lines {
		s.add(l)
	}
	line, n, ok := s.finish()
	return out.String(), line, n, ok
}

func TestSummary(t *testing.T) {
	run := func(test string) string {
		return `{"Action":"run","Package":"p","Test":"` + test + `"}`
	}
	out := func(test, text string) string {
		return `{"Action":"output","Package":"p","Test":"` + test + `","Output":"` + text + `\n"}`
	}
	end := func(test, action string) string {
		return `{"Action":"` + action + `","Package":"p","Test":"` + test + `"}`
	}
	pkg := func(action string) string { return `{"Action":"` + action + `","Package":"p"}` }

	cases := []struct {
		name   string
		lines  []string
		ok     bool
		counts counts
	}{
		{"all pass", []string{run("A"), end("A", "pass"), run("B"), end("B", "pass"), pkg("pass")}, true, counts{2, 0, 0}},
		{"a failure", []string{run("A"), out("A", "boom"), end("A", "fail"), pkg("fail")}, false, counts{0, 1, 0}},
		{"privilege skip fails", []string{
			run("A"), end("A", "pass"),
			run("B"), out("B", "    x_test.go:3: not running as root"), end("B", "skip"), pkg("pass"),
		}, false, counts{1, 0, 1}},
		{"kernel feature skip allowed", []string{
			run("A"), end("A", "pass"),
			run("B"), out("B", "    x_test.go:3: missing kernel feature: 8021q: no such module"), end("B", "skip"), pkg("pass"),
		}, true, counts{1, 0, 1}},
		{"kernel skip without the marker fails", []string{
			run("A"), end("A", "pass"),
			run("B"), out("B", "    x_test.go:3: kernel feature vlan unavailable: operation not supported"), end("B", "skip"), pkg("pass"),
		}, false, counts{1, 0, 1}},
		{"unfinished test fails", []string{run("A"), out("A", "panic: x"), pkg("fail")}, false, counts{0, 1, 0}},
		{"TestMain failure fails", []string{run("A"), end("A", "pass"), pkg("fail")}, false, counts{1, 1, 0}},
		{"build failure fails", []string{`{"Action":"build-fail","Package":"p"}`}, false, counts{0, 1, 0}},
		{"nothing ran fails", []string{`{"Action":"skip","Package":"p"}`}, false, counts{0, 0, 0}},
		{"non-JSON lines pass through", []string{"# p", "vet: oops", run("A"), end("A", "pass"), pkg("pass")}, true, counts{1, 0, 0}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			printed, line, n, ok := feed(c.lines...)
			if ok != c.ok || n != c.counts {
				t.Errorf("got ok=%v %+v, want ok=%v %+v; printed:\n%s", ok, n, c.ok, c.counts, printed)
			}
			if !strings.HasPrefix(line, "unit: ") || !strings.Contains(line, " passed, ") {
				t.Errorf("summary line %q", line)
			}
		})
	}
}
