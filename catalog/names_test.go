package catalog

import (
	"errors"
	"strings"
	"testing"
)

func TestValidName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"web", true},
		{"a", true},
		{"0", true},
		{"web-1", true},
		{strings.Repeat("a", 63), true},
		{strings.Repeat("a", 64), false},
		{"", false},
		{"-web", false},
		{"web-", false},
		{"Web", false},
		{"web.1", false},
		{"web_1", false},
		{"wéb", false},
		{"web/1", false},
	}
	for _, tt := range tests {
		if got := ValidName(tt.name); got != tt.ok {
			t.Errorf("ValidName(%q) = %v, want %v", tt.name, got, tt.ok)
		}
	}
}

func TestCheckNameNamesField(t *testing.T) {
	err := CheckName("id", "Bad!")
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "id" {
		t.Fatalf("CheckName error = %v, want a FieldError for field id", err)
	}
	if err := CheckName("id", ""); err == nil || !strings.Contains(err.Error(), "required") {
		t.Errorf("CheckName of empty = %v, want 'is required'", err)
	}
}

func TestCheckPort(t *testing.T) {
	for _, p := range []int{-1, 0, 65536, 1 << 20} {
		if CheckPort("port", p) == nil {
			t.Errorf("CheckPort(%d) = nil, want error", p)
		}
	}
	for _, p := range []int{1, 80, 65535} {
		if err := CheckPort("port", p); err != nil {
			t.Errorf("CheckPort(%d) = %v", p, err)
		}
	}
}
