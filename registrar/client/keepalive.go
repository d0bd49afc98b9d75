package client

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/netsel/netsel/registrar/api"
)

// EventKind says what happened to a kept-alive instance.
type EventKind int

// The events of Keepalive.
const (
	// EventRegistered: the instance is registered (first or again);
	// Event.Assignment holds the registrar's answer.
	EventRegistered EventKind = iota
	// EventExpired: a heartbeat found the instance gone (404); it is
	// registered again with the same id.
	EventExpired
	// EventRetry: a registration or heartbeat failed and will be retried;
	// Event.Err says why.
	EventRetry
	// EventDeregistered: ctx ended and the instance was deregistered (Err
	// set if that failed; the instance then expires with its TTL).
	EventDeregistered
	// EventDrained: ctx ended and the instance was drained (Event.Drain
	// holds the registrar's answer; Err is set if the drain failed, and
	// the instance is then deregistered without it).
	EventDrained
)

func (k EventKind) String() string {
	switch k {
	case EventRegistered:
		return "registered"
	case EventExpired:
		return "expired"
	case EventRetry:
		return "retry"
	case EventDeregistered:
		return "deregistered"
	case EventDrained:
		return "drained"
	}
	return "unknown"
}

// Event reports progress of Keepalive.
type Event struct {
	Kind       EventKind
	Assignment *Assignment
	Drain      *api.DrainResponse
	Err        error
}

// KeepaliveOptions tune Keepalive. The zero value is usable.
type KeepaliveOptions struct {
	// Interval is the time between heartbeats (default 10s, the original
	// NetSel's). Keep it well under the registration's TTL.
	Interval time.Duration
	// MaxBackoff caps the wait before retrying a failed call (default:
	// Interval). Waits grow exponentially with full jitter, and are at
	// least a Retry-After the registrar sent, up to this cap.
	MaxBackoff time.Duration
	// DeregisterTimeout bounds the deregistration when ctx ends (default 5s).
	DeregisterTimeout time.Duration
	// DrainTimeout bounds the drain when ctx ends, before the instance is
	// deregistered: the registrar marks it draining and waits until every
	// DNS server and proxy sends it no new traffic (see Client.Drain).
	// Default 10s; negative: no drain, deregister at once. Keep serving
	// until Keepalive returns: at most DrainTimeout + 2 x DeregisterTimeout
	// after ctx ends (a drain that fails, a registrar that does not answer,
	// is followed by a plain deregistration).
	DrainTimeout time.Duration
	// DrainConnections makes the drain wait also until the proxies hold no
	// connection (nor HTTP request in flight) to the instance, within
	// DrainTimeout.
	DrainConnections bool
	// AttemptTimeout bounds one registration or heartbeat at one
	// registrar before the next registrar is tried (default: Interval,
	// from 1s to 15s), so that a registrar whose host is lost — which
	// answers nothing, not even a refusal — costs less than a TTL. A
	// registrar slower than that (one whose etcd is away answers 503 only
	// after its own etcd timeout) counts as failed too.
	AttemptTimeout time.Duration
	// OnEvent, when set, is called for every Event, from Keepalive's
	// goroutine.
	OnEvent func(Event)
}

const baseBackoff = 100 * time.Millisecond

// Keepalive keeps reg registered until ctx ends: it registers (retrying),
// heartbeats every Interval, retries failures with exponential backoff and
// full jitter across the client's registrars (waiting at least what a
// Retry-After asks, up to MaxBackoff), and registers again with the
// same id — so the same VIP — when the registrar has let the instance
// expire. When ctx ends it drains the instance (bounded by DrainTimeout:
// every DNS server and proxy stops sending it new traffic), then
// deregisters it (bounded by DeregisterTimeout), and returns nil. It returns early only on an error retrying cannot fix, such
// as a 400 for a bad registration, a 401, or a 507 when the registrar holds
// its limit of services, VIPs or instances (see APIError.Temporary). An
// empty reg.Address is filled in once, by the first registration, and kept.
func (c *Client) Keepalive(ctx context.Context, reg Registration, opts KeepaliveOptions) error {
	if opts.Interval <= 0 {
		opts.Interval = 10 * time.Second
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = opts.Interval
	}
	if opts.AttemptTimeout <= 0 {
		opts.AttemptTimeout = min(max(opts.Interval, time.Second), defaultTimeout)
	}
	if opts.DeregisterTimeout <= 0 {
		opts.DeregisterTimeout = 5 * time.Second
	}
	if opts.DrainTimeout == 0 {
		opts.DrainTimeout = 10 * time.Second
	}
	emit := func(e Event) {
		if opts.OnEvent != nil {
			opts.OnEvent(e)
		}
	}
	if reg.ID == "" {
		// Pick the id here, not at the registrar, so that retrying a
		// registration whose answer was lost cannot add a second instance.
		reg.ID = NewID()
	}
	if reg.TTL > 0 && opts.Interval >= reg.TTL {
		c.log.Warn("heartbeat interval is not shorter than the TTL; the instance will flap", "interval", opts.Interval, "ttl", reg.TTL)
	}

	failures := 0
	wait := func(err error) bool {
		d := retryWait(err, failures, opts.MaxBackoff)
		failures++
		return sleep(ctx, d)
	}
	register := func() error {
		for {
			a, err := c.register(ctx, reg, opts.AttemptTimeout)
			if err == nil {
				failures = 0
				if reg.Address == "" && a.Address.IsValid() {
					// Register again at the address filled in, whichever
					// registrar answers then.
					reg.Address = a.Address.String()
				}
				c.log.Info("registered", "service", reg.Service, "id", a.ID, "vip", a.VIP, "port", a.Port)
				emit(Event{Kind: EventRegistered, Assignment: a})
				return nil
			}
			if ctx.Err() != nil {
				return nil
			}
			if !retryable(err) {
				return err
			}
			c.log.Warn("registration failed; retrying", "service", reg.Service, "err", err)
			emit(Event{Kind: EventRetry, Err: err})
			if !wait(err) {
				return nil
			}
		}
	}

	if err := register(); err != nil {
		return err
	}
	defer func() {
		if opts.DrainTimeout > 0 && c.drainOnStop(ctx, reg, opts, emit) {
			return
		}
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), opts.DeregisterTimeout)
		defer cancel()
		err := c.Deregister(dctx, reg.Service, reg.ID)
		if err != nil {
			c.log.Warn("deregistration failed; the instance expires with its TTL", "service", reg.Service, "id", reg.ID, "err", err)
		}
		emit(Event{Kind: EventDeregistered, Err: err})
	}()

	next := opts.Interval
	for {
		if !sleep(ctx, next) {
			return nil
		}
		err := c.heartbeat(ctx, reg.Service, reg.ID, opts.AttemptTimeout)
		switch {
		case err == nil:
			failures = 0
			next = opts.Interval
			continue
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, ErrNotFound):
			c.log.Warn("instance expired; registering again", "service", reg.Service, "id", reg.ID)
			emit(Event{Kind: EventExpired, Err: err})
			if err := register(); err != nil {
				return err
			}
			next = opts.Interval
		case !retryable(err):
			return err
		default:
			c.log.Warn("heartbeat failed; retrying", "service", reg.Service, "id", reg.ID, "err", err)
			emit(Event{Kind: EventRetry, Err: err})
			next = retryWait(err, failures, opts.MaxBackoff)
			failures++
		}
	}
}

// drainOnStop drains the instance of reg, which deregisters it, as
// Keepalive's ctx has ended. It reports whether the registrar answered the
// drain (which then deregistered the instance, or found it gone or
// registered again by another process); when not, the caller deregisters
// it.
func (c *Client) drainOnStop(ctx context.Context, reg Registration, opts KeepaliveOptions, emit func(Event)) bool {
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), opts.DrainTimeout+opts.DeregisterTimeout)
	defer cancel()
	res, err := c.Drain(dctx, reg.Service, reg.ID, DrainOptions{Timeout: opts.DrainTimeout, Connections: opts.DrainConnections})
	if errors.Is(err, ErrNotFound) {
		return true // gone already: nothing left to take out of rotation
	}
	if err != nil {
		c.log.Warn("drain failed; deregistering without it", "service", reg.Service, "id", reg.ID, "err", err)
		emit(Event{Kind: EventDrained, Err: err})
		return false
	}
	if !res.Confirmed {
		c.log.Warn("drain not confirmed by every reader", "service", reg.Service, "id", reg.ID, "ended", res.Ended, "pending", len(res.Pending))
	}
	emit(Event{Kind: EventDrained, Drain: res})
	if res.Deregistered {
		emit(Event{Kind: EventDeregistered})
	}
	// Not deregistered: gone already, or registered again by another
	// process with the same id, whose registration must stay.
	return true
}

// NewID returns a random instance id: 16 hex digits, a valid DNS label.
func NewID() string {
	var b [8]byte
	crand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// retryWait returns the wait before retry n (from 0) after err: the
// backoff, or what the registrar asked for with Retry-After when that is
// longer, but never more than max.
func retryWait(err error, n int, max time.Duration) time.Duration {
	d := backoff(n, max)
	var ae *APIError
	if errors.As(err, &ae) && ae.RetryAfter > d {
		d = min(ae.RetryAfter, max)
	}
	return d
}

// backoff returns the wait before retry n (from 0): uniformly random in
// [0, min(max, 100ms * 2^n)] ("full jitter").
func backoff(n int, max time.Duration) time.Duration {
	d := max
	if n < 30 {
		d = min(max, baseBackoff<<n)
	}
	return rand.N(d + 1)
}

// sleep waits d or until ctx ends; it reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
