package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// sample is what the sampler saw at one tick.
type sample struct {
	t         time.Duration // since the fleet started
	steady    bool          // every instance had registered
	phase     phase
	runnerMB  float64 // VmRSS; 0 when not running
	etcdMB    []float64
	selfMB    float64
	instances int64 // keys under /netsel/instances/; -1 when the count failed
	w         windowStats
}

// sampler takes a sample every c.sample until ctx ends, and restarts a
// runner or etcd member that died outside a deliberate fault (noting it).
func (s *soak) sampler(ctx context.Context) {
	t := time.NewTicker(s.c.sample)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.watchCrashes()
		sm := sample{
			t:         time.Since(s.start),
			steady:    !s.steadySince().IsZero(),
			phase:     s.st.phase(),
			runnerMB:  rssMB(s.runner.pid()),
			selfMB:    rssMB(os.Getpid()),
			instances: s.countInstances(ctx),
		}
		for _, m := range s.members {
			sm.etcdMB = append(sm.etcdMB, rssMB(m.pid()))
		}
		sm.w = s.st.take()
		s.mu.Lock()
		s.samples = append(s.samples, sm)
		s.mu.Unlock()
		logf("t=%4.0fs %-15s runner %5.0f MB  etcd %s MB  self %5.0f MB  keys %6d  dns %5d p99 %6.1f ms  errors %v",
			sm.t.Seconds(), sm.phase, sm.runnerMB, fmtMBs(sm.etcdMB), sm.selfMB, sm.instances, sm.w.dnsCount, ms(sm.w.dnsP99), sm.w.errs)
	}
}

// watchCrashes restarts a process that died by itself: a finding.
func (s *soak) watchCrashes() {
	s.mu.Lock()
	deliberate := s.deliberate
	s.mu.Unlock()
	if deliberate || ctxDone(s) {
		return
	}
	if !s.runner.running() {
		s.event("RUNNER EXITED BY ITSELF (%v); restarting it — see the runner log", s.runner.exitState())
		if err := s.runner.start(); err == nil {
			s.mu.Lock()
			s.runnerInc = append(s.runnerInc, time.Now())
			s.mu.Unlock()
		}
	}
	for i, m := range s.members {
		if !m.running() {
			s.event("ETCD MEMBER %s EXITED BY ITSELF (%v); restarting it", m.name, m.exitState())
			if err := m.start(s.c.etcdBin); err == nil {
				s.mu.Lock()
				s.etcdInc[i] = append(s.etcdInc[i], time.Now())
				s.mu.Unlock()
			}
		}
	}
}

// ctxDone reports whether the soak is past its steady part (the runner is
// then stopped on purpose).
func ctxDone(s *soak) bool {
	at := s.steadySince()
	return !at.IsZero() && time.Since(at) > s.c.duration
}

// steadySince returns when every instance had registered (zero before).
func (s *soak) steadySince() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.steadyAt
}

// countInstances counts the keys under the instances prefix.
func (s *soak) countInstances(ctx context.Context) int64 {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	resp, err := s.etcd.Get(ctx, s.ks.InstancesPrefix(), clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return -1
	}
	return resp.Count
}

// finalCheck lists the instance keys at the end of the steady soak, while
// every Keepalive still runs, and notes expected instances that are missing.
func (s *soak) finalCheck(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := s.etcd.Get(ctx, s.ks.InstancesPrefix(), clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		s.event("final listing failed: %v", err)
		return
	}
	have := make(map[string]bool, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		have[string(kv.Key)] = true
	}
	var missing []string
	for _, in := range s.expected {
		k := s.ks.InstanceKey(in.service, in.id)
		if !have[k] {
			missing = append(missing, in.service+"/"+in.id)
		}
		delete(have, k)
	}
	s.mu.Lock()
	s.final = &finalState{listed: len(resp.Kvs), missing: missing, extra: len(have)}
	s.mu.Unlock()
	s.event("end of soak: %d instance keys in etcd, %d expected missing, %d unexpected", len(resp.Kvs), len(missing), len(have))
}

// afterDeregister counts the instance keys left once the fleet has
// deregistered.
func (s *soak) afterDeregister(ctx context.Context) {
	n := s.countInstances(ctx)
	s.mu.Lock()
	if s.final != nil {
		s.final.afterDereg = n
	}
	s.mu.Unlock()
	s.event("fleet stopped: %d deregistrations ok, %d failed; %d instance keys left in etcd", s.fleet.dereg.Load(), s.fleet.deregKO.Load(), n)
}

// finalState is the end-of-soak check.
type finalState struct {
	listed     int
	missing    []string
	extra      int
	afterDereg int64
}

// rssMB returns the VmRSS of pid in MB, 0 when it cannot be read.
func rssMB(pid int) float64 {
	if pid <= 0 {
		return 0
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func fmtMBs(v []float64) string {
	var b strings.Builder
	for i, x := range v {
		if i > 0 {
			b.WriteByte('/')
		}
		fmt.Fprintf(&b, "%.0f", x)
	}
	return b.String()
}
