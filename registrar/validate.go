package registrar

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/netip"
	"time"

	"github.com/netsel/netsel/catalog"
	"github.com/netsel/netsel/registrar/api"
)

// Limits on a registration beyond those of catalog.Instance.
const (
	maxPorts     = 32
	maxTagLength = 255
	maxMetaKey   = 128
	maxMetaValue = 1024
)

// instanceFrom checks a registration of service name, made from the
// address from (zero when unknown), and returns the instance to store and
// its TTL. Every error is a 400 naming the field.
func (r *Registrar) instanceFrom(name string, body *api.RegisterRequest, from netip.Addr, now time.Time) (*catalog.Instance, time.Duration, error) {
	if err := catalog.CheckName("name", name); err != nil {
		return nil, 0, fieldError(err)
	}
	id := body.ID
	if id == "" {
		id = newID()
	} else if err := catalog.CheckName("id", id); err != nil {
		return nil, 0, fieldError(err)
	}
	addr, host, err := r.instanceAddr(body.Address, from)
	if err != nil {
		return nil, 0, err
	}
	if err := catalog.CheckPort("port", body.Port); err != nil {
		return nil, 0, fieldError(err)
	}
	if len(body.Ports) > maxPorts {
		return nil, 0, errBadRequest("ports", "more than %d named ports", maxPorts)
	}
	for pname, p := range body.Ports {
		if err := catalog.CheckName("ports", pname); err != nil {
			return nil, 0, fieldError(err)
		}
		if err := catalog.CheckPort("ports."+pname, p); err != nil {
			return nil, 0, fieldError(err)
		}
	}
	if err := r.checkAddress(addr, body.Port, body.Ports); err != nil {
		return nil, 0, err
	}
	ttl := body.TTL.Std()
	if ttl == 0 {
		ttl = r.cfg.DefaultTTL
	}
	if ttl < r.cfg.MinTTL || ttl > r.cfg.MaxTTL {
		return nil, 0, errBadRequest("ttl", "%v is outside [%v, %v]", ttl, r.cfg.MinTTL, r.cfg.MaxTTL)
	}
	ttl = ttl.Round(time.Second)
	weight := body.Weight
	if weight == 0 {
		weight = 1
	}
	if weight < 1 || weight > catalog.MaxWeight {
		return nil, 0, errBadRequest("weight", "%d is not in 1-%d", body.Weight, catalog.MaxWeight)
	}
	for i, tag := range body.Tags {
		if tag == "" || len(tag) > maxTagLength {
			return nil, 0, errBadRequest(fmt.Sprintf("tags[%d]", i), "a tag is 1-%d bytes", maxTagLength)
		}
	}
	for k, v := range body.Meta {
		if k == "" || len(k) > maxMetaKey || len(v) > maxMetaValue {
			return nil, 0, errBadRequest("meta", "keys are 1-%d bytes and values at most %d", maxMetaKey, maxMetaValue)
		}
	}
	if body.Zone != "" {
		if err := catalog.CheckName("zone", body.Zone); err != nil {
			return nil, 0, fieldError(err)
		}
	}
	checks, err := checksFrom(body.Checks, body.Ports)
	if err != nil {
		return nil, 0, err
	}
	in := &catalog.Instance{
		ID:         id,
		Service:    name,
		Address:    addr,
		Port:       body.Port,
		Ports:      body.Ports,
		Weight:     weight,
		Tags:       body.Tags,
		Meta:       body.Meta,
		Zone:       body.Zone,
		Registered: now.UTC(),
		Host:       host,
		Checks:     checks,
	}
	if err := in.Validate(); err != nil {
		return nil, 0, fieldError(err)
	}
	return in, ttl, nil
}

// newID returns a random instance id: 16 hex digits, a valid DNS label.
func newID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// checkName validates a name from the URL path.
// instancePath returns the service name and instance id of an
// /v1/services/{name}/instances/{id} request, each checked.
func instancePath(req *http.Request) (name, id string, err error) {
	name, id = req.PathValue("name"), req.PathValue("id")
	if err := checkName("name", name); err != nil {
		return "", "", err
	}
	if err := checkName("id", id); err != nil {
		return "", "", err
	}
	return name, id, nil
}

func checkName(field, s string) error {
	if err := catalog.CheckName(field, s); err != nil {
		return fieldError(err)
	}
	return nil
}
