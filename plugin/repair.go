package plugin

import (
	"context"
	"time"

	"github.com/weftnet/weft/dataplane"
)

// defaultRepairInterval is how often weft checks its firewall rules, set
// members and device groups: what someone removed behind its back (a firewall
// reload, "iptables -F", "ipset flush") is back within this interval plus the
// time a reconcile takes, well under five seconds.
const defaultRepairInterval = 2 * time.Second

// maxRepairBackoff bounds the wait between checks while repairs keep
// failing (iptables broken, say): the log gets one error per attempt, not
// one every interval.
const maxRepairBackoff = time.Minute

// RunRepairer checks every mode that can (dataplane.Checker) every
// RepairInterval and has a mode that reports something missing put it back
// (Repair). It returns when ctx ends.
func (d *Driver) RunRepairer(ctx context.Context) {
	if err := d.wait(ctx); err != nil {
		return
	}
	every := d.deps.RepairInterval
	if every <= 0 {
		every = defaultRepairInterval
	}
	wait := every
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		if d.repairOnce(ctx) {
			wait = every
		} else {
			wait = min(2*wait, maxRepairBackoff)
		}
	}
}

// repairOnce checks the modes once and repairs what it found; it reports
// false if a check or a repair failed.
func (d *Driver) repairOnce(ctx context.Context) bool {
	for name, mode := range d.deps.Modes {
		c, ok := mode.(dataplane.Checker)
		if !ok {
			continue
		}
		why, err := c.Check(ctx)
		d.observer().Checked(string(name), why != "", err)
		if err != nil {
			if ctx.Err() == nil {
				d.log.Error("checking the kernel's state failed", "mode", name, "err", err)
			}
			return false
		}
		if why == "" {
			continue
		}
		d.log.Warn("weft's kernel state was changed behind its back; restoring it", "mode", name, "found", why)
		start := time.Now()
		if err := c.Repair(ctx); err != nil {
			d.observer().Repaired(string(name), err)
			d.log.Error("restoring weft's kernel state failed; trying again later", "mode", name, "err", err)
			return false
		}
		again, err := c.Check(ctx)
		if err != nil || again != "" {
			d.observer().Repaired(string(name), errRepairUnfinished)
			d.log.Error("restoring weft's kernel state did not finish; trying again later", "mode", name, "still", again, "err", err)
			return false
		}
		d.observer().Repaired(string(name), nil)
		d.log.Info("weft's kernel state restored", "mode", name, "took", time.Since(start).Round(time.Millisecond))
	}
	return true
}
