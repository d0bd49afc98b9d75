package registrar

import (
	"net/http"
	"strconv"

	"github.com/netsel/netsel/catalog"
)

// Pages of GET /v1/services/{name}: ?limit= instances (default
// DefaultPageLimit, at most MaxPageLimit) after the instance ID ?after=.
const (
	DefaultPageLimit = 1000
	MaxPageLimit     = 10000
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
	if pq.after != "" {
		if err := catalog.CheckName("after", pq.after); err != nil {
			return pq, fieldError(err)
		}
	}
	return pq, nil
}
