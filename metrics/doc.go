// Package metrics serves weft's Prometheus metrics (WEFT_METRICS_ADDR):
// requests by route and outcome, networks and endpoints by mode, pool use,
// reconciles, kernel checks and repairs, store latency and errors, and the
// cluster's peers and programmed vxlan entries.
//
// Everything hangs off one Metrics value with a registry of its own (never
// prometheus.DefaultRegisterer): two weft instances in one test binary, or
// one test after another, cannot see or double-register each other's
// metrics. Metrics implements plugin.Observer for the plugin's hooks, wraps
// the stores to time their calls, and reads networks, endpoints and pools
// at scrape time from the running plugin's status (plugin.Driver.Status),
// so that those gauges are exact rather than kept up to date by hand.
// Every method works on a nil *Metrics and does nothing, so the wiring in
// main needs no branch for "metrics off".
package metrics
