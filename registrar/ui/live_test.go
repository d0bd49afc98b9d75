package ui_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/netsel/netsel/internal/testenv"
	"github.com/netsel/netsel/registrar/client"
)

// live is how soon after the API's answer the page must show a change.
const live = time.Second

// start starts etcd and a registrar for t, with a client (holding
// token, when not empty) and a context bounding the test's API calls.
func start(t *testing.T, token string, opts ...testenv.RegistrarOption) (*testenv.Registrar, *client.Client, context.Context) {
	t.Helper()
	etcd := testenv.StartEtcd(t)
	reg := testenv.StartRegistrar(t, etcd.URL, opts...)
	c, err := client.New(client.Config{URLs: []string{reg.URL}, Token: token})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return reg, c, ctx
}

// register registers r and fails t on an error; it returns when the API
// has answered.
func register(t *testing.T, ctx context.Context, c *client.Client, r client.Registration) time.Time {
	t.Helper()
	if r.TTL == 0 {
		r.TTL = 5 * time.Minute
	}
	if _, err := c.Register(ctx, r); err != nil {
		t.Fatalf("register %s/%s: %v", r.Service, r.ID, err)
	}
	return time.Now()
}

// TestUILive drives the page in Chromium while services and instances
// change through the API: each change shows within a second of the API's
// answer, with no reload; a service is selected by click and by keyboard;
// the name filter hides the others.
func TestUILive(t *testing.T) {
	ctx := browser(t)
	reg, c, api := start(t, "")
	register(t, api, c, client.Registration{Service: "api", ID: "a1", Address: "127.0.1.1", Port: 9000, Zone: "east"})
	register(t, api, c, client.Registration{Service: "db", ID: "d1", Address: "127.0.2.1", Port: 5432, Ports: map[string]int{"pg": 5432}})

	do(t, ctx, "open /ui/", chromedp.Navigate(reg.URL+"/ui/"))
	waitView(t, ctx, time.Now(), 10*time.Second, "the services at load", func(v view) bool {
		return v.Status == "Live" && slices.Equal(v.names(), []string{"api", "db"})
	})

	// A new service appears.
	at := register(t, api, c, client.Registration{Service: "web", ID: "w1", Address: "127.0.3.1", Port: 8080,
		Ports: map[string]int{"http": 8080}, Weight: 5, Zone: "west", Tags: []string{"blue"}, Meta: map[string]string{"version": "1.4.2"}})
	v, took := waitView(t, ctx, at, live, "new service web", func(v view) bool {
		r := v.service("web")
		return r != nil && r[3] == "1"
	})
	t.Logf("new service shown %v after the API answered", took)
	if r := v.service("web"); r[1] == "" || r[2] != "http 8080/tcp" {
		t.Errorf("web row = %q, want its VIP and port http", r)
	}

	// Select it with a click: its instance shows, with address, weight,
	// zone, tags and state.
	do(t, ctx, "click web", chromedp.Click(chromedp.CSS(`#services tr[data-key="web"] button`)))
	v, _ = waitView(t, ctx, time.Now(), live, "instances of web", func(v view) bool {
		return v.Detail && v.instance("w1") != nil
	})
	// The tags cell holds the tag, then each meta key=value.
	want := []string{"w1", "127.0.3.1:8080", "5", "west", "blue" + "version=1.4.2", "passing"}
	if got := v.instance("w1"); !slices.Equal(got[:6], want) || got[6] == "" {
		t.Errorf("instance w1 = %q, want %q and an age", got, want)
	}

	// A second instance: the count and the instance table.
	at = register(t, api, c, client.Registration{Service: "web", ID: "w2", Address: "127.0.3.2", Port: 8080, Ports: map[string]int{"http": 8080}, Zone: "east"})
	_, took = waitView(t, ctx, at, live, "second instance", func(v view) bool {
		return v.service("web")[3] == "2" && v.instance("w2") != nil
	})
	t.Logf("second instance shown %v after the API answered", took)

	// Maintenance changes the state shown.
	if err := c.Maintenance(api, "web", "w1", "kernel upgrade"); err != nil {
		t.Fatal(err)
	}
	at = time.Now()
	_, took = waitView(t, ctx, at, live, "w1 in maintenance", func(v view) bool {
		r := v.instance("w1")
		return r != nil && r[5] == "maintenance"+"kernel upgrade"
	})
	t.Logf("maintenance shown %v after the API answered", took)

	// Deregistration removes the row and lowers the count.
	if err := c.Deregister(api, "web", "w2"); err != nil {
		t.Fatal(err)
	}
	at = time.Now()
	_, took = waitView(t, ctx, at, live, "w2 deregistered", func(v view) bool {
		return v.instance("w2") == nil && v.service("web")[3] == "1"
	})
	t.Logf("deregistration shown %v after the API answered", took)

	// The filter hides the services whose name does not contain it.
	do(t, ctx, "type a filter", chromedp.SendKeys(chromedp.ID("filter"), "we"))
	waitView(t, ctx, time.Now(), live, "filter we", func(v view) bool {
		return slices.Equal(v.names(), []string{"web"}) && v.ServicesCaption == "Services (1 of 3)"
	})
	do(t, ctx, "type more", chromedp.SendKeys(chromedp.ID("filter"), "x"))
	waitView(t, ctx, time.Now(), live, "filter wex", func(v view) bool {
		return len(v.Services) == 0 && strings.Contains(v.ServicesEmpty, "wex")
	})
	// A service registered while filtered out stays hidden.
	at = register(t, api, c, client.Registration{Service: "cache", ID: "c1", Address: "127.0.4.1", Port: 6379})
	waitView(t, ctx, at, live, "cache counted, hidden", func(v view) bool {
		return len(v.Services) == 0 && v.ServicesCaption == "Services (0 of 4)"
	})
	// Deleting a service removes its row, filtered out or not.
	if err := c.Deregister(api, "cache", "c1"); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteService(api, "cache"); err != nil {
		t.Fatal(err)
	}
	at = time.Now()
	waitView(t, ctx, at, live, "cache deleted", func(v view) bool {
		return v.ServicesCaption == "Services (0 of 3)"
	})
	do(t, ctx, "clear the filter", chromedp.Focus(chromedp.ID("filter")),
		chromedp.KeyEvent(kb.Backspace+kb.Backspace+kb.Backspace))
	waitView(t, ctx, time.Now(), live, "filter cleared", func(v view) bool {
		return slices.Equal(v.names(), []string{"api", "db", "web"})
	})

	// Keyboard: Enter on a focused service selects it; the focus stays on
	// its button through live updates of the list.
	do(t, ctx, "select api by keyboard", chromedp.Focus(chromedp.CSS(`#services tr[data-key="api"] button`)),
		chromedp.KeyEvent(kb.Enter))
	waitView(t, ctx, time.Now(), live, "instances of api", func(v view) bool {
		return strings.HasPrefix(v.InstancesCaption, "Instances of api") && v.instance("a1") != nil && v.instance("w1") == nil
	})
	at = register(t, api, c, client.Registration{Service: "api", ID: "a2", Address: "127.0.1.2", Port: 9000, Zone: "west"})
	waitView(t, ctx, at, live, "api's second instance", func(v view) bool {
		return v.service("api")[3] == "2" && v.instance("a2") != nil
	})
	if f := eval[string](t, ctx, `document.activeElement.textContent + ' ' + document.activeElement.getAttribute('aria-current')`); f != "api true" {
		t.Errorf("focus after a live update is on %q, want the api button (aria-current)", f)
	}

	// Back to web, with a second instance, for the screenshot.
	do(t, ctx, "click web", chromedp.Click(chromedp.CSS(`#services tr[data-key="web"] button`)))
	at = register(t, api, c, client.Registration{Service: "web", ID: "w3", Address: "127.0.3.3", Port: 8080,
		Ports: map[string]int{"http": 8080}, Weight: 10, Zone: "east", Tags: []string{"green", "canary"}, Meta: map[string]string{"version": "1.5.0"}})
	waitView(t, ctx, at, live, "web's w3", func(v view) bool {
		return v.instance("w3") != nil && v.instance("w1") != nil && v.instance("a1") == nil
	})
	screenshot(t, ctx, "ui.png")
}

// TestUIReconnects: while the registrar is down the page says so, and
// once it is back (a restart on the same address) the page is live again
// without a reload.
func TestUIReconnects(t *testing.T) {
	ctx := browser(t)
	etcd := testenv.StartEtcd(t)
	reg := testenv.StartRegistrar(t, etcd.URL)
	c, err := client.New(client.Config{URLs: []string{reg.URL}})
	if err != nil {
		t.Fatal(err)
	}
	api, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	register(t, api, c, client.Registration{Service: "api", ID: "a1", Address: "127.0.1.1", Port: 9000})
	do(t, ctx, "open /ui/", chromedp.Navigate(reg.URL+"/ui/?service=api"))
	waitView(t, ctx, time.Now(), 10*time.Second, "live", func(v view) bool { return v.Status == "Live" && v.instance("a1") != nil })

	reg.Stop()
	waitView(t, ctx, time.Now(), 10*time.Second, "the registrar down", func(v view) bool {
		return strings.Contains(v.Status, "retrying")
	})
	testenv.StartRegistrarAt(t, etcd.URL, reg.Addr)
	at := register(t, api, c, client.Registration{Service: "api", ID: "a2", Address: "127.0.1.2", Port: 9000})
	// The page retries with a backoff of up to 2s at this point.
	waitView(t, ctx, at, 5*time.Second, "live again", func(v view) bool {
		return v.Status == "Live" && v.service("api") != nil && v.service("api")[3] == "2" && v.instance("a2") != nil
	})
}

// TestUIPhone: on a phone-sized screen the page has no horizontal scroll.
func TestUIPhone(t *testing.T) {
	ctx := browser(t)
	reg, c, api := start(t, "")
	register(t, api, c, client.Registration{Service: "payments-gateway", ID: "p1", Address: "127.0.5.1", Port: 8443,
		Tags: []string{"canary", "eu-central"}, Meta: map[string]string{"commit": "0123456789abcdef0123456789abcdef"}})
	do(t, ctx, "phone viewport", chromedp.EmulateViewport(390, 844), chromedp.Navigate(reg.URL+"/ui/?service=payments-gateway"))
	waitView(t, ctx, time.Now(), 10*time.Second, "the instance", func(v view) bool { return v.instance("p1") != nil })
	if w := eval[int](t, ctx, `document.documentElement.scrollWidth`); w > 390 {
		t.Errorf("page is %d px wide on a 390 px screen", w)
	}
	screenshot(t, ctx, "ui-phone.png")
}
