package checks

import (
	"fmt"
	"testing"

	"github.com/netsel/netsel/catalog"
)

func members(ids ...string) []*catalog.Member {
	var ms []*catalog.Member
	for _, id := range ids {
		ms = append(ms, &catalog.Member{ID: id})
	}
	return ms
}

// owners returns the owner of each of n instances.
func owners(r ring, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = r.owner(fmt.Sprintf("svc-%d", i%7), fmt.Sprintf("i-%d", i))
	}
	return out
}

func TestRendezvousShares(t *testing.T) {
	const n = 10000
	for _, k := range []int{1, 2, 3, 5} {
		var ids []string
		for i := range k {
			ids = append(ids, fmt.Sprintf("reg-%d", i))
		}
		count := map[string]int{}
		for _, o := range owners(newRing(members(ids...)), n) {
			count[o]++
		}
		for _, id := range ids {
			if share := float64(count[id]) * float64(k) / n; share < 0.9 || share > 1.1 {
				t.Errorf("%d members: %s owns %d of %d, more than 10%% off an even share", k, id, count[id], n)
			}
		}
	}
	if o := (ring{}).owner("a", "b"); o != "" {
		t.Errorf("no members: owner %q", o)
	}
}

// TestRendezvousMoves checks that a member joining takes only instances
// from the others (about its share) and a member leaving hands over only
// its own.
func TestRendezvousMoves(t *testing.T) {
	const n = 9000
	before := owners(newRing(members("a", "b", "c")), n)
	joined := owners(newRing(members("a", "b", "c", "d")), n)
	left := owners(newRing(members("a", "c")), n)
	var moved, lost int
	for i := range n {
		if before[i] != joined[i] {
			moved++
			if joined[i] != "d" {
				t.Fatalf("instance %d moved from %s to %s when d joined", i, before[i], joined[i])
			}
		}
		if before[i] != left[i] {
			lost++
			if before[i] != "b" {
				t.Fatalf("instance %d moved from %s to %s when b left", i, before[i], left[i])
			}
		}
	}
	if moved < n/4*9/10 || moved > n/4*11/10 {
		t.Errorf("%d of %d instances moved when a 4th member joined, want about %d", moved, n, n/4)
	}
	if lost < n/3*9/10 || lost > n/3*11/10 {
		t.Errorf("%d of %d instances moved when 1 of 3 members left, want about %d", lost, n, n/3)
	}
}

func TestDefaultMemberID(t *testing.T) {
	a, b := DefaultMemberID(), DefaultMemberID()
	if a == b {
		t.Errorf("two ids alike: %s", a)
	}
	for _, id := range []string{a, b} {
		if err := catalog.CheckName("id", id); err != nil {
			t.Errorf("%q: %v", id, err)
		}
	}
}
