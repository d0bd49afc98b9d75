package registrar

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Timing of the alarm watch.
const (
	// alarmPoll is how often the registrar asks etcd for its alarms.
	alarmPoll = 5 * time.Second
	// alarmHintFor is how long a write answered "no space" reports NOSPACE
	// when etcd does not let the registrar list its alarms (that takes the
	// root role when etcd authentication is on).
	alarmHintFor = 30 * time.Second
)

// alarmNames are the etcd alarms the registrar reports, each a series of
// netsel_registrar_etcd_alarm.
var alarmNames = []string{pb.AlarmType_NOSPACE.String(), pb.AlarmType_CORRUPT.String()}

// alarms follows the alarms etcd has raised: NOSPACE (the space quota is
// full: etcd refuses writes that add data, so every registration fails
// while heartbeats, deletes and reads still work) and CORRUPT (etcd
// refuses everything). It lists them every alarmPoll, and at once (at most
// every 500ms) when a write is answered "no space".
type alarms struct {
	cli     *clientv3.Client
	log     *slog.Logger
	metrics *metrics
	timeout time.Duration
	kick    chan struct{}

	mu       sync.Mutex
	raised   []string  // as last listed
	listedAt time.Time // zero until listing succeeds
	noSpace  time.Time // when a write was last answered "no space"
}

func newAlarms(cli *clientv3.Client, log *slog.Logger, m *metrics, timeout time.Duration) *alarms {
	return &alarms{cli: cli, log: log, metrics: m, timeout: timeout, kick: make(chan struct{}, 1)}
}

// run lists etcd's alarms until ctx ends.
func (a *alarms) run(ctx context.Context) {
	t := time.NewTicker(alarmPoll)
	defer t.Stop()
	for {
		a.list(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-a.kick:
			select {
			case <-time.After(500 * time.Millisecond):
			case <-ctx.Done():
				return
			}
		}
	}
}

// list asks etcd for its alarms.
func (a *alarms) list(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	resp, err := a.cli.AlarmList(ctx)
	if err != nil {
		a.publish() // etcd away (health says so) or listing not allowed
		return
	}
	var raised []string
	for _, m := range resp.Alarms {
		if m.Alarm == pb.AlarmType_NONE {
			continue
		}
		if name := m.Alarm.String(); !slices.Contains(raised, name) {
			raised = append(raised, name)
		}
	}
	slices.Sort(raised)
	a.mu.Lock()
	if !slices.Equal(raised, a.raised) {
		if len(raised) > 0 {
			a.log.Error("etcd has raised alarms", "alarms", raised)
		} else if len(a.raised) > 0 {
			a.log.Info("etcd alarms cleared", "was", a.raised)
		}
	}
	a.raised, a.listedAt = raised, time.Now()
	a.mu.Unlock()
	a.publish()
}

// hint notes a write's error: "no space" means NOSPACE is raised.
func (a *alarms) hint(err error) {
	if !errors.Is(err, rpctypes.ErrNoSpace) {
		return
	}
	a.mu.Lock()
	a.noSpace = time.Now()
	a.mu.Unlock()
	a.publish()
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

// current returns the alarms raised: as last listed, and NOSPACE when a
// write was answered "no space" since (or, when listing fails, within
// alarmHintFor).
func (a *alarms) current() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	raised := slices.Clone(a.raised)
	nospace := pb.AlarmType_NOSPACE.String()
	if !a.noSpace.IsZero() && a.noSpace.After(a.listedAt) && time.Since(a.noSpace) < alarmHintFor && !slices.Contains(raised, nospace) {
		raised = append(raised, nospace)
		slices.Sort(raised)
	}
	return raised
}

// publish sets netsel_registrar_etcd_alarm.
func (a *alarms) publish() {
	raised := a.current()
	for _, name := range alarmNames {
		v := 0.0
		if slices.Contains(raised, name) {
			v = 1
		}
		a.metrics.etcdAlarm.WithLabelValues(name).Set(v)
	}
}
