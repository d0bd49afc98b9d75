package registrar

import "context"

// RenewForTest renews lease through the registrar's shared keep-alive
// stream, for benchmarks that leave HTTP out.
func (r *Registrar) RenewForTest(ctx context.Context, lease int64) (int64, error) {
	ttl, _, err := r.renewer.renew(ctx, lease)
	return ttl, err
}
