package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/netsel/netsel/internal/testenv"
	"github.com/netsel/netsel/registrar/client"
)

// TestRollingRestartLosesNoRequest: three instances of the example service
// behind the HTTP proxy are restarted one by one — a new copy starts, then
// the old one gets SIGTERM, drains (through the client's Keepalive) and
// exits — under continuous HTTP load through the proxy: no request fails.
func TestRollingRestartLosesNoRequest(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the example service")
	}
	f := startStack(t)
	service := goBuild(t, t.TempDir(), "./examples/service")
	start := func(n int) *exampleService {
		return startExampleService(t, service, "http://"+f.registrar, fmt.Sprintf("e%d", n))
	}
	var running []*exampleService
	for n := range 3 {
		running = append(running, start(n))
	}
	testenv.Eventually(t, 15*time.Second, func() bool {
		got := proxied(f.http, "echo", 30)
		return len(got) == 3 && got["error"] == 0
	},
		"the proxy does not serve the three instances")

	sent, failures := underLoad(t, f.http, "echo", func(more func(int)) {
		for n := range 3 {
			more(100)
			next := start(3 + n)
			next.waitLog(t, "msg=registered")
			old := running[n]
			old.stop(t)
			if !strings.Contains(old.logs.String(), "msg=drained") {
				t.Errorf("instance %s did not drain before it exited:\n%s", old.id, old.logs.String())
			}
			running[n] = next
		}
		more(100)
	})
	if len(failures) > 0 || sent < 100 {
		t.Fatalf("%d of %d requests failed during the rolling restart: %v", len(failures), sent, failures)
	}
	t.Logf("%d requests, none failed", sent)
}

// exampleService is a running examples/service process.
type exampleService struct {
	id   string
	logs *testenv.SyncBuffer
	done chan error
	cmd  *exec.Cmd
}

func startExampleService(t *testing.T, bin, registrar, id string) *exampleService {
	t.Helper()
	s := &exampleService{id: id, logs: &testenv.SyncBuffer{}, done: make(chan error, 1)}
	cmd := exec.Command(bin, "-registrar", registrar, "-id", id, "-interval", "1s", "-ttl", "10s", "-drain-timeout", "10s")
	cmd.Stdout, cmd.Stderr = s.logs, s.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s.cmd = cmd
	go func() { s.done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-s.done
	})
	return s
}

func (s *exampleService) waitLog(t *testing.T, want string) {
	t.Helper()
	testenv.Eventually(t, 15*time.Second, func() bool { return strings.Contains(s.logs.String(), want) },
		"service %s does not log %q:\n%s", s.id, want, s.logs)
}

// stop sends SIGTERM and waits for the process to exit.
func (s *exampleService) stop(t *testing.T) {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-s.done:
		s.done <- err // for the cleanup
		if err != nil {
			t.Errorf("service %s exited: %v\n%s", s.id, err, s.logs)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("service %s did not exit within 20s of SIGTERM:\n%s", s.id, s.logs)
	}
}

// TestRollingRestartAbruptStop: instances kept alive by the client's
// Keepalive that stop abruptly once it returns — their server closed at
// once, requests in flight cut, as a process that exits right after
// deregistering — are restarted one by one under continuous HTTP load
// through the proxy: the drain Keepalive runs first (waiting for the
// proxies' requests in flight too) is what keeps every request whole.
func TestRollingRestartAbruptStop(t *testing.T) {
	f := startStack(t)
	c, err := client.New(client.Config{URLs: []string{"http://" + f.registrar}})
	if err != nil {
		t.Fatal(err)
	}
	var running []*keptInstance
	for n := range 3 {
		running = append(running, startKept(t, c, fmt.Sprintf("k%d", n)))
	}
	testenv.Eventually(t, 15*time.Second, func() bool {
		got := proxied(f.http, "kept", 30)
		return len(got) == 3 && got["error"] == 0
	}, "the proxy does not serve the three instances")
	sent, failures := underLoad(t, f.http, "kept", func(more func(int)) {
		for n := range 3 {
			more(100)
			next := startKept(t, c, fmt.Sprintf("k%d", 3+n))
			more(100)
			running[n].stop()
			running[n] = next
		}
		more(100)
	})
	if len(failures) > 0 || sent < 100 {
		t.Fatalf("%d of %d requests failed during the rolling restart: %v", len(failures), sent, failures)
	}
	t.Logf("%d requests, none failed", sent)
}

// underLoad runs during while 4 clients send requests for svc through the
// HTTP proxy without pause — GETs, which a proxy may retry on another
// instance, and POSTs, which it may not once sent — and returns how many
// were sent and the failures. during may call more(n) to wait until n
// more requests have been answered.
func underLoad(t *testing.T, proxy, svc string, during func(more func(n int))) (sent int, failures []string) {
	ctx, stop := context.WithCancel(context.Background())
	var (
		wg sync.WaitGroup
		mu sync.Mutex
	)
	more := func(n int) {
		mu.Lock()
		want := sent + n
		mu.Unlock()
		testenv.Eventually(t, 30*time.Second, func() bool {
			mu.Lock()
			defer mu.Unlock()
			return sent >= want
		}, "the load does not flow")
	}
	for i := range 4 {
		method := http.MethodGet
		if i%2 == 1 {
			method = http.MethodPost
		}
		wg.Go(func() {
			hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
			defer hc.CloseIdleConnections()
			for ctx.Err() == nil {
				body, err := sendVia(context.WithoutCancel(ctx), hc, method, proxy, svc)
				mu.Lock()
				sent++
				if err != nil || body == "" {
					failures = append(failures, fmt.Sprintf("%s: %v %q", method, err, body))
				}
				mu.Unlock()
			}
		})
	}
	during(more)
	stop()
	wg.Wait()
	return sent, failures
}

// keptInstance is an instance of service "kept" served in this process and
// kept registered by Keepalive.
type keptInstance struct {
	stop func()
}

// startKept serves instance id — each request takes 20ms — keeps it
// registered with c.Keepalive, and returns once it is registered. stop
// ends Keepalive's ctx, waits for it to drain and deregister, then closes
// the server at once.
func startKept(t *testing.T, c *client.Client, id string) *keptInstance {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		time.Sleep(20 * time.Millisecond) // work
		fmt.Fprint(w, id)
	})}
	go srv.Serve(ln)
	ctx, cancel := context.WithCancel(context.Background())
	registered, done := make(chan struct{}), make(chan struct{})
	var once sync.Once
	go func() {
		defer close(done)
		err := c.Keepalive(ctx, client.Registration{Service: "kept", ID: id, Address: "127.0.0.1", Port: ln.Addr().(*net.TCPAddr).Port},
			client.KeepaliveOptions{Interval: time.Second, DrainTimeout: 10 * time.Second, DrainConnections: true,
				OnEvent: func(ev client.Event) {
					if ev.Kind == client.EventRegistered {
						once.Do(func() { close(registered) })
					}
				}})
		if err != nil {
			t.Errorf("keepalive %s: %v", id, err)
		}
		srv.Close() // abruptly: whatever is in flight is cut
	}()
	stop := func() { cancel(); <-done }
	t.Cleanup(stop)
	select {
	case <-registered:
	case <-time.After(10 * time.Second):
		t.Fatalf("instance %s did not register", id)
	}
	return &keptInstance{stop: sync.OnceFunc(stop)}
}
