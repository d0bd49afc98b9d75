package registrar

// SDBuildsForTest returns how many Prometheus discovery answers the
// registrar has encoded.
func (r *Registrar) SDBuildsForTest() int64 { return r.sd.builds.Load() }
