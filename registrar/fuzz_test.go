package registrar

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/netsel/netsel/registrar/api"
)

// FuzzRegisterRequest feeds arbitrary bodies and service names through the
// registrar's request decoding and validation: it must never panic, every
// rejection must be a 4xx naming a field, and everything accepted must be an
// instance that readers will accept.
func FuzzRegisterRequest(f *testing.F) {
	f.Add("web", `{"address":"10.0.0.1","port":80}`)
	f.Add("web", `{"id":"i-1","address":"::1","port":8080,"ports":{"http":8080,"admin":9090},"ttl":"30s","weight":5,"tags":["a"],"meta":{"k":"v"},"zone":"z1"}`)
	f.Add("web", `{"address":"10.0.0.1","port":80,"ttl":60}`)
	f.Add("Web", `{"address":"10.0.0.1","port":80}`)
	f.Add("web", `{"address":"10.0.0.1","port":0}`)
	f.Add("web", `{"address":"fe80::1%eth0","port":80}`)
	f.Add("web", `{"address":"10.0.0.1","port":80,"ttl":"1ms"}`)
	f.Add("web", `{"address":"10.0.0.1","port":80,"extra":1}`)
	f.Add("web", `{"address":"10.0.0.1","port":80}{}`)
	f.Add("web", `[1]`)
	f.Add("web", ``)
	r := &Registrar{cfg: Config{DefaultTTL: DefaultTTL, MinTTL: DefaultMinTTL, MaxTTL: DefaultMaxTTL}}
	f.Fuzz(func(t *testing.T, name, body string) {
		req := httptest.NewRequest(http.MethodPost, "/v1/services/x/instances", strings.NewReader(body))
		var reg api.RegisterRequest
		err := decodeBody(httptest.NewRecorder(), req, &reg)
		if err == nil {
			var in any
			in, ttl, verr := r.instanceFrom(name, &reg, netip.AddrFrom4([4]byte{127, 0, 0, 1}), time.Now())
			if verr == nil {
				inst := in.(interface{ Validate() error })
				if err := inst.Validate(); err != nil {
					t.Fatalf("accepted %q for %q, but readers would skip it: %v", body, name, err)
				}
				if ttl < DefaultMinTTL || ttl > DefaultMaxTTL {
					t.Fatalf("accepted TTL %v outside [%v, %v]", ttl, DefaultMinTTL, DefaultMaxTTL)
				}
				return
			}
			err = verr
		}
		var he *httpError
		if !errors.As(err, &he) {
			t.Fatalf("rejection of %q is %T (%v), not an httpError", body, err, err)
		}
		if he.status < 400 || he.status > 499 || he.field == "" {
			t.Fatalf("rejection of %q: status %d field %q, want a 4xx naming a field", body, he.status, he.field)
		}
	})
}
