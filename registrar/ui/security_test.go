package ui_test

import (
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/netsel/netsel/registrar"
	"github.com/netsel/netsel/registrar/client"
)

// Markup an attacker who may register puts in an instance's tags, meta and
// maintenance reason: the page must show it as text.
var hostile = []string{
	`<img src=x onerror="window.__pwned=1">`,
	`<script>window.__pwned=2</script>`,
	`"><svg onload=window.__pwned=3>`,
}

// TestUIShowsDataAsText registers an instance whose tags, meta and
// maintenance reason are markup, and selects a service through a crafted
// ?service= link: the page shows each as text, creates no element from it,
// runs none of it, and reports no CSP violation.
func TestUIShowsDataAsText(t *testing.T) {
	ctx := browser(t)
	reg, c, api := start(t, "")
	register(t, api, c, client.Registration{Service: "web", ID: "x1", Address: "127.0.6.1", Port: 80,
		Tags: hostile, Meta: map[string]string{"note": `<b onmouseover="window.__pwned=4">bold</b>`}})
	if err := c.Maintenance(api, "web", "x1", `<i>`+hostile[0]+`</i>`); err != nil {
		t.Fatal(err)
	}

	do(t, ctx, "open /ui/?service=web", chromedp.Navigate(reg.URL+"/ui/?service=web"))
	v, _ := waitView(t, ctx, time.Now(), 10*time.Second, "instance x1", func(v view) bool { return v.instance("x1") != nil })
	tags := eval[[]string](t, ctx, `[...document.querySelectorAll('#instances td.tags span')].map((s) => s.textContent)`)
	want := append(slices.Clone(hostile), `note=<b onmouseover="window.__pwned=4">bold</b>`)
	if !slices.Equal(tags, want) {
		t.Errorf("tag labels = %q, want the markup as text %q", tags, want)
	}
	if got := v.instance("x1")[5]; got != "maintenance<i>"+hostile[0]+"</i>" {
		t.Errorf("state cell = %q, want the reason as text", got)
	}
	injected := `document.querySelectorAll('main img, main script, main svg, main b, main i').length`
	if n := eval[int](t, ctx, injected); n != 0 {
		t.Errorf("registry data made %d elements", n)
	}
	if p := eval[bool](t, ctx, `'__pwned' in window`); p {
		t.Error("registry data ran as script")
	}

	// A crafted link: the name is a caption text and a refused API call.
	evil := `<img src=x onerror="window.__pwned=5">`
	do(t, ctx, "open a crafted link", chromedp.Navigate(reg.URL+"/ui/?service="+url.QueryEscape(evil)))
	waitView(t, ctx, time.Now(), 10*time.Second, "the refused name", func(v view) bool {
		return v.InstancesCaption == "Instances of "+evil && strings.Contains(v.Note, "400")
	})
	if n := eval[int](t, ctx, injected); n != 0 {
		t.Errorf("the crafted link made %d elements", n)
	}
	if p := eval[bool](t, ctx, `'__pwned' in window`); p {
		t.Error("the crafted link ran as script")
	}
}

// TestUIToken: with reads guarded (-auth-reads), the page loads without a
// token, asks for one, shows the registrar's refusal of a wrong one, keeps
// a right one in the tab's session storage and sends it on every call
// (live updates included), and forgets it on request.
func TestUIToken(t *testing.T) {
	ctx := browser(t)
	const good = "dash-token-0123456789"
	file := filepath.Join(t.TempDir(), "tokens")
	tokens := "ops-token-0123456789 actions=admin name=ops\n" + good + " actions=read name=dashboard\n"
	if err := os.WriteFile(file, []byte(tokens), 0o600); err != nil {
		t.Fatal(err)
	}
	reg, c, api := start(t, "ops-token-0123456789", func(cfg *registrar.Config) {
		cfg.TokenFile, cfg.AuthReads = file, true
	})
	register(t, api, c, client.Registration{Service: "api", ID: "a1", Address: "127.0.7.1", Port: 9000})

	do(t, ctx, "open /ui/", chromedp.Navigate(reg.URL+"/ui/"))
	waitView(t, ctx, time.Now(), 10*time.Second, "the token form", func(v view) bool {
		return v.Auth && !v.Panes && v.Status == "Token needed" && v.AuthError == ""
	})
	if f := eval[string](t, ctx, `document.activeElement.id + ' ' + document.activeElement.type + ' ' + document.activeElement.labels[0].textContent`); f != "token password Bearer token" {
		t.Errorf("focus is on %q, want the labelled password input", f)
	}

	do(t, ctx, "send a wrong token", chromedp.SendKeys(chromedp.ID("token"), "wrong-token-0123456789"),
		chromedp.Click(chromedp.CSS(`#auth button[type=submit]`)))
	waitView(t, ctx, time.Now(), 10*time.Second, "the refusal", func(v view) bool {
		return v.Auth && !v.Panes && strings.Contains(v.AuthError, "the bearer token is not valid")
	})
	if s := eval[*string](t, ctx, `sessionStorage.getItem('netsel.token')`); s != nil {
		t.Errorf("a refused token is kept: %q", *s)
	}

	do(t, ctx, "send the token", chromedp.SendKeys(chromedp.ID("token"), good),
		chromedp.Click(chromedp.CSS(`#auth button[type=submit]`)))
	waitView(t, ctx, time.Now(), 10*time.Second, "the services", func(v view) bool {
		return !v.Auth && v.Panes && v.Status == "Live" && slices.Equal(v.names(), []string{"api"})
	})
	if s := eval[string](t, ctx, `sessionStorage.getItem('netsel.token')`); s != good {
		t.Errorf("session storage holds %q, want the token", s)
	}
	at := register(t, api, c, client.Registration{Service: "web", ID: "w1", Address: "127.0.7.2", Port: 80})
	waitView(t, ctx, at, live, "a live update with the token", func(v view) bool {
		return slices.Equal(v.names(), []string{"api", "web"})
	})

	// A reload keeps the token of the tab.
	do(t, ctx, "reload", chromedp.Reload())
	waitView(t, ctx, time.Now(), 10*time.Second, "the services after a reload", func(v view) bool {
		return !v.Auth && v.Status == "Live" && len(v.Services) == 2
	})
	screenshot(t, ctx, "ui-token.png")

	do(t, ctx, "forget the token", chromedp.Click(chromedp.ID("forget")))
	waitView(t, ctx, time.Now(), 10*time.Second, "the token form again", func(v view) bool {
		return v.Auth && !v.Panes && v.AuthError == ""
	})
	if s := eval[*string](t, ctx, `sessionStorage.getItem('netsel.token')`); s != nil {
		t.Errorf("a forgotten token is kept: %q", *s)
	}
}
