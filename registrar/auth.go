package registrar

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path"
	"strings"
	"sync/atomic"
	"unicode/utf8"
)

// Action is what a request does, as far as authorization is concerned. Each
// action includes the ones before it: admin allows register and read,
// register allows read.
type Action string

// The actions a token may be granted.
const (
	// ActionRead allows the GET endpoints, when reads need a token at all
	// (Config.AuthReads).
	ActionRead Action = "read"
	// ActionRegister allows register, heartbeat and deregister.
	ActionRegister Action = "register"
	// ActionAdmin allows everything, including deleting a service and so
	// freeing its VIP.
	ActionAdmin Action = "admin"
)

// bits returns a's bits in a token's grant: its own and those of the
// actions it includes.
func (a Action) bits() (uint8, bool) {
	switch a {
	case ActionRead:
		return 1, true
	case ActionRegister:
		return 1 | 2, true
	case ActionAdmin:
		return 1 | 2 | 4, true
	}
	return 0, false
}

// MinTokenLength is the fewest characters a token of the token file may
// have; a shorter one is refused at load, naming its line.
const MinTokenLength = 16

// token is one accepted bearer token; only its hash is kept.
type token struct {
	sum  [sha256.Size]byte
	name string // for logs: name=, else "line N"
	// granted is the union of the bits of its actions.
	granted uint8
	// services are path.Match patterns of the service names it covers.
	services []string
}

// allows reports whether t was granted a (or an action that includes it).
func (t *token) allows(a Action) bool {
	b, _ := a.bits()
	return t.granted&b == b && b != 0
}

// covers reports whether one of t's patterns matches service.
func (t *token) covers(service string) bool {
	for _, p := range t.services {
		if ok, _ := path.Match(p, service); ok {
			return true
		}
	}
	return false
}

// tokenSet is one load of the token file.
type tokenSet struct {
	list []token
}

// tokens authorizes requests against the token file, which Reload swaps in
// whole. A nil *tokens allows everything.
type tokens struct {
	file string
	set  atomic.Pointer[tokenSet]
}

// loadTokens reads the token file at file; see parseTokens for its format.
func loadTokens(file string) (*tokens, error) {
	t := &tokens{file: file}
	if err := t.reload(); err != nil {
		return nil, err
	}
	return t, nil
}

// reload reads the file again and, only when it is valid, uses it from now on.
func (t *tokens) reload() error {
	b, err := os.ReadFile(t.file)
	if err != nil {
		return fmt.Errorf("read token file: %w", err)
	}
	set, err := parseTokens(b)
	if err != nil {
		return fmt.Errorf("token file %s: %w", t.file, err)
	}
	t.set.Store(set)
	return nil
}

// count returns how many tokens are in use.
func (t *tokens) count() int { return len(t.set.Load().list) }

// parseTokens parses a token file: one token a line, then optional
// key=value fields; blank lines and lines starting with '#' are ignored.
//
//	# TOKEN [actions=read|register|admin,...] [services=PATTERN,...] [name=LABEL]
//	3f9c...e1 actions=register services=web-*,api name=web-deployer
//	77ab...0c actions=admin name=ops
//	a41d...9b actions=read name=dashboard
//
// actions defaults to every action and services to "*". Patterns are
// path.Match globs over service names; "[!" is refused, since path.Match
// negates a class with "[^" and would read "[!w]" as "'!' or 'w'". A token
// has at least MinTokenLength characters. For compatibility, a bare second
// field is a list of actions: "TOKEN register".
func parseTokens(b []byte) (*tokenSet, error) {
	set := &tokenSet{}
	seen := map[[sha256.Size]byte]int{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		tok, err := parseTokenLine(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		if tok.name == "" {
			tok.name = fmt.Sprintf("line %d", n)
		}
		if prev, dup := seen[tok.sum]; dup {
			return nil, fmt.Errorf("line %d: the token of line %d again", n, prev)
		}
		seen[tok.sum] = n
		set.list = append(set.list, tok)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(set.list) == 0 {
		return nil, errors.New("holds no token")
	}
	return set, nil
}

func parseTokenLine(line string) (token, error) {
	fields := strings.Fields(line)
	tok := token{sum: sha256.Sum256([]byte(fields[0]))}
	if strings.Contains(fields[0], "=") {
		return tok, errors.New(`a line starts with the token, then "actions=..." and "services=..."`)
	}
	if n := utf8.RuneCountInString(fields[0]); n < MinTokenLength {
		return tok, fmt.Errorf("the token has %d characters, fewer than %d (make one with: openssl rand -hex 32)", n, MinTokenLength)
	}
	var actions, services string
	haveActions := false
	for i, f := range fields[1:] {
		k, v, ok := strings.Cut(f, "=")
		switch {
		case !ok && i == 0:
			actions, haveActions = f, true // the format before key=value fields
		case !ok:
			return tok, fmt.Errorf("%q is not key=value", f)
		case k == "actions" || k == "scopes":
			actions, haveActions = v, true
		case k == "services":
			services = v
		case k == "name":
			tok.name = v
		default:
			return tok, fmt.Errorf("unknown field %q (want actions=, services= or name=)", k)
		}
	}
	if !haveActions {
		actions = string(ActionAdmin)
	}
	for a := range strings.SplitSeq(actions, ",") {
		b, ok := Action(a).bits()
		if !ok {
			return tok, fmt.Errorf("unknown action %q (want read, register or admin)", a)
		}
		tok.granted |= b
	}
	if services == "" {
		services = "*"
	}
	for p := range strings.SplitSeq(services, ",") {
		if _, err := path.Match(p, ""); p == "" || err != nil {
			return tok, fmt.Errorf("service pattern %q is not a glob such as web-*", p)
		}
		if strings.Contains(p, "[!") {
			// path.Match negates with [^...]; [!w] is the set of '!' and 'w'.
			return tok, fmt.Errorf("service pattern %q: [!...] is not a negation here (path.Match reads it as a set holding '!'); negate with [^...]", p)
		}
		tok.services = append(tok.services, p)
	}
	return tok, nil
}

// authorize returns nil when req carries a token that may do action on
// service ("" for none), else a 401 (no token, or not a known one) or a 403
// (a known token, outside its scope).
func (t *tokens) authorize(req *http.Request, action Action, service string) *httpError {
	if t == nil {
		return nil
	}
	match, given := t.lookup(req)
	if !given {
		return errUnauthorized("a bearer token is required")
	}
	if match == nil {
		return errUnauthorized("the bearer token is not valid")
	}
	if !match.allows(action) {
		return errForbidden("the token (%s) may not %s", match.name, action)
	}
	if service != "" && !match.covers(service) {
		return errForbidden("the token (%s) does not cover service %q", match.name, service)
	}
	return nil
}

// lookup returns the known token req carries (nil when none), and whether
// req carries a bearer token at all.
func (t *tokens) lookup(req *http.Request) (match *token, given bool) {
	scheme, raw, _ := strings.Cut(req.Header.Get("Authorization"), " ")
	raw = strings.TrimSpace(raw)
	if !strings.EqualFold(scheme, "Bearer") || raw == "" {
		return nil, false
	}
	sum := sha256.Sum256([]byte(raw))
	list := t.set.Load().list
	for i := range list {
		// Compare with every token, so timing tells nothing of which matched.
		if subtle.ConstantTimeCompare(sum[:], list[i].sum[:]) == 1 {
			match = &list[i]
		}
	}
	return match, true
}

func errUnauthorized(msg string) *httpError {
	return &httpError{status: http.StatusUnauthorized, field: "Authorization", msg: msg}
}

func errForbidden(format string, args ...any) *httpError {
	return &httpError{status: http.StatusForbidden, field: "Authorization", msg: fmt.Sprintf(format, args...)}
}

// ReloadTokens reads the token file again and uses it from now on; the
// runner calls it on SIGHUP. When the file is unreadable or invalid, it
// returns the error and the tokens loaded before stay in use.
func (r *Registrar) ReloadTokens() error {
	if r.tokens == nil {
		return errors.New("registrar: no token file to reload")
	}
	if err := r.tokens.reload(); err != nil {
		return fmt.Errorf("registrar: reload tokens (keeping the %d loaded before): %w", r.tokens.count(), err)
	}
	r.log.Info("token file reloaded", "file", r.tokens.file, "tokens", r.tokens.count())
	return nil
}

// checkTokenFileMode warns when the token file can be read by others than its owner.
func (r *Registrar) checkTokenFileMode() {
	if fi, err := os.Stat(r.tokens.file); err == nil && fi.Mode().Perm()&0o077 != 0 {
		r.log.Warn("token file is readable by group or others; chmod 600 it", "file", r.tokens.file, "mode", fi.Mode().Perm().String())
	}
}
