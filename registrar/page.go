package registrar

import (
	"net/http"
	"strconv"
	"strings"
	"unicode"
)

// Pages of GET /v1/services/{name}: ?limit= instances (default
// DefaultPageLimit, at most MaxPageLimit) after the instance ID ?after=.
const (
	DefaultPageLimit = 1000
	MaxPageLimit     = 10000
	// maxCursorBytes bounds ?after=.
	maxCursorBytes = 1024
)

// pageQuery is the ?limit=N&after=ID of a single-service read.
type pageQuery struct {
	after string
	limit int
}

func parsePage(req *http.Request) (pageQuery, error) {
	q := req.URL.Query()
	pq := pageQuery{after: q.Get("after"), limit: DefaultPageLimit}
	if q.Has("limit") {
		n, err := strconv.Atoi(q.Get("limit"))
		if err != nil || n < 1 || n > MaxPageLimit {
			return pq, errBadRequest("limit", "%q is not a number of instances from 1 to %d", truncate(q.Get("limit"), 40), MaxPageLimit)
		}
		pq.limit = n
	}
	// after is a position in the order of instance IDs, not a name: the
	// last key of a page may be one that something other than a registrar
	// wrote, which is skipped but still ends the page.
	if len(pq.after) > maxCursorBytes || strings.ContainsFunc(pq.after, unicode.IsControl) {
		return pq, errBadRequest("after", "%q is not a cursor: at most %d bytes, no control characters", truncate(pq.after, 40), maxCursorBytes)
	}
	return pq, nil
}
