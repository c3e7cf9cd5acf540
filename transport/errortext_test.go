package transport_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lifenavigator/crossservice/transport"
)

// Key file errors name an entry by index and (quoted) caller: no raw control
// byte from the file reaches a log line, and a secret pasted into the id
// field is not echoed by the error its short "secret" causes.
func TestKeyFileErrorsQuoteAndOmitID(t *testing.T) {
	_, err := transport.ParseKeyFile([]byte(`{"version":1,"keys":[{"caller":"a\nlevel=ERROR msg=\"forged line\"","id":"k"}]}`))
	if err == nil || strings.ContainsAny(err.Error(), "\n\r") {
		t.Errorf("raw newline from the file in the error: %q", err)
	}
	secret := "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	_, err = transport.ParseKeyFile([]byte(`{"version":1,"keys":[{"caller":"a","id":"` + secret + `","secret":"2026-04"}]}`))
	if !errors.Is(err, transport.ErrKeyTooShort) {
		t.Fatalf("got %v, want ErrKeyTooShort", err)
	}
	if strings.Contains(err.Error(), secret) {
		t.Errorf("the swapped-in secret is in the error: %v", err)
	}
}

// One Retry-After parser serves the client and ParseProblem (RFC 9110
// delay-seconds is digits only).
func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"0", 0, true}, {"5", 5 * time.Second, true}, {" 7 ", 7 * time.Second, true},
		{"4294967295", 4294967295 * time.Second, true}, {"4294967296", 0, false},
		{"+5", 0, false}, {"-1", 0, false}, {"1.5", 0, false}, {"", 0, false}, {"soon", 0, false},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second, true},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0, true},
	} {
		got, ok := transport.ParseRetryAfter(tc.in, now)
		if got != tc.want || ok != tc.ok {
			t.Errorf("ParseRetryAfter(%q) = %v, %v; want %v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}
