package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/weftnet/weft/plugin"
)

// Metrics holds weft's metrics and the registry they are served from.
type Metrics struct {
	reg        *prometheus.Registry
	requests   *prometheus.HistogramVec
	reconciles *prometheus.CounterVec
	checks     *prometheus.CounterVec
	repairs    *prometheus.CounterVec
	storeTime  *prometheus.HistogramVec
	storeErrs  *prometheus.CounterVec
}

var _ plugin.Observer = (*Metrics)(nil)

// New returns weft's metrics in a registry of their own, with the Go
// runtime's and the process's metrics and weft's version.
func New(version string) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "weft_request_duration_seconds",
			Help: "Time weft took to answer a plugin API call, by route and outcome (ok, refused: 4xx, failed: 5xx); _count is the number of calls.",
			// From a capability call (tens of µs) to a DeleteNetwork with
			// many endpoints, or a call queued behind one (seconds).
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"route", "outcome"}),
		reconciles: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_reconcile_total",
			Help: "Reconciles of a mode's kernel objects with weft's state at start, by mode and outcome (ok, failed).",
		}, []string{"mode", "outcome"}),
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_kernel_checks_total",
			Help: "Periodic checks of a mode's kernel objects, by mode and result (ok, drift: something was missing, failed: the check could not run).",
		}, []string{"mode", "result"}),
		repairs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_repairs_total",
			Help: "Repairs of kernel objects removed behind weft's back, by mode and outcome (ok, failed).",
		}, []string{"mode", "outcome"}),
		storeTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "weft_store_operation_duration_seconds",
			Help:    "Time a state store call took, by store (local: weft.db, cluster: etcd) and operation.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"store", "op"}),
		storeErrs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_store_errors_total",
			Help: "State store calls that failed, by store (local, cluster) and operation.",
		}, []string{"store", "op"}),
	}
	m.reg.MustRegister(m.requests, m.reconciles, m.checks, m.repairs, m.storeTime, m.storeErrs,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "weft_build_info",
			Help:        "Always 1; the version label is weft's version.",
			ConstLabels: prometheus.Labels{"version": version},
		}, func() float64 { return 1 }),
	)
	return m
}

// Registry is the registry the metrics are in, for tests.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Request implements plugin.Observer.
func (m *Metrics) Request(route, outcome string, took time.Duration) {
	if m == nil {
		return
	}
	m.requests.WithLabelValues(route, outcome).Observe(took.Seconds())
}

// Reconciled implements plugin.Observer.
func (m *Metrics) Reconciled(mode string, err error) {
	if m == nil {
		return
	}
	m.reconciles.WithLabelValues(mode, outcome(err)).Inc()
}

// Checked implements plugin.Observer.
func (m *Metrics) Checked(mode string, found bool, err error) {
	if m == nil {
		return
	}
	result := "ok"
	switch {
	case err != nil:
		result = "failed"
	case found:
		result = "drift"
	}
	m.checks.WithLabelValues(mode, result).Inc()
}

// Repaired implements plugin.Observer.
func (m *Metrics) Repaired(mode string, err error) {
	if m == nil {
		return
	}
	m.repairs.WithLabelValues(mode, outcome(err)).Inc()
}

func outcome(err error) string {
	if err != nil {
		return "failed"
	}
	return "ok"
}

// Observer returns m as a plugin.Observer, or nil when m is nil: a nil
// *Metrics in a non-nil interface would still work (every method checks),
// but nil tells the plugin plainly that nobody observes.
func (m *Metrics) Observer() plugin.Observer {
	if m == nil {
		return nil
	}
	return m
}

// Handler serves the metrics in Prometheus' text format (or OpenMetrics
// when asked).
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorLog:          nil,
		ErrorHandling:     promhttp.ContinueOnError,
		EnableOpenMetrics: true,
		// A scrape is answered from memory; more than this at once is a
		// misconfigured scraper, not a reason to use more of the host.
		MaxRequestsInFlight: 4,
	})
}

// Listen opens addr (plugin.MetricsAddr, already validated): a TCP address,
// or a unix socket that only root may reach, placed as the plugin socket is
// (plugin.Listen: it refuses a path another process serves and replaces a
// stale socket).
func Listen(addr plugin.MetricsAddr) (net.Listener, error) {
	if addr.Network == "unix" {
		l, err := plugin.Listen(addr.Address)
		if err != nil {
			return nil, fmt.Errorf("metrics socket (WEFT_METRICS_ADDR): %w", err)
		}
		return l, nil
	}
	l, err := net.Listen("tcp", addr.Address)
	if err != nil {
		return nil, fmt.Errorf("listening for metrics on %s (WEFT_METRICS_ADDR): %w; choose a free port or another address", addr.Address, err)
	}
	return l, nil
}

// Serve serves m on l at /metrics until ctx ends, then closes l (and removes
// a unix socket). Errors other than the shutdown are logged: metrics are
// not worth stopping weft for.
func (m *Metrics) Serve(ctx context.Context, l net.Listener, log *slog.Logger) {
	mux := http.NewServeMux()
	mux.Handle("/metrics", m.Handler())
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Error("metrics server stopped; weft goes on without metrics", "addr", l.Addr().String(), "err", err)
	}
	<-done
	if ua, ok := l.Addr().(*net.UnixAddr); ok {
		_ = os.Remove(ua.Name)
	}
}
