package registrar

import (
	"fmt"

	"github.com/netsel/netsel/catalog"
	"github.com/netsel/netsel/registrar/api"
)

// checksFrom turns a registration's checks into the instance's, with
// defaults filled in so readers see explicit values. A bad spec is a 400
// naming the field (e.g. "checks[0].interval"), as is a port name that is
// none of the registration's ports.
func checksFrom(specs []api.Check, ports map[string]int) ([]catalog.Check, error) {
	if len(specs) == 0 {
		return nil, nil
	}
	if len(specs) > catalog.MaxChecks {
		return nil, errBadRequest("checks", "%d checks, more than %d", len(specs), catalog.MaxChecks)
	}
	out := make([]catalog.Check, len(specs))
	for i, s := range specs {
		field := fmt.Sprintf("checks[%d]", i)
		c := catalog.Check{
			Type:      s.Type,
			Path:      s.Path,
			Port:      s.Port,
			Service:   s.Service,
			Interval:  s.Interval.Std(),
			Timeout:   s.Timeout.Std(),
			Failures:  s.Failures,
			Successes: s.Successes,
		}.WithDefaults()
		if err := c.Validate(field); err != nil {
			return nil, fieldError(err)
		}
		// "default" names the main port of an instance with no named ports,
		// as it does the service's one port.
		if _, ok := ports[c.Port]; c.Port != "" && !ok && (c.Port != catalog.DefaultPortName || len(ports) > 0) {
			return nil, errBadRequest(field+".port", "%q names none of the instance's ports", truncate(c.Port, 80))
		}
		out[i] = c
	}
	return out, nil
}
