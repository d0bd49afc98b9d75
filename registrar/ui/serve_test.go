package ui_test

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/netsel/netsel/registrar"
	"github.com/netsel/netsel/registrar/api"
	"github.com/netsel/netsel/registrar/ui"
)

// get sends GET url (with the extra header pairs hdr) without following
// redirects, and reads the whole answer.
func get(t *testing.T, url string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, string(b)
}

// TestServe: the page is served without a token while reads need one, /ui
// redirects to /ui/, every answer carries the security headers, the files
// have their content types and revalidate by ETag, and any other path is
// the registrar's JSON 404.
func TestServe(t *testing.T) {
	file := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(file, []byte("ops-token-0123456789 actions=admin\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	reg, _, _ := start(t, "", func(cfg *registrar.Config) { cfg.TokenFile, cfg.AuthReads = file, true })

	secure := func(what string, res *http.Response) {
		t.Helper()
		for k, want := range map[string]string{
			"Content-Security-Policy": ui.ContentSecurityPolicy,
			"X-Content-Type-Options":  "nosniff",
			"Referrer-Policy":         "no-referrer",
			"X-Frame-Options":         "DENY",
		} {
			if got := res.Header.Get(k); got != want {
				t.Errorf("%s: %s = %q, want %q", what, k, got, want)
			}
		}
	}

	res, _ := get(t, reg.URL+"/ui")
	if res.StatusCode != http.StatusMovedPermanently || res.Header.Get("Location") != "/ui/" {
		t.Errorf("GET /ui = %d Location %q, want 301 to /ui/", res.StatusCode, res.Header.Get("Location"))
	}
	secure("GET /ui", res)

	for path, ctype := range map[string]string{
		"/ui/":          "text/html; charset=utf-8",
		"/ui/app.js":    "text/javascript; charset=utf-8",
		"/ui/style.css": "text/css; charset=utf-8",
	} {
		res, body := get(t, reg.URL+path)
		if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != ctype || body == "" {
			t.Errorf("GET %s = %d %q (%d bytes), want 200 %s", path, res.StatusCode, res.Header.Get("Content-Type"), len(body), ctype)
		}
		secure("GET "+path, res)
		etag := res.Header.Get("ETag")
		if res, _ := get(t, reg.URL+path, "If-None-Match", etag); etag == "" || res.StatusCode != http.StatusNotModified {
			t.Errorf("GET %s with If-None-Match %q = %d, want 304", path, etag, res.StatusCode)
		}
	}

	for _, path := range []string{"/ui/nope.js", "/ui/index.html/", "/ui/static/app.js", "/uix"} {
		res, body := get(t, reg.URL+path)
		var e api.Error
		if res.StatusCode != http.StatusNotFound || json.Unmarshal([]byte(body), &e) != nil || e.Error == "" {
			t.Errorf("GET %s = %d %s, want the registrar's JSON 404", path, res.StatusCode, body)
		}
	}

	// The data is guarded; the page is not.
	if res, _ := get(t, reg.URL+"/v1/services"); res.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /v1/services without a token = %d, want 401", res.StatusCode)
	}
}

// TestStaticFiles keeps the embedded files within what the policy and the
// promise allow: no inline script, style or event handler (the CSP would
// block them), nothing loaded from another origin, and no API that parses
// a string as markup or code in the script.
func TestStaticFiles(t *testing.T) {
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join("static", name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	html := read("index.html")
	for _, m := range regexp.MustCompile(`(?is)<script\b([^>]*)>(.*?)</script>`).FindAllStringSubmatch(html, -1) {
		if !strings.Contains(m[1], " src=") || strings.TrimSpace(m[2]) != "" {
			t.Errorf("index.html has an inline script: %q", m[0])
		}
	}
	for _, bad := range []*regexp.Regexp{
		regexp.MustCompile(`(?i)\son[a-z]+\s*=`),     // an event handler attribute
		regexp.MustCompile(`(?i)\sstyle\s*=|<style`), // inline style
		regexp.MustCompile(`(?i)javascript:`),
	} {
		if m := bad.FindString(html); m != "" {
			t.Errorf("index.html has %q", m)
		}
	}
	if !strings.Contains(html, `<meta name="viewport"`) || !strings.Contains(html, `<html lang="en">`) {
		t.Error("index.html lacks the viewport or the language")
	}
	js := read("app.js")
	for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", "setAttribute('style'", "srcdoc"} {
		if strings.Contains(js, bad) {
			t.Errorf("app.js uses %s", bad)
		}
	}
	for _, name := range []string{"index.html", "app.js", "style.css"} {
		if m := regexp.MustCompile(`(?i)(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}`).FindString(read(name)); m != "" {
			t.Errorf("%s names another origin: %q", name, m)
		}
	}
	if m := regexp.MustCompile(`@import|url\(`).FindString(read("style.css")); m != "" {
		t.Errorf("style.css loads %q", m)
	}
}
