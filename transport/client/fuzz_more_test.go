package client_test

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lifenavigator/crossservice/testdata"
	"github.com/lifenavigator/crossservice/transport"
	"github.com/lifenavigator/crossservice/transport/client"
)

// seedRetryAfter returns the Retry-After values of
// testdata/transport/retry-after.txt, and fails when there are none.
func seedRetryAfter(tb testing.TB) []string {
	tb.Helper()
	b, err := testdata.Transport.ReadFile("transport/retry-after.txt")
	if err != nil {
		tb.Fatal(err)
	}
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "//"):
		case line == "<empty>":
			out = append(out, "")
		case line != "":
			out = append(out, line)
		}
	}
	if len(out) < 10 {
		tb.Fatalf("only %d Retry-After seeds loaded from testdata/transport/retry-after.txt", len(out))
	}
	return out
}

// answer503 is a base RoundTripper that answers every attempt 503 with a
// problem document and the given Retry-After, as net/http's client would
// hand it over (surrounding whitespace trimmed).
type answer503 struct {
	retryAfter string
	calls      atomic.Int32
}

func (a *answer503) RoundTrip(req *http.Request) (*http.Response, error) {
	a.calls.Add(1)
	if req.Body != nil {
		req.Body.Close()
	}
	h := http.Header{"Content-Type": {transport.ProblemContentType}}
	if v := textproto.TrimString(a.retryAfter); v != "" {
		h["Retry-After"] = []string{v}
	}
	body := `{"type":"about:blank","title":"Unavailable","status":503,"code":"replay_store_unavailable"}`
	return &http.Response{StatusCode: 503, Header: h, Body: io.NopCloser(strings.NewReader(body)), Request: req}, nil
}

// FuzzRetryAfterHeader drives the Transport with a target that answers 503
// and a fuzzed Retry-After. The parser must never panic and never give a
// negative wait; a wait the target asks for beyond MaxRetryAfter ends the
// call at once (KindRateLimited, ErrRetryAfterTooLong, the wait carried);
// an absent, invalid or zero one lets the Transport retry; and for
// delay-seconds the problem parsed by transport.ParseProblem carries the
// same wait as the error.
func FuzzRetryAfterHeader(f *testing.F) {
	for _, s := range seedRetryAfter(f) {
		f.Add(s)
	}
	now := time.Date(2026, 11, 29, 16, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, v string) {
		d, ok := client.ParseRetryAfter(textproto.TrimString(v), now)
		if d < 0 || (!ok && d != 0) {
			t.Fatalf("%q: wait %v, ok %v", v, d, ok)
		}
		base := &answer503{retryAfter: v}
		rt, err := client.NewTransport(client.TransportConfig{
			Target: "fuzz-target", Base: base, Breaker: client.BreakerPolicy{Disabled: true},
			Retry: client.RetryPolicy{MaxAttempts: 2, InitialBackoff: time.Nanosecond, MaxBackoff: time.Nanosecond,
				MaxRetryAfter: time.Nanosecond, Budget: &client.Budget{Ratio: 1, Burst: 1e9}},
			Now: func() time.Time { return now },
		})
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest(http.MethodGet, "http://fuzz.invalid/x", nil)
		resp, err := rt.RoundTrip(req)
		if resp != nil {
			resp.Body.Close()
		}
		if ok && d > 0 {
			var e *client.Error
			if !errors.As(err, &e) || e.Kind != client.KindRateLimited || !errors.Is(err, client.ErrRetryAfterTooLong) ||
				e.RetryAfter != d || base.calls.Load() != 1 {
				t.Fatalf("%q (wait %v): %v after %d calls", v, d, err, base.calls.Load())
			}
			if n, perr := strconv.ParseUint(textproto.TrimString(v), 10, 31); perr == nil &&
				(e.Problem == nil || e.Problem.RetryAfter != time.Duration(n)*time.Second) {
				t.Fatalf("%q: the problem says %v, the error %v", v, e.Problem, e.RetryAfter)
			}
			return
		}
		if err != nil || resp == nil || resp.StatusCode != 503 || base.calls.Load() != 2 {
			t.Fatalf("%q (wait %v, %v): %v, %d calls", v, d, ok, err, base.calls.Load())
		}
	})
}
