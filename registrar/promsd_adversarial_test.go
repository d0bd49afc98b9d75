package registrar_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netsel/netsel/internal/testenv"
	"github.com/netsel/netsel/registrar"
	"github.com/netsel/netsel/registrar/api"
)

// sdGroupBound is the most bytes one target group of GET /v1/sd/prometheus
// takes for an instance whose tags and meta hold data bytes: its fixed
// labels, each tag twice (a label name and in __meta_netsel_tags) and
// JSON's escapes, at most 6 bytes for 1 (\u0001).
func sdGroupBound(data int) int { return 5<<10 + 7*data }

// registerMany registers reqs (service name -> requests) through 16
// clients at once.
func registerMany(t *testing.T, base string, reqs map[string][]api.RegisterRequest) {
	t.Helper()
	type job struct {
		svc string
		req api.RegisterRequest
	}
	jobs := make(chan job)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for j := range jobs {
				r := do(t, "POST", base+"/v1/services/"+j.svc+"/instances", j.req)
				if r.status != http.StatusOK {
					t.Errorf("register %s/%s: %d %s", j.svc, j.req.ID, r.status, r.body)
				}
			}
		})
	}
	for svc, rs := range reqs {
		for _, r := range rs {
			jobs <- job{svc, r}
		}
	}
	close(jobs)
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
}

// TestAdversarialPrometheusSDLarge: 5,000 instances, and registrants that
// fill their tags and meta to MaxInstanceDataBytes with characters JSON
// escapes six-fold and tag names that become the longest label names.
// Expected: one answer holds them all, each group within sdGroupBound of
// its instance's data (the registration limits bound the answer: nothing
// else does), built once per snapshot however many ask at once.
func TestAdversarialPrometheusSDLarge(t *testing.T) {
	if testing.Short() {
		t.Skip("registers 5,000 instances")
	}
	etcd := testenv.StartEtcd(t)
	reg := testenv.StartRegistrar(t, etcd.URL, func(c *registrar.Config) { c.Limits.RegisterRate = -1 })

	const services, perService, worst = 10, 500, 40
	reqs := map[string][]api.RegisterRequest{}
	bound := 0
	for i := range services * perService {
		svc := fmt.Sprintf("svc-%d", i%services)
		r := api.RegisterRequest{
			ID: fmt.Sprintf("i-%d", i), Address: fmt.Sprintf("127.1.%d.%d", i/250, i%250+1), Port: 9100,
			Tags: []string{"prod", "canary", "zone-a"}, Meta: map[string]string{"version": "1.2.3", "commit": "0123456789abcdef"},
		}
		reqs[svc] = append(reqs[svc], r)
		bound += sdGroupBound(len("prodcanaryzone-aversion1.2.3commit0123456789abcdef"))
	}
	data := registrar.DefaultMaxInstanceDataBytes
	for i := range worst {
		// 32 tags of 255 bytes (8,160 of the 8,192) escaped six-fold.
		var tags []string
		for k := range 32 {
			tags = append(tags, fmt.Sprintf("t%02d%s", k, strings.Repeat("\x01", 252)))
		}
		reqs["worst"] = append(reqs["worst"], api.RegisterRequest{
			ID: fmt.Sprintf("w-%d", i), Address: fmt.Sprintf("127.2.0.%d", i+1), Port: 9100, Tags: tags,
		})
		bound += sdGroupBound(data)
	}
	start := time.Now()
	registerMany(t, reg.URL, reqs)
	t.Logf("registered %d instances in %v", services*perService+worst, time.Since(start))

	builds := reg.Registrar.SDBuildsForTest()
	start = time.Now()
	groups := getSD(t, reg.URL, "")
	took := time.Since(start)
	body := do(t, "GET", reg.URL+"/v1/sd/prometheus", nil).body
	t.Logf("answer: %d groups, %d bytes (bound %d), first GET %v", len(groups), len(body), bound, took)
	if len(groups) != services*perService+worst {
		t.Fatalf("%d target groups, want %d", len(groups), services*perService+worst)
	}
	if len(body) > bound {
		t.Errorf("answer of %d bytes, more than the bound of %d", len(body), bound)
	}
	w := groups["127.2.0.1:9100"]
	if len(w.Labels) != 7+32 {
		t.Errorf("worst instance has %d labels, want 7 + 32 tags", len(w.Labels))
	}
	var one bytes.Buffer
	enc := json.NewEncoder(&one)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(w); err != nil {
		t.Fatal(err)
	}
	t.Logf("worst group: %d bytes (bound %d)", one.Len(), sdGroupBound(data))
	if one.Len() > sdGroupBound(data) {
		t.Errorf("worst group of %d bytes, more than the bound of %d", one.Len(), sdGroupBound(data))
	}

	// Many Prometheus servers asking at one snapshot share one build.
	before := reg.Registrar.SDBuildsForTest()
	index := do(t, "GET", reg.URL+"/v1/sd/prometheus", nil).header.Get(api.IndexHeader)
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() { do(t, "GET", reg.URL+"/v1/sd/prometheus", nil) })
	}
	wg.Wait()
	if again := do(t, "GET", reg.URL+"/v1/sd/prometheus", nil).header.Get(api.IndexHeader); again == index {
		if n := reg.Registrar.SDBuildsForTest() - before; n > 1 {
			t.Errorf("%d builds for 22 requests at index %s, want at most 1", n, index)
		}
	}
	t.Logf("%d builds in all", reg.Registrar.SDBuildsForTest()-builds)
}
