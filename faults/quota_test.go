//go:build linux

package faults

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/netsel/netsel/internal/testenv"
	"github.com/netsel/netsel/registrar/api"
)

// quotaBytes is the space quota of the etcd of TestQuota: small, so that
// re-registrations with a few KB of meta fill it within seconds.
const quotaBytes = 8 << 20

// TestQuota fills the space quota of an external etcd by registering the
// same ids again and again with a few KB of meta each, until etcd raises
// its NOSPACE alarm. etcd applies the transaction that crosses the quota
// and then reports "database space exceeded": the registrar must read the
// outcome back instead of revoking the lease it just used. Every id that
// ever got a 200 must still be registered; /v1/health and /metrics must
// report the alarm while it is on and no lease may be left holding no key;
// once an operator has compacted, defragmented and disarmed, health is ok
// again and registrations succeed.
func TestQuota(t *testing.T) {
	etcd := testenv.StartEtcdProcessArgs(t, "--quota-backend-bytes", strconv.Itoa(quotaBytes))
	cli := etcd.Client()
	regURL := startStack(t, vipRange(), []string{etcd.URL()}, withRegistrar).RegistrarURL

	meta := map[string]string{}
	for i := range 4 {
		meta[fmt.Sprintf("k%d", i)] = strings.Repeat("x", 1000)
	}
	const ids = 8
	var (
		mu     sync.Mutex
		oks    = map[string]int{}
		codes  = map[int]int{}
		alarm  = make(chan struct{})
		wg     sync.WaitGroup
		failed = time.Now().Add(90 * time.Second)
	)
	for i := range ids {
		id := fmt.Sprintf("q-%d", i)
		wg.Go(func() {
			after := 0 // attempts after the alarm
			for after < 20 && time.Now().Before(failed) {
				a := call("POST", regURL+"/v1/services/quota/instances", api.RegisterRequest{
					ID: id, Address: "127.0.0.1", Port: 1000 + i, TTL: api.Duration(time.Minute), Meta: meta,
				})
				mu.Lock()
				codes[a.status]++
				if a.status == http.StatusOK {
					oks[id]++
				}
				mu.Unlock()
				select {
				case <-alarm:
					after++
				default:
				}
			}
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	testenv.Eventually(t, 90*time.Second, func() bool {
		return hasAlarm(ctx, cli, pb.AlarmType_NOSPACE)
	}, "etcd never raised NOSPACE")
	close(alarm)
	wg.Wait()
	t.Logf("answers: %v; 200s per id: %v", codes, oks)
	if len(oks) == 0 {
		t.Fatal("no registration succeeded before the quota")
	}

	// Every id that got a 200 is still registered, on a live lease.
	for id, n := range oks {
		resp, err := cli.Get(ctx, ks.InstanceKey("quota", id))
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Kvs) == 0 {
			t.Errorf("instance quota/%s got %d 200s and is gone", id, n)
			continue
		}
		if ttl := leaseTTL(t, cli, resp.Kvs[0].Lease); ttl <= 0 {
			t.Errorf("instance quota/%s is on lease %x, which is gone", id, resp.Kvs[0].Lease)
		}
		if a := call("PUT", regURL+"/v1/services/quota/instances/"+id+"/heartbeat", nil); a.status != http.StatusOK {
			t.Errorf("heartbeat of quota/%s under the alarm: %d %s", id, a.status, a.body)
		}
	}

	// Health tells the alarm; so does the metric.
	testenv.Eventually(t, 15*time.Second, func() bool {
		h, status := health(regURL)
		return status == http.StatusOK && h.Status == "degraded" && strings.Contains(strings.Join(h.Alarms, ","), "NOSPACE")
	}, "/v1/health never reported the NOSPACE alarm")
	if v := metricValue(t, regURL, `netsel_registrar_etcd_alarm{alarm="NOSPACE"}`); v != 1 {
		t.Errorf(`netsel_registrar_etcd_alarm{alarm="NOSPACE"} = %v under the alarm, want 1`, v)
	}

	// No lease holds nothing for long: failed registrations revoke theirs.
	testenv.Eventually(t, 15*time.Second, func() bool {
		orphans, _, err := orphanLeases(ctx, cli)
		return err == nil && len(orphans) == 0
	}, "leases holding no key remain after the failed registrations")

	// The operator's way out: compact, defragment, disarm.
	st, err := cli.Status(ctx, etcd.URL())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Compact(ctx, st.Header.Revision); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Defragment(ctx, etcd.URL()); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.AlarmDisarm(ctx, &clientv3.AlarmMember{MemberID: st.Header.MemberId, Alarm: pb.AlarmType_NOSPACE}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 15*time.Second, func() bool {
		h, status := health(regURL)
		return status == http.StatusOK && h.Status == "ok" && len(h.Alarms) == 0
	}, "/v1/health still degraded after the alarm was disarmed")
	if v := metricValue(t, regURL, `netsel_registrar_etcd_alarm{alarm="NOSPACE"}`); v != 0 {
		t.Errorf(`netsel_registrar_etcd_alarm{alarm="NOSPACE"} = %v after the alarm, want 0`, v)
	}
	if a := call("POST", regURL+"/v1/services/quota/instances", api.RegisterRequest{ID: "after", Address: "127.0.0.1", Port: 999}); a.status != http.StatusOK {
		t.Errorf("register after the alarm was disarmed: %d %s", a.status, a.body)
	}
}

// hasAlarm reports whether etcd has raised alarm.
func hasAlarm(ctx context.Context, cli *clientv3.Client, alarm pb.AlarmType) bool {
	resp, err := cli.AlarmList(ctx)
	if err != nil {
		return false
	}
	for _, a := range resp.Alarms {
		if a.Alarm == alarm {
			return true
		}
	}
	return false
}

// health returns the registrar's /v1/health answer and its status code.
func health(base string) (api.Health, int) {
	var h api.Health
	a := call("GET", base+"/v1/health", nil)
	if a.err != nil {
		return h, 0
	}
	json.Unmarshal([]byte(a.body), &h) //nolint:errcheck // judged by the fields
	return h, a.status
}

// metricValue returns the value of series (name with labels) in the
// registrar's /metrics, or -1 when it is absent.
func metricValue(t *testing.T, base, series string) float64 {
	t.Helper()
	a := call("GET", base+"/metrics", nil)
	if a.err != nil {
		t.Fatalf("metrics: %v", a.err)
	}
	for line := range strings.SplitSeq(a.body, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("metric %s: %v", line, err)
			}
			return f
		}
	}
	return -1
}
