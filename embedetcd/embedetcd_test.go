package embedetcd_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/netsel/netsel/embedetcd"
	"github.com/netsel/netsel/internal/testenv"
)

// TestQuotaRecovers fills a small space quota by writing one key over and
// over: etcd raises NOSPACE and refuses writes; the server compacts,
// defragments and disarms by itself, and writes succeed again.
func TestQuotaRecovers(t *testing.T) {
	const quota = 8 << 20
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srv, err := embedetcd.Start(ctx, embedetcd.Config{
		Dir:           t.TempDir(),
		ClientURL:     "http://" + testenv.FreeAddr(t),
		PeerURL:       "http://" + testenv.FreeAddr(t),
		QuotaBytes:    quota,
		MaintainEvery: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	cli := srv.InProcessClient()
	defer cli.Close()

	value := strings.Repeat("x", 64<<10)
	var puts int
	testenv.Eventually(t, 60*time.Second, func() bool {
		_, err := cli.Put(ctx, "k", value)
		puts++
		return errors.Is(err, rpctypes.ErrNoSpace)
	}, "no NOSPACE after writing 64 KiB values for 60s into a %d-byte quota", quota)
	t.Logf("NOSPACE after %d puts", puts)

	testenv.Eventually(t, 30*time.Second, func() bool {
		resp, err := cli.AlarmList(ctx)
		if err != nil || len(resp.Alarms) > 0 {
			return false
		}
		_, err = cli.Put(ctx, "after", "v")
		return err == nil
	}, "the NOSPACE alarm was not cleared, or writes still fail")
	st, err := cli.Status(ctx, srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("after recovery: db %d bytes, %d in use", st.DbSize, st.DbSizeInUse)
	if st.DbSize >= quota {
		t.Errorf("db is %d bytes after recovery, over its %d-byte quota", st.DbSize, quota)
	}
	if got, err := cli.Get(ctx, "k"); err != nil || len(got.Kvs) != 1 || len(got.Kvs[0].Value) != len(value) {
		t.Errorf("the latest value of k did not survive the compaction: %v %v", got, err)
	}
}
