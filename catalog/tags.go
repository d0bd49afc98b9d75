package catalog

// Tags match ignoring ASCII case, in DNS (whose names are case-insensitive),
// in the API's ?tag= filter and in the HTTP proxy alike: "V2" and "v2" are
// the same tag to a reader, though an instance's tags are stored and listed
// as registered. Other bytes compare exactly.

// HasTags reports whether in carries every one of tags (none: true).
// It costs O(len(tags) × len(in.Tags)).
func (in *Instance) HasTags(tags ...string) bool {
	for _, want := range tags {
		if !in.hasTag(want) {
			return false
		}
	}
	return true
}

func (in *Instance) hasTag(want string) bool {
	for _, t := range in.Tags {
		if TagEqual(t, want) {
			return true
		}
	}
	return false
}

// TagEqual reports whether tags a and b match: equal ignoring ASCII case.
func TagEqual(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if lowerASCII(a[i]) != lowerASCII(b[i]) {
			return false
		}
	}
	return true
}

// TagKey returns the form of tag that matching tags share: tag with ASCII
// upper case lowered. It does not allocate when tag has no upper case.
func TagKey(tag string) string {
	for i := 0; i < len(tag); i++ {
		if c := tag[i]; 'A' <= c && c <= 'Z' {
			b := []byte(tag)
			for j := i; j < len(b); j++ {
				b[j] = lowerASCII(b[j])
			}
			return string(b)
		}
	}
	return tag
}

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}
