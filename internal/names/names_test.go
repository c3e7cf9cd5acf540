package names_test

import (
	"strings"
	"testing"

	"github.com/lifenavigator/crossservice/internal/names"
)

func TestValid(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want bool
	}{
		{"frontend", true}, {"financial-service", true}, {"a1", true}, {"a", true},
		{strings.Repeat("a", 63), true}, {strings.Repeat("a", 64), false},
		{"", false}, {"*", false}, {"Financial", false}, {"1abc", false}, {"-abc", false},
		{"abc-", false}, {"a--b", false}, {"a_b", false}, {"a b", false}, {"a.b", false},
		{"a\nb", false}, {"é", false},
	} {
		if got := names.Valid(tc.in); got != tc.want {
			t.Errorf("Valid(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}
