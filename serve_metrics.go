package main

import (
	"context"
	"log/slog"

	"github.com/weftnet/weft/metrics"
	"github.com/weftnet/weft/plugin"
)

// startMetrics serves Prometheus metrics on addr (WEFT_METRICS_ADDR) until
// ctx ends, with the gauges read from src. It returns nil metrics when addr
// is empty, or when the address cannot be opened: that is logged as an
// error and weft goes on, because a taken metrics port is no reason to
// leave every container without its network. The returned func waits for
// the metrics server to stop once ctx has ended.
func startMetrics(ctx context.Context, addr plugin.MetricsAddr, src metrics.StatusSource, log *slog.Logger) (*metrics.Metrics, func()) {
	if addr.Network == "" {
		return nil, func() {}
	}
	l, err := metrics.Listen(addr)
	if err != nil {
		log.Error("cannot serve metrics; weft runs without them", "err", err)
		return nil, func() {}
	}
	m := metrics.New(version)
	m.WatchState(src)
	done := make(chan struct{})
	go func() { defer close(done); m.Serve(ctx, l, log) }()
	log.Info("serving metrics at /metrics", "addr", addr.Network+":"+addr.Address)
	return m, func() { <-done }
}
