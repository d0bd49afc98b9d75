package registrar_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/netsel/netsel/catalog"
	"github.com/netsel/netsel/registrar/api"
)

var ks = catalog.MustKeyspace(catalog.DefaultPrefix)

// response is a decoded HTTP answer.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r *response) decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

func (r *response) apiError(t testing.TB) api.Error {
	t.Helper()
	var e api.Error
	r.decode(t, &e)
	return e
}

// do sends method url with body (a string is sent as is, anything else as
// JSON) and reads the whole answer.
func do(t testing.TB, method, url string, body any, hdr ...string) *response {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, url, err)
	}
	return &response{status: resp.StatusCode, header: resp.Header, body: b}
}

func register(t testing.TB, base, svc string, req api.RegisterRequest) api.RegisterResponse {
	t.Helper()
	r := do(t, "POST", base+"/v1/services/"+svc+"/instances", req)
	if r.status != http.StatusOK {
		t.Fatalf("register %s: %d %s", svc, r.status, r.body)
	}
	var out api.RegisterResponse
	r.decode(t, &out)
	return out
}

// keys returns every key under the netsel prefix but the registrars'
// membership keys (package registrar/checks), which they keep on their own.
func keys(t testing.TB, c *clientv3.Client) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := c.Get(ctx, ks.Prefix(), clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, kv := range resp.Kvs {
		if !strings.HasPrefix(string(kv.Key), ks.MembersPrefix()) {
			out = append(out, string(kv.Key))
		}
	}
	return out
}

// leases returns the leases of etcd but those of the registrars'
// membership keys.
func leases(t testing.TB, c *clientv3.Client) []clientv3.LeaseStatus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := c.Leases(ctx)
	if err != nil {
		t.Fatal(err)
	}
	members, err := c.Get(ctx, ks.MembersPrefix(), clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	var out []clientv3.LeaseStatus
	for _, l := range resp.Leases {
		if !slices.ContainsFunc(members.Kvs, func(kv *mvccpb.KeyValue) bool { return kv.Lease == int64(l.ID) }) {
			out = append(out, l)
		}
	}
	return out
}

func mustReq(s string) api.RegisterRequest {
	var r api.RegisterRequest
	if err := json.Unmarshal([]byte(s), &r); err != nil {
		panic(err)
	}
	return r
}
