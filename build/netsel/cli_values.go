package main

import (
	"fmt"
	"strconv"
	"strings"
)

// portsFlag collects -named-port NAME=PORT flags.
type portsFlag map[string]int

func (p portsFlag) String() string { return formatNamedPorts(p) }

func (p portsFlag) Set(s string) error {
	name, port, ok := strings.Cut(s, "=")
	n, err := strconv.Atoi(port)
	if !ok || err != nil {
		return fmt.Errorf("want NAME=PORT, got %q", s)
	}
	p[name] = n
	return nil
}

// tagsFlag collects -tag flags, each one tag or several between commas.
type tagsFlag []string

func (t *tagsFlag) String() string { return strings.Join(*t, ",") }

func (t *tagsFlag) Set(s string) error {
	for tag := range strings.SplitSeq(s, ",") {
		if tag = strings.TrimSpace(tag); tag != "" {
			*t = append(*t, tag)
		}
	}
	return nil
}

// metaFlag collects -meta KEY=VALUE flags (and -protocol NAME=PROTOCOL).
type metaFlag map[string]string

func (m metaFlag) String() string {
	var kv []string
	for k, v := range m {
		kv = append(kv, k+"="+v)
	}
	return strings.Join(kv, ",")
}

func (m metaFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("want KEY=VALUE, got %q", s)
	}
	m[k] = v
	return nil
}
