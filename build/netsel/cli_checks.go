package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/netsel/netsel/registrar/api"
)

// checksFlag collects -check TYPE[:ARG][@PORT] flags: "http:/healthz",
// "http:/healthz@admin", "tcp", "tcp@db", "grpc", "grpc:my.Service".
type checksFlag struct {
	checks   []api.Check
	interval time.Duration
	timeout  time.Duration
}

func (c *checksFlag) String() string {
	var s []string
	for _, ch := range c.checks {
		s = append(s, ch.Type)
	}
	return strings.Join(s, ",")
}

func (c *checksFlag) Set(s string) error {
	spec, port, _ := strings.Cut(s, "@")
	typ, arg, hasArg := strings.Cut(spec, ":")
	ch := api.Check{Type: typ, Port: port}
	switch typ {
	case "http":
		ch.Path = arg
	case "grpc":
		ch.Service = arg
	case "tcp":
		if hasArg {
			return fmt.Errorf("a tcp check takes no argument: want tcp[@PORT], got %q", s)
		}
	default:
		return fmt.Errorf("want http[:PATH][@PORT], tcp[@PORT] or grpc[:SERVICE][@PORT], got %q", s)
	}
	c.checks = append(c.checks, ch)
	return nil
}

// list returns the checks with the common interval and timeout.
func (c *checksFlag) list() []api.Check {
	for i := range c.checks {
		c.checks[i].Interval = api.Duration(c.interval)
		c.checks[i].Timeout = api.Duration(c.timeout)
	}
	return c.checks
}
