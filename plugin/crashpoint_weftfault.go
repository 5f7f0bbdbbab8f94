//go:build weftfault

package plugin

import (
	"os"
	"syscall"
)

// CrashAtEnv names the crash point at which a binary built with
// -tags weftfault SIGKILLs itself. Only the reliability suite builds it.
const CrashAtEnv = "WEFT_CRASH_AT"

// crashPoint kills the process, as `kill -9` would, when the environment
// names this point: the state on disk and in the kernel is then exactly what
// a crash at this point leaves.
func crashPoint(name string) {
	if os.Getenv(CrashAtEnv) == name {
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // the signal is delivered asynchronously; never go on
	}
}
