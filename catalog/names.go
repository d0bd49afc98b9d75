package catalog

import (
	"fmt"
)

// MaxLabelLength is the longest DNS label, and so the longest service name,
// instance id or port name.
const MaxLabelLength = 63

// FieldError reports an invalid value and names the field that carried it.
// The registrar turns it into an HTTP 400 with {"error","field"}.
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

// ValidName reports whether s is a valid service name, instance id or port
// name: a lower-case DNS label, [a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?.
func ValidName(s string) bool {
	if len(s) == 0 || len(s) > MaxLabelLength {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case c == '-' && i > 0 && i < len(s)-1:
		default:
			return false
		}
	}
	return true
}

// CheckName returns a *FieldError naming field when s is not a valid name.
func CheckName(field, s string) error {
	if s == "" {
		return &FieldError{Field: field, Msg: "is required"}
	}
	if !ValidName(s) {
		return &FieldError{Field: field, Msg: fmt.Sprintf("%q is not a DNS label: use 1-63 of a-z, 0-9 and '-', not starting or ending with '-'", truncate(s, 80))}
	}
	return nil
}

// CheckPort returns a *FieldError naming field when p is outside 1-65535.
func CheckPort(field string, p int) error {
	if p < 1 || p > 65535 {
		return &FieldError{Field: field, Msg: fmt.Sprintf("%d is not a port in 1-65535", p)}
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
