package stack

import (
	"fmt"
	"log/slog"
	"syscall"
)

// FDWants are the proxies' and the registrar's bounds as configured, before
// they are fitted to the descriptors the process may open.
type FDWants struct {
	// Reserve, when positive, is the descriptors kept for etcd, the
	// registrar, DNS and the runtime; 0 means the larger of 25% of the
	// limit and 512.
	Reserve uint64
	// VIPListeners, VIPConns and HTTPConns are the proxies' totals.
	VIPListeners, VIPConns, HTTPConns int
	// Blocking is the registrar's bound on blocking queries in all.
	Blocking int
}

// Budget is how a stack shares its descriptors: the reserve, and the
// bounds that keep the proxies and the registrar within the rest. A VIP
// listener takes one descriptor, a proxied VIP connection vipConnFDs, an
// HTTP proxy connection two (the client's and the instance's).
type Budget struct {
	Limit, Reserve                    uint64
	VIPListeners, VIPConns, HTTPConns int
	// RegistrarConns bounds the registrar's open client connections (half
	// the reserve), and Blocking its blocking queries (at most half of
	// those).
	RegistrarConns, Blocking int
}

// minReserve is the smallest descriptor reserve.
const minReserve = 512

// vipConnFDs is what one proxied VIP connection holds: the client's and the
// instance's sockets, and a pipe (two descriptors) per direction that
// splice(2) keeps while it waits for data.
const vipConnFDs = 6

// PlanFDs fits w to limit descriptors: it keeps the reserve, and when the
// proxies would need more than the rest, scales their totals down in
// proportion (at least 1 each).
func PlanFDs(limit uint64, w FDWants) Budget {
	reserve := w.Reserve
	if reserve == 0 {
		reserve = max(limit/4, minReserve)
	}
	reserve = min(reserve, limit)
	b := Budget{Limit: limit, Reserve: reserve, VIPListeners: w.VIPListeners, VIPConns: w.VIPConns, HTTPConns: w.HTTPConns}
	avail := limit - reserve
	need := uint64(w.VIPListeners) + vipConnFDs*uint64(w.VIPConns) + 3*uint64(w.HTTPConns) // client, upstream, idle upstream
	if need > avail {
		scale := func(n int) int { return max(1, int(uint64(n)*avail/need)) }
		b.VIPListeners, b.VIPConns, b.HTTPConns = scale(w.VIPListeners), scale(w.VIPConns), scale(w.HTTPConns)
	}
	b.RegistrarConns = max(1, int(reserve/2))
	b.Blocking = max(1, min(w.Blocking, b.RegistrarConns/2))
	return b
}

// RaiseFDLimit raises the soft RLIMIT_NOFILE to the hard limit and returns
// the soft limit in force.
func RaiseFDLimit(logger *slog.Logger) (uint64, error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, fmt.Errorf("read RLIMIT_NOFILE: %w", err)
	}
	if rl.Cur < rl.Max {
		want := rl
		want.Cur = rl.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil {
			logger.Warn("cannot raise the open file limit; keeping it", "soft", rl.Cur, "hard", rl.Max, "err", err)
			return rl.Cur, nil
		}
		rl = want
	}
	return rl.Cur, nil
}
