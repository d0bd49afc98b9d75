package registrar_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/netsel/netsel/catalog"
	"github.com/netsel/netsel/internal/testenv"
	"github.com/netsel/netsel/registrar/api"
)

// TestServicePages reads a service of 25 instances in pages of 10 — from
// etcd, from the index (?stale) and as a blocking query — following the
// next cursor, and checks that bad limits and cursors are 400s naming their
// field.
func TestServicePages(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	reg := testenv.StartRegistrar(t, etcd.URL)
	for i := range 25 {
		register(t, reg.URL, "web", api.RegisterRequest{ID: fmt.Sprintf("i%02d", i), Address: "127.0.0.1", Port: 8000 + i})
	}
	base := reg.URL + "/v1/services/web"
	// A stale read may lag the registrations: wait until it has them all.
	testenv.Eventually(t, 10*time.Second, func() bool {
		var v api.ServiceView
		r := do(t, "GET", base+"?stale", nil)
		return r.status == http.StatusOK && json.Unmarshal(r.body, &v) == nil && len(v.Instances) == 25
	}, "the registrar's index never had the 25 instances")

	for _, mode := range []string{"", "&stale", "&index=1"} {
		t.Run("mode "+mode, func(t *testing.T) {
			var ids []string
			after, pages := "", 0
			for {
				r := do(t, "GET", base+"?limit=10"+mode+"&after="+after, nil)
				if r.status != http.StatusOK {
					t.Fatalf("page after %q: %d %s", after, r.status, r.body)
				}
				var v api.ServiceView
				r.decode(t, &v)
				pages++
				for _, in := range v.Instances {
					ids = append(ids, in.ID)
				}
				if want := min(10, 25-10*(pages-1)); len(v.Instances) != want {
					t.Fatalf("page %d has %d instances, want %d", pages, len(v.Instances), want)
				}
				if v.Next == "" {
					break
				}
				if v.Next != v.Instances[len(v.Instances)-1].ID {
					t.Fatalf("next %q is not the page's last instance %q", v.Next, v.Instances[len(v.Instances)-1].ID)
				}
				if pages > 3 {
					t.Fatal("more than 3 pages")
				}
				after = v.Next
			}
			if pages != 3 || len(ids) != 25 {
				t.Fatalf("%d pages, %d instances: %v", pages, len(ids), ids)
			}
			for i, id := range ids {
				if want := fmt.Sprintf("i%02d", i); id != want {
					t.Fatalf("instance %d is %s, want %s", i, id, want)
				}
			}
		})
	}

	// Without limit a page holds up to 1000: all 25, no cursor.
	var v api.ServiceView
	do(t, "GET", base, nil).decode(t, &v)
	if len(v.Instances) != 25 || v.Next != "" {
		t.Errorf("default page: %d instances, next %q", len(v.Instances), v.Next)
	}
	// After the last instance: the service, no instances.
	do(t, "GET", base+"?after=zzz", nil).decode(t, &v)
	if len(v.Instances) != 0 || v.Next != "" || v.Name != "web" {
		t.Errorf("after the last: %+v", v)
	}

	for _, tc := range []struct{ query, field string }{
		{"limit=0", "limit"},
		{"limit=-1", "limit"},
		{"limit=10001", "limit"},
		{"limit=ten", "limit"},
		{"limit=", "limit"},
		{"after=a%00b", "after"},
		{"after=" + strings.Repeat("a", 1025), "after"},
		{"stale&limit=0", "limit"},
		{"index=1&after=%0A", "after"},
	} {
		r := do(t, "GET", base+"?"+tc.query, nil)
		if r.status != http.StatusBadRequest || r.apiError(t).Field != tc.field {
			t.Errorf("?%s: %d %s, want 400 naming %s", tc.query, r.status, r.body, tc.field)
		}
	}
}

// TestPageEndsOnStrayKey: a page may end on a key that no registrar wrote
// (an ID no registrar accepts, a value that does not decode), which the
// page leaves out; its cursor still leads to the next page.
func TestPageEndsOnStrayKey(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	reg := testenv.StartRegistrar(t, etcd.URL)
	ks := catalog.MustKeyspace(catalog.DefaultPrefix)
	for i := range 5 {
		register(t, reg.URL, "web", api.RegisterRequest{ID: fmt.Sprintf("i%02d", i), Address: "127.0.0.1", Port: 8000 + i})
	}
	for _, id := range []string{"i01-Z", "i02/x"} { // after i01 and i02
		if _, err := etcd.Client.Put(context.Background(), ks.InstanceKey("web", id), "not an instance"); err != nil {
			t.Fatal(err)
		}
	}
	var ids []string
	after, pages := "", 0
	for ; pages < 10; pages++ {
		r := do(t, "GET", reg.URL+"/v1/services/web?limit=3&after="+url.QueryEscape(after), nil)
		if r.status != http.StatusOK {
			t.Fatalf("page after %q: %d %s", after, r.status, r.body)
		}
		var v api.ServiceView
		r.decode(t, &v)
		for _, in := range v.Instances {
			ids = append(ids, in.ID)
		}
		if after = v.Next; after == "" {
			break
		}
	}
	if want := []string{"i00", "i01", "i02", "i03", "i04"}; !slices.Equal(ids, want) {
		t.Errorf("pages of 3 listed %v, want %v", ids, want)
	}

}
