package embedetcd

import (
	"context"
	"errors"
	"log/slog"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/server/v3/storage/mvcc"
)

// Defaults of the embedded etcd's space management.
const (
	// DefaultQuotaBytes is the space quota of the embedded etcd's database:
	// etcd's own default, 2 GiB.
	DefaultQuotaBytes = 2 << 30
	// DefaultCompactionRetention is how much history auto-compaction keeps.
	DefaultCompactionRetention = 10 * time.Minute
	// DefaultMaintainEvery is how often the server checks its alarms and
	// the share of its database in use.
	DefaultMaintainEvery = 10 * time.Second
	// DefaultDefragMinBytes is the database size below which the server
	// does not defragment for space in use alone.
	DefaultDefragMinBytes = 64 << 20
	// defragEvery spaces defragmentations that free space in use alone
	// (a NOSPACE alarm is handled at once).
	defragEvery = 10 * time.Minute
	// maintainTimeout bounds one compaction or alarm request.
	maintainTimeout = 10 * time.Second
)

// maintain keeps the server within its quota until ctx ends: when etcd has
// raised NOSPACE, it compacts all history, defragments and disarms the
// alarm (when the live data then fits in 90% of the quota); when less than
// half of a database of at least DefragMinBytes is in use, it defragments
// (at most every 10 minutes). Defragmenting blocks the server's reads and
// writes while it copies the live data.
func (s *Server) maintain(ctx context.Context, every time.Duration, defragMin, quota int64, lg *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	var lastDefrag time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		srv := s.etcd.Server
		be := srv.Backend()
		size, inUse := be.Size(), be.SizeInUse()
		switch {
		case s.noSpace():
			lg.Warn("embedded etcd is out of space: compacting, defragmenting and disarming", "db_bytes", size, "in_use_bytes", inUse, "quota_bytes", quota)
			if err := s.compact(ctx); err != nil {
				lg.Error("embedded etcd: compaction failed", "err", err)
				continue
			}
			if err := be.Defrag(); err != nil {
				lg.Error("embedded etcd: defragmentation failed", "err", err)
				continue
			}
			lastDefrag = time.Now()
			if after := be.Size(); after >= quota/10*9 {
				lg.Error("embedded etcd: the live data fills its quota even after compaction; raise -etcd-quota-bytes or remove data", "db_bytes", after, "quota_bytes", quota)
				continue
			}
			if err := s.disarm(ctx); err != nil {
				lg.Error("embedded etcd: disarming NOSPACE failed", "err", err)
				continue
			}
			lg.Info("embedded etcd has space again", "db_bytes", be.Size(), "quota_bytes", quota)
		case size >= defragMin && inUse < size/2 && time.Since(lastDefrag) > defragEvery:
			lg.Info("embedded etcd: defragmenting", "db_bytes", size, "in_use_bytes", inUse)
			if err := be.Defrag(); err != nil {
				lg.Error("embedded etcd: defragmentation failed", "err", err)
				continue
			}
			lastDefrag = time.Now()
		}
	}
}

// noSpace reports whether the server has raised NOSPACE.
func (s *Server) noSpace() bool {
	for _, a := range s.etcd.Server.Alarms() {
		if a.Alarm == pb.AlarmType_NOSPACE {
			return true
		}
	}
	return false
}

// compact compacts all history up to the current revision, physically.
func (s *Server) compact(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, maintainTimeout)
	defer cancel()
	rev := s.etcd.Server.KV().Rev()
	_, err := s.etcd.Server.Compact(ctx, &pb.CompactionRequest{Revision: rev, Physical: true})
	if errors.Is(err, mvcc.ErrCompacted) {
		return nil
	}
	return err
}

// disarm deactivates every NOSPACE alarm.
func (s *Server) disarm(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, maintainTimeout)
	defer cancel()
	for _, a := range s.etcd.Server.Alarms() {
		if a.Alarm != pb.AlarmType_NOSPACE {
			continue
		}
		if _, err := s.etcd.Server.Alarm(ctx, &pb.AlarmRequest{
			Action: pb.AlarmRequest_DEACTIVATE, MemberID: a.MemberID, Alarm: pb.AlarmType_NOSPACE,
		}); err != nil {
			return err
		}
	}
	return nil
}
