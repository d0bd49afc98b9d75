package registrar

import (
	"net/http"
	"strings"
	"testing"
)

// TestParseTokens: the token file format, new and old, and its errors.
func TestParseTokens(t *testing.T) {
	for _, tc := range []struct {
		name, file string
		err        string
		// check: token, action, service, allowed
		checks []check
	}{
		{name: "all fields", file: "t1-0123456789abcdef actions=register services=web-*,api name=deploy\n", checks: []check{
			{"t1-0123456789abcdef", ActionRegister, "web-1", true},
			{"t1-0123456789abcdef", ActionRegister, "api", true},
			{"t1-0123456789abcdef", ActionRead, "", true},
			{"t1-0123456789abcdef", ActionRegister, "apis", false},
			{"t1-0123456789abcdef", ActionAdmin, "web-1", false},
		}},
		{name: "defaults: every action, every service", file: "# c\n\n  t2-0123456789abcdef  \n", checks: []check{
			{"t2-0123456789abcdef", ActionAdmin, "anything", true},
		}},
		{name: "old format", file: "t3-0123456789abcdef register\nt4-0123456789abcdef admin\nt5-0123456789abcdef register,admin\n", checks: []check{
			{"t3-0123456789abcdef", ActionRegister, "x", true}, {"t3-0123456789abcdef", ActionAdmin, "x", false},
			{"t4-0123456789abcdef", ActionAdmin, "x", true}, {"t4-0123456789abcdef", ActionRegister, "x", true},
			{"t5-0123456789abcdef", ActionAdmin, "x", true},
		}},
		{name: "scopes= alias", file: "t6-0123456789abcdef scopes=read\n", checks: []check{
			{"t6-0123456789abcdef", ActionRead, "", true}, {"t6-0123456789abcdef", ActionRegister, "x", false},
		}},
		{name: "single-character glob", file: "t7-0123456789abcdef services=db?,cache-[ab]\n", checks: []check{
			{"t7-0123456789abcdef", ActionRegister, "db1", true}, {"t7-0123456789abcdef", ActionRegister, "db12", false},
			{"t7-0123456789abcdef", ActionRegister, "cache-b", true}, {"t7-0123456789abcdef", ActionRegister, "cache-c", false},
		}},
		{name: "unknown action", file: "t-0123456789abcdef actions=root\n", err: `line 1: unknown action "root"`},
		{name: "unknown field", file: "\nt-0123456789abcdef users=a\n", err: `line 2: unknown field "users"`},
		{name: "bare word after fields", file: "t-0123456789abcdef actions=read extra\n", err: `"extra" is not key=value`},
		{name: "bad pattern", file: "t-0123456789abcdef services=[\n", err: "not a glob"},
		{name: "empty pattern", file: "t-0123456789abcdef services=a,,b\n", err: "not a glob"},
		{name: "field instead of token", file: "actions=read\n", err: "starts with the token"},
		{name: "duplicate", file: "t-0123456789abcdef\nu-0123456789abcdef\nt-0123456789abcdef admin\n", err: "line 3: the token of line 1 again"},
		{name: "nothing", file: "# nothing\n", err: "holds no token"},
		{name: "one-character token", file: "# ops\nx actions=admin\n", err: "line 2: the token has 1 characters, fewer than 16"},
		{name: "15-character token", file: "t-0123456789abcdef\n0123456789abcde\n", err: "line 2: the token has 15 characters, fewer than 16"},
		{name: "16-character token", file: "0123456789abcdef\n", checks: []check{
			{"0123456789abcdef", ActionAdmin, "x", true},
		}},
		{name: "16 characters, not bytes", file: "é123456789abcde actions=read\n", err: "line 1: the token has 15 characters"},
		{name: "shell negation", file: "t-0123456789abcdef services=web,[!w]*\n", err: `line 1: service pattern "[!w]*": [!...] is not a negation`},
		{name: "shell negation inside", file: "\n\nt-0123456789abcdef services=db-[!a-c]\n", err: "line 3: service pattern"},
		{name: "Go negation", file: "t8-0123456789abcdef services=[^w]*\n", checks: []check{
			{"t8-0123456789abcdef", ActionRegister, "api", true},
			{"t8-0123456789abcdef", ActionRegister, "web", false},
			{"t8-0123456789abcdef", ActionRegister, "!x", true},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			set, err := parseTokens([]byte(tc.file))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tk := &tokens{}
			tk.set.Store(set)
			for _, c := range tc.checks {
				req, _ := http.NewRequest("POST", "/", nil)
				req.Header.Set("Authorization", "Bearer "+c.token)
				herr := tk.authorize(req, c.action, c.service)
				if (herr == nil) != c.ok {
					t.Errorf("%s %s %q: %v, want allowed=%v", c.token, c.action, c.service, herr, c.ok)
				}
			}
		})
	}
}

type check struct {
	token   string
	action  Action
	service string
	ok      bool
}

// TestNilTokensAllowAll: without a token file, everything is allowed.
func TestNilTokensAllowAll(t *testing.T) {
	var tk *tokens
	req, _ := http.NewRequest("DELETE", "/", nil)
	if err := tk.authorize(req, ActionAdmin, "x"); err != nil {
		t.Fatal(err)
	}
}
