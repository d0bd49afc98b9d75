package registrar

import (
	"encoding/json"
	"fmt"
	"sync"

	"github.com/netsel/netsel/catalog"
	"github.com/netsel/netsel/registrar/api"
)

// listCache holds the encoded answer of GET /v1/services for the latest
// snapshot asked for, so that every reader of one snapshot — a hundred
// blocking queries woken by one change — shares one answer instead of
// building one each.
type listCache struct {
	mu   sync.Mutex
	snap *catalog.Snapshot
	body []byte
}

// answer returns the JSON list of snap, built once per snapshot; build
// counts the builds.
func (c *listCache) answer(snap *catalog.Snapshot, built func()) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.snap == snap {
		return c.body, nil
	}
	body, err := encodeList(snap)
	if err != nil {
		return nil, err
	}
	built()
	if c.snap == nil || snap.Revision() >= c.snap.Revision() {
		c.snap, c.body = snap, body
	}
	return body, nil
}

// encodeList encodes the service list of snap, newline-terminated as
// json.Encoder writes it.
func encodeList(snap *catalog.Snapshot) ([]byte, error) {
	names := snap.Names()
	list := api.ServiceList{Services: make([]api.ServiceSummary, 0, len(names)), Index: snap.Revision()}
	for _, name := range names {
		e, _ := snap.Service(name)
		s := api.ServiceSummary{Name: name, Instances: e.Len(), Index: e.ModRevision}
		if e.Service != nil {
			s.VIP, s.Ports = e.Service.VIP, apiPorts(e.Service.Ports)
		}
		list.Services = append(list.Services, s)
	}
	b, err := json.Marshal(list)
	if err != nil {
		return nil, fmt.Errorf("encode service list: %w", err)
	}
	return append(b, '\n'), nil
}
