// Package client is the Go library a service links to register with NetSel's
// registrar: the Go counterpart of the original NetSel ServiceClient's
// register and send_heartbeat. Keepalive does the whole job — register,
// heartbeat, register again after expiry, fail over between registrars and
// deregister on the way out.
package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/netsel/netsel/internal/tlsfiles"
	"github.com/netsel/netsel/registrar/api"
)

// Config configures a Client.
type Config struct {
	// URLs are the base URLs of one or more registrars, e.g.
	// "http://127.0.0.1:9000". Requests go to one at a time and move to the
	// next on a connection error or a 5xx answer other than 501 and 507.
	URLs []string
	// Token, when set, is sent as "Authorization: Bearer <Token>".
	Token string
	// HTTPClient sends the requests (default: a client with a 15s
	// timeout; blocking queries extend it by their wait). When set, it
	// carries its own TLS configuration and the TLS fields below must be
	// empty.
	HTTPClient *http.Client
	// TLS configures HTTPS to the registrars (default: the system's roots).
	// CAFile, CertFile and KeyFile are added to a copy of it.
	TLS *tls.Config
	// CAFile is a PEM bundle of the CAs that may sign a registrar's
	// certificate, in place of the system's roots.
	CAFile string
	// CertFile and KeyFile are the PEM client certificate and key sent to a
	// registrar that requires one (mutual TLS).
	CertFile, KeyFile string
	// Logger receives the client's logs (default slog.Default()).
	Logger *slog.Logger
}

// Client talks to registrars. It is safe for concurrent use.
type Client struct {
	urls  []*url.URL
	token string
	hc    *http.Client
	log   *slog.Logger
	// cur is the index in urls of the registrar to try first.
	cur atomic.Uint32
}

// defaultTimeout bounds a request made through the default HTTP client.
const defaultTimeout = 15 * time.Second

// New returns a Client for cfg.
func New(cfg Config) (*Client, error) {
	if len(cfg.URLs) == 0 {
		return nil, errors.New("netsel client: no registrar URL")
	}
	c := &Client{token: cfg.Token, hc: cfg.HTTPClient, log: cfg.Logger}
	for _, s := range cfg.URLs {
		u, err := url.Parse(strings.TrimRight(s, "/"))
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("netsel client: registrar URL %q is not http(s)://host[:port]", s)
		}
		c.urls = append(c.urls, u)
	}
	tc, err := cfg.tlsConfig()
	if err != nil {
		return nil, err
	}
	switch {
	case c.hc != nil && tc != nil:
		return nil, errors.New("netsel client: set TLS on the HTTPClient's transport, or leave HTTPClient nil")
	case c.hc == nil:
		// One Client may keep thousands of instances alive: keep enough
		// idle connections that heartbeats reuse them instead of opening
		// one each (net/http keeps 2 per host by default), and drop idle
		// ones before a registrar's 2-minute idle timeout does.
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = tc
		tr.MaxIdleConnsPerHost = 64
		tr.IdleConnTimeout = 90 * time.Second
		c.hc = &http.Client{Transport: tr}
	}
	if c.log == nil {
		c.log = slog.Default()
	}
	return c, nil
}

// tlsConfig returns the TLS configuration of cfg's TLS fields, or nil when
// none is set.
func (cfg *Config) tlsConfig() (*tls.Config, error) {
	if cfg.TLS == nil && cfg.CAFile == "" && cfg.CertFile == "" && cfg.KeyFile == "" {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.TLS != nil {
		tc = cfg.TLS.Clone()
	}
	if cfg.CAFile != "" {
		pool, err := tlsfiles.CertPool(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("netsel client: CA: %w", err)
		}
		tc.RootCAs = pool
	}
	if (cfg.CertFile == "") != (cfg.KeyFile == "") {
		return nil, errors.New("netsel client: CertFile and KeyFile go together")
	}
	if cfg.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("netsel client: client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// ErrNotFound matches (with errors.Is) an *APIError with status 404: for a
// heartbeat, the instance has expired and must register again.
var ErrNotFound = errors.New("not found")

// APIError is an error answered by a registrar: its status and the
// {"error","field"} body.
type APIError struct {
	Status  int
	Message string
	// Field names the request field at fault, when there is one.
	Field string
	// RetryAfter is the registrar's Retry-After, when it sent one.
	RetryAfter time.Duration
}

func (e *APIError) Error() string {
	s := fmt.Sprintf("registrar: %d %s", e.Status, e.Message)
	if e.Field != "" {
		s += " (field " + e.Field + ")"
	}
	return s
}

// Is reports whether target is ErrNotFound and e a 404.
func (e *APIError) Is(target error) bool {
	return target == ErrNotFound && e.Status == http.StatusNotFound
}

// Temporary reports whether trying again may succeed: 408, 429 and 5xx
// other than 501 and 507 (Insufficient Storage: the registrar holds its
// limit of services or VIPs, and says so for good). Every other status —
// 400, 401, 403, 409, 413, 507... — is permanent: Keepalive returns it.
func (e *APIError) Temporary() bool {
	switch e.Status {
	case http.StatusRequestTimeout, http.StatusTooManyRequests:
		return true
	case http.StatusNotImplemented, http.StatusInsufficientStorage:
		return false
	}
	return e.Status >= 500
}

// retryable reports whether err is worth another attempt: a temporary API
// error or a transport error (callers check their own context first).
func retryable(err error) bool {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.Temporary()
	}
	return true
}

// do sends method path (with query q) and body, trying each registrar once,
// starting from the current one and moving on after a connection error or
// a 5xx. It decodes a 2xx answer into out (when not nil) and returns the
// answer's X-Netsel-Index.
func (c *Client) do(ctx context.Context, method, path string, q url.Values, body, out any, timeout time.Duration) (int64, error) {
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return 0, fmt.Errorf("encode request: %w", err)
		}
	}
	start := int(c.cur.Load())
	var last error
	for i := range c.urls {
		n := (start + i) % len(c.urls)
		idx, err := c.once(ctx, c.urls[n], method, path, q, payload, out, timeout)
		if err == nil || !failover(err) || ctx.Err() != nil {
			if err == nil && n != start {
				c.cur.Store(uint32(n))
			}
			return idx, err
		}
		last = err
		if len(c.urls) > 1 {
			c.log.Warn("registrar failed; trying the next", "url", c.urls[n].String(), "err", err)
			c.cur.CompareAndSwap(uint32(n), uint32((n+1)%len(c.urls)))
		}
	}
	return 0, last
}

// failover reports whether another registrar may answer better than the one
// that returned err: connection errors and temporary 5xx.
func failover(err error) bool {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.Status >= 500 && ae.Temporary()
	}
	return true
}

// maxAnswer bounds the body of one answer; a service's instances come in
// pages (see pageLimit), each well under it.
const maxAnswer = 64 << 20

func (c *Client) once(ctx context.Context, base *url.URL, method, path string, q url.Values, payload []byte, out any, timeout time.Duration) (int64, error) {
	if timeout <= 0 {
		timeout = defaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	u := *base
	u.Path += path
	u.RawQuery = q.Encode()
	var rd io.Reader
	if payload != nil {
		rd = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return 0, err
	}
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, fmt.Errorf("%s %s: %w", method, u.Redacted(), err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
	if err != nil {
		return 0, fmt.Errorf("%s %s: read answer: %w", method, u.Redacted(), err)
	}
	if len(b) > maxAnswer {
		return 0, fmt.Errorf("%s %s: answer over %d MiB", method, u.Redacted(), maxAnswer>>20)
	}
	var idx int64
	fmt.Sscan(resp.Header.Get(api.IndexHeader), &idx)
	if resp.StatusCode >= 300 {
		ae := &APIError{Status: resp.StatusCode}
		var body api.Error
		if json.Unmarshal(b, &body) == nil && body.Error != "" {
			ae.Message, ae.Field = body.Error, body.Field
		} else {
			ae.Message = strings.TrimSpace(string(b))
			if ae.Message == "" {
				ae.Message = http.StatusText(resp.StatusCode)
			}
		}
		var secs int
		if _, err := fmt.Sscan(resp.Header.Get("Retry-After"), &secs); err == nil && secs > 0 {
			ae.RetryAfter = time.Duration(secs) * time.Second
		}
		return idx, ae
	}
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			return idx, fmt.Errorf("%s %s: decode answer: %w", method, u.Redacted(), err)
		}
	}
	return idx, nil
}
