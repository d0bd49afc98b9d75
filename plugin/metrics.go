package netsel

import (
	"github.com/coredns/coredns/plugin"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Results a request is counted under.
const (
	resultAnswer      = "answer"
	resultNoData      = "nodata"
	resultNXDomain    = "nxdomain"
	resultFallthrough = "fallthrough"
	resultRefused     = "refused"
	resultNotReady    = "not_ready" // the index has not read etcd yet
)

func (r result) label() string {
	switch {
	case r.rcode == dns.RcodeNameError:
		return resultNXDomain
	case len(r.answer) == 0:
		return resultNoData
	}
	return resultAnswer
}

// requestCount counts the queries the plugin handled, by server, query type
// and result.
var requestCount = promauto.NewCounterVec(prometheus.CounterOpts{
	Namespace: plugin.Namespace,
	Subsystem: pluginName,
	Name:      "requests_total",
	Help:      "Counter of queries answered by the netsel plugin, by query type and result.",
}, []string{"server", "type", "result"})

func countRequest(server string, qtype uint16, result string) {
	requestCount.WithLabelValues(server, typeLabel(qtype), result).Inc()
}

// typeLabel bounds the type label to the types the plugin answers.
func typeLabel(qtype uint16) string {
	switch qtype {
	case dns.TypeA, dns.TypeAAAA, dns.TypeSRV, dns.TypePTR, dns.TypeSOA, dns.TypeANY,
		dns.TypeNS, dns.TypeTXT, dns.TypeAXFR, dns.TypeIXFR:
		return dns.TypeToString[qtype]
	}
	return "other"
}

// indexCollector exports the counters of every running index at scrape time.
type indexCollector struct {
	revision, services, instances, synced, skipped, relists, failures *prometheus.Desc
}

func newIndexCollector() *indexCollector {
	desc := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(plugin.Namespace, pluginName, name), help,
			[]string{"endpoints", "prefix"}, nil)
	}
	return &indexCollector{
		revision:  desc("index_revision", "etcd revision of the index's current snapshot."),
		services:  desc("index_services", "Services in the index's current snapshot."),
		instances: desc("index_instances", "Live instances in the index's current snapshot."),
		synced:    desc("index_synced", "1 once the index has read etcd in full, else 0."),
		skipped:   desc("skipped_keys_total", "Keys or values skipped because they did not decode."),
		relists:   desc("relists_total", "Full re-reads of the keyspace after a cut or compacted watch."),
		failures:  desc("index_failures_total", "Failed attempts to list or watch etcd."),
	}
}

// Describe implements prometheus.Collector.
func (c *indexCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.revision, c.services, c.instances, c.synced, c.skipped, c.relists, c.failures} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *indexCollector) Collect(ch chan<- prometheus.Metric) {
	eachIndex(func(s *sharedIndex) {
		st := s.ix.Stats()
		snap := s.ix.Snapshot()
		svcs, insts := snap.Len()
		synced := 0.0
		if snap.Synced() {
			synced = 1
		}
		l := []string{s.labels.endpoints, s.labels.prefix}
		ch <- prometheus.MustNewConstMetric(c.revision, prometheus.GaugeValue, float64(st.Revision), l...)
		ch <- prometheus.MustNewConstMetric(c.services, prometheus.GaugeValue, float64(svcs), l...)
		ch <- prometheus.MustNewConstMetric(c.instances, prometheus.GaugeValue, float64(insts), l...)
		ch <- prometheus.MustNewConstMetric(c.synced, prometheus.GaugeValue, synced, l...)
		ch <- prometheus.MustNewConstMetric(c.skipped, prometheus.CounterValue, float64(st.Skipped), l...)
		ch <- prometheus.MustNewConstMetric(c.relists, prometheus.CounterValue, float64(st.Relists), l...)
		ch <- prometheus.MustNewConstMetric(c.failures, prometheus.CounterValue, float64(st.Failures), l...)
	})
}

// The index collector is registered once, with the default registry that the
// prometheus plugin serves, as promauto does for the other metrics.
func init() { prometheus.MustRegister(newIndexCollector()) }
