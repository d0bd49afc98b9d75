package main

import (
	"fmt"
	"io"
	"time"
)

// flatGrowth is the most the mean RSS of the last third of a warmed-up
// stretch may exceed that of its first third for memory to count as flat.
const flatGrowth = 0.10

// memoryReport prints peak RSS per component and, per process incarnation
// (a restart starts a new one), whether RSS stayed flat after c.warmup. It
// reports whether every NetSel component (runner, etcd members) judged was
// flat.
func (s *soak) memoryReport(w io.Writer) bool {
	type comp struct {
		name  string
		incs  []time.Time
		value func(sample) float64
		judge bool
	}
	comps := []comp{{"runner", s.runnerInc, func(sm sample) float64 { return sm.runnerMB }, true}}
	for i, m := range s.members {
		comps = append(comps, comp{"etcd " + m.name, s.etcdInc[i], func(sm sample) float64 { return sm.etcdMB[i] }, true})
	}
	comps = append(comps, comp{"soak client (this program)", []time.Time{s.start}, func(sm sample) float64 { return sm.selfMB }, false})

	fmt.Fprintf(w, "Flat: over the samples from %v after a process (re)started to its next restart or the end of the steady soak, the mean RSS of the last third is at most %.0f%% above that of the first third.\n\n", s.c.warmup, flatGrowth*100)
	fmt.Fprintln(w, "| component | peak MB | incarnation | judged from t | samples | first third MB | last third MB | growth | slope MB/min | flat |")
	fmt.Fprintln(w, "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
	allFlat := true
	for _, c := range comps {
		peak := 0.0
		for _, sm := range s.samples {
			peak = max(peak, c.value(sm))
		}
		for k, from := range c.incs {
			to := s.steadyEnd // the deregistration burst after it is no steady state
			if to.IsZero() {
				to = s.start.Add(365 * 24 * time.Hour)
			}
			if k+1 < len(c.incs) && c.incs[k+1].Before(to) {
				to = c.incs[k+1]
			}
			var ts, vs []float64
			for _, sm := range s.samples {
				at := s.start.Add(sm.t)
				if at.Before(from.Add(s.c.warmup)) || !at.Before(to) || c.value(sm) == 0 {
					continue
				}
				ts, vs = append(ts, sm.t.Minutes()), append(vs, c.value(sm))
			}
			label := fmt.Sprintf("#%d (from t=%s)", k+1, s.since(from))
			if len(vs) < 6 {
				fmt.Fprintf(w, "| %s | %.0f | %s | — | %d | | | | | too short to judge |\n", c.name, peak, label, len(vs))
				continue
			}
			n := len(vs) / 3
			a, b := mean(vs[:n]), mean(vs[len(vs)-n:])
			growth := (b - a) / a
			ok := growth <= flatGrowth
			if c.judge && !ok {
				allFlat = false
			}
			fmt.Fprintf(w, "| %s | %.0f | %s | %.0fs | %d | %.0f | %.0f | %+.1f%% | %+.2f | %s |\n",
				c.name, peak, label, ts[0]*60, len(vs), a, b, growth*100, slope(ts, vs), yesNo(ok))
		}
	}
	fmt.Fprintln(w)
	return allFlat
}

func mean(v []float64) float64 {
	s := 0.0
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}

// slope is the least-squares slope of ys over xs.
func slope(xs, ys []float64) float64 {
	mx, my := mean(xs), mean(ys)
	var num, den float64
	for i := range xs {
		num += (xs[i] - mx) * (ys[i] - my)
		den += (xs[i] - mx) * (xs[i] - mx)
	}
	if den == 0 {
		return 0
	}
	return num / den
}

func yesNo(ok bool) string {
	if ok {
		return "yes"
	}
	return "**no**"
}
