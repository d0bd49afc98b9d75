package ui_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// chromium finds a Chromium or Chrome to drive: skipped when there is none,
// but a failure under CI (CI=true), which installs Debian's chromium.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("no chromium, chromium-browser or google-chrome in PATH: CI must install chromium (apt-get install chromium)")
	}
	t.Skip("skipping the browser test: no chromium, chromium-browser or google-chrome in PATH (apt-get install chromium)")
	return ""
}

// recordViolations runs before the page's own scripts on every load and
// keeps each Content-Security-Policy violation, and each uncaught error,
// in window.__problems.
const recordViolations = `
window.__problems = [];
document.addEventListener('securitypolicyviolation',
  (e) => window.__problems.push('CSP ' + e.violatedDirective + ' blocked ' + e.blockedURI));
window.addEventListener('error', (e) => window.__problems.push('error: ' + e.message));
window.addEventListener('unhandledrejection', (e) => window.__problems.push('rejection: ' + e.reason));
`

// browser starts a headless Chromium for t, with one tab 1000 px wide, and
// returns the tab's context. It is stopped when t ends.
func browser(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)),
		chromedp.Headless,
		chromedp.NoSandbox, // the tests run as root
		chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1000, 800),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	// The first call starts the browser, which lives as long as the
	// context of that call: bound it from outside, not by its context.
	started := make(chan error, 1)
	go func() {
		_, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument,
			page.AddScriptToEvaluateOnNewDocumentParams{Source: recordViolations})
		started <- err
	}()
	select {
	case err := <-started:
		if err != nil {
			t.Fatalf("start chromium: %v", err)
		}
	case <-time.After(60 * time.Second):
		cancel()
		t.Fatal("chromium did not start within 60s")
	}
	return ctx
}

// do runs steps in the tab, bounded by 20s.
func do(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(sctx, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// eval evaluates expr in the tab, bounded by 10s, and decodes its value.
func eval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(sctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluate %.60q: %v", expr, err)
	}
	return v
}

// view is what the page shows, as a user reads it.
type view struct {
	Status           string
	Error            string
	Auth             bool // the token form is shown
	AuthError        string
	Panes            bool // the services and instances are shown
	ServicesCaption  string
	Services         [][]string // rows of cell texts
	ServicesEmpty    string
	Detail           bool
	InstancesCaption string
	Note             string // about the selected service
	Instances        [][]string
	Problems         []string // CSP violations and uncaught errors
}

const readView = `(() => {
  const $ = (id) => document.getElementById(id);
  const rows = (id) => [...$(id).tBodies[0].rows].map((tr) => [...tr.cells].map((td) => td.textContent));
  const shown = (id) => !$(id).hidden;
  return {
    Status: $('status').textContent, Error: shown('error') ? $('error').textContent : '',
    Auth: shown('auth'), AuthError: $('auth-error').textContent, Panes: shown('panes'),
    ServicesCaption: $('services-caption').textContent, Services: rows('services'),
    ServicesEmpty: shown('services-empty') ? $('services-empty').textContent : '',
    Detail: shown('detail'), InstancesCaption: $('instances-caption').textContent,
    Note: shown('detail-note') ? $('detail-note').textContent : '',
    Instances: rows('instances'), Problems: window.__problems || [],
  };
})()`

func (v view) String() string {
	b, _ := json.MarshalIndent(v, "", "  ")
	return string(b)
}

// service returns the row of the service named name: name, VIP, ports,
// instances.
func (v view) service(name string) []string {
	i := slices.IndexFunc(v.Services, func(r []string) bool { return len(r) > 0 && r[0] == name })
	if i < 0 {
		return nil
	}
	return v.Services[i]
}

// instance returns the row of instance id: id, address, weight, zone,
// tags, state, age.
func (v view) instance(id string) []string {
	i := slices.IndexFunc(v.Instances, func(r []string) bool { return len(r) > 0 && r[0] == id })
	if i < 0 {
		return nil
	}
	return v.Instances[i]
}

func (v view) names() []string {
	var out []string
	for _, r := range v.Services {
		out = append(out, r[0])
	}
	return out
}

// waitView polls the page until cond holds of what it shows, and fails
// t when within has passed since since (the moment the change was made
// known, e.g. the API's answer). It returns the view and how long after
// since it held.
func waitView(t *testing.T, ctx context.Context, since time.Time, within time.Duration, what string, cond func(view) bool) (view, time.Duration) {
	t.Helper()
	deadline := since.Add(within)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		v := eval[view](t, ctx, readView)
		if len(v.Problems) > 0 {
			t.Fatalf("the page reported problems: %q", v.Problems)
		}
		if cond(v) {
			return v, time.Since(since)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not shown within %v; the page shows:\n%s", what, within, v)
		}
		<-tick.C
	}
}

// screenshot saves a full-page PNG of the tab as name in t's artifact
// directory (kept with go test -artifacts).
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	png, err := chromedp.Run(sctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	file := filepath.Join(t.ArtifactDir(), name)
	if err := os.WriteFile(file, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d bytes)", file, len(png))
}
