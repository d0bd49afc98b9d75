package registrar

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the registrar's Prometheus metrics, in a registry of its own.
type metrics struct {
	reg *prometheus.Registry

	registrations   *prometheus.CounterVec // by result
	heartbeats      *prometheus.CounterVec // by result
	renewRequests   prometheus.Counter     // keep-alive requests sent to etcd
	renewStreams    prometheus.Counter     // keep-alive streams opened
	vipConflicts    prometheus.Counter
	etcdFailures    prometheus.Counter
	requests        *prometheus.CounterVec // by route, method, code
	latency         *prometheus.HistogramVec
	blockingActive  prometheus.Gauge
	blockingWakeups prometheus.Counter
	limited         *prometheus.CounterVec // requests refused by a limit, by limit
	listBuilds      prometheus.Counter     // service lists encoded

	reapPending prometheus.Gauge       // leases the reaper holds
	reaped      prometheus.Counter     // leases the reaper revoked
	reapDropped prometheus.Counter     // leases left to expire: the reaper was full
	readBacks   *prometheus.CounterVec // by outcome
	revived     prometheus.Counter
	etcdAlarm   *prometheus.GaugeVec // by alarm

	drains    *prometheus.CounterVec // drains answered, by result
	drainWait prometheus.Histogram   // how long drains waited for the readers
}

func newMetrics() *metrics {
	const ns, sub = "netsel", "registrar"
	m := &metrics{
		reg: prometheus.NewRegistry(),
		registrations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "registrations_total",
			Help: "Registrations by result: new, renewed (same id again), rejected, failed.",
		}, []string{"result"}),
		heartbeats: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "heartbeats_total",
			Help: "Heartbeats by result: ok, cached (answered from a renewal under 500ms old), expired, failed.",
		}, []string{"result"}),
		renewRequests: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "lease_keepalive_requests_total",
			Help: "Lease keep-alive requests sent to etcd on the shared stream.",
		}),
		renewStreams: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "lease_keepalive_streams_total",
			Help: "Lease keep-alive streams opened to etcd.",
		}),
		vipConflicts: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "vip_conflicts_total",
			Help: "VIP allocation transactions that lost a race and retried.",
		}),
		etcdFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "etcd_failures_total",
			Help: "Requests answered 503 because etcd failed or did not answer in time.",
		}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "http_requests_total",
			Help: "HTTP requests by route, method and status code.",
		}, []string{"route", "method", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: ns, Subsystem: sub, Name: "http_request_duration_seconds",
			Help:    "HTTP request latency by route (blocking queries excluded).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route"}),
		blockingActive: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "blocking_queries",
			Help: "Blocking queries waiting now.",
		}),
		blockingWakeups: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "blocking_wakeups_total",
			Help: "Times a waiting blocking query was woken by a change to what it watches (a query on one service wakes only for that service).",
		}),
		limited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "limited_total",
			Help: "Requests refused by a limit, by limit: services, instances_per_service, instances_per_token, data_bytes, rate, blocking_total, blocking_client, vip_range; connections counts idle connections closed to make room.",
		}, []string{"limit"}),
		listBuilds: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "service_list_builds_total",
			Help: "Service list answers encoded (once per index snapshot, shared by every reader of it).",
		}),
		reapPending: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "lease_revokes_pending",
			Help: "Leases of failed registrations waiting to be revoked in the background.",
		}),
		reaped: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "lease_revokes_background_total",
			Help: "Leases of failed registrations revoked in the background.",
		}),
		reapDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "lease_revokes_dropped_total",
			Help: "Leases left to expire by themselves because 10000 were waiting to be revoked.",
		}),
		readBacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "write_readbacks_total",
			Help: "Registrations whose commit answered an error, read back: written (answered 200), not_written, unknown.",
		}, []string{"outcome"}),
		revived: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "instances_revived_total",
			Help: "Instances put back under a new lease by a heartbeat after etcd let their lease expire while it could not answer their heartbeats.",
		}),
		etcdAlarm: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "etcd_alarm",
			Help: "1 while etcd has raised the alarm (NOSPACE, CORRUPT), else 0.",
		}, []string{"alarm"}),
	}
	m.drains = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: ns, Subsystem: sub, Name: "drains_total",
		Help: "Drains answered by result: confirmed (every reader), timeout, shutdown.",
	}, []string{"result"})
	m.drainWait = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: ns, Subsystem: sub, Name: "drain_wait_seconds",
		Help:    "How long drains waited for the readers to confirm (or time out).",
		Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 600},
	})
	m.reg.MustRegister(m.drains, m.drainWait)
	m.etcdAlarm.WithLabelValues("NOSPACE").Set(0)
	m.etcdAlarm.WithLabelValues("CORRUPT").Set(0)
	m.reg.MustRegister(m.limited, m.listBuilds, m.registrations, m.heartbeats, m.renewRequests, m.renewStreams,
		m.vipConflicts, m.etcdFailures, m.requests, m.latency, m.blockingActive, m.blockingWakeups,
		m.reapPending, m.reaped, m.reapDropped, m.readBacks, m.revived, m.etcdAlarm,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

func (m *metrics) observe(route, method string, code int, d time.Duration, blocking bool) {
	m.requests.WithLabelValues(route, methodLabel(method), strconv.Itoa(code)).Inc()
	if !blocking {
		m.latency.WithLabelValues(route).Observe(d.Seconds())
	}
}

// methodLabel maps a request method to a label value from a fixed set, so
// clients cannot create new series by inventing methods.
func methodLabel(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodOptions, http.MethodPatch:
		return method
	}
	return "other"
}
