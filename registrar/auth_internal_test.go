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
		{name: "all fields", file: "t1 actions=register services=web-*,api name=deploy\n", checks: []check{
			{"t1", ActionRegister, "web-1", true},
			{"t1", ActionRegister, "api", true},
			{"t1", ActionRead, "", true},
			{"t1", ActionRegister, "apis", false},
			{"t1", ActionAdmin, "web-1", false},
		}},
		{name: "defaults: every action, every service", file: "# c\n\n  t2  \n", checks: []check{
			{"t2", ActionAdmin, "anything", true},
		}},
		{name: "old format", file: "t3 register\nt4 admin\nt5 register,admin\n", checks: []check{
			{"t3", ActionRegister, "x", true}, {"t3", ActionAdmin, "x", false},
			{"t4", ActionAdmin, "x", true}, {"t4", ActionRegister, "x", true},
			{"t5", ActionAdmin, "x", true},
		}},
		{name: "scopes= alias", file: "t6 scopes=read\n", checks: []check{
			{"t6", ActionRead, "", true}, {"t6", ActionRegister, "x", false},
		}},
		{name: "single-character glob", file: "t7 services=db?,cache-[ab]\n", checks: []check{
			{"t7", ActionRegister, "db1", true}, {"t7", ActionRegister, "db12", false},
			{"t7", ActionRegister, "cache-b", true}, {"t7", ActionRegister, "cache-c", false},
		}},
		{name: "unknown action", file: "t actions=root\n", err: `line 1: unknown action "root"`},
		{name: "unknown field", file: "\nt users=a\n", err: `line 2: unknown field "users"`},
		{name: "bare word after fields", file: "t actions=read extra\n", err: `"extra" is not key=value`},
		{name: "bad pattern", file: "t services=[\n", err: "not a glob"},
		{name: "empty pattern", file: "t services=a,,b\n", err: "not a glob"},
		{name: "field instead of token", file: "actions=read\n", err: "starts with the token"},
		{name: "duplicate", file: "t\nu\nt admin\n", err: "line 3: the token of line 1 again"},
		{name: "nothing", file: "# nothing\n", err: "holds no token"},
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
