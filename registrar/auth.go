package registrar

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/http"
	"os"
	"strings"
)

// Scope is what a token may do.
type Scope string

// The scopes of the registrar's writes. Reads need no token.
const (
	// ScopeRegister allows register, heartbeat and deregister.
	ScopeRegister Scope = "register"
	// ScopeAdmin allows everything, including deleting a service.
	ScopeAdmin Scope = "admin"
)

// token is one accepted bearer token; only its hash is kept.
type token struct {
	sum    [sha256.Size]byte
	scopes map[Scope]bool // nil: every scope
}

// tokens authorizes writes. A nil *tokens allows everything.
type tokens struct {
	list []token
}

// loadTokens reads a token file: one token per line, optionally followed by
// a space and a comma-separated list of scopes ("register", "admin"); a
// token with no scopes has them all. Blank lines and lines starting with '#'
// are ignored.
//
//	# deploy tooling
//	s3cr3t-admin-token
//	s3cr3t-service-token register
func loadTokens(path string) (*tokens, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read token file: %w", err)
	}
	t := &tokens{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) > 2 {
			return nil, fmt.Errorf("token file %s:%d: want \"<token> [scope,...]\"", path, n)
		}
		tok := token{sum: sha256.Sum256([]byte(fields[0]))}
		if len(fields) == 2 {
			tok.scopes = map[Scope]bool{}
			for s := range strings.SplitSeq(fields[1], ",") {
				switch sc := Scope(s); sc {
				case ScopeRegister, ScopeAdmin:
					tok.scopes[sc] = true
				default:
					return nil, fmt.Errorf("token file %s:%d: unknown scope %q", path, n, s)
				}
			}
		}
		t.list = append(t.list, tok)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read token file: %w", err)
	}
	if len(t.list) == 0 {
		return nil, fmt.Errorf("token file %s holds no token", path)
	}
	return t, nil
}

// authorize returns nil when req carries a token allowed scope, else a 401
// (no or unknown token) or 403 (token without the scope).
func (t *tokens) authorize(req *http.Request, scope Scope) *httpError {
	if t == nil {
		return nil
	}
	h := req.Header.Get("Authorization")
	raw, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || raw == "" {
		return &httpError{status: http.StatusUnauthorized, field: "Authorization", msg: "a bearer token is required"}
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(raw)))
	var match *token
	for i := range t.list {
		// Compare every token, so timing does not tell which one matched.
		if subtle.ConstantTimeCompare(sum[:], t.list[i].sum[:]) == 1 {
			match = &t.list[i]
		}
	}
	if match == nil {
		return &httpError{status: http.StatusUnauthorized, field: "Authorization", msg: "the bearer token is not valid"}
	}
	if match.scopes != nil && !match.scopes[scope] && !match.scopes[ScopeAdmin] {
		return &httpError{status: http.StatusForbidden, field: "Authorization", msg: fmt.Sprintf("the token lacks scope %q", scope)}
	}
	return nil
}
