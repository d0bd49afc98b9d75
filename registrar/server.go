package registrar

import (
	"context"
	"fmt"
	"net/http"
	"runtime/debug"
	"time"
)

// handlerFunc is an HTTP handler that returns its error for the caller to
// answer as JSON.
type handlerFunc func(w http.ResponseWriter, req *http.Request) error

// routes builds the registrar's handler: the /v1 API and /metrics behind
// the recover, metrics and deadline middleware.
func (r *Registrar) routes() http.Handler {
	mux := http.NewServeMux()
	handle := func(pattern string, scope Scope, h handlerFunc) {
		mux.Handle(pattern, r.endpoint(scope, h))
	}
	handle("POST /v1/services/{name}/instances", ScopeRegister, r.register)
	handle("PUT /v1/services/{name}/instances/{id}/heartbeat", ScopeRegister, r.heartbeat)
	handle("DELETE /v1/services/{name}/instances/{id}", ScopeRegister, r.deregister)
	handle("DELETE /v1/services/{name}", ScopeAdmin, r.deleteService)
	handle("GET /v1/services", "", r.listServices)
	handle("GET /v1/services/{name}", "", r.getService)
	handle("GET /v1/health", "", r.health)
	mux.Handle("GET /metrics", r.metrics.handler())
	return r.middleware(mux)
}

// endpoint adapts h: it checks the token for scope (when not empty) and
// answers h's error as JSON.
func (r *Registrar) endpoint(scope Scope, h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if scope != "" {
			if err := r.tokens.authorize(req, scope); err != nil {
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
// by RequestTimeout and answers unknown routes with JSON errors.
func (r *Registrar) middleware(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		_, route := mux.Handler(req)
		blocking := req.Method == http.MethodGet && req.URL.Query().Has("index")
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
		if !blocking {
			ctx, cancel := context.WithTimeout(req.Context(), r.cfg.RequestTimeout)
			defer cancel()
			req = req.WithContext(ctx)
		}
		mux.ServeHTTP(sw, req)
	})
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
