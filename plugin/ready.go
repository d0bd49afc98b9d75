package netsel

// Ready implements the ready plugin's Readiness: true once the index has read
// etcd in full. Until then queries get SERVFAIL rather than false NXDOMAINs.
func (n *Netsel) Ready() bool {
	s := n.shared.Load()
	return s != nil && s.ix.Snapshot().Synced()
}
