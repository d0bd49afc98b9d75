package registrar

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// The audit log (Config.AuditLog) has one JSON line for every write request
// the registrar answers — register, deregister, delete-service,
// maintenance on and off, drain and its cancel, snapshot save and restore —
// whatever the answer, refusals included. Heartbeats, many a second on a
// busy registrar, are logged only with Config.AuditHeartbeats. A line:
//
//	{"time":"2026-12-01T10:46:02.5Z","who":"deployer","remote":"10.0.0.7:51234",
//	 "action":"register","method":"POST","path":"/v1/services/web/instances",
//	 "service":"web","instance":"web-1","status":200,"duration":"3.1ms"}
//
// "who" is the name of the bearer token (its name= in the token file, else
// "line N"; never the token), "unknown token" for a token that is not in
// the file, the client certificate's subject when no token names the
// client, else "anonymous". "cert" is the client certificate's subject
// under mutual TLS. Refused requests have "error" (and "field") as
// answered. Values come from the request JSON-encoded, so a name holding a
// newline or a quote cannot start a line of its own.
//
// Lines are written by one goroutine, in order, to a file opened for
// appending (created 0600). A request queues its line and does not wait for
// the write; when the queue is full (the file does not take writes) it
// waits up to auditWait, then drops the line with an error in the log, and
// drops further lines at once until a write succeeds again: a stuck audit
// log slows writes, and never wedges them.

// auditQueue bounds the lines waiting to be written.
const auditQueue = 256

// auditWait bounds a request's wait for room in the queue.
const auditWait = time.Second

// auditRecord is one line of the audit log.
type auditRecord struct {
	Time     time.Time `json:"time"`
	Who      string    `json:"who"`
	Cert     string    `json:"cert,omitempty"`
	Remote   string    `json:"remote"`
	Action   string    `json:"action"`
	Method   string    `json:"method"`
	Path     string    `json:"path"`
	Service  string    `json:"service,omitempty"`
	Instance string    `json:"instance,omitempty"`
	Detail   string    `json:"detail,omitempty"`
	Status   int       `json:"status"`
	Error    string    `json:"error,omitempty"`
	Field    string    `json:"field,omitempty"`
	Duration string    `json:"duration"`
}

// auditHeartbeat is the action of a heartbeat, audited only with
// Config.AuditHeartbeats.
const auditHeartbeat = "heartbeat"

// auditLog writes the audit log.
type auditLog struct {
	name       string
	w          io.Writer
	closer     io.Closer // nil for stderr
	heartbeats bool
	log        *slog.Logger
	lines      chan []byte
	quit, done chan struct{}
	// mu orders add and close: add holds it shared while it queues, close
	// exclusively while it sets closed, so that every line queued before
	// is written and every line after is logged as dropped.
	mu     sync.RWMutex
	closed bool
	// stalled is set when a line was dropped, and cleared by the next
	// successful write: meanwhile lines are dropped without a wait.
	stalled atomic.Bool
	dropped atomic.Int64
}

// openAudit opens the audit log of cfg and starts its writer; nil when
// there is none. "-" and "stderr" mean the standard error.
func openAudit(cfg *Config) (*auditLog, error) {
	a := &auditLog{name: cfg.AuditLog, heartbeats: cfg.AuditHeartbeats, log: cfg.Logger,
		lines: make(chan []byte, auditQueue), quit: make(chan struct{}), done: make(chan struct{})}
	switch cfg.AuditLog {
	case "":
		if cfg.AuditHeartbeats {
			return nil, errors.New("AuditHeartbeats needs AuditLog")
		}
		return nil, nil
	case "-", "stderr":
		a.w = os.Stderr
	default:
		f, err := os.OpenFile(cfg.AuditLog, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			return nil, fmt.Errorf("audit log: %w", err)
		}
		if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o077 != 0 {
			a.log.Warn("audit log is readable by group or others; chmod 600 it", "file", cfg.AuditLog, "mode", fi.Mode().Perm().String())
		}
		a.w, a.closer = f, f
	}
	go a.run()
	return a, nil
}

func (a *auditLog) run() {
	defer close(a.done)
	for {
		select {
		case b := <-a.lines:
			a.write(b)
		case <-a.quit:
			for {
				select {
				case b := <-a.lines:
					a.write(b)
				default:
					return
				}
			}
		}
	}
}

func (a *auditLog) write(b []byte) {
	if _, err := a.w.Write(b); err != nil {
		a.log.Error("audit log write failed; the line is lost", "file", a.name, "err", err, "line", string(b))
		return
	}
	a.stalled.Store(false)
}

// add queues rec's line, waiting up to auditWait for room.
func (a *auditLog) add(rec *auditRecord) {
	b, err := json.Marshal(rec)
	if err != nil {
		a.log.Error("audit log: encode line", "err", err)
		return
	}
	b = append(b, '\n')
	a.mu.RLock()
	defer a.mu.RUnlock()
	if a.closed {
		// Answered after Close (Serve's shutdown does not wait forever for
		// requests in flight): the writer is gone.
		a.log.Error("audit log closed: line not written", "file", a.name, "line", string(b))
		return
	}
	select {
	case a.lines <- b:
		return
	default:
	}
	if !a.stalled.Load() {
		t := time.NewTimer(auditWait)
		defer t.Stop()
		select {
		case a.lines <- b:
			return
		case <-t.C:
		}
	}
	a.stalled.Store(true)
	n := a.dropped.Add(1)
	a.log.Error("audit log is not keeping up: line dropped", "file", a.name, "dropped", n, "line", string(b))
}

// close writes the lines queued, for up to a few seconds, and closes the
// file. A line added after it is logged as an error.
func (a *auditLog) close() {
	if a == nil {
		return
	}
	a.mu.Lock()
	a.closed = true
	close(a.quit)
	a.mu.Unlock()
	select {
	case <-a.done:
	case <-time.After(5 * time.Second):
		a.log.Error("audit log: closing with lines unwritten", "file", a.name, "queued", len(a.lines))
	}
	if a.closer != nil {
		a.closer.Close()
	}
}

// auditKey keys a request's *auditRecord in its context.
type auditKey struct{}

// audited wraps next, the endpoint of a write, so that each request writes
// its line, as action, with the status answered (refusals by next's
// authorization included). Without an audit log, or for a heartbeat
// without Config.AuditHeartbeats, it is next.
func (r *Registrar) audited(action string, next http.Handler) http.Handler {
	if r.audit == nil || (action == auditHeartbeat && !r.audit.heartbeats) {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		rec := &auditRecord{Time: time.Now().UTC(), Remote: req.RemoteAddr, Action: action, Method: req.Method,
			Path: truncate(req.URL.Path, 512), Service: truncate(req.PathValue("name"), 256), Instance: truncate(req.PathValue("id"), 256)}
		rec.Who, rec.Cert = r.who(req)
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			p := recover()
			rec.Status = sw.code()
			if p != nil {
				rec.Status, rec.Error = http.StatusInternalServerError, "panic"
			}
			rec.Duration = time.Since(rec.Time).String()
			r.audit.add(rec)
			if p != nil {
				panic(p)
			}
		}()
		next.ServeHTTP(sw, req.WithContext(context.WithValue(req.Context(), auditKey{}, rec)))
	})
}

// who names the client of req for the audit log, and the subject of its
// client certificate, if any.
func (r *Registrar) who(req *http.Request) (who, cert string) {
	if req.TLS != nil && len(req.TLS.PeerCertificates) > 0 {
		cert = req.TLS.PeerCertificates[0].Subject.String()
	}
	if r.tokens != nil {
		match, given := r.tokens.lookup(req)
		if match != nil {
			return match.name, cert
		}
		if given {
			return "unknown token", cert
		}
	}
	if cert != "" {
		return cert, cert
	}
	return "anonymous", ""
}

// auditError notes err, as answered, in req's audit line.
func auditError(req *http.Request, err *httpError) {
	if rec, ok := req.Context().Value(auditKey{}).(*auditRecord); ok {
		rec.Error, rec.Field = truncate(err.msg, 1024), err.field
	}
}

// auditNote sets the instance (when not empty) and detail of req's audit
// line, for what the path does not say.
func auditNote(req *http.Request, instance, detail string) {
	if rec, ok := req.Context().Value(auditKey{}).(*auditRecord); ok {
		if instance != "" {
			rec.Instance = truncate(instance, 256)
		}
		rec.Detail = detail
	}
}
