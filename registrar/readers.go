package registrar

import (
	"context"
	"net/http"
	"time"

	"github.com/netsel/netsel/catalog"
	"github.com/netsel/netsel/registrar/api"
)

// readers serves GET /v1/readers: every live reader of the catalog, read
// from etcd.
func (r *Registrar) readers(w http.ResponseWriter, req *http.Request) error {
	ctx, cancel := context.WithTimeout(req.Context(), r.cfg.EtcdTimeout)
	defer cancel()
	rs, rev, err := catalog.ListReaders(ctx, r.cfg.Client, r.ks, r.skipped)
	if err != nil {
		return etcdUnavailable("list readers", err)
	}
	out := api.ReaderList{Readers: make([]api.ReaderView, 0, len(rs)), Index: rev}
	for _, rd := range rs {
		out.Readers = append(out.Readers, readerView(rd))
	}
	setIndex(w, rev)
	writeJSON(w, http.StatusOK, out)
	return nil
}

func readerView(rd *catalog.Reader) api.ReaderView {
	return api.ReaderView{ID: rd.ID, Kind: rd.Kind, Host: rd.Host, Revision: rd.Revision, Updated: rd.Updated,
		Connections: rd.Connections, AnswerTTL: api.Duration(time.Duration(rd.AnswerTTL) * time.Second)}
}
