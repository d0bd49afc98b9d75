//go:build linux

package faults

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"
)

// readerWatch checks, in the background, that DNS, the HTTP proxy and the
// VIP proxy keep answering for one service with a fixed set of instances:
// every 20ms, each answer right and each round under a second.
type readerWatch struct {
	stop, done chan struct{}
	rounds     int
	errs       []string
}

// watchReaders starts checking that service (whose instances answer HTTP
// with their ids) is served with exactly ids: SRV records from the DNS
// server at dnsAddr, and instances reached through the HTTP proxy at
// httpAddr and through vip.
func watchReaders(dnsAddr, httpAddr string, vip netip.AddrPort, service string, ids ...string) *readerWatch {
	w := &readerWatch{stop: make(chan struct{}), done: make(chan struct{})}
	want := targets(service, ids...)
	from := func(got string, err error) error {
		if err == nil && !slices.Contains(ids, got) {
			err = fmt.Errorf("answered by %q", got)
		}
		return err
	}
	start := time.Now()
	go func() {
		defer close(w.done)
		pace := time.NewTicker(20 * time.Millisecond)
		defer pace.Stop()
		for {
			select {
			case <-w.stop:
				return
			case <-pace.C:
			}
			w.rounds++
			t0 := time.Now()
			at := t0.Sub(start).Round(time.Millisecond)
			if got, err := srvTargets(dnsAddr, service); err != nil || !sameSet(got, want) {
				w.fail("%v: DNS SRV %s: %v, %v", at, service, got, err)
			}
			if _, err := vipOf(dnsAddr, service); err != nil {
				w.fail("%v: DNS A %s: %v", at, service, err)
			}
			if err := from(viaProxy(httpAddr, service+".netsel")); err != nil {
				w.fail("%v: HTTP proxy: %v", at, err)
			}
			if err := from(viaVIP(vip)); err != nil {
				w.fail("%v: VIP proxy %s: %v", at, vip, err)
			}
			if d := time.Since(t0); d > time.Second {
				w.fail("%v: one round of DNS, HTTP and VIP took %v", at, d)
			}
		}
	}()
	return w
}

func (w *readerWatch) fail(format string, args ...any) {
	w.errs = append(w.errs, fmt.Sprintf(format, args...))
}

// finish stops the checks and fails the test with what went wrong.
func (w *readerWatch) finish(t *testing.T, during string) {
	t.Helper()
	close(w.stop)
	<-w.done
	t.Logf("%d rounds of DNS, HTTP and VIP checks %s, %d failed", w.rounds, during, len(w.errs))
	if w.rounds == 0 {
		t.Errorf("no round of DNS, HTTP and VIP checks ran %s", during)
	}
	for i, e := range w.errs {
		if i == 10 {
			t.Errorf("... and %d more", len(w.errs)-i)
			break
		}
		t.Errorf("%s, readers failed at %s", during, e)
	}
}
