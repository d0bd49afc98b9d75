package registrar

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/netsel/netsel/registrar/ui"
)

// handlerFunc is an HTTP handler that returns its error for the caller to
// answer as JSON.
type handlerFunc func(w http.ResponseWriter, req *http.Request) error

// routes builds the registrar's handler: the /v1 API, /metrics and /ui behind
// the recover, metrics and deadline middleware.
func (r *Registrar) routes() http.Handler {
	mux := http.NewServeMux()
	handle := func(pattern string, action Action, h handlerFunc) {
		mux.Handle(pattern, r.endpoint(action, h))
	}
	// write is handle for what the audit log records, as audit.
	write := func(pattern, audit string, action Action, h handlerFunc) {
		mux.Handle(pattern, r.audited(audit, r.endpoint(action, h)))
	}
	write("POST /v1/services/{name}/instances", "register", ActionRegister, r.register)
	write("PUT /v1/services/{name}/instances/{id}/heartbeat", auditHeartbeat, ActionRegister, r.heartbeat)
	write("DELETE /v1/services/{name}/instances/{id}", "deregister", ActionRegister, r.deregister)
	write("DELETE /v1/services/{name}", "delete-service", ActionAdmin, r.deleteService)
	write("PUT /v1/services/{name}/instances/{id}/maintenance", "maintenance-on", ActionRegister, r.putMaintenance)
	write("DELETE /v1/services/{name}/instances/{id}/maintenance", "maintenance-off", ActionRegister, r.deleteMaintenance)
	write(drainRoute, "drain", ActionRegister, r.drain)
	write("DELETE /v1/services/{name}/instances/{id}/drain", "drain-cancel", ActionRegister, r.deleteDrain)
	write("GET /v1/backup", "snapshot-save", ActionAdmin, r.saveSnapshot)
	write("PUT /v1/backup", "snapshot-restore", ActionAdmin, r.restoreSnapshot)
	handle("GET /v1/readers", ActionRead, r.readers)
	handle("GET /v1/services", ActionRead, r.listServices)
	handle("GET /v1/services/{name}", ActionRead, r.getService)
	handle("GET /v1/sd/prometheus", ActionRead, r.prometheusSD)
	handle("GET /v1/health", "", r.health)
	r.consulRoutes(mux)
	mux.Handle("GET /metrics", r.metrics.handler())
	ui.Register(mux) // GET /ui/: public page; its /v1 calls carry the token
	return r.middleware(mux)
}

// endpoint adapts h: it authorizes the request for action (when not empty;
// reads only with Config.AuthReads) and answers h's error as JSON. Writes
// are authorized for the service they name; reads are not scoped to
// services.
func (r *Registrar) endpoint(action Action, h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if action != "" && (action != ActionRead || r.cfg.AuthReads) {
			service := ""
			if action != ActionRead {
				service = req.PathValue("name")
			}
			if err := r.tokens.authorize(req, action, service); err != nil {
				if err.status == http.StatusUnauthorized {
					w.Header().Set("WWW-Authenticate", `Bearer realm="netsel"`)
				}
				r.writeError(w, req, err)
				return
			}
		}
		if err := h(w, req); err != nil {
			r.writeError(w, req, err)
		}
	})
}

// middleware recovers panics, records metrics, bounds non-blocking requests
// by RequestTimeout (blocking queries and drains wait longer) and answers
// unknown routes with JSON errors.
func (r *Registrar) middleware(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		_, route := mux.Handler(req)
		blocking := req.Method == http.MethodGet && req.URL.Query().Has("index")
		longest := MaxBlockingWait
		if route == drainRoute {
			blocking, longest = true, MaxDrainTimeout
		}
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				r.log.Error("panic serving request", "method", req.Method, "path", req.URL.Path,
					"panic", fmt.Sprint(p), "stack", string(debug.Stack()))
				if !sw.wrote {
					r.writeError(sw, req, fmt.Errorf("panic: %v", p))
				}
			}
			if route == "" {
				route = "unmatched"
			}
			r.metrics.observe(route, req.Method, sw.code(), time.Since(start), blocking)
		}()
		if route == "" {
			// Let the mux decide between 404 and 405, then answer in JSON.
			rec := &statusRecorder{header: http.Header{}}
			mux.ServeHTTP(rec, req)
			for _, k := range []string{"Allow"} {
				if v := rec.header.Get(k); v != "" {
					sw.Header().Set(k, v)
				}
			}
			status := rec.status
			if status == 0 || status == http.StatusOK {
				status = http.StatusNotFound
			}
			r.writeError(sw, req, &httpError{status: status, msg: http.StatusText(status) + ": " + req.Method + " " + req.URL.Path})
			return
		}
		if blocking {
			// The server's read and write deadlines would cut a blocking
			// query short (a passed read deadline cancels the request's
			// context): give this request room for the longest wait.
			rc := http.NewResponseController(w)
			d := time.Now().Add(longest + r.cfg.WriteTimeout)
			rc.SetReadDeadline(d)  //nolint:errcheck // not over a net.Conn (httptest)
			rc.SetWriteDeadline(d) //nolint:errcheck
		} else {
			ctx, cancel := context.WithTimeout(req.Context(), r.cfg.RequestTimeout)
			defer cancel()
			req = req.WithContext(ctx)
		}
		mux.ServeHTTP(sw, req)
	})
}

// httpServer returns the server Serve runs: the registrar's handler behind
// the timeouts and header limit of Config, and TLS when configured.
func (r *Registrar) httpServer(base func(net.Listener) context.Context) *http.Server {
	srv := &http.Server{
		Handler:           r.handler,
		ReadHeaderTimeout: r.cfg.ReadHeaderTimeout,
		ReadTimeout:       r.cfg.ReadTimeout,
		WriteTimeout:      r.cfg.WriteTimeout,
		IdleTimeout:       r.cfg.IdleTimeout,
		MaxHeaderBytes:    r.cfg.MaxHeaderBytes,
		BaseContext:       base,
		ErrorLog:          slog.NewLogLogger(r.log.Handler(), slog.LevelWarn),
	}
	if r.tls != nil {
		srv.TLSConfig = r.tls.config()
	}
	return srv
}

// serveOn runs srv on ln, over TLS when configured, until it is shut down.
func (r *Registrar) serveOn(srv *http.Server, ln net.Listener) error {
	if r.tls != nil {
		return srv.ServeTLS(ln, "", "")
	}
	return srv.Serve(ln)
}

// scheme is the URL scheme the registrar serves.
func (r *Registrar) scheme() string {
	if r.tls != nil {
		return "https"
	}
	return "http"
}

// statusWriter remembers the status code written through it.
type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.status, w.wrote = http.StatusOK, true
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) code() int {
	if !w.wrote {
		return http.StatusOK
	}
	return w.status
}

// statusRecorder captures the status of the mux's own 404/405 answers.
type statusRecorder struct {
	header http.Header
	status int
}

func (r *statusRecorder) Header() http.Header { return r.header }
func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
}
func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return len(b), nil
}
