package checks

import (
	"github.com/netsel/netsel/catalog"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the checker's Prometheus metrics. Their label values come
// from fixed sets, and the per-probe series are looked up once.
type metrics struct {
	probes  *prometheus.CounterVec // by type, result
	changes *prometheus.CounterVec // by state entered
	writes  *prometheus.CounterVec // by result
	owned   prometheus.Gauge
	members prometheus.Gauge
	delay   prometheus.Histogram

	// probeSeries[type][status] are the probes' counters.
	probeSeries map[string]*[3]prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	const ns, sub = "netsel", "registrar"
	m := &metrics{
		probes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "check_probes_total",
			Help: "Health check probes run by this registrar, by type (http, tcp, grpc) and result (pass, warn, fail).",
		}, []string{"type", "result"}),
		changes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "check_state_changes_total",
			Help: "Instance states written by this registrar's checks, by the state entered (passing, warning, critical).",
		}, []string{"state"}),
		writes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "check_writes_total",
			Help: "State writes to etcd by result: ok, gone (the instance left or changed lease first), failed (retried after the next probe).",
		}, []string{"result"}),
		owned: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "check_owned_instances",
			Help: "Instances with checks that this registrar checks (its share among the live registrars).",
		}),
		members: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "check_members",
			Help: "Live registrars sharing the checks, as this registrar's catalog shows them.",
		}),
		delay: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: ns, Subsystem: sub, Name: "check_probe_delay_seconds",
			Help:    "How late probes start after they are due (all probe slots busy, or a busy scheduler).",
			Buckets: []float64{.001, .005, .01, .05, .1, .5, 1, 5},
		}),
		probeSeries: map[string]*[3]prometheus.Counter{},
	}
	for _, typ := range []string{catalog.CheckHTTP, catalog.CheckTCP, catalog.CheckGRPC} {
		m.probeSeries[typ] = &[3]prometheus.Counter{
			m.probes.WithLabelValues(typ, "pass"),
			m.probes.WithLabelValues(typ, "warn"),
			m.probes.WithLabelValues(typ, "fail"),
		}
	}
	for _, s := range []string{catalog.StatePassing, catalog.StateWarning, catalog.StateCritical} {
		m.changes.WithLabelValues(s)
	}
	for _, r := range []string{"ok", "gone", "failed"} {
		m.writes.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(m.probes, m.changes, m.writes, m.owned, m.members, m.delay)
	}
	return m
}

func (m *metrics) probed(typ string, status int) {
	if s := m.probeSeries[typ]; s != nil {
		s[status].Inc()
	}
}
