package registrar

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strings"

	"github.com/netsel/netsel/registrar/api"
)

// MaxBodyBytes is the largest request body accepted; a larger one is
// answered 413 with field "body".
const MaxBodyBytes = 64 << 10

var durationType = reflect.TypeFor[api.Duration]()

// decodeBody decodes req's JSON body into v, strictly: the content type, if
// given, must be JSON; unknown fields, trailing data and bodies over
// MaxBodyBytes are refused with an error naming the field.
func decodeBody(w http.ResponseWriter, req *http.Request, v any) error {
	return decodeBodyMax(w, req, v, MaxBodyBytes)
}

// decodeBodyMax is decodeBody with a limit of max bytes.
func decodeBodyMax(w http.ResponseWriter, req *http.Request, v any, max int64) error {
	if ct := req.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return &httpError{status: http.StatusUnsupportedMediaType, field: "Content-Type",
				msg: fmt.Sprintf("content type %q is not application/json", ct)}
		}
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, req.Body, max))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if _, terr := dec.Token(); terr != io.EOF {
			err = errors.New("data after the JSON object")
			var mbe *http.MaxBytesError
			if errors.As(terr, &mbe) {
				err = terr
			}
		}
	}
	if err == nil {
		return nil
	}
	var (
		mbe *http.MaxBytesError
		se  *json.SyntaxError
		te  *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &mbe):
		return &httpError{status: http.StatusRequestEntityTooLarge, field: "body",
			msg: fmt.Sprintf("body is larger than %d bytes", max)}
	case errors.Is(err, io.EOF):
		return errBadRequest("body", "body is empty: want a JSON object")
	case errors.As(err, &se):
		return errBadRequest("body", "body is not valid JSON (at byte %d): %v", se.Offset, se)
	case errors.As(err, &te):
		if te.Field == "" {
			return errBadRequest("body", "body must be a JSON object, not %s", te.Value)
		}
		if te.Type == durationType {
			return errBadRequest(te.Field, "%s is not a duration: use a string such as \"60s\" or whole seconds", te.Value)
		}
		return errBadRequest(te.Field, "%s is not valid here: want %s", te.Value, jsonKind(te.Type))
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errBadRequest("body", "body is truncated JSON")
	}
	if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		f = strings.Trim(f, `"`)
		if f == "" {
			return errBadRequest("body", "unknown field with an empty name")
		}
		return errBadRequest(f, "unknown field %q", f)
	}
	return errBadRequest("body", "body is not acceptable: %v", err)
}

func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Int, reflect.Int64, reflect.Int32, reflect.Uint, reflect.Uint64, reflect.Uint32:
		return "an integer"
	case reflect.Map, reflect.Struct:
		return "an object"
	case reflect.Slice:
		return "an array"
	}
	return t.String()
}
