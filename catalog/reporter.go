package catalog

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// ReporterOptions configure a Reporter. Kind is required; the rest may be
// left zero.
type ReporterOptions struct {
	// Kind is ReaderDNS or ReaderProxy.
	Kind string
	// ID names the reader; default: <kind>-<host>-<random>, made a DNS label.
	ID string
	// Host names the machine; default: os.Hostname.
	Host string
	// TTL is the reader key's lease: a reader that stops without a word
	// leaves drains' waits this long after. Default 10s.
	TTL time.Duration
	// Refresh is how often the key is rewritten when what it says moved
	// and no drain is waiting. Default 10s.
	Refresh time.Duration
	// Prompt is how often, at most, the key is rewritten while an
	// instance is draining (the revision served and the connections
	// counted are then polled at this pace). Default 50ms.
	Prompt time.Duration
	// Connections, when set, returns the open connections per instance
	// ("<service>/<id>" -> count, zero counts left out). It is called at
	// most every Prompt while a drain waits, and every Refresh otherwise.
	Connections func() map[string]int
	// AnswerTTL, when set, returns the TTL of the DNS answers the reader
	// gives (see Reader.AnswerTTL).
	AnswerTTL func() time.Duration
	// Logf receives failures to write the key; default: dropped.
	Logf func(format string, args ...any)
}

// MaxReportedConnections bounds the instances a reader reports
// connections for.
const MaxReportedConnections = 1000

// Reporter keeps a reader's key (see Reader): the catalog revision the
// reader serves and its open connections per instance, under a lease of
// its own, beside the keyspace. A drain (see the registrar) waits until
// every live reader reports the drain's revision. It writes only when what
// it would say changed: promptly while an instance is draining, at most
// every Refresh otherwise — so a quiet catalog costs no writes at all.
type Reporter struct {
	client *clientv3.Client
	ix     *Index
	opts   ReporterOptions
	key    string
}

// NewReporter returns the Reporter of the reader reading ix through client.
func NewReporter(client *clientv3.Client, ix *Index, opts ReporterOptions) *Reporter {
	if opts.Host == "" {
		opts.Host, _ = os.Hostname()
	}
	if opts.ID == "" {
		opts.ID = readerID(opts.Kind, opts.Host)
	}
	if opts.TTL <= 0 {
		opts.TTL = 10 * time.Second
	}
	if opts.Refresh <= 0 {
		opts.Refresh = 10 * time.Second
	}
	if opts.Prompt <= 0 {
		opts.Prompt = 50 * time.Millisecond
	}
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	return &Reporter{client: client, ix: ix, opts: opts, key: ix.Keyspace().ReaderKey(opts.ID)}
}

// ID returns the reader's id.
func (r *Reporter) ID() string { return r.opts.ID }

// readerID makes a DNS label of kind, host and a random suffix.
func readerID(kind, host string) string {
	var b [4]byte
	rand.Read(b[:])
	var sb strings.Builder
	for _, c := range strings.ToLower(host) {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
			sb.WriteRune(c)
		case sb.Len() > 0 && !strings.HasSuffix(sb.String(), "-"):
			sb.WriteByte('-')
		}
	}
	h := strings.Trim(sb.String(), "-")
	if len(h) > 40 {
		h = strings.Trim(h[:40], "-")
	}
	if h == "" {
		return kind + "-" + hex.EncodeToString(b[:])
	}
	return kind + "-" + h + "-" + hex.EncodeToString(b[:])
}

// Run keeps the key until ctx ends, then revokes its lease (so drains stop
// waiting for this reader at once) and returns nil. Failures to write are
// retried with backoff; a lost lease is granted again.
func (r *Reporter) Run(ctx context.Context) error {
	select {
	case <-r.ix.Synced():
	case <-ctx.Done():
		return nil
	}
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		start := time.Now()
		err := r.hold(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if time.Since(start) > time.Minute {
			backoff = 100 * time.Millisecond
		}
		r.opts.Logf("netsel reader %s: reporting to %s failed, retrying in %v: %v", r.opts.ID, r.key, backoff, err)
		sleep(ctx, backoff)
		backoff = min(2*backoff, 30*time.Second)
	}
	return nil
}

// hold grants a lease, writes the key under it and keeps it current until
// the lease is lost, a write fails or ctx ends (then revoking the lease).
func (r *Reporter) hold(ctx context.Context) error {
	gctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	lease, err := r.client.Grant(gctx, int64((r.opts.TTL+time.Second-1)/time.Second))
	cancel()
	if err != nil {
		return fmt.Errorf("grant: %w", err)
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		r.client.Revoke(rctx, lease.ID) //nolint:errcheck // the lease expires anyway
		cancel()
	}()
	kctx, stopKeep := context.WithCancel(ctx)
	defer stopKeep()
	alive, err := r.client.KeepAlive(kctx, lease.ID)
	if err != nil {
		return fmt.Errorf("keep lease alive: %w", err)
	}

	var (
		said     Reader // what the key says
		written  time.Time
		snap     = r.ix.Snapshot()
		refresh  = time.NewTicker(r.opts.Refresh)
		prompt   = time.NewTicker(r.opts.Prompt)
		promptC  <-chan time.Time
		needSoon bool // a change while draining, written at the next prompt tick
	)
	defer refresh.Stop()
	defer prompt.Stop()
	write := func(force bool) error {
		now := Reader{ID: r.opts.ID, Kind: r.opts.Kind, Host: r.opts.Host, Revision: snap.Revision()}
		if r.opts.Connections != nil {
			now.Connections = boundConnections(r.opts.Connections())
		}
		if r.opts.AnswerTTL != nil {
			now.AnswerTTL = int64(r.opts.AnswerTTL() / time.Second)
		}
		if !force && now.Revision == said.Revision && now.AnswerTTL == said.AnswerTTL && maps.Equal(now.Connections, said.Connections) {
			return nil
		}
		now.Updated = time.Now().UTC()
		val, err := EncodeReader(&now)
		if err != nil {
			return err
		}
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err = r.client.Put(wctx, r.key, string(val), clientv3.WithLease(lease.ID))
		cancel()
		if err != nil {
			return fmt.Errorf("put %s: %w", r.key, err)
		}
		said, written = now, time.Now()
		return nil
	}
	if err := write(true); err != nil {
		return err
	}
	for {
		if snap.Draining() {
			promptC = prompt.C
		} else {
			promptC = nil
		}
		select {
		case <-snap.Stale():
			snap = r.ix.Snapshot()
			if snap.Draining() {
				if time.Since(written) >= r.opts.Prompt {
					if err := write(false); err != nil {
						return err
					}
				} else {
					needSoon = true
				}
			}
		case <-promptC:
			needSoon = false
			if err := write(false); err != nil {
				return err
			}
		case <-refresh.C:
			if needSoon || time.Since(written) >= r.opts.Refresh {
				needSoon = false
				if err := write(false); err != nil {
					return err
				}
			}
		case _, ok := <-alive:
			if !ok {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				return errors.New("lease lost")
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// boundConnections keeps at most MaxReportedConnections entries of m,
// the busiest.
func boundConnections(m map[string]int) map[string]int {
	for k, n := range m {
		if n <= 0 {
			delete(m, k)
		}
	}
	if len(m) <= MaxReportedConnections {
		if len(m) == 0 {
			return nil
		}
		return m
	}
	type kn struct {
		k string
		n int
	}
	all := make([]kn, 0, len(m))
	for k, n := range m {
		all = append(all, kn{k, n})
	}
	// Partial order is enough, but sorting a bounded map is cheap.
	slices.SortFunc(all, func(a, b kn) int { return b.n - a.n })
	out := make(map[string]int, MaxReportedConnections)
	for _, e := range all[:MaxReportedConnections] {
		out[e.k] = e.n
	}
	return out
}
