package catalog

import (
	"fmt"
	"testing"
)

// TestEntryPage walks an entry of many chunks in pages of several sizes,
// from cursors between, on and past instances.
func TestEntryPage(t *testing.T) {
	var l instanceList
	const n = chunkMax*3 + 17
	for i := range n {
		l.put(&Instance{ID: fmt.Sprintf("id%04d", i*2)}) // even numbers: odd ones fall between
	}
	e := &Entry{chunks: l.freeze(), n: l.n}
	for _, limit := range []int{1, 7, chunkMax, chunkMax + 1, n, n + 5} {
		var got []string
		after, pages := "", 0
		for {
			page, next := e.Page(after, limit)
			pages++
			if len(page) > limit || (next != "" && len(page) != limit) {
				t.Fatalf("limit %d: a page of %d, next %q", limit, len(page), next)
			}
			for _, in := range page {
				got = append(got, in.ID)
			}
			if next == "" {
				break
			}
			if next != page[len(page)-1].ID {
				t.Fatalf("limit %d: next %q is not the page's last %q", limit, next, page[len(page)-1].ID)
			}
			after = next
		}
		if len(got) != n || pages != (n+limit-1)/limit {
			t.Fatalf("limit %d: %d instances in %d pages", limit, len(got), pages)
		}
		for i, id := range got {
			if want := fmt.Sprintf("id%04d", i*2); id != want {
				t.Fatalf("limit %d: instance %d is %s, want %s", limit, i, id, want)
			}
		}
	}
	for _, tc := range []struct {
		after string
		first string
	}{{"id0001", "id0002"}, {"id0002", "id0004"}, {"a", "id0000"}, {"id9999", ""}, {"zzz", ""}} {
		page, _ := e.Page(tc.after, 1)
		first := ""
		if len(page) > 0 {
			first = page[0].ID
		}
		if first != tc.first {
			t.Errorf("after %q: first %q, want %q", tc.after, first, tc.first)
		}
	}
	if page, next := (&Entry{}).Page("", 10); page != nil || next != "" {
		t.Errorf("empty entry: %v, %q", page, next)
	}
}
