package caddymodule

import "github.com/prometheus/client_golang/prometheus"

// closeReason says why a UDP flow closed.
type closeReason int32

const (
	closedNot      closeReason = iota // still open
	closedIdle                        // udp_idle_timeout passed with no datagram
	closedInstance                    // the instance left the usable ones
	closedRefused                     // the instance answered port unreachable
	closedSocket                      // the VIP:port's socket closed
	closedError                       // reading from the instance failed
	numCloseReasons
)

var closeReasons = [numCloseReasons]string{"", "idle", "instance_gone", "refused", "socket_closed", "error"}

// udpMetrics are the UDP VIP proxy's series, namespace netsel, subsystem
// vip.
type udpMetrics struct {
	flowsOpen prometheus.Gauge
	flows     *prometheus.CounterVec // by service
	closed    *prometheus.CounterVec // by reason
	closedBy  [numCloseReasons]prometheus.Counter
	datagrams *prometheus.CounterVec // by service, direction
	bytes     *prometheus.CounterVec // by service, direction
	dropped   *prometheus.CounterVec // by service, reason
}

func newUDPMetrics() udpMetrics {
	m := udpMetrics{
		flowsOpen: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "netsel", Subsystem: "vip", Name: "udp_flows",
			Help: "UDP flows (a client address's datagrams to one instance) open through VIPs.",
		}),
		flows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "netsel", Subsystem: "vip", Name: "udp_flows_total",
			Help: "UDP flows opened through VIPs.",
		}, []string{"service"}),
		closed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "netsel", Subsystem: "vip", Name: "udp_flows_closed_total",
			Help: "UDP flows closed, by reason: idle, instance_gone, refused (ICMP port unreachable), socket_closed, error.",
		}, []string{"reason"}),
		datagrams: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "netsel", Subsystem: "vip", Name: "udp_datagrams_total",
			Help: "UDP datagrams forwarded through VIPs, by direction: to_instance or to_client.",
		}, []string{"service", "direction"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "netsel", Subsystem: "vip", Name: "udp_bytes_total",
			Help: "UDP payload bytes forwarded through VIPs, by direction: to_instance or to_client.",
		}, []string{"service", "direction"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "netsel", Subsystem: "vip", Name: "udp_dropped_total",
			Help: "UDP datagrams dropped, by reason: flow_limit (a new client past max_conns_per_listener or max_conns), no_instance, send_error.",
		}, []string{"service", "reason"}),
	}
	for r := closedIdle; r < numCloseReasons; r++ {
		m.closedBy[r] = m.closed.WithLabelValues(closeReasons[r])
	}
	return m
}

func (m *udpMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.flowsOpen, m.flows, m.closed, m.datagrams, m.bytes, m.dropped}
}

// udpServiceMetrics are one service's series, resolved once per socket.
type udpServiceMetrics struct {
	flows                       prometheus.Counter
	toInstance, toClient        prometheus.Counter
	bytesToInstance, bytesToCli prometheus.Counter
	dropLimit, dropNoInstance   prometheus.Counter
	dropSend                    prometheus.Counter
}

func (m *udpMetrics) serviceMetrics(service string) udpServiceMetrics {
	return udpServiceMetrics{
		flows:           m.flows.WithLabelValues(service),
		toInstance:      m.datagrams.WithLabelValues(service, "to_instance"),
		toClient:        m.datagrams.WithLabelValues(service, "to_client"),
		bytesToInstance: m.bytes.WithLabelValues(service, "to_instance"),
		bytesToCli:      m.bytes.WithLabelValues(service, "to_client"),
		dropLimit:       m.dropped.WithLabelValues(service, "flow_limit"),
		dropNoInstance:  m.dropped.WithLabelValues(service, "no_instance"),
		dropSend:        m.dropped.WithLabelValues(service, "send_error"),
	}
}

// deleteService drops service's series.
func (m *udpMetrics) deleteService(service string) {
	only := prometheus.Labels{"service": service}
	m.flows.DeletePartialMatch(only)
	m.datagrams.DeletePartialMatch(only)
	m.bytes.DeletePartialMatch(only)
	m.dropped.DeletePartialMatch(only)
}
