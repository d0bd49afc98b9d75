package main

import (
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// phase is the part of the soak an operation started in: steady state, or
// one of the deliberate fault windows and the recovery that follows.
type phase int32

const (
	phaseSteady phase = iota
	phaseRunnerDown
	phaseRunnerRecovery
	phaseEtcdDown
	phaseEtcdRecovery
	numPhases
)

var phaseNames = [numPhases]string{"steady", "runner-down", "runner-recovery", "etcd-down", "etcd-recovery"}

func (p phase) String() string { return phaseNames[p] }

// The kinds of client-visible events counted.
const (
	kRegisterErr  = "register-retry"  // a registration attempt failed (Keepalive retries)
	kHeartbeatErr = "heartbeat-retry" // a heartbeat failed (Keepalive retries)
	kExpired      = "expired"         // a heartbeat got 404: the instance was gone
	kKeepaliveEnd = "keepalive-exit"  // Keepalive returned an error it cannot retry
	kDNSTimeout   = "dns-no-answer"   // no answer: timeout or refused (UDP or TCP)
	kDNSRcode     = "dns-rcode"       // an answer other than NOERROR
	kDNSWrong     = "dns-wrong"       // NOERROR with the wrong VIP or too few SRV records
	kHTTPErr      = "http-error"      // transport error through the HTTP proxy
	kHTTPStatus   = "http-status"     // a status other than 200 through the HTTP proxy
	kTCPErr       = "tcp-error"       // dial, write or read error through the VIP proxy
	kTCPMismatch  = "tcp-mismatch"    // echo came back different
)

var kinds = []string{kRegisterErr, kHeartbeatErr, kExpired, kKeepaliveEnd, kDNSTimeout, kDNSRcode, kDNSWrong, kHTTPErr, kHTTPStatus, kTCPErr, kTCPMismatch}

// stats gathers what the clients see. It is safe for concurrent use.
type stats struct {
	cur atomic.Int32 // current phase

	mu       sync.Mutex
	total    map[string]*[numPhases]int64 // errors by kind and phase
	window   map[string]int64             // errors by kind since the last sample
	examples map[string][]string          // the first few messages of each kind and phase
	dnsLat   []time.Duration              // DNS latencies since the last sample
	allLat   [numPhases][]time.Duration   // every DNS latency by phase
	ok       map[string]int64             // successes by kind of traffic since the last sample
	okTotal  map[string]int64
	expired  map[string]bool // instance ids a Keepalive saw expire
}

func newStats() *stats {
	s := &stats{
		total:    make(map[string]*[numPhases]int64),
		window:   make(map[string]int64),
		examples: make(map[string][]string),
		ok:       make(map[string]int64),
		okTotal:  make(map[string]int64),
		expired:  make(map[string]bool),
	}
	for _, k := range kinds {
		s.total[k] = new([numPhases]int64)
	}
	return s
}

func (s *stats) phase() phase     { return phase(s.cur.Load()) }
func (s *stats) setPhase(p phase) { s.cur.Store(int32(p)) }

// fail counts one event of kind that started in phase p. An operation
// that started before a fault window and failed inside it (in flight at the
// SIGKILL) counts in the window.
func (s *stats) fail(kind string, p phase, msg string) {
	if now := s.phase(); now == phaseRunnerDown || now == phaseEtcdDown {
		p = now
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.total[kind][p]++
	s.window[kind]++
	if ek := kind + "\x00" + p.String(); len(s.examples[ek]) < 3 {
		s.examples[ek] = append(s.examples[ek], time.Now().Format("15:04:05.000")+" "+p.String()+": "+msg)
	}
}

// success counts one good operation of traffic kind ("dns", "http", "tcp").
func (s *stats) success(kind string) {
	s.mu.Lock()
	s.ok[kind]++
	s.okTotal[kind]++
	s.mu.Unlock()
}

// dns records the latency of a good DNS answer to a query started in p.
func (s *stats) dns(d time.Duration, p phase) {
	s.mu.Lock()
	s.dnsLat = append(s.dnsLat, d)
	s.allLat[p] = append(s.allLat[p], d)
	s.ok["dns"]++
	s.okTotal["dns"]++
	s.mu.Unlock()
}

func (s *stats) sawExpired(id string) {
	s.mu.Lock()
	s.expired[id] = true
	s.mu.Unlock()
}

// windowStats is what one sample takes from stats.
type windowStats struct {
	errs     map[string]int64
	ok       map[string]int64
	dnsCount int
	dnsP50   time.Duration
	dnsP99   time.Duration
	dnsMax   time.Duration
}

// take returns and resets the counters of the current window.
func (s *stats) take() windowStats {
	s.mu.Lock()
	w := windowStats{errs: s.window, ok: s.ok, dnsCount: len(s.dnsLat)}
	lat := s.dnsLat
	s.window, s.ok, s.dnsLat = make(map[string]int64), make(map[string]int64), nil
	s.mu.Unlock()
	w.dnsP50, w.dnsP99, w.dnsMax = percentiles(lat)
	return w
}

// percentiles returns the p50, p99 and max of ds (zero when empty).
func percentiles(ds []time.Duration) (p50, p99, max time.Duration) {
	if len(ds) == 0 {
		return 0, 0, 0
	}
	ds = slices.Clone(ds)
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	at := func(q float64) time.Duration { return ds[min(len(ds)-1, int(q*float64(len(ds))))] }
	return at(0.50), at(0.99), ds[len(ds)-1]
}
