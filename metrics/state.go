package metrics

import (
	"context"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weftnet/weft/dataplane"
	"github.com/weftnet/weft/plugin"
)

// StatusSource is what the state gauges are read from: the running
// plugin (*plugin.Driver).
type StatusSource interface {
	Status(ctx context.Context) (*plugin.Status, error)
}

// scrapeWait bounds how long a scrape waits for a weft that is still
// starting (the status waits for the state to be loaded). Once weft has
// started, the status takes the driver's lock like a request, and a scrape
// during a long call waits for it.
const scrapeWait = 5 * time.Second

// WatchState adds the gauges read from src at each scrape: networks and
// endpoints by mode, pool sizes and use, unclaimed reservations, and with a
// cluster store its reachability, its peers and each vxlan network's
// remote endpoints (the entries weft programs into the kernel).
func (m *Metrics) WatchState(src StatusSource) {
	if m == nil {
		return
	}
	m.reg.MustRegister(newStateCollector(src))
}

// newStateCollector makes the collector and its descriptions.
func newStateCollector(src StatusSource) *stateCollector {
	return &stateCollector{
		src: src,
		descReady: prometheus.NewDesc("weft_state_ready",
			"1 when weft has loaded its state and answers requests; 0 while it starts or cannot (the log says why).", nil, nil),
		descNetworks: prometheus.NewDesc("weft_networks",
			"Networks weft serves on this host, by mode.", []string{"mode"}, nil),
		descEndpoints: prometheus.NewDesc("weft_endpoints",
			"Endpoints (container attachments) on this host, by mode.", []string{"mode"}, nil),
		descPoolSize: prometheus.NewDesc("weft_pool_size_addresses",
			"Addresses an IPAM pool hands out from (its --ip-range, or its subnet).", []string{"pool"}, nil),
		descPoolUsed: prometheus.NewDesc("weft_pool_allocated_addresses",
			"Addresses allocated on this host in an IPAM pool (gateways and --aux-address included).", []string{"pool"}, nil),
		descPoolOther: prometheus.NewDesc("weft_pool_other_host_addresses",
			"Addresses of a shared pool held because other hosts use them (cluster store).", []string{"pool"}, nil),
		descReservations: prometheus.NewDesc("weft_unclaimed_reservations",
			"Pools and addresses dockerd reserved that no network or endpoint has claimed yet (released after WEFT_RESERVATION_GRACE).", nil, nil),
		descClusterUp: prometheus.NewDesc("weft_cluster_store_connected",
			"1 when the cluster store (WEFT_STORE) is connected, 0 while weft cannot reach it.", []string{"store"}, nil),
		descPeers: prometheus.NewDesc("weft_cluster_peers",
			"Other hosts that publish vxlan endpoints in the cluster store.", nil, nil),
		descRemote: prometheus.NewDesc("weft_vxlan_remote_endpoints",
			"Other hosts' endpoints weft programs (neighbour and forwarding entries) into a vxlan network, by network and VNI.", []string{"network", "vni"}, nil),
	}
}

// stateCollector reads the gauges from the plugin's status at each scrape.
type stateCollector struct {
	src              StatusSource
	descReady        *prometheus.Desc
	descNetworks     *prometheus.Desc
	descEndpoints    *prometheus.Desc
	descPoolSize     *prometheus.Desc
	descPoolUsed     *prometheus.Desc
	descPoolOther    *prometheus.Desc
	descReservations *prometheus.Desc
	descClusterUp    *prometheus.Desc
	descPeers        *prometheus.Desc
	descRemote       *prometheus.Desc
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.descReady, c.descNetworks, c.descEndpoints, c.descPoolSize, c.descPoolUsed, c.descPoolOther,
		c.descReservations, c.descClusterUp, c.descPeers, c.descRemote} {
		ch <- d
	}
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeWait)
	defer cancel()
	s, err := c.src.Status(ctx)
	if err != nil {
		ch <- prometheus.MustNewConstMetric(c.descReady, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.descReady, prometheus.GaugeValue, 1)
	// Every mode is reported, 0 included, so that a query over modes does
	// not lose a series when the last network of a mode goes.
	nets := map[string]float64{}
	eps := map[string]float64{}
	modeOf := map[string]string{}
	for _, mode := range []dataplane.ModeName{dataplane.Bridge, dataplane.Macvlan, dataplane.Vxlan} {
		nets[string(mode)], eps[string(mode)] = 0, 0
	}
	for _, n := range s.Networks {
		nets[n.Mode]++
		modeOf[n.ID] = n.Mode
	}
	for _, e := range s.Endpoints {
		eps[modeOf[e.Network]]++
	}
	for mode, v := range nets {
		ch <- prometheus.MustNewConstMetric(c.descNetworks, prometheus.GaugeValue, v, mode)
	}
	for mode, v := range eps {
		ch <- prometheus.MustNewConstMetric(c.descEndpoints, prometheus.GaugeValue, v, mode)
	}
	for _, p := range s.Pools {
		ch <- prometheus.MustNewConstMetric(c.descPoolSize, prometheus.GaugeValue, p.Size, p.ID)
		ch <- prometheus.MustNewConstMetric(c.descPoolUsed, prometheus.GaugeValue, float64(p.Allocated), p.ID)
		if p.Shared || p.OtherHosts > 0 {
			ch <- prometheus.MustNewConstMetric(c.descPoolOther, prometheus.GaugeValue, float64(p.OtherHosts), p.ID)
		}
	}
	ch <- prometheus.MustNewConstMetric(c.descReservations, prometheus.GaugeValue, float64(s.Reservations))
	if s.Cluster == nil {
		return
	}
	up := 0.0
	if s.Cluster.Connected {
		up = 1
	}
	ch <- prometheus.MustNewConstMetric(c.descClusterUp, prometheus.GaugeValue, up, s.Cluster.Store)
	ch <- prometheus.MustNewConstMetric(c.descPeers, prometheus.GaugeValue, float64(len(s.Cluster.Peers)))
	for _, n := range s.Networks {
		if n.Mode == string(dataplane.Vxlan) {
			ch <- prometheus.MustNewConstMetric(c.descRemote, prometheus.GaugeValue, float64(n.RemoteEndpoints),
				dataplane.ShortID(n.ID), formatVNI(n.VNI))
		}
	}
}

func formatVNI(vni uint32) string { return strconv.FormatUint(uint64(vni), 10) }
