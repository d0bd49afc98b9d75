package registrar_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/netsel/netsel/internal/testenv"
	"github.com/netsel/netsel/registrar/api"
	"github.com/netsel/netsel/registrar/client"
)

// TestServiceTagFilter: GET /v1/services/{name}?tag= lists the instances
// that carry every tag asked, ignoring case, with ?state= and pages (cut
// from every instance, then filtered: a page may hold none and still have
// a next), from etcd, from the index and as a blocking query; the client
// follows the pages; a bad or excessive ?tag= is a 400 naming tag.
func TestServiceTagFilter(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	reg := testenv.StartRegistrar(t, etcd.URL)
	for i := range 25 {
		var tags []string
		if i%2 == 0 {
			tags = append(tags, "v2")
		}
		if i%3 == 0 {
			tags = append(tags, "Canary")
		}
		register(t, reg.URL, "web", api.RegisterRequest{ID: fmt.Sprintf("i%02d", i), Address: "127.0.0.1", Port: 8000 + i, Tags: tags})
	}
	if r := do(t, "PUT", reg.URL+"/v1/services/web/instances/i00/maintenance", api.MaintenanceRequest{Reason: "disk"}); r.status != http.StatusNoContent {
		t.Fatalf("maintenance: %d %s", r.status, r.body)
	}
	base := reg.URL + "/v1/services/web"
	testenv.Eventually(t, 10*time.Second, func() bool {
		var v api.ServiceView
		r := do(t, "GET", base+"?stale", nil)
		return r.status == http.StatusOK && json.Unmarshal(r.body, &v) == nil && len(v.Instances) == 24
	}, "the registrar's index never had the instances and the maintenance")

	ids := func(q string) string {
		t.Helper()
		var v api.ServiceView
		r := do(t, "GET", base+"?"+q, nil)
		if r.status != http.StatusOK {
			t.Fatalf("?%s: %d %s", q, r.status, r.body)
		}
		r.decode(t, &v)
		var s []string
		for _, in := range v.Instances {
			s = append(s, in.ID)
		}
		return strings.Join(s, ",") + ";" + v.Next
	}
	for _, tc := range []struct{ query, want string }{
		{"tag=v2", "i02,i04,i06,i08,i10,i12,i14,i16,i18,i20,i22,i24;"},
		{"tag=v2&tag=canary", "i06,i12,i18,i24;"},
		{"tag=CANARY&tag=V2", "i06,i12,i18,i24;"},
		{"tag=v2&tag=v2&tag=canary&tag=v2", "i06,i12,i18,i24;"},
		{"tag=v2&tag=canary&state=any", "i00,i06,i12,i18,i24;"},
		{"tag=canary&state=maintenance", "i00;"},
		{"tag=v2&tag=canary&limit=5&after=i00", ";i05"}, // a page with none
		{"tag=v2&tag=canary&limit=5&after=i05", "i06;i10"},
		{"tag=v3", ";"},
		{"tag=v", ";"},
		{"tag=v2&tag=canary&stale", "i06,i12,i18,i24;"},
		{"tag=v2&tag=canary&index=1", "i06,i12,i18,i24;"},
	} {
		if got := ids(tc.query); got != tc.want {
			t.Errorf("?%s: %q, want %q", tc.query, got, tc.want)
		}
	}

	for _, mode := range []string{"", "&stale", "&index=1"} {
		var got []string
		after, pages := "", 0
		for {
			var v api.ServiceView
			r := do(t, "GET", base+"?tag=v2&state=any&limit=10"+mode+"&after="+after, nil)
			if r.status != http.StatusOK {
				t.Fatalf("%s page after %q: %d %s", mode, after, r.status, r.body)
			}
			r.decode(t, &v)
			for _, in := range v.Instances {
				got = append(got, in.ID)
			}
			if pages++; v.Next == "" || pages > 3 {
				break
			}
			after = v.Next
		}
		if want := "i00,i02,i04,i06,i08,i10,i12,i14,i16,i18,i20,i22,i24"; pages != 3 || strings.Join(got, ",") != want {
			t.Errorf("mode %q: %d pages of %v, want 3 of %s", mode, pages, got, want)
		}
	}

	c, err := client.New(client.Config{URLs: []string{reg.URL}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v, err := c.ServiceWithTags(ctx, "web", "any", "V2", "canary")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, in := range v.Instances {
		got = append(got, in.ID)
	}
	if want := []string{"i00", "i06", "i12", "i18", "i24"}; !slices.Equal(got, want) {
		t.Errorf("client: %v, want %v", got, want)
	}

	many := strings.Repeat("tag=t&", 65)
	for _, q := range []string{"tag=", "tag=v2&tag=", "tag=" + strings.Repeat("x", 256), many + "x=1", "stale&" + many, "index=1&tag="} {
		r := do(t, "GET", base+"?"+q, nil)
		if r.status != http.StatusBadRequest || r.apiError(t).Field != "tag" {
			t.Errorf("?%.40s: %d %.200s, want 400 naming tag", q, r.status, r.body)
		}
	}
}
