package doctor

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/weftnet/weft/plugin"
	"github.com/weftnet/weft/status"
)

// Verdicts of a check. Only Fail makes `weft doctor` exit non-zero; Warn is
// something that works today but may not be what the operator wants, or
// that breaks a mode no network uses yet.
const (
	OK   = "ok"
	Warn = "warn"
	Fail = "FAIL"
	Skip = "skip"
)

// Result is one check's outcome.
type Result struct {
	Name    string `json:"name"`
	Verdict string `json:"verdict"`
	// Detail says what was found.
	Detail string `json:"detail"`
	// Fix says what to do about a Fail or Warn.
	Fix string `json:"fix,omitempty"`
}

// Failed reports whether any result is a Fail.
func Failed(rs []Result) bool {
	for _, r := range rs {
		if r.Verdict == Fail {
			return true
		}
	}
	return false
}

// Write prints rs, one line each, with the fix under each failure or
// warning.
func Write(out io.Writer, rs []Result) error {
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	for _, r := range rs {
		fmt.Fprintf(w, "[%s]\t%s\t%s\n", r.Verdict, r.Name, oneLine(r.Detail))
		if r.Fix != "" && (r.Verdict == Fail || r.Verdict == Warn) {
			fmt.Fprintf(w, "\t\tfix: %s\n", oneLine(r.Fix))
		}
	}
	n := 0
	for _, r := range rs {
		if r.Verdict == Fail {
			n++
		}
	}
	if n > 0 {
		fmt.Fprintf(w, "\n%d check(s) failed\n", n)
	} else {
		fmt.Fprintf(w, "\nno check failed\n")
	}
	return w.Flush()
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// Main runs `weft doctor` and returns its exit code: 0 when no check
// failed, 1 when one did, 2 on bad usage. It takes the flags and variables
// of `weft serve` (so that it checks the state directory and cluster store
// weft would use), plus --json and --state-file (the file `weft status` reads when weft is
// not running). Without --socket or WEFT_SOCKET, the running weft is found
// as `weft status` finds it.
func Main(args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	fs := flag.NewFlagSet("weft doctor", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print JSON instead of lines")
	file := fs.String("state-file", "", "state file to compare with the kernel when weft is not running (default: weft.db in the state directory)")
	var rest []string
	// Flags of weft serve pass through; doctor's own are taken first.
	own := map[string]bool{"json": true, "state-file": true}
	socketGiven := getenv("WEFT_SOCKET") != ""
	for i := 0; i < len(args); i++ {
		name := strings.TrimLeft(strings.SplitN(args[i], "=", 2)[0], "-")
		if own[name] || name == "h" || name == "help" {
			fsArgs := []string{args[i]}
			if !strings.Contains(args[i], "=") && name != "json" && name != "h" && name != "help" && i+1 < len(args) {
				i++
				fsArgs = append(fsArgs, args[i])
			}
			if err := fs.Parse(fsArgs); err != nil {
				if errors.Is(err, flag.ErrHelp) {
					fmt.Fprintln(stderr, "weft doctor also takes every flag of weft serve (see weft serve -h).")
					return 0
				}
				return 2
			}
			continue
		}
		if name == "socket" {
			socketGiven = true
		}
		rest = append(rest, args[i])
	}
	st, err := plugin.ParseSettings(rest, getenv, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "weft doctor:", err)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// The socket: the one given, else the one weft status finds (a
	// managed plugin's is under its ID, not at serve's default).
	opts := status.Options{StateFile: *file}
	if socketGiven {
		opts.Socket = st.Socket
	}
	dir, _ := st.ResolveStateDir(os.Stat)
	st.StateDir = dir
	if opts.StateFile == "" {
		opts.StateFile = st.StoreFile()
	}
	env := HostEnv(opts)
	rs := Run(ctx, env, st)
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		err = enc.Encode(rs)
	} else {
		err = Write(stdout, rs)
	}
	if err != nil {
		fmt.Fprintln(stderr, "weft doctor:", err)
		return 1
	}
	if Failed(rs) {
		return 1
	}
	return 0
}
