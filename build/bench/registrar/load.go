package main

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"
)

// op is one operation of client w; n counts that client's operations.
type op func(ctx context.Context, w, n int) error

// result is one timed run of one case.
type result struct {
	ops      int
	errs     int
	firstErr error
	elapsed  time.Duration
	p50, p99 time.Duration
}

func (r result) rate() float64 { return float64(r.ops) / r.elapsed.Seconds() }

// load runs f on clients goroutines for d and returns the rate of
// successful operations and their latency percentiles.
func load(ctx context.Context, clients int, d time.Duration, f op) result {
	lats := make([][]time.Duration, clients)
	errs := make([]int, clients)
	first := newFirstErr()
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for w := range clients {
		wg.Go(func() {
			lat := make([]time.Duration, 0, 4096)
			for n := 0; ctx.Err() == nil; n++ {
				t0 := time.Now()
				if !t0.Before(deadline) {
					break
				}
				if err := f(ctx, w, n); err != nil {
					errs[w]++
					first.set(fmt.Errorf("client %d op %d: %w", w, n, err))
					continue
				}
				lat = append(lat, time.Since(t0))
			}
			lats[w] = lat
		})
	}
	wg.Wait()
	r := result{elapsed: time.Since(start), firstErr: first.get()}
	all := slices.Concat(lats...)
	slices.Sort(all)
	r.ops = len(all)
	for _, e := range errs {
		r.errs += e
	}
	if len(all) > 0 {
		r.p50 = all[len(all)/2]
		r.p99 = all[min(len(all)-1, len(all)*99/100)]
	}
	return r
}

// summary is the median over runs of one case.
type summary struct {
	rate     float64
	p50, p99 time.Duration
	rates    []float64
	errs     int
}

func summarize(rs []result) summary {
	var s summary
	var p50, p99 []time.Duration
	for _, r := range rs {
		s.rates = append(s.rates, r.rate())
		p50 = append(p50, r.p50)
		p99 = append(p99, r.p99)
		s.errs += r.errs
	}
	s.rate = median(slices.Clone(s.rates))
	s.p50 = median(p50)
	s.p99 = median(p99)
	return s
}

func median[T int | float64 | time.Duration](v []T) T {
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	return v[(len(v)-1)/2]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d)/float64(time.Millisecond)) }
