package main

import (
	"context"
	"syscall"
	"time"
)

// faults SIGKILLs and restarts the runner, then stops and restarts one etcd
// member, at the configured points of the steady soak.
func (s *soak) faults(ctx context.Context) {
	c := s.c
	type fault struct {
		at float64
		do func(context.Context)
	}
	fs := []fault{{c.runnerKillAt, s.killRunner}, {c.etcdStopAt, s.stopEtcdMember}}
	if fs[1].at < fs[0].at {
		fs[0], fs[1] = fs[1], fs[0]
	}
	for _, f := range fs {
		if f.at < 0 {
			continue
		}
		at := s.steadySince().Add(time.Duration(f.at * float64(c.duration)))
		if !sleepCtx(ctx, time.Until(at)) {
			return
		}
		f.do(ctx)
	}
}

// killRunner SIGKILLs the runner — registrar, DNS server and both proxies
// die together — waits c.runnerDown and starts it again on the same ports.
// The runner-down window runs from the kill until the registrar answers
// /v1/health and the DNS server answers a query again.
func (s *soak) killRunner(ctx context.Context) {
	s.setDeliberate(true)
	defer s.setDeliberate(false)
	s.st.setPhase(phaseRunnerDown)
	killed := time.Now()
	s.runner.signal(syscall.SIGKILL, 0)
	s.event("runner SIGKILLed (registrar, DNS, HTTP and VIP proxies down)")
	sleepCtx(ctx, s.c.runnerDown)
	if err := s.runner.start(); err != nil {
		s.event("runner restart failed: %v", err)
		return
	}
	s.mu.Lock()
	s.runnerInc = append(s.runnerInc, time.Now())
	s.mu.Unlock()
	if err := s.runner.waitReady(ctx, webService+"."+zone, time.Minute); err != nil {
		s.event("runner not ready after restart: %v", err)
	} else {
		s.event("runner restarted after %v dead; serving again %v after the kill", s.c.runnerDown, time.Since(killed).Round(time.Millisecond))
	}
	s.st.setPhase(phaseRunnerRecovery)
	sleepCtx(ctx, s.c.recovery)
	s.st.setPhase(phaseSteady)
}

// stopEtcdMember stops the leader (or a follower) with SIGKILL (or
// SIGTERM), leaves it down for c.etcdDown and starts it again on its data.
func (s *soak) stopEtcdMember(ctx context.Context) {
	s.setDeliberate(true)
	defer s.setDeliberate(false)
	lead, err := leader(ctx, s.members)
	if err != nil {
		s.event("etcd fault skipped: %v", err)
		return
	}
	victim, role := lead, "leader"
	if s.c.etcdMember == "follower" {
		role = "follower"
		for _, m := range s.members {
			if m != lead {
				victim = m
				break
			}
		}
	}
	sig, grace := syscall.SIGKILL, time.Duration(0)
	if s.c.etcdSignal == "term" {
		sig, grace = syscall.SIGTERM, 10*time.Second
	}
	s.st.setPhase(phaseEtcdDown)
	stopped := time.Now()
	victim.signal(sig, grace)
	s.event("etcd member %s (%s) stopped with %v", victim.name, role, sig)
	if role == "leader" {
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		if m, err := waitLeader(wctx, s.members); err == nil {
			s.event("new etcd leader %s, %v after the stop", m.name, time.Since(stopped).Round(time.Millisecond))
		} else {
			s.event("no new etcd leader: %v", err)
		}
		cancel()
	}
	sleepCtx(ctx, time.Until(stopped.Add(s.c.etcdDown)))
	if err := victim.start(s.c.etcdBin); err != nil {
		s.event("etcd member %s restart failed: %v", victim.name, err)
		return
	}
	s.mu.Lock()
	for i, m := range s.members {
		if m == victim {
			s.etcdInc[i] = append(s.etcdInc[i], time.Now())
		}
	}
	s.mu.Unlock()
	if err := victim.waitServing(ctx, time.Minute); err != nil {
		s.event("etcd member %s not serving after restart: %v", victim.name, err)
	} else {
		s.event("etcd member %s restarted after %v down; serving again %v after the stop", victim.name, s.c.etcdDown, time.Since(stopped).Round(time.Millisecond))
	}
	s.st.setPhase(phaseEtcdRecovery)
	sleepCtx(ctx, s.c.recovery)
	s.st.setPhase(phaseSteady)
}

func (s *soak) setDeliberate(v bool) {
	s.mu.Lock()
	s.deliberate = v
	s.mu.Unlock()
}
