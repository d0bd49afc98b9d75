package registrar

import (
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
)

// consulAgentSelf serves GET /v1/agent/self with what Consul clients read
// from it: Config.Datacenter (Prometheus asks for it when no datacenter is
// configured), Config.NodeName and Member.
func (r *Registrar) consulAgentSelf(w http.ResponseWriter, req *http.Request) error {
	name := r.consulNodeName()
	host, port := "", 0
	if h, p, err := net.SplitHostPort(localAddr(req.Context())); err == nil {
		host = h
		port, _ = strconv.Atoi(p)
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"Config": map[string]any{
			"Datacenter": ConsulDatacenter,
			"NodeName":   name,
			"NodeID":     "",
			"Server":     true,
		},
		"Member": map[string]any{
			"Name":   name,
			"Addr":   host,
			"Port":   port,
			"Tags":   map[string]string{"dc": ConsulDatacenter, "role": "netsel"},
			"Status": 1, // alive
		},
		"Meta": map[string]string{},
	})
	return nil
}

// consulNodeName names this registrar as a Consul agent: its member ID
// when it checks instances, else the host name.
func (r *Registrar) consulNodeName() string {
	if r.checker != nil {
		return r.checker.ID()
	}
	if h, err := os.Hostname(); err == nil {
		return h
	}
	return "netsel"
}

// consulStatusLeader serves GET /v1/status/leader: this registrar's
// address while its index follows etcd (any registrar answers reads),
// else "" as Consul answers with no leader.
func (r *Registrar) consulStatusLeader(w http.ResponseWriter, req *http.Request) error {
	leader := ""
	if r.ix.Snapshot().Synced() {
		leader = localAddr(req.Context())
	}
	writeJSON(w, http.StatusOK, leader)
	return nil
}

// consulStatusPeers serves GET /v1/status/peers: the API addresses of the
// live registrars that published one, or this registrar's own.
func (r *Registrar) consulStatusPeers(w http.ResponseWriter, req *http.Request) error {
	peers := []string{}
	for _, m := range r.ix.Snapshot().Members() {
		if m.Addr != "" && !slices.Contains(peers, m.Addr) {
			peers = append(peers, m.Addr)
		}
	}
	if len(peers) == 0 {
		if a := localAddr(req.Context()); a != "" {
			peers = append(peers, a)
		}
	}
	slices.Sort(peers)
	writeJSON(w, http.StatusOK, peers)
	return nil
}
