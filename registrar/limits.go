package registrar

import (
	"encoding/hex"
	"fmt"
	"math"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/netsel/netsel/catalog"
)

// Defaults of Limits.
const (
	DefaultMaxServices            = 4096
	DefaultMaxInstancesPerService = 50_000
	DefaultMaxInstancesPerToken   = 10_000
	DefaultMaxInstanceDataBytes   = 8 << 10
	DefaultRegisterRate           = 100
	DefaultRegisterBurst          = 200
	DefaultMaxBlockingQueries     = 4096
	DefaultMaxBlockingPerClient   = 256
	DefaultMaxConns               = 2 * DefaultMaxBlockingQueries
)

// Limits bound what clients may make the registrar hold or do. Each field
// at zero means its default; a negative value means no limit. A client is
// its bearer token when it sends a known one, else its IP address.
type Limits struct {
	// MaxServices bounds the services of the catalog (each holds a VIP and
	// a listener per TCP port in every proxy). A registration that would
	// create one more is refused with 507, field "name"; the services that
	// exist keep registering instances. Default 4096. Checked against the
	// registrar's index, so registrars racing may pass it by a few.
	MaxServices int
	// MaxInstancesPerService bounds the instances of one service: a new id
	// beyond it is refused with 507, field "id". Default 50,000.
	MaxInstancesPerService int
	// MaxInstancesPerToken bounds the live instances one token registered
	// through this registrar (only with a token file): a new id beyond it
	// is refused with 507, field "Authorization". Default 10,000.
	MaxInstancesPerToken int
	// MaxInstanceDataBytes bounds the bytes of an instance's tags and meta
	// keys and values together: more is refused with 400, field "meta" (or
	// "tags"). Default 8 KiB.
	MaxInstanceDataBytes int
	// RegisterRate and RegisterBurst are a token bucket of registrations
	// per second per client: beyond it a registration is answered 429 with
	// Retry-After. Defaults 100/s and a burst of 200.
	RegisterRate  float64
	RegisterBurst int
	// MaxBlockingQueries and MaxBlockingPerClient bound the blocking
	// queries (?index=) waiting at once, in all and per client: beyond
	// either the query is answered 429 with Retry-After. Defaults 4096 and
	// 256.
	MaxBlockingQueries   int
	MaxBlockingPerClient int
	// MaxConns bounds the client connections Serve holds open. Past it, a
	// new connection closes the one that has waited longest without a
	// request in progress (counted as limited "connections"), so idle
	// connections cannot keep requests out. Default 8192; keep it above
	// MaxBlockingQueries, whose connections are busy while they wait.
	MaxConns int
}

// withDefaults fills in the defaults and turns "no limit" into MaxInt.
func (l Limits) withDefaults() Limits {
	for _, f := range []struct {
		v   *int
		def int
	}{
		{&l.MaxServices, DefaultMaxServices},
		{&l.MaxInstancesPerService, DefaultMaxInstancesPerService},
		{&l.MaxInstancesPerToken, DefaultMaxInstancesPerToken},
		{&l.MaxInstanceDataBytes, DefaultMaxInstanceDataBytes},
		{&l.RegisterBurst, DefaultRegisterBurst},
		{&l.MaxBlockingQueries, DefaultMaxBlockingQueries},
		{&l.MaxBlockingPerClient, DefaultMaxBlockingPerClient},
		{&l.MaxConns, DefaultMaxConns},
	} {
		switch {
		case *f.v == 0:
			*f.v = f.def
		case *f.v < 0:
			*f.v = math.MaxInt
		}
	}
	switch {
	case l.RegisterRate == 0:
		l.RegisterRate = DefaultRegisterRate
	case l.RegisterRate < 0:
		l.RegisterRate = math.Inf(1)
	}
	return l
}

// errInsufficient is a 507: the registrar will not hold more, and retrying
// the same request will not help.
func errInsufficient(field, format string, args ...any) *httpError {
	return &httpError{status: http.StatusInsufficientStorage, field: field, msg: fmt.Sprintf(format, args...)}
}

// clientKey names the client of req for per-client limits: its known
// bearer token, else its IP address.
func (r *Registrar) clientKey(req *http.Request) string {
	if r.tokens != nil {
		if tok, _ := r.tokens.lookup(req); tok != nil {
			return "token:" + hex.EncodeToString(tok.sum[:8])
		}
	}
	host, _, err := net.SplitHostPort(req.RemoteAddr)
	if err != nil {
		host = req.RemoteAddr
	}
	return "ip:" + host
}

// checkCapacity refuses a registration of in that would take its service
// past MaxInstancesPerService or the catalog past MaxServices, as the
// index sees them.
func (r *Registrar) checkCapacity(snap *catalog.Snapshot, in *catalog.Instance) error {
	lim := &r.cfg.Limits
	e, ok := snap.Service(in.Service)
	if !ok || e.Service == nil {
		if services, _ := snap.Len(); services >= lim.MaxServices && !ok {
			r.metrics.limited.WithLabelValues("services").Inc()
			return errInsufficient("name", "NetSel holds its limit of %d services: service %s cannot be created; delete unused services or raise the limit (retrying will not help)", lim.MaxServices, in.Service)
		}
		return nil
	}
	if e.Len() >= lim.MaxInstancesPerService {
		if _, again := e.Instance(in.ID); !again {
			r.metrics.limited.WithLabelValues("instances_per_service").Inc()
			return errInsufficient("id", "service %s holds its limit of %d instances; a new instance cannot be added (retrying will not help until instances leave)", in.Service, lim.MaxInstancesPerService)
		}
	}
	return nil
}

// checkData refuses an instance whose tags and meta together exceed
// MaxInstanceDataBytes.
func (r *Registrar) checkData(in *catalog.Instance) error {
	n := dataBytes(in.Tags, in.Meta)
	if n <= r.cfg.Limits.MaxInstanceDataBytes {
		return nil
	}
	r.metrics.limited.WithLabelValues("data_bytes").Inc()
	field := "meta"
	if len(in.Meta) == 0 {
		field = "tags"
	}
	return errBadRequest(field, "tags and meta hold %d bytes, more than the limit of %d", n, r.cfg.Limits.MaxInstanceDataBytes)
}

// dataBytes returns the bytes of an instance's tags and meta.
func dataBytes(tags []string, meta map[string]string) int {
	n := 0
	for _, t := range tags {
		n += len(t)
	}
	for k, v := range meta {
		n += len(k) + len(v)
	}
	return n
}

// rateLimiter is a token bucket per client key.
type rateLimiter struct {
	rate  float64 // tokens per second
	burst float64

	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

// maxBuckets is how many buckets a rateLimiter keeps before it drops the
// ones that have refilled (idle clients), so many clients cannot grow it
// without bound.
const maxBuckets = 4096

func newRateLimiter(rate float64, burst int) *rateLimiter {
	return &rateLimiter{rate: rate, burst: float64(burst), buckets: map[string]*bucket{}}
}

// allow takes a token from key's bucket: it reports whether there was one,
// and when not, how long until there is.
func (l *rateLimiter) allow(key string, now time.Time) (bool, time.Duration) {
	if math.IsInf(l.rate, 1) {
		return true, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[key]
	if !ok {
		if len(l.buckets) >= maxBuckets {
			l.prune(now)
		}
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[key] = b
	}
	b.tokens = min(l.burst, b.tokens+now.Sub(b.last).Seconds()*l.rate)
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) / l.rate * float64(time.Second))
}

// prune drops the buckets that are full again: their clients have been
// idle, and a new bucket starts full anyway. Called with l.mu held.
func (l *rateLimiter) prune(now time.Time) {
	for k, b := range l.buckets {
		if b.tokens+now.Sub(b.last).Seconds()*l.rate >= l.burst {
			delete(l.buckets, k)
		}
	}
}

// errRateLimited is the 429 of a client over its registration rate.
func errRateLimited(wait time.Duration, rate float64) *httpError {
	return &httpError{status: http.StatusTooManyRequests, retryAfter: max(1, int(math.Ceil(wait.Seconds()))),
		msg: fmt.Sprintf("too many registrations from this client (limit %g/s); retry after the Retry-After seconds", rate)}
}

// slots bound concurrent work in all and per client key.
type slots struct {
	total, perKey int

	mu   sync.Mutex
	n    int
	used map[string]int
}

func newSlots(total, perKey int) *slots {
	return &slots{total: total, perKey: perKey, used: map[string]int{}}
}

// acquire takes a slot for key: it returns the function that gives it back,
// or which bound ("total" or "client") is reached.
func (s *slots) acquire(key string) (release func(), full string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.n >= s.total:
		return nil, "total"
	case s.used[key] >= s.perKey:
		return nil, "client"
	}
	s.n++
	s.used[key]++
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.n--
			if s.used[key]--; s.used[key] <= 0 {
				delete(s.used, key)
			}
		})
	}, ""
}

// blockingSlot takes a slot for a blocking query of req, or returns the 429
// that refuses it.
func (r *Registrar) blockingSlot(req *http.Request) (func(), error) {
	release, full := r.blocking.acquire(r.clientKey(req))
	if full == "" {
		return release, nil
	}
	r.metrics.limited.WithLabelValues("blocking_" + full).Inc()
	limit, who := r.cfg.Limits.MaxBlockingQueries, "in all"
	if full == "client" {
		limit, who = r.cfg.Limits.MaxBlockingPerClient, "from this client"
	}
	return nil, &httpError{status: http.StatusTooManyRequests, field: "index", retryAfter: 5,
		msg: fmt.Sprintf("too many blocking queries %s (limit %d); retry later or without ?index=", who, limit)}
}
