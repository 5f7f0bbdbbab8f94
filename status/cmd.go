package status

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"time"
)

// Main runs `weft status [--json] [--socket PATH] [--state-file PATH]` and
// returns its exit code: 0, 1 when the status could not be read, 2 on bad
// usage. getenv supplies WEFT_STATE_DIR for the default state file.
func Main(args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	fs := flag.NewFlagSet("weft status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print JSON instead of tables")
	sock := fs.String("socket", "", "the plugin socket (default: "+pluginsDir+"/weft.sock or the one managed plugin's "+pluginsDir+"/<id>/weft.sock)")
	defFile := ""
	if dir := getenv("WEFT_STATE_DIR"); dir != "" {
		defFile = filepath.Join(dir, "weft.db")
	} else {
		defFile = "/var/lib/weft/weft.db"
	}
	file := fs.String("state-file", defFile, "state file to read when weft is not running; empty: none "+
		"(default: this, or else the one managed plugin's "+dockerPluginsRoot+"/<id>/propagated-mount/weft.db)")
	timeout := fs.Duration("timeout", 10*time.Second, "how long to wait for weft's answer")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "weft status: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == "state-file" })
	s, err := Read(ctx, Options{Socket: *sock, StateFile: *file, StateFileIsDefault: !given})
	if err != nil {
		fmt.Fprintln(stderr, "weft status:", err)
		return 1
	}
	AddLinkNames(s)
	if *asJSON {
		err = WriteJSON(stdout, s)
	} else {
		err = WriteTable(stdout, s)
	}
	if err != nil {
		fmt.Fprintln(stderr, "weft status:", err)
		return 1
	}
	return 0
}
