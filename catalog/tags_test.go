package catalog_test

import (
	"testing"

	"github.com/netsel/netsel/catalog"
)

func TestHasTags(t *testing.T) {
	in := &catalog.Instance{Tags: []string{"v2", "Canary", "zone=EU", "ünï"}}
	for _, c := range []struct {
		tags []string
		want bool
	}{
		{nil, true},
		{[]string{"v2"}, true},
		{[]string{"V2"}, true},
		{[]string{"canary", "v2"}, true},
		{[]string{"CANARY", "v2", "v2"}, true},
		{[]string{"zone=eu"}, true},
		{[]string{"ünï"}, true},
		{[]string{"ÜNÏ"}, false}, // only ASCII case folds
		{[]string{"v2", "v3"}, false},
		{[]string{"v"}, false},
		{[]string{""}, false},
	} {
		if got := in.HasTags(c.tags...); got != c.want {
			t.Errorf("HasTags(%q) = %v, want %v", c.tags, got, c.want)
		}
	}
	if got := catalog.TagKey("Zone=EU"); got != "zone=eu" {
		t.Errorf("TagKey = %q", got)
	}
}
