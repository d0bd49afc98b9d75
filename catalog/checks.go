package catalog

import (
	"fmt"
	"time"
)

// Check types.
const (
	CheckHTTP = "http" // GET path on the instance's port; 2xx passes, 429 warns
	CheckTCP  = "tcp"  // a TCP connection to the instance's port
	CheckGRPC = "grpc" // the standard gRPC health service (grpc.health.v1)
)

// Limits and defaults of checks, documented in the README.
const (
	MaxChecks            = 8
	MinCheckInterval     = time.Second
	MaxCheckInterval     = time.Hour
	DefaultCheckInterval = 10 * time.Second
	MinCheckTimeout      = 100 * time.Millisecond
	DefaultCheckTimeout  = 2 * time.Second
	DefaultFailures      = 3
	DefaultSuccesses     = 1
	MaxThreshold         = 100
	MaxCheckPathLength   = 1024
	MaxGRPCServiceLength = 256
)

// Check is one active health check of an instance, declared at
// registration and run by one registrar (see the README's Health section).
// Durations are stored as nanoseconds.
type Check struct {
	Type string `json:"type"`
	// Path is the HTTP check's request path; "/" when empty.
	Path string `json:"path,omitempty"`
	// Port names the instance port probed; empty means the main port.
	Port string `json:"port,omitempty"`
	// Service is the gRPC check's service name; empty asks for the
	// server's overall health.
	Service string `json:"service,omitempty"`
	// Interval is the time between two probes.
	Interval time.Duration `json:"interval"`
	// Timeout bounds one probe; at most Interval.
	Timeout time.Duration `json:"timeout"`
	// Failures is the number of failed probes in a row that make the check
	// critical, and Successes the number of passing probes in a row that
	// make a critical check pass again.
	Failures  int `json:"failures"`
	Successes int `json:"successes"`
}

// WithDefaults returns c with every unset field set to its default.
func (c Check) WithDefaults() Check {
	if c.Type == CheckHTTP && c.Path == "" {
		c.Path = "/"
	}
	if c.Interval == 0 {
		c.Interval = DefaultCheckInterval
	}
	if c.Timeout == 0 {
		c.Timeout = min(DefaultCheckTimeout, c.Interval)
	}
	if c.Failures == 0 {
		c.Failures = DefaultFailures
	}
	if c.Successes == 0 {
		c.Successes = DefaultSuccesses
	}
	return c
}

// Validate checks c, with its defaults applied, and names the field at
// fault relative to field (e.g. "checks[0]"). Whether Port names a port
// of the instance is the caller's to check.
func (c *Check) Validate(field string) error {
	f := func(name string) string { return field + "." + name }
	switch c.Type {
	case CheckHTTP, CheckTCP, CheckGRPC:
	case "":
		return &FieldError{Field: f("type"), Msg: "is required: http, tcp or grpc"}
	default:
		return &FieldError{Field: f("type"), Msg: fmt.Sprintf("%q is not http, tcp or grpc", truncate(c.Type, 40))}
	}
	if c.Path != "" {
		if c.Type != CheckHTTP {
			return &FieldError{Field: f("path"), Msg: "is for http checks only"}
		}
		if err := checkPath(c.Path); err != nil {
			return &FieldError{Field: f("path"), Msg: err.Error()}
		}
	}
	if c.Service != "" {
		if c.Type != CheckGRPC {
			return &FieldError{Field: f("service"), Msg: "is for grpc checks only"}
		}
		if len(c.Service) > MaxGRPCServiceLength || !printable(c.Service) {
			return &FieldError{Field: f("service"), Msg: fmt.Sprintf("must be at most %d printable ASCII characters", MaxGRPCServiceLength)}
		}
	}
	if c.Port != "" && !ValidName(c.Port) {
		return &FieldError{Field: f("port"), Msg: fmt.Sprintf("%q is not a port name", truncate(c.Port, 80))}
	}
	if c.Interval < MinCheckInterval || c.Interval > MaxCheckInterval {
		return &FieldError{Field: f("interval"), Msg: fmt.Sprintf("%v is not in %v-%v", c.Interval, MinCheckInterval, MaxCheckInterval)}
	}
	if c.Timeout < MinCheckTimeout || c.Timeout > c.Interval {
		return &FieldError{Field: f("timeout"), Msg: fmt.Sprintf("%v is not in %v-%v (the interval)", c.Timeout, MinCheckTimeout, c.Interval)}
	}
	if c.Failures < 1 || c.Failures > MaxThreshold {
		return &FieldError{Field: f("failures"), Msg: fmt.Sprintf("%d is not in 1-%d", c.Failures, MaxThreshold)}
	}
	if c.Successes < 1 || c.Successes > MaxThreshold {
		return &FieldError{Field: f("successes"), Msg: fmt.Sprintf("%d is not in 1-%d", c.Successes, MaxThreshold)}
	}
	return nil
}

func checkPath(p string) error {
	if len(p) > MaxCheckPathLength {
		return fmt.Errorf("is longer than %d bytes", MaxCheckPathLength)
	}
	if p[0] != '/' {
		return fmt.Errorf("%q must start with '/'", truncate(p, 80))
	}
	if !printable(p) {
		return fmt.Errorf("must be printable ASCII with no spaces")
	}
	return nil
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

// validateChecks checks the checks of an instance value.
func validateChecks(checks []Check) error {
	if len(checks) > MaxChecks {
		return &FieldError{Field: "checks", Msg: fmt.Sprintf("more than %d checks", MaxChecks)}
	}
	for i := range checks {
		if err := checks[i].Validate(fmt.Sprintf("checks[%d]", i)); err != nil {
			return err
		}
	}
	return nil
}
