package plugin

import (
	"errors"
	"time"
)

// Observer is told what the plugin does, for metrics (package metrics
// implements it). It lives here as an interface, not as a metrics library
// type, so that the plugin's tests and builds without metrics need nothing
// but a no-op; every method must be cheap and must not block, because it is
// called on request paths and with the driver's lock held.
type Observer interface {
	// Request reports one answered call: its route (a known path, or
	// "other"), its outcome (OutcomeOK, OutcomeRefused or OutcomeFailed)
	// and how long it took.
	Request(route, outcome string, took time.Duration)
	// Reconciled reports one mode's reconcile at start; err is its failure.
	Reconciled(mode string, err error)
	// Checked reports one periodic check of a mode's kernel objects
	// (repair.go): found says something was missing, err that the check
	// itself failed.
	Checked(mode string, found bool, err error)
	// Repaired reports one repair that a check asked for; err is its
	// failure (including a repair the next check found unfinished).
	Repaired(mode string, err error)
}

// Request outcomes, from the answer's status: refused is a request weft
// would not take (4xx: a malformed or resent call), failed one it took and
// could not do (5xx: every error the driver returns, a panic).
const (
	OutcomeOK      = "ok"
	OutcomeRefused = "refused"
	OutcomeFailed  = "failed"
)

// outcomeOf classifies an HTTP status.
func outcomeOf(status int) string {
	switch {
	case status < 400:
		return OutcomeOK
	case status < 500:
		return OutcomeRefused
	default:
		return OutcomeFailed
	}
}

// noObserver is the Observer when none is given.
type noObserver struct{}

func (noObserver) Request(string, string, time.Duration) {}
func (noObserver) Reconciled(string, error)              {}
func (noObserver) Checked(string, bool, error)           {}
func (noObserver) Repaired(string, error)                {}

// observer returns Deps.Observer, or a no-op.
func (d *Driver) observer() Observer {
	if d.deps.Observer == nil {
		return noObserver{}
	}
	return d.deps.Observer
}

// errRepairUnfinished is what Repaired gets for a repair that returned
// without error but whose next check still found something missing.
var errRepairUnfinished = errors.New("the check after the repair still found something missing")
