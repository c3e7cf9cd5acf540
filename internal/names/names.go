// Package names holds the one grammar for service names, shared by the share tag
// (schema), the envelope header (envelope) and the signed caller (transport).
package names

// MaxLen is the longest valid service name, a DNS label's length.
const MaxLen = 63

// Valid reports whether s is a service name: 1 to 63 bytes of lowercase ASCII
// letters, digits and hyphens, starting with a letter, not ending with a hyphen
// and without two hyphens in a row. The wildcard "*" is not a name.
func Valid(s string) bool {
	if len(s) == 0 || len(s) > MaxLen {
		return false
	}
	if s[0] < 'a' || s[0] > 'z' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case c == '-':
			if s[i-1] == '-' {
				return false
			}
		default:
			return false
		}
	}
	return true
}
