// Package loadgen is the closed-loop load generator the Go benchmarks under
// build/bench share: N concurrent clients run an operation back to back for
// a fixed time, and runs are summarised as medians.
package loadgen

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"
)

// Op is one operation of client w; n counts that client's operations.
type Op func(ctx context.Context, w, n int) error

// Result is one timed run of one case.
type Result struct {
	Ops      int
	Errs     int
	FirstErr error
	Elapsed  time.Duration
	P50, P99 time.Duration
}

// Rate returns the successful operations per second.
func (r Result) Rate() float64 { return float64(r.Ops) / r.Elapsed.Seconds() }

// Run runs f on clients goroutines for d and returns the rate of
// successful operations and their latency percentiles.
func Run(ctx context.Context, clients int, d time.Duration, f Op) Result {
	lats := make([][]time.Duration, clients)
	errs := make([]int, clients)
	var first FirstErr
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
					first.Set(fmt.Errorf("client %d op %d: %w", w, n, err))
					continue
				}
				lat = append(lat, time.Since(t0))
			}
			lats[w] = lat
		})
	}
	wg.Wait()
	r := Result{Elapsed: time.Since(start), FirstErr: first.Get()}
	all := slices.Concat(lats...)
	slices.Sort(all)
	r.Ops = len(all)
	for _, e := range errs {
		r.Errs += e
	}
	if len(all) > 0 {
		r.P50 = all[len(all)/2]
		r.P99 = all[min(len(all)-1, len(all)*99/100)]
	}
	return r
}

// Summary is the median over runs of one case.
type Summary struct {
	Rate     float64
	P50, P99 time.Duration
	Rates    []float64 // of each run, in order
	Errs     int       // over all runs
}

// Summarize returns the medians of rs.
func Summarize(rs []Result) Summary {
	var s Summary
	var p50, p99 []time.Duration
	for _, r := range rs {
		s.Rates = append(s.Rates, r.Rate())
		p50 = append(p50, r.P50)
		p99 = append(p99, r.P99)
		s.Errs += r.Errs
	}
	s.Rate = Median(slices.Clone(s.Rates))
	s.P50 = Median(p50)
	s.P99 = Median(p99)
	return s
}

// Median returns the median of v (the lower one of an even count), which
// it sorts; 0 when v is empty.
func Median[T int | int64 | float64 | time.Duration](v []T) T {
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	return v[(len(v)-1)/2]
}

// MS formats d in milliseconds with two decimals.
func MS(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d)/float64(time.Millisecond)) }

// Parallel runs f(0..count-1) on workers goroutines and returns the first
// error; after one, no further call starts.
func Parallel(workers, count int, f func(i int) error) error {
	var errs FirstErr
	var next sync.Mutex
	i := 0
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				next.Lock()
				n := i
				i++
				next.Unlock()
				if n >= count || errs.Get() != nil {
					return
				}
				if err := f(n); err != nil {
					errs.Set(err)
					return
				}
			}
		})
	}
	wg.Wait()
	return errs.Get()
}

// FirstErr keeps the first error reported by concurrent workers. The zero
// value is ready to use.
type FirstErr struct {
	mu  sync.Mutex
	err error
}

// Set records err unless an error was recorded before.
func (f *FirstErr) Set(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err == nil {
		f.err = err
	}
}

// Get returns the first error recorded, nil if none.
func (f *FirstErr) Get() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}
