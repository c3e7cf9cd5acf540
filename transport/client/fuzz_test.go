package client_test

import (
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/lifenavigator/crossservice/transport/client"
)

// FuzzRetryAfter: any header value parses to a non-negative wait or is
// ignored; delay-seconds are exact; an HTTP-date is relative to now.
func FuzzRetryAfter(f *testing.F) {
	now := time.Date(2026, 11, 29, 16, 0, 0, 0, time.UTC)
	for _, s := range []string{"0", "1", "120", "4294967295", "4294967296", "-1", "1.5", " 3", "",
		now.Add(time.Hour).Format(http.TimeFormat), now.Add(-time.Hour).Format(http.TimeFormat),
		"Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994", "Wed, 31 Dec 9999 23:59:59 GMT"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		d, ok := client.ParseRetryAfter(v, now)
		if !ok {
			if d != 0 {
				t.Fatalf("%q: ignored but wait %v", v, d)
			}
			return
		}
		if d < 0 {
			t.Fatalf("%q: negative wait %v", v, d)
		}
		if n, err := strconv.ParseUint(v, 10, 32); err == nil && d != time.Duration(n)*time.Second {
			t.Fatalf("%q: wait %v", v, d)
		}
	})
}
