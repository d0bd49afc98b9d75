package caddymodule

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/caddyserver/caddy/v2"
	"golang.org/x/net/http/httpguts"

	"github.com/netsel/netsel/catalog"
)

// Tags select the instances of a request's service that carry every one of
// them (catalog.Instance.HasTags: ignoring ASCII case): the source's fixed
// Tags, and with TagsHeader the tags a request names in that header field,
// which can only narrow the set further. A request whose tags no usable
// instance carries gets no upstreams: behind the netsel handler, a 502
// naming the service and the tags.

// replTags is the placeholder holding a request's tags, comma-separated,
// once the upstream source has filtered by them.
const replTags = "http.netsel.tags"

// maxTagBytes is the longest tag (as the registrar accepts them).
const maxTagBytes = 255

// maxTagPools bounds the filtered pools a view keeps: tag sets from a
// header are the client's to choose, so past that they are filtered per
// request (O(instances)) and not kept.
const maxTagPools = 16

// pool is the part of a view's instances that carries a set of tags: dial
// addresses and running sums of weights, as view.dials and view.cum.
type pool struct {
	dials []string
	cum   []int
}

// tagPools caches a view's pools by tag set.
type tagPools struct {
	m sync.Map // tagSetKey -> *pool
	n atomic.Int32
}

// requestTags returns the tags r must carry — u.Tags and, with TagsHeader,
// the header's values, comma-separated and repeatable — as sorted, distinct
// catalog.TagKeys, and whether there are any. More than catalog.MaxTags
// distinct tags (or 256 values), or one longer than any instance's, match
// nothing: tags is then nil with filtered set.
func (u *Upstreams) requestTags(r *http.Request) (tags []string, filtered bool) {
	tags = make([]string, 0, len(u.Tags)+2)
	for _, t := range u.Tags {
		tags = append(tags, catalog.TagKey(t))
	}
	if u.TagsHeader != "" {
		for _, v := range r.Header.Values(u.TagsHeader) {
			for t := range strings.SplitSeq(v, ",") {
				if t = strings.TrimSpace(t); t == "" {
					continue
				}
				if len(t) > maxTagBytes || len(tags) == 4*catalog.MaxTags {
					return nil, true
				}
				tags = append(tags, catalog.TagKey(t))
			}
		}
	}
	if len(tags) == 0 {
		return nil, false
	}
	slices.Sort(tags)
	if tags = slices.Compact(tags); len(tags) > catalog.MaxTags {
		return nil, true
	}
	return tags, true
}

// withTags returns the pool of v's dialable instances carrying every one
// of tags (sorted, distinct TagKeys; nil matches nothing), those in the
// locality when any of them is (see poolOf).
func (v *view) withTags(tags []string) *pool {
	if tags == nil {
		return &pool{}
	}
	key := strings.Join(tags, "\x00")
	if p, ok := v.tagPools.m.Load(key); ok {
		return p.(*pool)
	}
	p := v.poolOf(func(in *catalog.Instance) bool { return in.HasTags(tags...) })
	if v.tagPools.n.Add(1) <= maxTagPools {
		v.tagPools.m.Store(key, p)
	}
	return p
}

// validateTags checks the source's Tags and TagsHeader.
func (u *Upstreams) validateTags() error {
	if len(u.Tags) > catalog.MaxTags {
		return fmt.Errorf("tags: %d tags, at most %d (an instance carries at most %d)", len(u.Tags), catalog.MaxTags, catalog.MaxTags)
	}
	for _, t := range u.Tags {
		if t == "" || len(t) > maxTagBytes {
			return fmt.Errorf("tags: %q is not a tag: 1-%d bytes", t, maxTagBytes)
		}
	}
	if u.TagsHeader != "" && !httpguts.ValidHeaderFieldName(u.TagsHeader) {
		return fmt.Errorf("tags_header: %q is not a header field name", u.TagsHeader)
	}
	return nil
}

// requestTagsOf returns the tags the upstream source filtered r by,
// comma-separated, or "".
func requestTagsOf(r *http.Request) string {
	repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if !ok {
		return ""
	}
	s, _ := repl.GetString(replTags)
	return s
}
