package registrar

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/netsel/netsel/catalog"
	"github.com/netsel/netsel/registrar/api"
)

// httpError is an error with the HTTP status and the {"error","field"} body
// it is answered with.
type httpError struct {
	status int
	msg    string
	field  string
	// retryAfter, in seconds, is sent as Retry-After when positive.
	retryAfter int
	// cause is the underlying error, logged but not sent.
	cause error
}

func (e *httpError) Error() string {
	s := fmt.Sprintf("%d %s", e.status, e.msg)
	if e.field != "" {
		s += " (field " + e.field + ")"
	}
	if e.cause != nil {
		s += ": " + e.cause.Error()
	}
	return s
}

func (e *httpError) Unwrap() error { return e.cause }

func errBadRequest(field, format string, args ...any) *httpError {
	return &httpError{status: http.StatusBadRequest, field: field, msg: fmt.Sprintf(format, args...)}
}

func errNotFound(format string, args ...any) *httpError {
	return &httpError{status: http.StatusNotFound, msg: fmt.Sprintf(format, args...)}
}

func errConflict(field, format string, args ...any) *httpError {
	return &httpError{status: http.StatusConflict, field: field, msg: fmt.Sprintf(format, args...)}
}

// fieldError turns a catalog validation error into a 400 naming its field.
func fieldError(err error) *httpError {
	var fe *catalog.FieldError
	if errors.As(err, &fe) {
		return errBadRequest(fe.Field, "%s", fe.Msg)
	}
	return errBadRequest("", "%v", err)
}

// etcdUnavailable wraps a failed etcd call: 503 with Retry-After, so the
// client tries again (possibly at another registrar). Errors that trying
// again cannot fix — the registrar's etcd credentials are refused, a
// request etcd rejects as invalid — are a 500 instead, so clients report
// them rather than retry for ever.
func etcdUnavailable(op string, err error) *httpError {
	if permanentEtcdError(err) {
		return &httpError{status: http.StatusInternalServerError,
			msg: "etcd refused the registrar's request: " + rpctypes.ErrorDesc(err), cause: fmt.Errorf("%s: %w", op, err)}
	}
	msg, retry := "etcd is unavailable, try again", 1
	switch {
	case errors.Is(err, context.Canceled):
		msg = "request canceled"
	case errors.Is(err, rpctypes.ErrNoSpace):
		// Until etcd is compacted, defragmented and the alarm disarmed.
		msg, retry = "etcd is out of space (NOSPACE alarm): registrations fail until it is compacted, defragmented and the alarm disarmed; try again later", 10
	}
	return &httpError{status: http.StatusServiceUnavailable, msg: msg, retryAfter: retry, cause: fmt.Errorf("%s: %w", op, err)}
}

// writeJSON writes v with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.Encode(v) //nolint:errcheck // the client went away; nothing to do
}

// writeError answers err: an *httpError as itself, anything else as a 500
// whose details are logged, not sent.
func (r *Registrar) writeError(w http.ResponseWriter, req *http.Request, err error) {
	var he *httpError
	if !errors.As(err, &he) {
		he = &httpError{status: http.StatusInternalServerError, msg: "internal error", cause: err}
	}
	if he.retryAfter > 0 {
		w.Header().Set("Retry-After", fmt.Sprint(he.retryAfter))
	}
	switch {
	case he.status >= 500:
		r.log.Warn("request failed", "method", req.Method, "path", req.URL.Path, "status", he.status, "err", he)
		if he.status == http.StatusServiceUnavailable && he.cause != nil {
			r.metrics.etcdFailures.Inc()
			r.alarms.hint(he.cause)
		}
	case he.status != http.StatusNotFound:
		r.log.Info("request rejected", "method", req.Method, "path", req.URL.Path, "status", he.status, "err", he)
	}
	auditError(req, he)
	writeJSON(w, he.status, api.Error{Error: he.msg, Field: he.field})
}

// permanentEtcdError reports whether err is an etcd error that a retry will
// not fix.
func permanentEtcdError(err error) bool {
	for _, e := range []error{
		rpctypes.ErrPermissionDenied, rpctypes.ErrAuthFailed, rpctypes.ErrInvalidAuthToken,
		rpctypes.ErrUserEmpty, rpctypes.ErrAuthNotEnabled, rpctypes.ErrRequestTooLarge,
		rpctypes.ErrTooManyOps, rpctypes.ErrDuplicateKey, rpctypes.ErrKeyNotFound,
	} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
