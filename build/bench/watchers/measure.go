package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/netsel/netsel/registrar/api"
)

var hc = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4096}}

// result is one kind of blocking query, measured.
type result struct {
	kind                          string
	watchers                      int
	heapPerWatcher, rssPerWatcher float64
	wakesPerChange                float64
	answersPerChange              float64
	cpuPerChange                  time.Duration
}

func measure(ctx context.Context, binary, base string, services, changes, runs int) error {
	kinds := []string{"one service each", "the service list"}
	binaries := map[string]string{kinds[0]: binary, kinds[1]: binary}
	if base != "" {
		kinds = append(kinds, baseKind)
		binaries[baseKind] = base
	}
	all := map[string][]result{}
	for run := range runs {
		for _, kind := range kinds {
			res, err := measureFresh(ctx, binaries[kind], kind, services, changes)
			if err != nil {
				return fmt.Errorf("%s: %w", kind, err)
			}
			fmt.Printf("run %d, %s: %+v\n", run+1, kind, res)
			all[kind] = append(all[kind], res)
		}
	}
	fmt.Printf("\nmedians of %d runs, each on a fresh runner with %d services:\n\n", runs, services)
	fmt.Println("| blocking queries on | held | Go heap per query | RSS per query | queries held per MB (RSS) | wake-ups per change | answers per change | runner CPU per change |")
	fmt.Println("|---|---:|---:|---:|---:|---:|---:|---:|")
	for _, kind := range kinds {
		rs := all[kind]
		heap := median(rs, func(r result) float64 { return r.heapPerWatcher })
		rss := median(rs, func(r result) float64 { return r.rssPerWatcher })
		wakes := fmt.Sprintf("%.2f", median(rs, func(r result) float64 { return r.wakesPerChange }))
		if kind == baseKind {
			wakes = "not counted"
		}
		fmt.Printf("| %s | %d | %.1f KiB | %.1f KiB | %.0f | %s | %.2f | %.1f ms |\n", kind, services, heap/1024, rss/1024, (1<<20)/rss, wakes,
			median(rs, func(r result) float64 { return r.answersPerChange }),
			median(rs, func(r result) float64 { return float64(r.cpuPerChange) / 1e6 }))
	}
	return nil
}

// measureFresh measures kind on a runner of its own, with services
// registered.
func measureFresh(ctx context.Context, binary, kind string, services, changes int) (result, error) {
	run, err := startRunner(ctx, binary, services)
	if err != nil {
		return result{}, err
	}
	defer run.stop()
	for i := range services {
		if err := register(ctx, run.url, svcName(i), "a"); err != nil {
			return result{}, err
		}
	}
	return measureKind(ctx, run, kind, services, changes)
}

func median(rs []result, f func(result) float64) float64 {
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	slices.Sort(v)
	return v[len(v)/2]
}

// baseKind is one-service queries on the -base runner.
const baseKind = "one service each, -base runner"

func svcName(i int) string { return fmt.Sprintf("svc%04d", i) }

func measureKind(ctx context.Context, run *runner, kind string, n, changes int) (result, error) {
	res := result{kind: kind, watchers: n}
	heap0, err := metric(ctx, run.url, "go_memstats_heap_inuse_bytes")
	if err != nil {
		return res, err
	}
	rss0, err := run.rss()
	if err != nil {
		return res, err
	}
	wctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stop()
	var answers atomic.Int64
	answered := make([]chan struct{}, n)
	for i := range n {
		path := "/v1/services"
		if kind != "the service list" {
			path += "/" + svcName(i)
		}
		answered[i] = make(chan struct{}, 1)
		wg.Go(func() { watch(wctx, run.url+path, &answers, answered[i]) })
	}
	if err := waitMetric(ctx, run.url, "netsel_registrar_blocking_queries", float64(n)); err != nil {
		return res, err
	}
	heap1, _ := metric(ctx, run.url, "go_memstats_heap_inuse_bytes")
	rss1, _ := run.rss()
	res.heapPerWatcher = (heap1 - heap0) / float64(n)
	res.rssPerWatcher = (rss1 - rss0) / float64(n)
	wakes0, _ := metric(ctx, run.url, "netsel_registrar_blocking_wakeups_total")
	answers0 := answers.Load()
	cpu0, _ := run.cpu()
	for k := range changes {
		i := k % n
		if err := register(ctx, run.url, svcName(i), fmt.Sprintf("c%d", k)); err != nil {
			return res, err
		}
		if kind != "the service list" {
			select {
			case <-answered[i]:
			case <-time.After(10 * time.Second):
				return res, fmt.Errorf("the query on %s did not answer its change", svcName(i))
			}
		} else {
			for j := range n {
				select {
				case <-answered[j]:
				case <-time.After(10 * time.Second):
					return res, fmt.Errorf("list query %d did not answer the change", j)
				}
			}
		}
		// Every query waits again before the next change.
		if err := waitMetric(ctx, run.url, "netsel_registrar_blocking_queries", float64(n)); err != nil {
			return res, err
		}
	}
	cpu1, _ := run.cpu()
	wakes1, _ := metric(ctx, run.url, "netsel_registrar_blocking_wakeups_total")
	res.wakesPerChange = (wakes1 - wakes0) / float64(changes)
	res.answersPerChange = float64(answers.Load()-answers0) / float64(changes)
	res.cpuPerChange = (cpu1 - cpu0) / time.Duration(changes)
	stop()
	wg.Wait()
	return res, waitMetric(ctx, run.url, "netsel_registrar_blocking_queries", 0)
}

// watch holds a blocking query on url until ctx ends, counting answers.
func watch(ctx context.Context, url string, answers *atomic.Int64, answered chan<- struct{}) {
	index := "0"
	for ctx.Err() == nil {
		req, _ := http.NewRequestWithContext(ctx, "GET", url+"?stale&wait=10m&index="+index, nil)
		resp, err := hc.Do(req)
		if err != nil {
			return
		}
		io.Copy(io.Discard, resp.Body) //nolint:errcheck
		resp.Body.Close()
		next := resp.Header.Get(api.IndexHeader)
		if index != "0" {
			answers.Add(1)
			select {
			case answered <- struct{}{}:
			default:
			}
		}
		index = next
	}
}

func register(ctx context.Context, base, svc, id string) error {
	body, _ := json.Marshal(map[string]any{"id": id, "address": "127.0.0.1", "port": 8080, "ttl": "1h"})
	req, _ := http.NewRequestWithContext(ctx, "POST", base+"/v1/services/"+svc+"/instances", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("register %s/%s: %d %s", svc, id, resp.StatusCode, b)
	}
	return nil
}

func metric(ctx context.Context, base, name string) (float64, error) {
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/metrics", nil)
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return strconv.ParseFloat(v, 64)
		}
	}
	return 0, nil
}

func waitMetric(ctx context.Context, base, name string, want float64) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		v, err := metric(ctx, base, name)
		if err == nil && v == want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s = %v, want %v", name, v, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
